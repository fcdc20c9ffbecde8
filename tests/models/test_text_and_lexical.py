"""Tokens that survive speech recognition, and lexical matching that respects negation."""

from __future__ import annotations

import pytest

from models.lexical import LexicalHit, LexicalIndex
from models.text import normalise, tokenize

PHRASES = ["Я этим не занимаюсь", "Это ваша вина", "Бухгалтерия ошиблась", "I don't handle that"]


def best_hits(index: LexicalIndex, text: str) -> dict[int, LexicalHit]:
    return index.match(tokenize(text))


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex(PHRASES)


def _words(text: str) -> list[tuple[str, bool]]:
    return [(t.norm, t.negated) for t in tokenize(text)]


def test_normalise_keeps_offsets():
    text = "ЁЛКИ, Всё ЗДЕСЬ’s"
    assert normalise(text) == "елки, все здесь's"
    assert len(normalise(text)) == len(text)


def test_tokens_carry_offsets_and_lemmas():
    text = "Вы НЕ туда   позвонили!"
    toks = tokenize(text)
    assert [text[t.start : t.end] for t in toks] == ["Вы", "НЕ", "туда", "позвонили"]
    assert toks[-1].lemma == "позвонить"


def test_negation_scope():
    assert _words("я этим не занимаюсь") == [
        ("я", False),
        ("этим", False),
        ("не", False),
        ("занимаюсь", True),
    ]
    # a function word in between does not end the scope: «не ваша вина» negates the blame
    assert ("вина", True) in _words("Это не ваша вина")
    assert ("handle", True) in _words("I don't handle that")
    assert ("handle", True) in _words("I really can't handle that")
    assert ("handle", False) in _words("I will handle that")


def test_glued_negation_is_split():
    # speech recognition glued the particle to the verb
    assert _words("незанимаюсь") == [("не", False), ("занимаюсь", True)]
    # a real word starting with «не» stays whole
    assert _words("неделю") == [("неделю", False)]


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("Я ЭТИМ НЕ ЗАНИМАЮСЬ!!!", 0),  # case, punctuation
        ("ну я таким не знамаюсь вообще", 0),  # misrecognised verb, other pronoun form
        ("незанимаюсь я этим", 0),  # glued words, free word order
        ("это бух галтерия ошиблась", 2),  # split word
        ("бухгалтерия ошиблася", 2),  # small misspelling
        ("i really do not handle that", 3),  # contraction expanded
    ],
)
def test_noisy_matches(index: LexicalIndex, text: str, phrase: int):
    hits = best_hits(index, text)
    assert phrase in hits and hits[phrase].score >= 0.6, hits


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("Я этим займусь", 0),  # «займусь» is not «не занимаюсь»
        ("Этим занимается мой коллега", 0),  # same verb, not negated: the opposite meaning
        ("Это не ваша вина", 1),  # negated blame
        ("I will handle that", 3),
    ],
)
def test_negation_and_hard_negatives_do_not_match(index: LexicalIndex, text: str, phrase: int):
    hits = best_hits(index, text)
    assert phrase not in hits or hits[phrase].score < 0.4, hits


def test_span_points_at_the_words():
    index = LexicalIndex(["я этим не занимаюсь"])
    text = "Добрый день. Слушайте, я этим не занимаюсь, звоните в банк."
    hit = best_hits(index, text)[0]
    assert text[hit.start : hit.end] == "я этим не занимаюсь"


def test_min_score_skips_only_hits_below_it(default_pack):
    """Pruning by the count bound drops exactly the hits under `min_score`, on every phrase of the pack
    matched against turns that share one word or most words with it."""
    phrases = [p for c in default_pack.categories for _, p in c.examples.items()]
    index = LexicalIndex(phrases)
    turns = [
        "я этим не занимаюсь звоните в бухгалтерию",
        "Ну слушайте, это бухгалтерия напутала, а не мы, я тут при чём вообще",
        "when will you finally fix my internet, I have been waiting since Monday",
        "позовите руководителя",
        "okay",
    ]
    for text in turns:
        tokens = tokenize(text)
        full = index.match(tokens)
        assert index.match(tokens, 0.6) == {k: v for k, v in full.items() if v.score >= 0.6}
