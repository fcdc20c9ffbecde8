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
  :meth:`~CallRecognizer.turn_event`. Listening never waits for the recogniser. With ``min_piece``, a
  long turn is handed out in pieces cut at its pauses while it is still spoken, so when it ends only
  its last sentence is left to transcribe (whisper_streaming commits a confirmed prefix the same way).

An inline ``transcribe`` may decline a partial (return ``None``) when it is busy: partials are a courtesy,
finals are the record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from audio.endpoint import VAD_SAMPLE_RATE, EndpointConfig, Endpointer, Utterance
from models.hallucinations import HallucinationFilter
from models.loops import without_loops
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
    """A turn waiting to be transcribed: its channel, speaker, audio, and whether it is finished.

    ``pieces`` (deferred finals of long turns): the consecutive parts of ``utterance`` that are
    transcribed one by one, their texts joined; empty means the whole utterance in one piece.
    ``kept`` (pieces from :meth:`CallRecognizer.likely_finals`): the piece belongs to its turn whatever
    the speaker does next, so transcribing it is never wasted.
    """

    channel: int
    speaker: str
    utterance: Utterance
    final: bool
    pieces: tuple[Utterance, ...] = ()
    kept: bool = False

    def parts(self) -> tuple[Utterance, ...]:
        """What to transcribe, in order: the pieces, or the whole utterance."""
        return self.pieces or (self.utterance,)


PieceKey = tuple[int, int, int]  # (channel, first sample, end sample) at 16 kHz


def piece_key(channel: int, utterance: Utterance) -> PieceKey:
    """Identifies a piece of a channel's audio exactly (16 kHz sample indices of its start and end): the
    final's pieces are the very pieces handed out earlier by :meth:`CallRecognizer.likely_finals`."""
    return channel, round(utterance.start * VAD_SAMPLE_RATE), round(utterance.end * VAD_SAMPLE_RATE)


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
        min_piece: float | None = None,
    ) -> None:
        """``transcribe=None`` makes the recogniser deferred (see the module's docstring).

        ``min_piece`` (seconds, deferred mode): a likely final at least this long is kept as a piece of
        its turn even if the speaker goes on; None keeps every turn in one piece.
        """
        if min_piece is not None and min_piece <= 0:
            raise StreamError(f"min_piece must be positive seconds or None, got {min_piece}")
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
        self._min_piece = min_piece
        self._kept: list[list[Utterance]] = [[] for _ in self.roles]  # kept pieces of each open turn
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
        """Open turns due for a preview (every ``partial_every`` s of audio); each is handed out once.

        A turn with kept pieces comes in pieces too: the kept ones (already being transcribed) and the
        rest so far, the only part a preview needs to transcribe."""
        due = []
        for index, endpointer in enumerate(self._endpointers):
            if self._partial_due(index):
                whole = endpointer.pending()
                pieces = self._pieces(index, whole, use_up=False)
                if pieces and pieces[-1].end != whole.end:
                    continue  # nothing new since the last kept piece
                due.append(PendingTurn(index, self.roles[index], whole, False, pieces))
        return due

    def likely_finals(self, after_ms: int = 250) -> list[PendingTurn]:
        """The last pieces of turns that will be finished, with exactly this audio, unless their speaker
        talks again: each handed out once, after ``after_ms`` of silence. Transcribing one early and
        reusing the result for the final (same samples) takes the recogniser's time off the silence the
        endpointer waits for.

        A piece runs from the end of the turn's kept pieces (or its start) to the pause. With
        ``min_piece``, a piece that long is kept (``kept=True``) even if the speaker goes on, and the next
        one starts after it: a long turn is transcribed sentence by sentence while it is spoken, and
        only its last piece is left when it ends. A shorter piece is replaced by the next one if the
        speaker goes on (a pause inside a sentence), so pieces are rarely cut mid-sentence."""
        likely = []
        for index, endpointer in enumerate(self._endpointers):
            whole = endpointer.tentative(after_ms)
            if whole is None:
                continue
            piece = _tail(whole, self._kept_until(index, whole))
            if piece is None or self._speculated[index] == (piece.start, piece.end):
                continue
            self._speculated[index] = (piece.start, piece.end)
            kept = self._min_piece is not None and piece.duration >= self._min_piece
            if kept:
                self._kept[index].append(piece)
            likely.append(PendingTurn(index, self.roles[index], piece, final=True, kept=kept))
        return likely

    def turn_event(self, turn: PendingTurn, segments: list[Segment]) -> TranscriptEvent | None:
        """The event for a transcribed turn, or None when all Whisper heard was a hallucination."""
        segments = self._filter.keep(segments)
        text = without_loops(" ".join(s.text for s in segments).strip())
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
        if self._transcribe is None:
            pieces = self._pieces(index, utterance)
            self._finals.append(PendingTurn(index, self.roles[index], utterance, True, pieces))
            return []
        return self._transcript(PendingTurn(index, self.roles[index], utterance, final=True))

    def _kept_until(self, index: int, whole: Utterance) -> float:
        """Where the kept pieces of the channel's open turn `whole` end (its start when there are none)."""
        kept = [p for p in self._kept[index] if p.start >= whole.start and p.end <= whole.end]
        return kept[-1].end if kept else whole.start

    def _pieces(self, index: int, utterance: Utterance, *, use_up: bool = True) -> tuple[Utterance, ...]:
        """A turn's pieces: the kept ones inside it, then the rest of it (when there is any speech-length
        rest). () when the turn is one piece. ``use_up`` (a finished turn): forget its kept pieces."""
        kept = [p for p in self._kept[index] if p.start >= utterance.start and p.end <= utterance.end]
        if use_up:
            self._kept[index] = [p for p in self._kept[index] if p.start >= utterance.end]
        if not kept:
            return ()
        rest = _tail(utterance, kept[-1].end)
        return (*kept, rest) if rest is not None else tuple(kept)

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


MIN_REST_S = 0.25  # a turn's rest after its kept pieces shorter than this is silence (post-roll), not speech


def _tail(utterance: Utterance, start: float) -> Utterance | None:
    """The part of `utterance` from `start` (seconds, on its clock) to its end; None when under
    ``MIN_REST_S``."""
    offset = round((start - utterance.start) * VAD_SAMPLE_RATE)
    if utterance.samples.size - offset < MIN_REST_S * VAD_SAMPLE_RATE:
        return None
    if offset <= 0:
        return utterance
    return Utterance(start, utterance.end, utterance.samples[offset:])
