"""Whisper's silence hallucinations: text written for noise, music or nothing, which must never be a turn.

Whisper was trained on subtitled video, so on silence, line noise or hold music it often writes the
credits of a subtitle file («Продолжение следует...», «Субтитры сделал DimaTorzok», "Thank you for
watching") or loops one phrase, and on Russian audio it captions sounds («СПОКОЙНАЯ МУЗЫКА»). A segment is
dropped when its text is such a phrase or caption, when it is a loop, or when the model itself says it
heard no speech and was unsure of the words.

Loops inside real speech (a phrase written twice in a turn) are cut, not dropped: :mod:`models.loops`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from models.loops import normalise
from models.transcriber import Segment

# Matched after normalisation (lower case, «ё» as «е», no punctuation). Subtitle credits are dropped
# when a segment starts with them; the short words only when they are the whole segment, because a
# caller may well say «музыка играет» or "thanks for your attention".
_CREDITS = (
    "продолжение следует",
    "субтитры сделал",
    "субтитры создавал",
    "субтитры подготовил",
    "субтитры делал",
    "редактор субтитров",
    "спасибо за просмотр",
    "подписывайтесь на канал",
    "ставьте лайки",
    "thank you for watching",
    "thanks for watching",
    "please subscribe",
    "subscribe to my channel",
    "subtitles by",
    "transcription by",
    "amara org",
)
_WHOLE = ("music", "музыка", "applause", "аплодисменты", "смех", "laughter", "silence", "тишина")


@dataclass(frozen=True)
class HallucinationFilter:
    """Thresholds from faster-whisper's own no-speech rule: unsure of speech *and* of the words."""

    no_speech_prob: float = 0.6
    avg_logprob: float = -1.0
    max_repeats: int = 4

    def is_hallucination(self, segment: Segment) -> bool:
        """True when `segment` should not become (part of) a turn."""
        text = normalise(segment.text)
        if not text:
            return True
        if text in _WHOLE or any(text == c or text.startswith(c + " ") for c in _CREDITS):
            return True
        if _is_caption(segment.text):
            return True
        if segment.no_speech_prob > self.no_speech_prob and segment.avg_logprob < self.avg_logprob:
            return True
        return _loops(text, self.max_repeats)

    def keep(self, segments: Iterable[Segment]) -> list[Segment]:
        """The segments that are speech."""
        return [s for s in segments if not self.is_hallucination(s)]


def _is_caption(raw: str) -> bool:
    """A sound caption in subtitle style: «СПОКОЙНАЯ МУЗЫКА», "[MUSIC PLAYING]", «(смех)»."""
    stripped = raw.strip()
    if stripped[:1] in "[(*♪" and stripped[-1:] in "])*♪":
        return True
    letters = [ch for ch in stripped if ch.isalpha()]
    return len(letters) >= 4 and all(ch.isupper() for ch in letters) and len(stripped.split()) <= 4


def _loops(text: str, max_repeats: int) -> bool:
    """The same word or short phrase more than `max_repeats` times in a row («да да да да да …»)."""
    words = text.split()
    for size in (1, 2, 3):
        run = 1
        for i in range(size, len(words) - size + 1, size):
            run = run + 1 if words[i : i + size] == words[i - size : i] else 1
            if run > max_repeats:
                return True
    return False
