"""What a reviewer types into search, made safe: words and quoted phrases, stemmed, never query syntax.

Syntax: words must all match, each in any inflected form («занимаюсь» finds «занимаемся»); ``"a quoted
phrase"`` matches those words next to each other, in order. Everything else is text: ``* ( ) : ^ - + ~``,
``OR``, ``AND``, ``NEAR`` and unbalanced quotes are read as words or separators, never as operators of
FTS5 or tsquery (the engines only ever receive stems, quoted or passed to ``plainto_tsquery``).

Highlighting works on the stored text: each word whose stem is a query word is marked; a phrase is marked
only where all its words follow one another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.search.stemming import stems, words

MAX_QUERY_CHARS = 200
MAX_TERMS = 16
_QUOTED = re.compile(r'"([^"]*)"')


class QueryError(ValueError):
    """A query that cannot be searched (empty, too long, no words); the message says why."""


@dataclass(frozen=True)
class SearchQuery:
    """A parsed query: single words' stems and phrases (each a run of stems), all of which must match."""

    text: str
    words: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...]

    @property
    def terms(self) -> tuple[tuple[str, ...], ...]:
        """Every condition as a run of stems (a word is a run of one)."""
        return tuple((w,) for w in self.words) + self.phrases


@dataclass(frozen=True)
class Segment:
    """A piece of a turn's text; `match` when it is a hit of the query (render as a mark, as text)."""

    text: str
    match: bool


def parse_query(text: str) -> SearchQuery:
    """The query in `text`; QueryError when it is blank, longer than MAX_QUERY_CHARS, or has no word."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError("the query is empty: type one or more words")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is {len(text)} characters long; at most {MAX_QUERY_CHARS}")
    phrases: list[tuple[str, ...]] = []
    for quoted in _QUOTED.findall(text):
        if run := tuple(stems(quoted)):
            phrases.append(run)  # a quoted single word is a word (a run of one)
    rest = _QUOTED.sub(" ", text).replace('"', " ")
    single = [(s,) for s in stems(rest)]
    terms = list(dict.fromkeys([*single, *phrases]))
    if not terms:
        raise QueryError(f"the query {text.strip()!r} has no words to look for (letters or digits)")
    if len(terms) > MAX_TERMS:
        raise QueryError(f"the query has {len(terms)} words and phrases; at most {MAX_TERMS}")
    return SearchQuery(
        text=text.strip(),
        words=tuple(t[0] for t in terms if len(t) == 1),
        phrases=tuple(t for t in terms if len(t) > 1),
    )


def highlight(text: str, query: SearchQuery) -> list[Segment]:
    """`text` cut into segments, the words that made it a hit marked."""
    found = list(words(text))
    marked = [False] * len(found)
    wanted = set(query.words)
    for i, word in enumerate(found):
        if word.stem in wanted:
            marked[i] = True
    for phrase in query.phrases:
        n = len(phrase)
        for i in range(len(found) - n + 1):
            if all(found[i + k].stem == phrase[k] for k in range(n)):
                for k in range(n):
                    marked[i + k] = True
    segments: list[Segment] = []
    at = 0
    i = 0
    while i < len(found):
        if not marked[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(found) and marked[j + 1] and _joined(text, found[j].end, found[j + 1].start):
            j += 1
        start, end = found[i].start, found[j].end
        if start > at:
            segments.append(Segment(text[at:start], False))
        segments.append(Segment(text[start:end], True))
        at = end
        i = j + 1
    if at < len(text):
        segments.append(Segment(text[at:], False))
    return segments


def _joined(text: str, end: int, start: int) -> bool:
    """Whether two marked words are separated by spaces only (then they are marked as one piece)."""
    return not text[end:start].strip()
