"""The streaming recogniser: one call's audio chunks in, partial and final transcripts out.

Pure, like whisper_streaming's ``OnlineASRProcessor``: no sockets, no threads, no clocks. Each channel
(one speaker role) has its own endpointer; a finished utterance is transcribed with the language pinned
when known, Whisper's silence hallucinations are dropped, and what is left is a final turn. While a turn
is still going, a partial transcript of it is produced every ``partial_every`` seconds of audio, so a
sidebar shows the words before the speaker stops.

Transcription goes through a plain function, so the server can route every call's turns through one
shared, bounded worker pool without this module knowing about it. The function is told whether the audio
is a finished turn or a partial one, and may decline a partial (return ``None``) when it is busy: partials
are a courtesy, finals are the record.
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

# (16 kHz samples, language or None, final) -> segments, or None when a partial is declined.
TranscribeFn = Callable[[np.ndarray, str | None, bool], list[Segment] | None]


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


@dataclass(frozen=True)
class PartialTurn:
    """An open turn due for a preview transcription: its channel, speaker and audio so far."""

    channel: int
    speaker: str
    utterance: Utterance


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
        inline_partials: bool = True,
        hallucinations: HallucinationFilter | None = None,
    ) -> None:
        """``inline_partials=False`` leaves partials to the caller (:meth:`due_partials`), so a slow
        preview never delays noticing the end of a turn."""
        if not roles:
            raise StreamError("a call needs at least one channel role")
        self.roles = list(roles)
        self.language = language
        self._transcribe = transcribe
        self._endpointers = [Endpointer(endpoint) for _ in self.roles]
        self._filter = hallucinations or HallucinationFilter()
        self._partial_every = partial_every
        self._inline_partials = inline_partials
        self._last_partial = [0.0] * len(self.roles)
        self._speculated: list[tuple[float, float] | None] = [None] * len(self.roles)
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
            if self._inline_partials and self._partial_due(index):
                pending = self._endpointers[index].pending()
                events.extend(self._transcript(index, pending, final=False))
        return sorted(events, key=lambda e: (e.start, e.final))

    def due_partials(self) -> list[PartialTurn]:
        """Open turns due for a preview (every ``partial_every`` s of their audio); each is handed out once.

        Turn the transcription of one into an event with :meth:`partial_event`.
        """
        due = []
        for index, endpointer in enumerate(self._endpointers):
            if self._partial_due(index):
                pending = endpointer.pending()
                due.append(PartialTurn(index, self.roles[index], pending))
        return due

    def partial_event(self, turn: PartialTurn, segments: list[Segment]) -> TranscriptEvent | None:
        """The preview event for a due partial turn, or None when all Whisper heard was a hallucination."""
        events = self._event(turn.channel, turn.utterance, segments, final=False)
        return events[0] if events else None

    def likely_finals(self, after_ms: int = 250) -> list[np.ndarray]:
        """Audio of turns that will be final, unchanged, unless their speaker talks again: each handed out
        once, after ``after_ms`` of silence. Transcribing them early (and answering the final's transcribe
        call from that result) takes the recogniser's time off the silence the endpointer waits for."""
        likely = []
        for index, endpointer in enumerate(self._endpointers):
            utterance = endpointer.tentative(after_ms)
            if utterance is not None and self._speculated[index] != (utterance.start, utterance.end):
                self._speculated[index] = (utterance.start, utterance.end)
                likely.append(utterance.samples)
        return likely

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

    def _partial_due(self, index: int) -> bool:
        """True (once) when the open turn has ``partial_every`` seconds of audio since its last preview."""
        pending = self._endpointers[index].pending()
        if (
            pending is None
            or pending.end - max(pending.start, self._last_partial[index]) < self._partial_every
        ):
            return False
        self._last_partial[index] = pending.end
        return True

    def _transcript(self, index: int, utterance: Utterance, *, final: bool) -> list[TranscriptEvent]:
        """The utterance's text as an event, or nothing when all Whisper heard was a hallucination."""
        heard = self._transcribe(utterance.samples, self.language, final)
        if heard is None:  # a partial the transcriber had no time for
            return []
        return self._event(index, utterance, heard, final=final)

    def _event(
        self, index: int, utterance: Utterance, heard: list[Segment], *, final: bool
    ) -> list[TranscriptEvent]:
        segments = self._filter.keep(heard)
        text = " ".join(s.text for s in segments).strip()
        if not text:
            return []
        start, end = round(utterance.start, 2), round(utterance.end, 2)
        return [TranscriptEvent(self.roles[index], text, start, end, final)]
