"""Telephone frame codecs: G.711 mu-law, 16-bit PCM, channel de-interleaving, int16 -> float32.

Live calls arrive as small raw frames (typically 20 ms) of mu-law or little-endian PCM16, one or two
interleaved channels (agent and customer). :func:`decode_frame` is the one entry point the stream
handler calls per frame; it validates the frame first and raises :class:`FrameError` with the numbers
that were wrong, because a malformed frame from a PBX must be rejected loudly rather than turned into
noise. The mu-law tables follow the classic Sun / CCITT reference code (the one Python's ``audioop``
and sox use), so results are bit-exact with those tools; the tables are built on first use, not at
import time.
"""

from __future__ import annotations

import functools
import logging
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

Encoding = Literal["pcm16", "mulaw"]

#: Bytes per sample of each supported encoding.
SAMPLE_WIDTH: dict[str, int] = {"pcm16": 2, "mulaw": 1}

#: Default upper bound for one frame: 64 KiB is ~4 s of 8 kHz stereo PCM16, far above a real frame.
DEFAULT_MAX_FRAME_BYTES = 64 * 1024

_MULAW_BIAS = 0x84
_MULAW_CLIP_14BIT = 8159
# Upper bounds of the eight mu-law segments on the 14-bit (biased) magnitude scale.
_MULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


class FrameError(ValueError):
    """A raw audio frame is malformed: empty, oversize, wrong length, unknown encoding or channel count."""


@functools.cache
def _mulaw_decode_table() -> np.ndarray:
    """The 256-entry mu-law byte -> int16 table (G.711, as in ``audioop.ulaw2lin``)."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((u & 0x0F) << 3) + _MULAW_BIAS
    t <<= (u & 0x70) >> 4
    linear = np.where(u & 0x80, _MULAW_BIAS - t, t - _MULAW_BIAS)
    table = linear.astype(np.int16)
    table.flags.writeable = False
    return table


@functools.cache
def _mulaw_encode_table() -> np.ndarray:
    """The 65536-entry table indexed by the int16 sample's bit pattern (uint16) -> mu-law byte.

    Computed with the reference algorithm (14-bit magnitude, bias 33, segment search, bit inversion)
    for every possible input, so encoding is one table lookup per sample.
    """
    pcm = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32)
    val = pcm >> 2  # 16-bit -> 14-bit, arithmetic shift as in the reference code
    negative = val < 0
    mask = np.where(negative, 0x7F, 0xFF)
    magnitude = np.minimum(np.where(negative, -val, val), _MULAW_CLIP_14BIT) + (_MULAW_BIAS >> 2)
    segment = np.searchsorted(_MULAW_SEGMENT_ENDS, magnitude, side="left")
    uval = (segment << 4) | ((magnitude >> np.minimum(segment + 1, 8)) & 0x0F)
    uval = np.where(segment >= 8, 0x7F, uval)  # beyond the last segment: the extreme code
    table = ((uval ^ mask) & 0xFF).astype(np.uint8)
    table.flags.writeable = False
    return table


def mulaw_decode(data: bytes) -> np.ndarray:
    """Decode G.711 mu-law bytes into int16 samples (one sample per byte)."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _mulaw_decode_table()[codes]


def mulaw_encode(pcm: np.ndarray) -> bytes:
    """Encode int16 samples as G.711 mu-law bytes (one byte per sample)."""
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise TypeError(f"mulaw_encode expects int16 samples, got {arr.dtype}")
    return _mulaw_encode_table()[arr.reshape(-1).view(np.uint16)].tobytes()


def pcm16_decode(data: bytes) -> np.ndarray:
    """Decode little-endian signed 16-bit PCM bytes into native int16 samples."""
    if len(data) % 2:
        raise FrameError(f"pcm16 data must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def deinterleave(samples: np.ndarray, channels: int) -> np.ndarray:
    """Split interleaved samples ``L R L R ...`` into a contiguous ``(channels, n)`` array."""
    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise ValueError(f"expected 1-D interleaved samples, got shape {arr.shape}")
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    if arr.size % channels:
        raise ValueError(f"{arr.size} samples cannot be split evenly into {channels} channels")
    return np.ascontiguousarray(arr.reshape(-1, channels).T)


def to_float32(pcm: np.ndarray) -> np.ndarray:
    """Scale int16 samples to float32 in [-1, 1) (divide by 32768, so -32768 maps to exactly -1)."""
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise TypeError(f"to_float32 expects int16 samples, got {arr.dtype}")
    return arr.astype(np.float32) / np.float32(32768.0)


def decode_frame(
    data: bytes,
    *,
    encoding: Encoding,
    channels: int,
    max_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> np.ndarray:
    """Decode one raw live-stream frame into float32 ``(channels, n)`` samples in [-1, 1).

    Validates before decoding and raises :class:`FrameError` for an unknown encoding, a channel count
    other than 1 or 2, an empty or oversize frame (more than ``max_bytes``), an odd byte count for
    pcm16, or a length that is not a whole number of ``channels * sample width`` bytes.
    """
    width = SAMPLE_WIDTH.get(encoding)
    if width is None:
        raise FrameError(f"unknown encoding {encoding!r}; expected one of {sorted(SAMPLE_WIDTH)}")
    if channels not in (1, 2):
        raise FrameError(f"channels must be 1 or 2, got {channels}")
    size = len(data)
    if size == 0:
        raise FrameError(f"empty {encoding} frame (0 bytes)")
    if size > max_bytes:
        raise FrameError(f"{encoding} frame of {size} bytes exceeds max_bytes={max_bytes}")
    if encoding == "pcm16" and size % 2:
        raise FrameError(f"pcm16 frame has an odd length of {size} bytes; samples are 2 bytes each")
    block = channels * width
    if size % block:
        raise FrameError(
            f"{encoding} frame of {size} bytes is not a multiple of {block} "
            f"({channels} channel(s) x {width} byte(s) per sample)"
        )
    pcm = pcm16_decode(data) if encoding == "pcm16" else mulaw_decode(data)
    return deinterleave(to_float32(pcm), channels)
