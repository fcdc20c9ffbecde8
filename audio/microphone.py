"""Live microphone capture with ``sounddevice`` (PortAudio), for demos of live assist without a phone line.

Yields 16-bit PCM frames of a fixed length, mono, at the requested rate. Where PortAudio or an input
device is missing (a server, a container) it raises :class:`MicrophoneError` with what was missing,
instead of PortAudio's own exception types.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator

import numpy as np

logger = logging.getLogger(__name__)


class MicrophoneError(RuntimeError):
    """No usable audio input: PortAudio is not installed, there is no input device, or it failed."""


def _sounddevice():  # noqa: ANN202 - the module, imported only when a microphone is really wanted
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when the PortAudio library is missing
        raise MicrophoneError(f"no audio input: PortAudio is not available ({exc})") from exc
    return sounddevice


def default_input_device() -> str:
    """The name of the default input device; raises MicrophoneError when there is none."""
    sd = _sounddevice()
    try:
        info = sd.query_devices(kind="input")
    except (sd.PortAudioError, ValueError) as exc:
        raise MicrophoneError(f"no audio input device: {exc}") from exc
    return str(info["name"])


def capture(sample_rate: int = 16000, frame_ms: int = 20) -> Iterator[bytes]:
    """Frames of little-endian 16-bit mono PCM from the default input device, until the caller stops.

    Raises MicrophoneError if the device cannot be opened.
    """
    sd = _sounddevice()
    device = default_input_device()
    frames: queue.Queue[bytes] = queue.Queue(maxsize=500)
    blocksize = sample_rate * frame_ms // 1000

    def on_audio(data: np.ndarray, _frames: int, _time: object, status: object) -> None:
        if status:
            logger.warning("microphone: %s", status)
        try:
            frames.put_nowait(data.tobytes())
        except queue.Full:
            logger.warning("microphone: a frame was dropped (the consumer is too slow)")

    try:
        stream = sd.InputStream(
            samplerate=sample_rate, channels=1, dtype="int16", blocksize=blocksize, callback=on_audio
        )
    except (sd.PortAudioError, ValueError) as exc:
        raise MicrophoneError(f"cannot open the microphone {device!r}: {exc}") from exc
    logger.info("capturing from %s at %d Hz", device, sample_rate)
    with stream:
        while True:
            yield frames.get()
