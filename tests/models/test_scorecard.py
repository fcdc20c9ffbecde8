"""models.scorecard: calls built to pass and to fail each item, judged from their turns' categories, and
one call judged end to end by the real classifier from its text."""

from __future__ import annotations

import pytest

from models.scorecard import ItemStatus, JudgedTurn, score_call


def call(*turns: tuple[str, str]) -> list[JudgedTurn]:
    """Turns from (speaker, 'cat1,cat2') pairs, 3 s apart."""
    return [
        JudgedTurn(i, speaker, 3.0 * i, 3.0 * i + 2.5, f"turn {i}", frozenset(filter(None, cats.split(","))))
        for i, (speaker, cats) in enumerate(turns)
    ]


GOOD = call(
    ("agent", "gratitude"),
    ("customer", "customer_complaint"),
    ("agent", "empathy,apology"),
    ("agent", "next_steps,timeline"),
    ("agent", "prevention"),
    ("customer", "escalation_request"),
    ("agent", "escalation_offer"),
)


def test_a_call_that_does_everything_passes_every_item():
    card = score_call(GOOD)
    assert {i.id: i.status for i in card.items} == {
        "no_forbidden": ItemStatus.PASSED,
        "empathy": ItemStatus.PASSED,
        "apology": ItemStatus.PASSED,
        "next_step": ItemStatus.PASSED,
        "timeline": ItemStatus.PASSED,
        "prevention": ItemStatus.PASSED,
        "escalation": ItemStatus.PASSED,
    }
    assert card.score == 1.0 and card.failed == 0
    assert card.item("empathy").turns == (2,) and card.item("escalation").turns == (6,)


def test_a_call_without_complaint_or_escalation_is_judged_only_on_forbidden_phrases():
    card = score_call(call(("agent", "gratitude"), ("customer", ""), ("agent", "")))
    assert [i.id for i in card.items if i.status is not ItemStatus.NOT_APPLICABLE] == ["no_forbidden"]
    assert card.score == 1.0


@pytest.mark.parametrize(
    ("item", "drop"),
    [
        ("empathy", {"empathy", "apology"}),
        ("apology", {"apology"}),
        ("next_step", {"next_steps"}),
        ("timeline", {"timeline"}),
        ("escalation", {"escalation_offer"}),
    ],
)
def test_each_item_fails_when_its_practice_is_missing_and_names_the_trigger_turn(item, drop):
    turns = [JudgedTurn(t.index, t.speaker, t.start, t.end, t.text, t.categories - drop) for t in GOOD]
    card = score_call(turns)
    failed = card.item(item)
    assert failed.status is ItemStatus.FAILED and failed.note
    trigger = 5 if item == "escalation" else 1
    assert failed.turns == (trigger,)
    assert card.score < 1.0


def test_a_practice_before_the_complaint_does_not_count():
    card = score_call(call(("agent", "apology"), ("customer", "customer_complaint"), ("agent", "")))
    assert card.item("apology").status is ItemStatus.FAILED


def test_a_forbidden_phrase_breaks_the_call_at_its_turn():
    card = score_call(call(("customer", "asks_when"), ("agent", "vague_timeline"), ("agent", "not_my_job")))
    item = card.item("no_forbidden")
    assert item.status is ItemStatus.FAILED and item.turns == (1, 2)
    assert item.note == "not_my_job, vague_timeline"
    assert card.item("timeline").status is ItemStatus.FAILED  # asked when, never told


def test_prevention_is_advisory_never_failed():
    card = score_call(
        call(("customer", "customer_complaint"), ("agent", "empathy,apology,next_steps,timeline"))
    )
    assert card.item("prevention").status is ItemStatus.ADVISORY
    assert card.score == 1.0


def test_scorecard_from_real_classifier_on_a_text_call(classifier):
    """The same algorithm on categories the real classifier finds in a written call."""
    script = [
        ("customer", "Третий день не работает интернет, я в бешенстве, сколько можно!"),
        ("agent", "Понимаю, как это неприятно, простите нас, пожалуйста."),
        ("agent", "Я уже передала заявку инженерам, они восстановят линию сегодня до шести вечера."),
        ("customer", "Позовите вашего начальника."),
        ("agent", "Это не ко мне, я этим не занимаюсь."),
    ]
    turns = []
    for i, (speaker, text) in enumerate(script):
        found = classifier.classify(text, speaker, "ru")
        turns.append(JudgedTurn(i, speaker, 4.0 * i, 4.0 * i + 3, text, frozenset(d.category for d in found)))
    card = score_call(turns)
    assert card.item("empathy").status is ItemStatus.PASSED
    assert card.item("timeline").status is ItemStatus.PASSED
    assert card.item("no_forbidden").status is ItemStatus.FAILED and card.item("no_forbidden").turns == (4,)
    assert card.item("escalation").status is ItemStatus.FAILED
