"""Audit one recorded call: transcript by speaker, flagged moments, talk time, silences, overtalk, scorecard.

A QA reviewer gets, per recording, what the live sidebar would have shown plus what only hindsight gives:
who spoke how long, where nobody spoke, where both spoke at once, and the scorecard of
:mod:`models.scorecard`. This module is a pure library (no printing, no files written); the command line
(``server/cli/audit.py``) and the report writers (``server/audits/reports.py``) sit on top of it.

How a recording is heard:

* decoded with :func:`audio.decode.decode_file` at 16 kHz, channels kept. Stereo: one channel per role
  (``roles``, default agent left, customer right); ``diarization`` is ``"channels"``. Mono (or two
  identical channels): the voices are told apart by :mod:`models.diarization` (Resemblyzer, the optional
  ``diarization`` extra) over Whisper's word times; each word goes to the voice heard most during it, and
  the voice heard first takes the first role (the agent by default: an agent's greeting opens a call),
  the other the second; ``diarization`` is ``"voices"`` with a note saying so. When the encoder is not
  installed, or only one voice is heard, every turn is ``unknown`` (the classifier then checks every
  category), ``diarization`` is ``"none"`` and the notes say why.
* each channel goes through faster-whisper's long-form transcription with :func:`transcribe_options`
  (greedy, Silero VAD with the thresholds :mod:`audio.endpoint` tuned for 8 kHz telephone audio, no
  conditioning on earlier text, timestamps and word timestamps on); ``bench/bench_audit.py`` times exactly
  these settings as its "plain faster-whisper" baseline. Hallucinated segments are dropped
  (:mod:`models.hallucinations`), and a phrase Whisper wrote twice or more in a row is kept once
  (:mod:`models.loops`).
* faster-whisper maps segment times back through its VAD cut, so one segment often spans two turns and
  the silence between them; turns are therefore built from word times: a speaker's words less than
  ``MERGE_GAP`` (1 s) apart are one turn (the segments' merge rule, applied where the words really are).
* talk time is the sum of a side's turn durations; silences are gaps of ``SILENCE_MIN`` (3 s) or more
  between turns where nobody speaks; overtalk is where agent and customer turns overlap for
  ``OVERTALK_MIN`` (0.5 s) or more.

The report (:meth:`CallReport.to_dict`, JSON-ready; ``schema`` = 1)::

    {
      "schema": 1,
      "source": "/calls/a.wav", "sha256": "<hex>", "duration": 69.99,   # seconds
      "channels": 2, "roles": ["agent", "customer"], "language": "ru",  # pinned or detected
      "diarization": "channels" | "voices" | "none", "notes": ["..."], "masked": true,
      "turns": [{"index": 0, "speaker": "agent", "start": 0.1, "end": 6.5, "text": "...", "lang": "ru"}],
      "detections": [{"turn": 2, "category": "not_my_job", "kind": "forbidden", "speaker": "agent",
                      "start": 6.9, "end": 9.8,          # the turn's times, seconds
                      "text": "...",                     # the turn's text (masked when "masked")
                      "span": [0, 18],                   # characters of "text" that fired it
                      "score": 0.93, "example": "...", "title": "...", "suggestions": ["..."]}],
      "talk_time": {"agent": 31.2, "customer": 20.4, "unknown": 0.0},   # sum of turn durations
      "silences": [{"start": 12.0, "end": 15.5, "duration": 3.5}],      # nobody speaks >= 3 s
      "overtalk": [{"start": 40.1, "end": 40.8, "duration": 0.7}],      # agent and customer >= 0.5 s
      "scorecard": {"score": 0.5, "passed": 2, "failed": 2,
                    "items": [{"id": "no_forbidden", "title": "...", "status": "failed",
                               "turns": [2, 7], "note": "blame_shifting, not_my_job"}]},
      "audited_at": "2025-01-01T12:00:00+00:00",
      "model": {"whisper": "bundled", "encoder": "e5", "pack": "default", "pack_version": 1}
    }

Detections keep every category found, practice ones included (they are what the scorecard passes on);
``suggestions`` are filled for alert kinds (forbidden, trigger) only. With masking on (the default) turn
and detection texts go through :func:`models.pii.mask_pii` after classification, and each ``span`` is
moved to the masked text (a span edge inside a masked number moves to the edge of its ``[PHONE]``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from audio.decode import AudioDecodeError, decode_file
from models.classifier import Detection, Speaker, Turn, TurnClassifier
from models.diarization import DiarizationUnavailable, Diarizer
from models.hallucinations import HallucinationFilter
from models.loops import loop_free
from models.packs import Kind
from models.pii import Masked, mask_pii
from models.scorecard import JudgedTurn, Scorecard, score_call
from models.transcriber import Segment

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SAMPLE_RATE = 16000
DEFAULT_ROLES: tuple[str, ...] = ("agent", "customer")
ROLES = ("agent", "customer", "unknown")
MERGE_GAP = 1.0  # seconds: a speaker's segments closer than this are one turn
SILENCE_MIN = 3.0  # seconds where nobody speaks that make a silence worth reporting
OVERTALK_MIN = 0.5  # seconds both sides speak at once that make overtalk worth reporting
# Silero VAD thresholds for 8 kHz telephone speech (see audio.endpoint): at Silero's usual 0.5 most of a
# band-limited call is taken for silence and never transcribed.
VAD_PARAMETERS: dict[str, float | int] = {
    "threshold": 0.25,
    "neg_threshold": 0.15,
    "min_silence_duration_ms": 600,
}
MONO_NOTE = (
    "mono recording: speakers could not be told apart, so every turn is 'unknown' and checked for every "
    "category"
)
NO_DIARIZATION_NOTE = (
    "no voice diarization model is installed (pip install 'callbuffer[diarization]' adds Resemblyzer)"
)
ONE_VOICE_NOTE = "only one voice was heard (Resemblyzer voice diarization)"
VOICES_NOTE = (
    "mono recording: speakers told apart by voice (Resemblyzer); the first to speak is taken as the {first}, "
    "the other as the {second}"
)
IDENTICAL_NOTE = "both channels carry the same audio: treated as a mono recording"


class AuditError(Exception):
    """A recording that cannot be audited (missing, empty, undecodable, channels not matching roles)."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[AuditError], tuple[Path, str]]:
        """Pickled as (path, reason), so it travels back whole from an audit on another machine."""
        return type(self), (self.path, self.reason)


