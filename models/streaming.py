"""The streaming recogniser: one call's audio chunks in, partial and final transcripts out.

Pure, like whisper_streaming's ``OnlineASRProcessor``: no sockets, no threads, no clocks. Each channel
(one speaker role) has its own endpointer; a finished utterance is transcribed with the language pinned
when known, Whisper's silence hallucinations are dropped, and what is left is a final turn. While a turn
is still going, a partial transcript of it is produced every ``partial_every`` seconds of audio, so a
sidebar shows the words before the speaker stops.

Two ways to use it:

- **inline**: give a ``transcribe`` function and :meth:`CallRecognizer.push` returns the transcript
  events, transcribing as it goes (simple; a slow transcription holds up the next chunk);
- **deferred** (``transcribe=None``): ``push`` only listens; the caller takes the finished turns
  (:meth:`~CallRecognizer.take_finals`), the previews due (:meth:`~CallRecognizer.due_partials`) and the
  turns that have just gone quiet (:meth:`~CallRecognizer.likely_finals`), transcribes them where and when
  it likes (the server: one shared pool for all calls), and turns the results into events with
  :meth:`~CallRecognizer.turn_event`. Listening never waits for the recogniser.

An inline ``transcribe`` may decline a partial (return ``None``) when it is busy: partials are a courtesy,
finals are the record.
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
class PendingTurn:
    """A turn waiting to be transcribed: its channel, speaker, audio, and whether it is finished."""

    channel: int
    speaker: str
    utterance: Utterance
    final: bool


class CallRecognizer:
    """Recognises one call: `push` interleaved-and-split channel chunks, `finish` at the end."""

    def __init__(
        self,
        transcribe: TranscribeFn | None,
        roles: Sequence[str],
        *,
        language: str | None = None,
        endpoint: EndpointConfig | None = None,
        partial_every: float = 1.0,
        hallucinations: HallucinationFilter | None = None,
    ) -> None:
        """``transcribe=None`` makes the recogniser deferred (see the module's docstring)."""
        if not roles:
            raise StreamError("a call needs at least one channel role")
        self.roles = list(roles)
        self.language = language
        self._transcribe = transcribe
        self._endpointers = [Endpointer(endpoint) for _ in self.roles]
        self._filter = hallucinations or HallucinationFilter()
        self._partial_every = partial_every
        self._finals: list[PendingTurn] = []  # finished turns not yet taken (deferred mode)
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
            if self._transcribe is not None and self._partial_due(index):
                turn = PendingTurn(index, self.roles[index], endpointer.pending(), final=False)
                events.extend(self._transcript(turn))
        return sorted(events, key=lambda e: (e.start, e.final))

    def take_finals(self) -> list[PendingTurn]:
        """Deferred mode: the turns finished since the last call, in order; each is handed out once."""
        finals, self._finals = self._finals, []
        return finals

    def due_partials(self) -> list[PendingTurn]:
        """Open turns due for a preview (every ``partial_every`` s of audio); each is handed out once."""
        return [
            PendingTurn(index, self.roles[index], endpointer.pending(), final=False)
            for index, endpointer in enumerate(self._endpointers)
            if self._partial_due(index)
        ]

    def likely_finals(self, after_ms: int = 250) -> list[PendingTurn]:
        """Turns that will be finished, with exactly this audio, unless their speaker talks again: each
        handed out once, after ``after_ms`` of silence. Transcribing one early and reusing the result for
        the final (same samples) takes the recogniser's time off the silence the endpointer waits for."""
        likely = []
        for index, endpointer in enumerate(self._endpointers):
            utterance = endpointer.tentative(after_ms)
            if utterance is not None and self._speculated[index] != (utterance.start, utterance.end):
                self._speculated[index] = (utterance.start, utterance.end)
                likely.append(PendingTurn(index, self.roles[index], utterance, final=True))
        return likely

    def turn_event(self, turn: PendingTurn, segments: list[Segment]) -> TranscriptEvent | None:
        """The event for a transcribed turn, or None when all Whisper heard was a hallucination."""
        segments = self._filter.keep(segments)
        text = " ".join(s.text for s in segments).strip()
        if not text:
            return None
        start, end = round(turn.utterance.start, 2), round(turn.utterance.end, 2)
        return TranscriptEvent(turn.speaker, text, start, end, turn.final)

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
        turn = PendingTurn(index, self.roles[index], utterance, final=True)
        if self._transcribe is None:
            self._finals.append(turn)
            return []
        return self._transcript(turn)

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

    def _transcript(self, turn: PendingTurn) -> list[TranscriptEvent]:
        """Inline mode: transcribe the turn now; nothing when declined or all hallucination."""
        heard = self._transcribe(turn.utterance.samples, self.language, turn.final)
        if heard is None:  # a partial the transcriber had no time for
            return []
        event = self.turn_event(turn, heard)
        return [event] if event is not None else []
