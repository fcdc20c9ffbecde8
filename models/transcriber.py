"""Speech to text for short telephone turns with a faster-whisper model.

The caller does endpointing and hands over one turn at a time, so the defaults favour latency and
independence between turns: greedy decoding (``beam_size=1``), no conditioning on earlier text
(avoids repeating a previous turn's words), no built-in VAD, and Whisper's temperature fallback
kept for turns where greedy decoding degenerates. Hallucination filtering is left to a later stage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from audio.decode import decode_file

if TYPE_CHECKING:
    import faster_whisper

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DEFAULT_TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class Segment:
    """One recognised stretch of speech; times in seconds from the start of the audio given."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float


class Transcriber:
    """Transcribes 16 kHz mono float32 audio into :class:`Segment` records with a WhisperModel."""

    def __init__(
        self,
        model: faster_whisper.WhisperModel,
        *,
        beam_size: int = 1,
        vad_filter: bool = False,
        temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    ) -> None:
        """Wrap ``model`` (e.g. from :func:`models.whisper_model.load_whisper`) with decoding settings."""
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        self.model = model
        self.beam_size = beam_size
        self.vad_filter = vad_filter
        self.temperatures = tuple(temperatures)

    def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> list[Segment]:
        """Transcribe one turn: 1-D float32 samples at 16 kHz in [-1, 1].

        ``language`` pins the language (e.g. ``"ru"``, ``"en"``); ``None`` lets Whisper detect it.
        Segments whose text is empty after stripping are dropped.
        """
        samples = np.asarray(audio)
        if samples.ndim != 1:
            raise ValueError(f"expected 1-D mono audio, got shape {samples.shape}")
        if not np.issubdtype(samples.dtype, np.floating):
            raise ValueError(f"expected float samples in [-1, 1], got dtype {samples.dtype}")
        if samples.size == 0:
            return []
        raw_segments, info = self.model.transcribe(
            samples.astype(np.float32, copy=False),
            language=language,
            beam_size=self.beam_size,
            temperature=list(self.temperatures),
            condition_on_previous_text=False,
            vad_filter=self.vad_filter,
        )
        segments = [
            Segment(
                start=float(s.start),
                end=float(s.end),
                text=s.text.strip(),
                avg_logprob=float(s.avg_logprob),
                no_speech_prob=float(s.no_speech_prob),
            )
            for s in raw_segments  # a lazy generator: decoding happens here
            if s.text.strip()
        ]
        logger.debug(
            "transcribed %.2f s (%s) into %d segments",
            samples.size / SAMPLE_RATE,
            info.language,
            len(segments),
        )
        return segments

    def transcribe_file(self, path: str | os.PathLike[str], language: str | None = None) -> list[Segment]:
        """Decode ``path`` to 16 kHz mono (all channels mixed) and transcribe it.

        Raises :class:`audio.decode.AudioDecodeError` if the file cannot be decoded.
        """
        decoded = decode_file(path, sample_rate=SAMPLE_RATE, mono=True)
        return self.transcribe(decoded.samples[0], language=language)
