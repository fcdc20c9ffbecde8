"""Where to look inside a turn: the whole of it, each sentence and clause, and word windows.

An encoder's embedding of a paragraph is the average of its meaning, so one forbidden sentence inside a
turn disappears in it: "That's not my department. You will have to call another number." is judged as
much by its second sentence as by its first. A turn is therefore judged in pieces as well as whole (a
short one): each sentence of a turn of several, each clause of a sentence of several (speech recognisers
often write commas where a writer puts a full stop), and overlapping word windows of a long stretch with
no punctuation at all. A piece of one or two words («Ну.», "Well,", «Вижу,») is no sentence of its own: it
stays with its neighbour. A detection is the best score of a category over all the pieces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?…;]+[\"»”)]*(?=\s|$)")
# a clause ends at a comma, a colon or a dash between words
_CLAUSE_END = re.compile(r"(?:[,:]+[\"»”)]*|\s[-–—]+)(?=\s)")

_ASIDE = re.compile(r"[(\[].*[)\]][.!?…;]*")
_PUNCTUATION = re.compile(r"[.!?…;,:]")

SHORT_TURN_WORDS = 20  # a turn up to this long is also judged whole
MIN_SENTENCE_WORDS = 2  # a shorter sentence («Ну.», "Okay.") is joined to its neighbour
MIN_CLAUSE_WORDS = 3  # and so is a shorter clause («Вижу,», "Well, you know,")
WINDOW_WORDS = 12  # word windows over a long turn
WINDOW_STRIDE = 6
RUN_ON_WORDS = 7  # an unpunctuated turn longer than this also gets short word windows
RUN_ON_WINDOW = 6
RUN_ON_STRIDE = 3


@dataclass(frozen=True)
class Window:
    """A piece of the turn: `text` to encode (punctuation kept: it carries tone, «Безобразие!»), and
    `start`/`end`, the character offsets of its first and last word in the turn."""

    start: int
    end: int
    text: str
    context: tuple[int, int] | None = None  # (start, end) of the window it is judged with, if any
    sentence: bool = False  # one of the sentences of a short turn of several


def _span(text: str, start: int, end: int, context: tuple[int, int] | None = None) -> Window:
    piece = text[start:end].strip().rstrip(",:-–—").rstrip()  # a clause's comma is not part of it
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return Window(start, end, piece if start < end else "", context)


def _words(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return [(m.start() + start, m.end() + start) for m in _WORD.finditer(text[start:end])]


def _pieces(
    text: str, start: int, end: int, boundary: re.Pattern[str], min_words: int
) -> list[tuple[int, int]]:
    """`text[start:end]` cut after each `boundary`; a piece of fewer than `min_words` words is
    joined to the next one (the last to the one before), so no piece is a lone «Ну,» or "Okay.", and
    so is an aside in brackets ("(laughs)", «[музыка]»)."""
    cuts = [start] + [start + m.end() for m in boundary.finditer(text[start:end])] + [end]
    raw = [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if _WORD.search(text[a:b])]
    merged: list[tuple[int, int]] = []
    carry: int | None = None  # start of short pieces waiting for the next one
    for a, b in raw:
        a = a if carry is None else carry
        if len(_words(text, a, b)) < min_words or _ASIDE.fullmatch(text[a:b].strip()):
            carry = a
            continue
        merged.append((a, b))
        carry = None
    if carry is not None:
        if merged:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((carry, end))
    return merged


def _word_windows(text: str, start: int, end: int, size: int, stride: int) -> list[tuple[int, int]]:
    """Overlapping windows of `size` words every `stride` words; the last one ends at the last word."""
    words = _words(text, start, end)
    if len(words) <= size:
        return [(start, end)] if words else []
    starts = list(range(0, len(words) - size + 1, stride))
    if starts[-1] + size < len(words):
        starts.append(len(words) - size)
    return [(words[i][0], words[i + size - 1][1]) for i in starts]


def _stretch(text: str, start: int, end: int, run_on: bool = False) -> list[tuple[int, int]]:
    """A sentence or clause: itself if short, else word windows over it; short word windows too over a
    `run_on` stretch (from a recogniser that writes no punctuation, so there are no clauses to cut)."""
    n = len(_words(text, start, end))
    if n > SHORT_TURN_WORDS:
        return _word_windows(text, start, end, WINDOW_WORDS, WINDOW_STRIDE)
    spans = [(start, end)]
    if run_on and n > RUN_ON_WORDS:
        spans += _word_windows(text, start, end, RUN_ON_WINDOW, RUN_ON_STRIDE)
    return spans


def sentences_of(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`; a sentence of fewer than MIN_SENTENCE_WORDS words is
    joined to its neighbour."""
    return _pieces(text, 0, len(text), _SENTENCE_END, MIN_SENTENCE_WORDS)


def split_windows(text: str) -> list[Window]:
    """The pieces of `text` to classify: a short turn of one clause is one window, the whole of it.

    A piece of a short turn is judged with the whole turn as its context (`Window.context`): out of
    context, a short clause («поэтому так долго», «Чем я могу вам помочь?») is easily mistaken. A piece of
    a long turn is judged with its sentence when the sentence is short enough to be a window itself."""
    spans: dict[tuple[int, int], tuple[int, int] | None] = {}

    def add(found: list[tuple[int, int]], context: tuple[int, int] | None) -> None:
        for span in found:
            if span != context:
                spans.setdefault(span, context)

    n = len(_WORD.findall(text))
    whole = (0, len(text))
    sentence_spans: set[tuple[int, int]] = set()
    if n <= SHORT_TURN_WORDS:
        spans[whole] = None
    # a long turn is judged by its sentences (a long sentence in word windows): no window across a
    # sentence end, half of one thought and half of another
    sentences = sentences_of(text)
    for sentence in sentences:
        short_sentence = len(_words(text, *sentence)) <= SHORT_TURN_WORDS
        context = whole if n <= SHORT_TURN_WORDS else sentence if short_sentence else None
        if len(sentences) > 1 or n > SHORT_TURN_WORDS:
            add(_stretch(text, *sentence), whole if n <= SHORT_TURN_WORDS else None)
            if n <= SHORT_TURN_WORDS:
                piece = _span(text, *sentence)
                sentence_spans.add((piece.start, piece.end))
        clauses = _pieces(text, *sentence, _CLAUSE_END, MIN_CLAUSE_WORDS)
        if len(clauses) > 1:
            for clause in clauses:
                add(_stretch(text, *clause), context)
        elif short_sentence and not _PUNCTUATION.search(text):
            add(_stretch(text, *sentence, run_on=True), context)
    by_span = {}
    for (a, b), context in spans.items():
        window = _span(text, a, b)
        if window.text and (window.start, window.end) not in by_span:
            by_span[window.start, window.end] = (window, context)
    windows = []
    for window, context in by_span.values():
        if context is not None:
            parent = _span(text, *context)
            context = (parent.start, parent.end)
        span = (window.start, window.end)
        windows.append(Window(*span, window.text, context, context is not None and span in sentence_spans))
    return sorted(windows, key=lambda w: (w.start, w.end))