class WhisperLike(Protocol):
    """What the audit needs of a model: faster-whisper's ``WhisperModel`` or ``BatchedInferencePipeline``."""

    def transcribe(self, audio: np.ndarray, **options: Any) -> tuple[Iterable[Any], Any]: ...


@dataclass(frozen=True)
class Interval:
    """A stretch of the call in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, float]:
        return {"start": round(self.start, 2), "end": round(self.end, 2), "duration": round(self.duration, 2)}


@dataclass(frozen=True)
class ReportTurn:
    """One turn of the transcript: a speaker's words with no pause of ``MERGE_GAP`` seconds or more."""

    index: int
    speaker: str
    start: float
    end: float
    text: str
    lang: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "speaker": self.speaker,
            "start": round(self.start, 2),
            "end": round(self.end, 2),
            "text": self.text,
            "lang": self.lang,
        }


@dataclass(frozen=True)
class ReportDetection:
    """A category found in a turn, with the turn's times and (for alerts) what to say instead."""

    turn: int
    category: str
    kind: str
    speaker: str
    start: float
    end: float
    text: str
    span: tuple[int, int]
    score: float
    example: str
    title: str
    suggestions: tuple[str, ...] = ()

    @property
    def is_alert(self) -> bool:
        return self.kind != Kind.PRACTICE.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "category": self.category,
            "kind": self.kind,
            "speaker": self.speaker,
            "start": round(self.start, 2),
            "end": round(self.end, 2),
            "text": self.text,
            "span": list(self.span),
            "score": round(self.score, 4),
            "example": self.example,
            "title": self.title,
            "suggestions": list(self.suggestions),
        }


@dataclass(frozen=True)
class AuditOptions:
    """How to hear a recording: ``roles`` per channel, ``language`` pinned or ``None`` to detect,
    ``mask`` personal data in the texts of the report."""

    roles: tuple[str, ...] = DEFAULT_ROLES
    language: str | None = None
    mask: bool = True

    def __post_init__(self) -> None:
        bad = [r for r in self.roles if r not in ROLES]
        if bad or not self.roles:
            raise ValueError(f"roles must be one or two of {', '.join(ROLES)}, got {list(self.roles)}")
        if len(self.roles) > 2:
            raise ValueError(f"at most two roles (one per channel), got {list(self.roles)}")


