"""Decode an audio file (wav, mu-law wav, mp3, ogg/opus, flac, ...) into float32 samples with PyAV.

Channels stay separate by default because in call recordings they usually carry different
speakers (agent and customer); ``mono=True`` averages the channels for callers that want one signal
(a plain mean: predictable, never clips, unlike FFmpeg's -3 dB downmix matrix).
Resampling (default 16 kHz, what Whisper expects) happens while decoding, with FFmpeg's swresample.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

logger = logging.getLogger(__name__)


class AudioDecodeError(ValueError):
    """A file could not be decoded as audio: missing, empty, corrupt or without an audio stream."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class DecodedAudio:
    """Decoded samples, float32 shaped ``(channels, n)`` in [-1, 1], at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        """Number of channels (rows of ``samples``)."""
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[1] / self.sample_rate


def decode_file(
    path: str | os.PathLike[str], *, sample_rate: int | None = 16000, mono: bool = False
) -> DecodedAudio:
    """Decode the first audio stream of ``path``.

    ``sample_rate=None`` keeps the file's rate; ``mono=True`` averages the channels into one. Raises
    :class:`AudioDecodeError` (naming the file) when it is missing, empty, corrupt or has no audio.
    """
    path = Path(path)
    if sample_rate is not None and sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive or None, got {sample_rate}")
    if not path.is_file():
        raise AudioDecodeError(path, "no such file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "file is empty")
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError(path, "no audio stream")
            decoded = _decode_stream(container, container.streams.audio[0], path, sample_rate)
    except av.FFmpegError as exc:
        raise AudioDecodeError(path, f"cannot decode ({exc})") from exc
    if decoded.samples.shape[1] == 0:
        raise AudioDecodeError(path, "no audio samples decoded")
    if mono and decoded.channels > 1:
        decoded.samples = decoded.samples.mean(axis=0, keepdims=True, dtype=np.float32)
    np.clip(decoded.samples, -1.0, 1.0, out=decoded.samples)
    logger.debug(
        "decoded %s: %d ch, %d Hz, %.2f s", path, decoded.channels, decoded.sample_rate, decoded.duration
    )
    return decoded


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    path: Path,
    sample_rate: int | None,
) -> DecodedAudio:
    """Decode every frame of ``stream`` and convert it to planar float32 at the target rate/layout."""
    rate = sample_rate or stream.codec_context.sample_rate
    if not rate:
        raise AudioDecodeError(path, "audio stream has no sample rate")
    converter = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=rate)
    chunks: list[np.ndarray] = []
    for frame in container.decode(stream):
        frame.pts = None  # timestamps of damaged files can jump; we only need the sample sequence
        chunks.extend(out.to_ndarray() for out in converter.resample(frame))
    chunks.extend(out.to_ndarray() for out in converter.resample(None))
    if not chunks:
        n_channels = stream.codec_context.layout.nb_channels
        return DecodedAudio(samples=np.zeros((n_channels, 0), dtype=np.float32), sample_rate=rate)
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    return DecodedAudio(samples=samples, sample_rate=rate)
