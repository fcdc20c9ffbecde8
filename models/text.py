"""Turning a transcribed turn into tokens that survive speech recognition.

Speech recognisers lose case and punctuation, write «е» for «ё», split and merge words, and inflect
freely. Each token keeps its character offsets into the original text (so an alert can point at the
words that triggered it), a lemma (pymorphy3 for Russian, a light suffix stripper for English), and
whether a negation governs it: «займусь» is not «не занимаюсь», "I'll handle it" is not "I don't handle it".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pymorphy3

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*(?:-[^\W_]+)*", re.UNICODE)
_CYRILLIC = re.compile(r"[а-яё]")

NEGATIONS = frozenset(
    {"не", "ни", "нет", "not", "no", "never", "nothing", "nobody", "nowhere", "neither", "nor"}
)
# Particles that attach to the following word; "нет"/"no"/"nothing" stand on their own.
_PREFIX_NEGATIONS = frozenset({"не", "ни", "not", "never"})

_EN_CONTRACTIONS = {
    "can't": ("can", "not"),
    "cannot": ("can", "not"),
    "won't": ("will", "not"),
    "shan't": ("shall", "not"),
    "ain't": ("is", "not"),
}

# Function words carry little weight in lexical matching (they are kept, at a lower weight).
STOPWORDS = frozenset(
    """
    а и но да же ли бы то вот ну уж ведь вообще короче это этот эта эти тот та те так там тут здесь я вы
    ты мы он она оно они меня мне мной вас вам вами тебя тебе нас нам его ее её их им ей ему мой моя мое
    мои моего моей мою ваш ваша ваше ваши вашего вашей вашу наш наша наше наши свой своя свое свои в во
    на с со к ко по о об от до за из у для при про над под без через уже ещё еще очень просто как что
    чтобы если когда где кто the a an to of in on at for with by from and or but so is are was were be
    been am do does did i you we he she it they me us him her them my your our its their this that these
    those there here just really very well um uh oh please
    """.split()  # noqa: SIM905 - a word list reads best as text
)


@dataclass(frozen=True)
class Token:
    """One word of a turn: normalised form, lemma, offsets into the original text, negation."""

    norm: str
    lemma: str
    start: int
    end: int
    negated: bool = False

    @property
    def is_negation(self) -> bool:
        return self.norm in NEGATIONS

    @property
    def is_stopword(self) -> bool:
        return self.norm in STOPWORDS or self.lemma in STOPWORDS


def normalise(text: str) -> str:
    """Lower case, «ё» as «е», typographic apostrophes straightened; the length never changes."""
    lowered = text.lower()
    # Lowering the whole string equals lowering each character unless a character lowers to two («İ»,
    # which changes the length) or a capital sigma lowers by its context (final «ς»); only then is it
    # done character by character, keeping such a character as it is.
    if len(lowered) != len(text) or "Σ" in text:
        lowered = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)
    return lowered.replace("ё", "е").replace("’", "'")


@lru_cache(maxsize=1)
def _morph() -> pymorphy3.MorphAnalyzer:
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


@lru_cache(maxsize=200_000)
def lemma_ru(word: str) -> str:
    """Dictionary form of a Russian word (first parse), or the word itself."""
    return _morph().parse(word)[0].normal_form.replace("ё", "е")


@lru_cache(maxsize=200_000)
def is_future_ru(word: str) -> bool:
    """Whether a word is Russian and, by its first parse, a verb in the future («приедет», «будет»)."""
    return bool(_CYRILLIC.match(word)) and "futr" in _morph().parse(word)[0].tag


@lru_cache(maxsize=200_000)
def is_imperative_ru(word: str) -> bool:
    """Whether a word is Russian and, by its first parse, a verb in the imperative («закройте»)."""
    return bool(_CYRILLIC.match(word)) and "impr" in _morph().parse(word)[0].tag


@lru_cache(maxsize=200_000)
def is_known_ru(word: str) -> bool:
    return bool(_morph().word_is_known(word))


@lru_cache(maxsize=200_000)
def lemma_en(word: str) -> str:
    """A light English stemmer: enough to meet "handles/handled/handling" at "handl"."""
    for suffix in ("ingly", "edly", "ing", "ied", "ies", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            if suffix in ("ied", "ies"):
                stem += "y"
            if len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "aeiouls":
                stem = stem[:-1]
            return stem.rstrip("e") if len(stem) > 3 else stem
    return word.rstrip("e") if len(word) > 3 else word


def lemma(word: str) -> str:
    """Lemma by script: Cyrillic words through pymorphy3, others through the English stemmer."""
    return lemma_ru(word) if _CYRILLIC.search(word) else lemma_en(word)


def _split_word(norm: str, start: int) -> list[tuple[str, int, int]]:
    """Undo what speech recognition or English spelling glued together.

    "don't" -> "do" + "not"; «незанимаюсь» -> «не» + «занимаюсь» when only the split form is a word.
    """
    if norm in _EN_CONTRACTIONS:
        a, b = _EN_CONTRACTIONS[norm]
        return [(a, start, start + len(norm)), (b, start, start + len(norm))]
    if norm.endswith("n't") and len(norm) > 3:
        return [(norm[:-3], start, start + len(norm)), ("not", start, start + len(norm))]
    if "'" in norm:
        head = norm.split("'", 1)[0]
        return [(head, start, start + len(norm))]
    if (
        norm.startswith("не")
        and len(norm) > 5
        and _CYRILLIC.match(norm)
        and not is_known_ru(norm)
        and is_known_ru(norm[2:])
    ):
        return [("не", start, start + 2), (norm[2:], start + 2, start + len(norm))]
    if "-" in norm:
        head, _, tail = norm.partition("-")
        if tail in ("то", "ка", "таки", "нибудь", "либо"):
            return [(head, start, start + len(head))]
    return [(norm, start, start + len(norm))]


def tokenize(text: str) -> list[Token]:
    """Words of `text` with lemmas, offsets and negation scope.

    A prefix negation («не», «ни», "not", "never") governs the next content word, skipping one
    function word, so «не ваша вина» and "don't really handle" both mark their verb or noun.
    """
    norm_text = normalise(text)
    raw: list[tuple[str, int, int]] = []
    for match in _WORD.finditer(norm_text):
        raw.extend(_split_word(match.group(), match.start()))
    tokens: list[Token] = []
    pending = 0  # how many more words the last prefix negation may still reach
    for word, start, end in raw:
        negated = False
        if pending and word not in NEGATIONS:
            negated = True
            pending = pending - 1 if word in STOPWORDS else 0
        if word in _PREFIX_NEGATIONS:
            pending = 2
        tokens.append(Token(norm=word, lemma=lemma(word), start=start, end=end, negated=negated))
    return tokens
