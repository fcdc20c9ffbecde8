"""Sample-rate conversion of numpy audio with FFmpeg's swresample (via PyAV).

Used where audio already sits in memory (e.g. 8 kHz telephony frames that Whisper needs at 16 kHz);
:func:`audio.decode.decode_file` resamples files with the same filter while decoding.
:class:`Resampler` keeps filter state between chunks, so a stream resampled chunk by chunk has no
seams; :func:`resample` is the one-shot form.
"""

from __future__ import annotations

import av
import numpy as np


class Resampler:
    """Stateful float32 mono resampler: feed chunks with :meth:`process`, finish with :meth:`flush`."""

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        """Create a converter from ``src_rate`` to ``dst_rate`` Hz (both positive)."""
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._swr = av.AudioResampler(format="flt", layout="mono", rate=dst_rate)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Resample one 1-D chunk; returns what is ready (the filter holds back a few samples)."""
        x = np.ascontiguousarray(chunk, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected a 1-D mono chunk, got shape {x.shape}")
        if x.size == 0:
            return np.zeros(0, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(x[np.newaxis, :], format="flt", layout="mono")
        frame.sample_rate = self.src_rate
        return _concat(self._swr.resample(frame))

    def flush(self) -> np.ndarray:
        """Return the samples still held in the filter; the resampler is spent afterwards."""
        return _concat(self._swr.resample(None))


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample float audio shaped ``(n,)`` or ``(channels, n)`` from ``src_rate`` to ``dst_rate``.

    Output is float32 with ``round(n * dst_rate / src_rate)`` samples per channel, time-aligned with
    the input; each channel is converted independently, so channels never mix.
    """
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim not in (1, 2):
        raise ValueError(f"expected shape (n,) or (channels, n), got {arr.shape}")
    if src_rate == dst_rate:
        return arr.copy()
    if arr.ndim == 2:
        if arr.shape[0] == 0:
            raise ValueError("expected at least one channel")
        return np.stack([resample(channel, src_rate, dst_rate) for channel in arr])
    converter = Resampler(src_rate, dst_rate)
    return np.concatenate([converter.process(arr), converter.flush()])


def _concat(frames: list[av.AudioFrame]) -> np.ndarray:
    """Join resampler output frames into one 1-D float32 array."""
    if not frames:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32, copy=False)
