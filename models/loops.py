"""Whisper's loops inside real speech: a phrase written again and again in one turn.

On a short encoder window, or on words it cannot make out, Whisper writes a phrase again and again until its
token budget runs out ("Let me speak to your manager. Let me speak to your manager. Let me speak"). A turn
must hold each spoken word once, so a loop is kept once (:func:`loop_free`, :func:`without_loops`) and a
decoding that loops is tried again hotter (:mod:`models.transcriber`). A run of three or more words said
twice in a row, or of one or two words said four times or more, is a loop: people say «да, да, да», not a
whole phrase twice in one breath.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_NON_WORD = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower case, «ё» as «е», no punctuation, single spaces."""
    text = _NON_WORD.sub(" ", text.lower().replace("ё", "е"))
    return _SPACES.sub(" ", text).strip()


MIN_LOOP_WORDS = 3  # a run of this many words or more, said twice in a row, is a loop
SHORT_LOOP_COPIES = 4  # a run of one or two words is a loop when said this many times in a row


@dataclass(frozen=True)
class Loop:
    """A loop in a list of words: the run ``words[start:start + size]``, then its copies up to ``end``
    (an unfinished last copy included)."""

    start: int
    size: int
    end: int
    run: str  # the run's words, normalised


def find_loops(words: Sequence[str]) -> list[Loop]:
    """The loops in `words`, in order (indices into `words`). Words compare as :func:`normalise` makes
    them; words that are only punctuation are skipped and never take part in a loop."""
    norm = [normalise(w) for w in words]
    spoken = [i for i, w in enumerate(norm) if w]  # indices of real words
    flat = [norm[i] for i in spoken]
    loops = []
    i = 0
    while i < len(flat):
        size = _loop_at(flat, i)
        if not size:
            i += 1
            continue
        run = flat[i : i + size]
        j = i + size
        while flat[j : j + size] == run:
            j += size
        if _unfinished_copy(flat[j:], run):
            j = len(flat)
        loops.append(Loop(spoken[i], spoken[i + size - 1] - spoken[i] + 1, spoken[j - 1] + 1, " ".join(run)))
        i = j
    return loops


def loop_free(words: Sequence[str]) -> list[int]:
    """Indices of `words` to keep: each loop's run kept once, its copies (and an unfinished last copy at
    the very end, where Whisper's token budget cut it) dropped."""
    dropped = {i for loop in find_loops(words) for i in range(loop.start + loop.size, loop.end)}
    return [i for i in range(len(words)) if i not in dropped]


def without_loops(text: str) -> str:
    """`text` with each of Whisper's loops (see :func:`loop_free`) kept once."""
    words = text.split()
    kept = loop_free(words)
    if len(kept) == len(words):
        return text
    return " ".join(words[i] for i in kept)


def _unfinished_copy(tail: Sequence[str], run: Sequence[str]) -> bool:
    """Whether `tail` (the end of a text) is the start of another copy of `run`, its last word perhaps cut
    short («в сфле, в сфле, в с»)."""
    if not 0 < len(tail) <= len(run):
        return False
    *whole, last = tail
    return list(whole) == list(run[: len(whole)]) and run[len(whole)].startswith(last)


def _loop_at(words: Sequence[str], i: int) -> int:
    """The length of the shortest run starting at `i` that is a loop (its period), 0 for none."""
    for size in range(1, (len(words) - i) // 2 + 1):
        run = words[i : i + size]
        copies = 1
        while words[i + copies * size : i + (copies + 1) * size] == run:
            copies += 1
        if copies >= (2 if size >= MIN_LOOP_WORDS else SHORT_LOOP_COPIES):
            return size
    return 0
