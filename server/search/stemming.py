"""Words of a turn and their stems, so an inflected form finds the others («занимаюсь» finds «занимаемся»).

A word is a run of letters and digits (``пин-код`` is two words; an apostrophe splits ``don't`` as the
search index's tokenizers do). Each word is lower-cased, «ё» read as «е», and stemmed by the Snowball
stemmer of its own script: Cyrillic words by the Russian one, others by the English one. Choosing per word
rather than per call keeps mixed turns right («оплата через PayPal не прошла») and needs no language tag,
which live turns with a detected language do not always have. Stop words are kept: «это не ко мне» must
find «не», which PostgreSQL's and most search engines' Russian configurations drop.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[^\W_]+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_local = threading.local()  # Snowball stemmers keep state between calls: one per thread


@dataclass(frozen=True)
class Word:
    """One word of a text: its characters ``text[start:end]`` and its stem."""

    start: int
    end: int
    stem: str


def _stemmer(language: str) -> snowballstemmer.Stemmer:
    stemmers = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = {}
    if language not in stemmers:
        stemmers[language] = snowballstemmer.stemmer(language)
    return stemmers[language]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The stem of one word (any case): Russian rules for Cyrillic, English for the rest."""
    lowered = word.lower().replace("ё", "е")
    language = "russian" if _CYRILLIC.search(lowered) else "english"
    return _stemmer(language).stemWord(lowered)


def words(text: str) -> Iterator[Word]:
    """The words of `text` in order, with their offsets and stems."""
    for match in _WORD.finditer(text):
        yield Word(match.start(), match.end(), stem(match.group()))


def stems(text: str) -> list[str]:
    """The stems of `text`'s words, in order."""
    return [stem(match.group()) for match in _WORD.finditer(text)]


def stem_line(text: str) -> str:
    """What the index keeps of a turn: its stems separated by spaces, in order (so phrases match)."""
    return " ".join(stems(text))
