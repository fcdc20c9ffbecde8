"""Classifier speed on one core: load time (cold and warm embedding cache) and turns per second.

Prints its figures; it is not a test. Threads are pinned to one before NumPy loads, as the issue asks
for throughput "on one core once loaded".

    python bench/bench_classify.py [--turns 2000] [--encoder e5] [--batch 64]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from models.classifier import PhraseClassifier, Speaker, Turn  # noqa: E402
from models.encoders import get_encoder  # noqa: E402
from models.heard import load_heard  # noqa: E402
from models.packs import load_pack  # noqa: E402

OPENERS = ["", "Ну ", "Слушайте, ", "Так, ", "Короче, ", "Well, ", "Look, ", "Okay so "]
BODIES = [
    "я этим не занимаюсь, звоните в другой отдел",
    "это бухгалтерия напутала с вашим счётом",
    "сейчас проверю вашу заявку и перезвоню",
    "когда уже почините интернет",
    "позовите вашего руководителя",
    "назовите, пожалуйста, номер договора",
    "мы вернём вам деньги за этот месяц",
    "спасибо, что дождались ответа",
    "it's the billing team's fault, not ours",
    "I'll look into it and call you back by five",
    "when will my parcel finally arrive",
    "I want to speak to your manager",
    "let me pull up your account",
    "не знаю, когда сделают, может через неделю",
]
TAILS = ["", ".", "!", "?", " вообще", " сегодня", " right now", " please"]


def make_turns(n: int, seed: int = 7) -> list[Turn]:
    """`n` distinct short turns of both sides, built combinatorially (no cache can help)."""
    rng = random.Random(seed)
    combos = list(itertools.product(OPENERS, BODIES, TAILS))
    rng.shuffle(combos)
    turns = []
    for i, (opener, body, tail) in enumerate(itertools.islice(itertools.cycle(combos), n)):
        speaker = Speaker.CUSTOMER if i % 2 else Speaker.AGENT
        text = f"{opener}{body}{tail}"
        turns.append(Turn(text if i < len(combos) else f"{text} (call {i})", speaker))
    return turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--encoder", default="e5")
    parser.add_argument("--batch", type=int, default=64, help="turns per classify_batch call")
    args = parser.parse_args()

    pack = load_pack()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        encoder = get_encoder(args.encoder)
        loaded = time.perf_counter()
        heard = load_heard()
        PhraseClassifier(pack, encoder, cache_dir=Path(tmp), heard=heard)
        cold = time.perf_counter()
        clf = PhraseClassifier(pack, encoder, cache_dir=Path(tmp), heard=heard)
        warm = time.perf_counter()
    print(f"encoder {encoder.name}: model load {loaded - started:.2f} s")
    phrases = f"{clf.phrase_count} pack phrases and {clf.heard_count} heard variants"
    print(f"classifier build, cold cache (embeds {phrases}): {cold - loaded:.2f} s")
    print(f"classifier build, warm cache: {warm - cold:.2f} s")
    print(f"load total (model + warm build): {loaded - started + warm - cold:.2f} s")

    turns = make_turns(args.turns)
    clf.classify_batch(turns[:32])  # warm-up
    started = time.perf_counter()
    alerts = 0
    for i in range(0, len(turns), args.batch):
        for dets in clf.classify_batch(turns[i : i + args.batch]):
            alerts += bool(dets)
    elapsed = time.perf_counter() - started
    print(
        f"classify: {len(turns)} turns in {elapsed:.2f} s = {len(turns) / elapsed:.0f} turns/s "
        f"on one core (batch {args.batch}; {alerts} turns with a detection)"
    )
    started = time.perf_counter()
    for turn in turns[:200]:
        clf.classify(turn.text, turn.speaker)
    single = time.perf_counter() - started
    print(f"classify one at a time: {200 / single:.0f} turns/s ({1000 * single / 200:.1f} ms per turn)")


if __name__ == "__main__":
    main()
