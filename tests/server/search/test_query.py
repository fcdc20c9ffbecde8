"""Stemming and query parsing: inflected forms meet, special characters stay text, matches are marked."""

from __future__ import annotations

import pytest

from server.search.query import MAX_QUERY_CHARS, QueryError, highlight, parse_query
from server.search.stemming import stem, stem_line


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("занимаюсь", "занимаемся"),
        ("руководителя", "руководитель"),
        ("менеджера", "менеджером"),
        ("ёлка", "елки"),
        ("Billing", "billed"),
        ("handles", "handling"),
    ],
)
def test_inflected_forms_share_a_stem(one, other):
    assert stem(one) == stem(other)


def test_each_word_is_stemmed_by_its_own_script_and_stop_words_stay():
    """A mixed turn: Cyrillic words by the Russian stemmer, Latin ones by the English one; «не», «ко»,
    «мне» are kept (PostgreSQL's Russian configuration would drop them)."""
    assert stem_line("Это не ко мне, звоните в billing-отдел!") == "эт не ко мне звон в bill отдел"


def test_words_and_quoted_phrases():
    query = parse_query('менеджера «тут» "не ко мне"')
    assert query.words == (stem("менеджера"), stem("тут"))
    assert query.phrases == ((stem("не"), stem("ко"), stem("мне")),)


@pytest.mark.parametrize(
    "text",
    ['"', '""', "*", "(", ")", ":", "^", "-", "NEAR(", "OR", "AND NOT", 'a" OR "b', "col:word", "word*",
     "'; DROP TABLE search_turns; --", "\\", "%_", "\x00"],
)  # fmt: skip
def test_special_characters_are_text_or_refused_clearly(text):
    """Whatever is typed parses to stems only (letters and digits) or is refused with a message."""
    try:
        query = parse_query(text)
    except QueryError as exc:
        assert "no words" in str(exc) or "empty" in str(exc)
        return
    for run in query.terms:
        assert all(word.isalnum() for word in run), query


@pytest.mark.parametrize(("text", "message"), [("", "empty"), ("   \t", "empty"), ("?!", "no words")])
def test_empty_queries_are_refused(text, message):
    with pytest.raises(QueryError, match=message):
        parse_query(text)


def test_a_long_query_is_refused():
    with pytest.raises(QueryError, match=str(MAX_QUERY_CHARS)):
        parse_query("слово " * 50)


def test_highlight_marks_inflected_words_and_whole_phrases_only():
    query = parse_query('занимаюсь "не ко мне"')
    segments = highlight("Мы этим не занимаемся, это не ко мне. Ко мне не ходите.", query)
    assert [(s.text, s.match) for s in segments] == [
        ("Мы этим не ", False),
        ("занимаемся", True),
        (", это ", False),
        ("не ко мне", True),
        (". Ко мне не ходите.", False),
    ]
    assert "".join(s.text for s in segments) == "Мы этим не занимаемся, это не ко мне. Ко мне не ходите."
