"""The streaming recogniser: one call's audio chunks in, partial and final transcripts out.

Pure, like whisper_streaming's ``OnlineASRProcessor``: no sockets, no threads, no clocks. Each channel
(one speaker role) has its own endpointer; a finished utterance is transcribed with the language pinned
when known, Whisper's silence hallucinations are dropped, and what is left is a final turn. While a turn
is still going, a partial transcript of it is produced every ``partial_every`` seconds of audio, so a
sidebar shows the words before the speaker stops.

Transcription goes through a plain function, so the server can route every call's turns through one
shared, bounded worker pool without this module knowing about it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from audio.endpoint import EndpointConfig, Endpointer, Utterance
from models.hallucinations import HallucinationFilter
from models.transcriber import Segment

logger = logging.getLogger(__name__)

TranscribeFn = Callable[[np.ndarray, str | None], list[Segment]]


class StreamError(ValueError):
    """Audio that does not fit the call's declared channels, or a call used after it ended."""


@dataclass(frozen=True)
class TranscriptEvent:
    """A turn's text; `start`/`end` in seconds of call audio; `final` once the speaker has stopped."""

    speaker: str
    text: str
    start: float
    end: float
    final: bool


class CallRecognizer:
    """Recognises one call: `push` interleaved-and-split channel chunks, `finish` at the end."""

    def __init__(
        self,
        transcribe: TranscribeFn,
        roles: Sequence[str],
        *,
        language: str | None = None,
        endpoint: EndpointConfig | None = None,
        partial_every: float = 1.0,
        hallucinations: HallucinationFilter | None = None,
    ) -> None:
        if not roles:
            raise StreamError("a call needs at least one channel role")
        self.roles = list(roles)
        self.language = language
        self._transcribe = transcribe
        self._endpointers = [Endpointer(endpoint) for _ in self.roles]
        self._filter = hallucinations or HallucinationFilter()
        self._partial_every = partial_every
        self._last_partial = [0.0] * len(self.roles)
        self._finished = False

    def push(self, channels: np.ndarray, sample_rate: int) -> list[TranscriptEvent]:
        """One chunk of audio, shape (channels, samples) float32; returns the events it produced."""
        if self._finished:
            raise StreamError("the call has ended; no more audio is accepted")
        audio = np.asarray(channels)
        if audio.ndim != 2 or audio.shape[0] != len(self.roles):
            raise StreamError(f"expected audio of shape ({len(self.roles)}, n), got {audio.shape}")
        events: list[TranscriptEvent] = []
        for index, endpointer in enumerate(self._endpointers):
            for utterance in endpointer.push(audio[index], sample_rate):
                events.extend(self._final(index, utterance))
            events.extend(self._partial(index))
        return sorted(events, key=lambda e: (e.start, e.final))

    def finish(self) -> list[TranscriptEvent]:
        """End of the call: every turn still open becomes final."""
        if self._finished:
            return []
        self._finished = True
        events: list[TranscriptEvent] = []
        for index, endpointer in enumerate(self._endpointers):
            for utterance in endpointer.flush():
                events.extend(self._final(index, utterance))
        return sorted(events, key=lambda e: e.start)

    def _final(self, index: int, utterance: Utterance) -> list[TranscriptEvent]:
        self._last_partial[index] = utterance.end
        return self._transcript(index, utterance, final=True)

    def _partial(self, index: int) -> list[TranscriptEvent]:
        """A partial transcript of the open turn, once per `partial_every` seconds of its audio."""
        pending = self._endpointers[index].pending()
        if (
            pending is None
            or pending.end - max(pending.start, self._last_partial[index]) < self._partial_every
        ):
            return []
        self._last_partial[index] = pending.end
        return self._transcript(index, pending, final=False)

    def _transcript(self, index: int, utterance: Utterance, *, final: bool) -> list[TranscriptEvent]:
        """The utterance's text as an event, or nothing when all Whisper heard was a hallucination."""
        segments = self._filter.keep(self._transcribe(utterance.samples, self.language))
        text = " ".join(s.text for s in segments).strip()
        if not text:
            return []
        start, end = round(utterance.start, 2), round(utterance.end, 2)
        return [TranscriptEvent(self.roles[index], text, start, end, final)]