@dataclass
class CallReport:
    """Everything the audit found in one recording; :meth:`to_dict` is the JSON report."""

    source: str
    sha256: str
    duration: float
    channels: int
    roles: list[str]
    language: str | None
    diarization: str
    masked: bool
    turns: list[ReportTurn]
    detections: list[ReportDetection]
    talk_time: dict[str, float]
    silences: list[Interval]
    overtalk: list[Interval]
    scorecard: Scorecard
    model: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    audited_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready report (schema in the module docstring)."""
        return {
            "schema": SCHEMA_VERSION,
            "source": self.source,
            "sha256": self.sha256,
            "duration": round(self.duration, 2),
            "channels": self.channels,
            "roles": list(self.roles),
            "language": self.language,
            "diarization": self.diarization,
            "notes": list(self.notes),
            "masked": self.masked,
            "turns": [t.to_dict() for t in self.turns],
            "detections": [d.to_dict() for d in self.detections],
            "talk_time": {k: round(v, 2) for k, v in self.talk_time.items()},
            "silences": [s.to_dict() for s in self.silences],
            "overtalk": [o.to_dict() for o in self.overtalk],
            "scorecard": _scorecard_dict(self.scorecard),
            "audited_at": self.audited_at,
            "model": dict(self.model),
        }


@dataclass(frozen=True)
class _Channel:
    """One channel to transcribe and the speaker it carries; ``voices`` (a mono recording) are the roles
    its speakers take by order of appearance, when they are to be told apart by voice."""

    samples: np.ndarray
    speaker: str
    voices: tuple[str, ...] = ()


@dataclass
class _Heard:
    """What transcribing the channels gave: turns, language, and how speakers were told apart."""

    turns: list[ReportTurn]
    language: str | None
    diarization: str
    roles: list[str]
    notes: list[str]


# --------------------------------------------------------------------------------------- transcription


def transcribe_options(language: str | None) -> dict[str, Any]:
    """The faster-whisper long-form settings of an audit; the bench's plain baseline uses the same.

    Word timestamps are on because faster-whisper maps segment times back through its VAD cut: a segment
    often spans two turns and the silence between them (measured: +3-25 % time on this CPU)."""
    return {
        "language": language,
        "beam_size": 1,
        "vad_filter": True,
        "vad_parameters": dict(VAD_PARAMETERS),
        "condition_on_previous_text": False,
        "without_timestamps": False,
        "word_timestamps": True,
    }


@dataclass(frozen=True)
class Word:
    """A recognised word with its times in seconds (``text`` keeps Whisper's leading space)."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Heard:
    """One Whisper segment and its words."""

    segment: Segment
    words: tuple[Word, ...]


BATCH_SIZE = 8


def batched(model: WhisperLike, batch_size: int = BATCH_SIZE) -> tuple[WhisperLike, dict[str, Any]]:
    """faster-whisper's BatchedInferencePipeline over `model`, and the ``transcribe`` option it needs:
    a channel's speech chunks are encoded in batches. On 2 cores it audits the test calls at 12.2x real
    time against 10.3x one chunk at a time (bench/bench_audit.py)."""
    from faster_whisper import BatchedInferencePipeline

    return BatchedInferencePipeline(model), {"batch_size": batch_size}


def transcribe_channel(
    model: WhisperLike, samples: np.ndarray, language: str | None, **extra: Any
) -> tuple[list[Heard], str | None]:
    """Long-form transcription of one 16 kHz channel: its segments and the language heard (or pinned).

    ``extra`` options go to ``model.transcribe`` as well (``batch_size`` for a batched pipeline)."""
    raw, info = model.transcribe(samples, **transcribe_options(language), **extra)
    heard = []
    for s in raw:  # a lazy generator: decoding happens here
        if not s.text.strip():
            continue
        segment = Segment(
            float(s.start), float(s.end), s.text.strip(), float(s.avg_logprob), float(s.no_speech_prob)
        )
        words = tuple(Word(float(w.start), float(w.end), w.word) for w in (s.words or ()))
        heard.append(Heard(segment, words or (Word(segment.start, segment.end, segment.text),)))
    return heard, language or getattr(info, "language", None)


def words_to_turns(words: Sequence[Word], gap: float = MERGE_GAP) -> list[tuple[float, float, str]]:
    """One speaker's words as (start, end, text) turns, split where they are ``gap`` seconds or more apart."""
    turns: list[tuple[float, float, list[str]]] = []
    for word in sorted(words, key=lambda w: w.start):
        if turns and word.start - turns[-1][1] < gap:
            turns[-1][2].append(word.text)
            turns[-1] = (turns[-1][0], max(turns[-1][1], word.end), turns[-1][2])
        else:
            turns.append((word.start, word.end, [word.text]))
    return [(a, b, " ".join("".join(parts).split())) for a, b, parts in turns]


# ------------------------------------------------------------------------------------------ timing


def _union(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for iv in sorted(intervals, key=lambda i: i.start):
        if merged and iv.start <= merged[-1].end:
            merged[-1] = Interval(merged[-1].start, max(merged[-1].end, iv.end))
        else:
            merged.append(iv)
    return merged


def _spans(turns: Iterable[ReportTurn]) -> list[Interval]:
    return _union(Interval(t.start, t.end) for t in turns)


def talk_time(turns: Sequence[ReportTurn]) -> dict[str, float]:
    """Seconds each side spoke: the sum of its turns' durations."""
    totals = dict.fromkeys(ROLES, 0.0)
    for turn in turns:
        totals[turn.speaker] += turn.end - turn.start
    return totals


def silences(turns: Sequence[ReportTurn], minimum: float = SILENCE_MIN) -> list[Interval]:
    """Gaps of at least ``minimum`` seconds between turns where nobody speaks (dead air inside the call;
    the lead-in before the first turn and the tail after the last are not counted)."""
    speech = _spans(turns)
    gaps = (Interval(a.end, b.start) for a, b in zip(speech, speech[1:], strict=False))
    return [g for g in gaps if g.duration >= minimum]


def overtalk(turns: Sequence[ReportTurn], minimum: float = OVERTALK_MIN) -> list[Interval]:
    """Stretches of at least ``minimum`` seconds where an agent turn and a customer turn overlap."""
    agent = _spans(t for t in turns if t.speaker == "agent")
    customer = _spans(t for t in turns if t.speaker == "customer")
    both = [
        Interval(max(a.start, c.start), min(a.end, c.end))
        for a in agent
        for c in customer
        if a.start < c.end and c.start < a.end
    ]
    return [o for o in _union(both) if o.duration >= minimum]


# --------------------------------------------------------------------------------------------- PII


def move_offset(spans: Sequence[Masked], offset: int, *, is_end: bool) -> int:
    """Where character ``offset`` of a text lands after :func:`models.pii.mask_pii` replaced ``spans``
    with ``[KIND]``; an offset inside a masked span moves to the edge of its replacement."""
    delta = 0
    for span in spans:
        replacement = len(span.kind) + 2
        if offset <= span.start:
            break
        if offset >= span.end:
            delta += replacement - (span.end - span.start)
            continue
        return span.start + delta + (replacement if is_end else 0)
    return offset + delta


# ------------------------------------------------------------------------------------------ auditor


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks; :class:`AuditError` when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise AuditError(path, f"cannot read: {exc.strerror or exc}") from exc
    return digest.hexdigest()


class Auditor:
    """Audits recordings with one loaded Whisper model and one classifier (load once, audit many)."""

    def __init__(
        self,
        model: WhisperLike,
        classifier: TurnClassifier,
        *,
        model_info: dict[str, Any] | None = None,
        hallucinations: HallucinationFilter | None = None,
        transcribe_extra: dict[str, Any] | None = None,
        diarizer: Diarizer | None = None,
        prompts: Mapping[str, str] | None = None,
    ) -> None:
        """``model_info`` (e.g. ``{"whisper": "bundled", "encoder": "e5"}``) is copied into each report;
        ``transcribe_extra`` are further ``transcribe`` options (``batch_size`` for a batched pipeline);
        ``diarizer`` tells the voices of mono recordings apart (default: Resemblyzer's, loaded on the
        first mono recording; one whose encoder cannot load leaves mono turns ``unknown``)."""
        self.model = model
        self.diarizer = diarizer or Diarizer()
        self.classifier = classifier
        self.hallucinations = hallucinations or HallucinationFilter()
        self.transcribe_extra = dict(transcribe_extra or {})
        self.prompts = dict(prompts or {})  # by language: what Whisper reads first (models.decoder_prompt)
        pack = classifier.pack
        self.model_info = {**(model_info or {}), "pack": pack.name, "pack_version": pack.version}
        self.forbidden = frozenset(pack.ids_of(Kind.FORBIDDEN))

    def audit(
        self, path: str | os.PathLike[str], options: AuditOptions | None = None, *, sha256: str | None = None
    ) -> CallReport:
        """Audit the recording at ``path``; :class:`AuditError` when it cannot be read or decoded.

        ``sha256`` may be passed when the caller already hashed the file (to look it up in an index)."""
        options = options or AuditOptions()
        digest = sha256 or file_sha256(path)
        try:
            decoded = decode_file(path, sample_rate=SAMPLE_RATE)
        except AudioDecodeError as exc:
            raise AuditError(path, exc.reason) from exc
        channels, diarization, notes = _assign_roles(decoded.samples, options.roles, path)
        heard = self._transcribe(channels, options.language, diarization)
        turns, language = heard.turns, heard.language
        notes += heard.notes
        if not turns:
            notes.append("no speech was found")
        found = self.classifier.classify_batch([Turn(t.text, Speaker(t.speaker), t.lang) for t in turns])
        scorecard = score_call(
            [
                JudgedTurn(t.index, t.speaker, t.start, t.end, t.text, frozenset(d.category for d in dets))
                for t, dets in zip(turns, found, strict=True)
            ],
            forbidden=self.forbidden,
        )
        detections = [self._detection(t, d) for t, dets in zip(turns, found, strict=True) for d in dets]
        if options.mask:
            turns, detections = _mask(turns, detections)
        logger.info("audited %s: %d turns, %d detections", path, len(turns), len(detections))
        return CallReport(
            source=str(path),
            sha256=digest,
            duration=decoded.duration,
            channels=decoded.channels,
            roles=heard.roles,
            language=language,
            diarization=heard.diarization,
            masked=options.mask,
            turns=turns,
            detections=detections,
            talk_time=talk_time(turns),
            silences=silences(turns),
            overtalk=overtalk(turns),
            scorecard=scorecard,
            model=self.model_info,
            notes=notes,
        )

    def _transcribe(self, channels: Sequence[_Channel], language: str | None, diarization: str) -> _Heard:
        """Turns of every channel sorted by start, the language (pinned, else the most-heard one), and
        how speakers were told apart (a mono channel's words go to voices when it has ``voices``)."""
        pieces: list[tuple[float, float, str, str, str | None]] = []
        heard: dict[str, float] = {}
        roles, notes = [c.speaker for c in channels], []
        for channel in channels:
            extra = {**self.transcribe_extra, "hotwords": self.prompts.get(language) if language else None}
            found, lang = transcribe_channel(self.model, channel.samples, language, **extra)
            kept = [h for h in found if not self.hallucinations.is_hallucination(h.segment)]
            words = [w for h in kept for w in h.words]
            words = [words[i] for i in loop_free([w.text for w in words])]  # each spoken word once
            by_speaker: dict[str, list[Word]] = {channel.speaker: words}
            if channel.voices:
                by_speaker, why = self._by_voice(channel, words)
                if why is None:
                    diarization, roles = "voices", [r for r in channel.voices if r in by_speaker]
                    notes.append(VOICES_NOTE.format(first=channel.voices[0], second=channel.voices[1]))
                else:
                    notes += [MONO_NOTE, why]
            for speaker, own in by_speaker.items():
                for start, end, text in words_to_turns(own):
                    pieces.append((start, end, text, speaker, lang))
                    if lang:
                        heard[lang] = heard.get(lang, 0.0) + (end - start)
            logger.debug("%s channel: %d segments, %d kept", channel.speaker, len(found), len(kept))
        pieces.sort(key=lambda p: (p[0], p[1]))
        turns = [ReportTurn(i, sp, a, b, text, lang) for i, (a, b, text, sp, lang) in enumerate(pieces)]
        language = language or (max(heard, key=heard.__getitem__) if heard else None)
        return _Heard(turns, language, diarization, roles, notes)

    def _by_voice(self, channel: _Channel, words: Sequence[Word]) -> tuple[dict[str, list[Word]], str | None]:
        """A mono channel's words by the role of the voice heard most during each, or all of them
        ``unknown`` with the reason (no encoder installed, one voice heard)."""
        if not words:
            return {channel.speaker: []}, None
        try:
            found = self.diarizer.diarize(channel.samples, [(w.start, w.end) for w in words])
        except DiarizationUnavailable as exc:
            logger.warning("mono recording left 'unknown': %s", exc)
            return {channel.speaker: list(words)}, NO_DIARIZATION_NOTE
        if found.speakers < 2:
            return {channel.speaker: list(words)}, ONE_VOICE_NOTE
        by_speaker: dict[str, list[Word]] = {}
        for word in words:
            voice = found.speaker_of(word.start, word.end) or 0
            by_speaker.setdefault(channel.voices[min(voice, len(channel.voices) - 1)], []).append(word)
        return by_speaker, None

    def _detection(self, turn: ReportTurn, found: Detection) -> ReportDetection:
        category = self.classifier.category(found.category)
        alert = found.kind.is_alert
        return ReportDetection(
            turn=turn.index,
            category=found.category,
            kind=found.kind.value,
            speaker=turn.speaker,
            start=turn.start,
            end=turn.end,
            text=turn.text,
            span=(found.start, found.end),
            score=found.score,
            example=found.example,
            title=category.title_in(turn.lang or "en"),
            suggestions=tuple(category.suggestions(turn.lang)) if alert else (),
        )


def _assign_roles(
    samples: np.ndarray, roles: Sequence[str], path: str | os.PathLike[str]
) -> tuple[list[_Channel], str, list[str]]:
    """The channels to transcribe with their speakers, the diarization used, and notes for the reviewer."""
    count = samples.shape[0]
    if count > 2:
        raise AuditError(path, f"{count} channels: expected mono or stereo (one channel per speaker)")
    if count == 2 and _same_audio(samples[0], samples[1]):
        voices = tuple(roles) if len(roles) == 2 else DEFAULT_ROLES
        return [_Channel(samples[0], "unknown", voices)], "none", [IDENTICAL_NOTE]
    if count == 1:
        if len(roles) == 1:  # the caller says who is on the only channel
            return [_Channel(samples[0], roles[0])], "channels", []
        return [_Channel(samples[0], "unknown", tuple(roles))], "none", []
    if len(roles) != 2:
        raise AuditError(path, f"stereo recording but {len(roles)} role given ({','.join(roles)}): give two")
    return [_Channel(samples[i], roles[i]) for i in range(2)], "channels", []


def _same_audio(left: np.ndarray, right: np.ndarray) -> bool:
    """Whether two channels are copies of one signal (a mono call saved as stereo)."""
    return bool(np.max(np.abs(left - right), initial=0.0) < 1e-3)


def _mask(
    turns: list[ReportTurn], detections: list[ReportDetection]
) -> tuple[list[ReportTurn], list[ReportDetection]]:
    """Turns and detections with personal data masked and detection spans moved to the masked text."""
    masked = {t.index: mask_pii(t.text) for t in turns}
    new_turns = [ReportTurn(t.index, t.speaker, t.start, t.end, masked[t.index].text, t.lang) for t in turns]
    new_detections = []
    for d in detections:
        result = masked[d.turn]
        span = (
            move_offset(result.spans, d.span[0], is_end=False),
            move_offset(result.spans, d.span[1], is_end=True),
        )
        new_detections.append(
            ReportDetection(
                d.turn, d.category, d.kind, d.speaker, d.start, d.end, result.text, span, d.score,
                d.example, d.title, d.suggestions,
            )
        )  # fmt: skip
    return new_turns, new_detections


def _scorecard_dict(card: Scorecard) -> dict[str, Any]:
    return {
        "score": card.score,
        "passed": card.passed,
        "failed": card.failed,
        "items": [
            {"id": i.id, "title": i.title, "status": i.status.value, "turns": list(i.turns), "note": i.note}
            for i in card.items
        ],
    }
