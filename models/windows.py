"""Where to look inside a turn: the whole of a short turn, sentences and sliding windows of a long one.

An encoder's embedding of a paragraph is the average of its meaning, so one forbidden sentence inside a
long turn disappears in it. A long turn is therefore judged in pieces: each sentence, and overlapping
word windows (speech recognisers often give no punctuation at all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?…;]+[\"»”)]*(?=\s|$)")

SHORT_TURN_WORDS = 20
WINDOW_WORDS = 12
WINDOW_STRIDE = 6


@dataclass(frozen=True)
class Window:
    """A piece of the turn: `text` to encode (punctuation kept: it carries tone, «Безобразие!»), and
    `start`/`end`, the character offsets of its first and last word in the turn."""

    start: int
    end: int
    text: str


def _span(text: str, start: int, end: int) -> Window:
    piece = text[start:end].strip()
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return Window(start, end, piece if start < end else "")


def _sentences(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _word_windows(text: str, start: int, end: int) -> list[tuple[int, int]]:
    words = [(m.start() + start, m.end() + start) for m in _WORD.finditer(text[start:end])]
    if len(words) <= SHORT_TURN_WORDS:
        return [(start, end)] if words else []
    starts = list(range(0, len(words) - WINDOW_WORDS + 1, WINDOW_STRIDE))
    if starts[-1] + WINDOW_WORDS < len(words):
        starts.append(len(words) - WINDOW_WORDS)
    return [(words[i][0], words[i + WINDOW_WORDS - 1][1]) for i in starts]


def split_windows(text: str) -> list[Window]:
    """The pieces of `text` to classify; a short turn is one window, the whole of it."""
    if len(_WORD.findall(text)) <= SHORT_TURN_WORDS:
        window = _span(text, 0, len(text))
        return [window] if window.text else []
    spans: set[tuple[int, int]] = set()
    for s_start, s_end in _sentences(text):
        spans.update(_word_windows(text, s_start, s_end))
    spans.update(_word_windows(text, 0, len(text)))
    windows = {w for w in (_span(text, a, b) for a, b in spans) if w.text}
    return sorted(windows, key=lambda w: (w.start, w.end))
