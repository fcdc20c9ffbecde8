"""Scoring labelled calls turn by turn: hits, misses, false alarms, repeated text in finals."""

from __future__ import annotations

import json

from models.call_eval import CallSetReport, HeardTurn, SaidTurn, render_report, repeated_runs, score_call

SAID = (
    SaidTurn("agent", "Здравствуйте, слушаю вас.", 0.5, 2.0),
    SaidTurn(
        "customer", "Когда вы уже почините интернет?", 2.8, 5.0, ("asks_when",), ("customer_complaint",)
    ),
    SaidTurn("agent", "Так, вижу ваш договор.", 5.8, 7.0),
    SaidTurn("agent", "Это бухгалтерия напутала.", 7.3, 9.0, ("blame_shifting",)),
    SaidTurn("customer", "Позовите руководителя!", 9.8, 11.0, ("escalation_request",)),
)


def test_hits_misses_and_false_alarms_are_told_per_said_turn():
    heard = [
        HeardTurn("agent", "Здравствуйте, слушаю вас.", 0.4, 2.1),
        # complaint is also_ok here: no false alarm
        HeardTurn(
            "customer", "когда вы уже почти не темнее интернет", 2.7, 5.1, ("asks_when", "customer_complaint")
        ),
        # the endpointer joined two agent turns: the alert counts for the second, and is no false alarm
        HeardTurn("agent", "Так вижу ваш договор это бы их галтерия напутала", 5.7, 9.1, ("blame_shifting",)),
        HeardTurn("customer", "забити вашего руководителя", 9.7, 11.1, ("customer_complaint",)),
        HeardTurn("customer", "Продолжение следует", 14.0, 15.0, ("not_my_job",)),  # heard where nobody spoke
    ]
    result = score_call("call", SAID, heard, split="heldout")
    assert (result.expected, result.hits, result.false_alarms) == (3, 2, 2)
    rows = {r.said.text if r.said else None: r for r in result.rows}
    assert rows["Когда вы уже почините интернет?"].hits == ("asks_when",)
    assert rows["Когда вы уже почините интернет?"].false_alarms == ()
    assert rows["Это бухгалтерия напутала."].hits == ("blame_shifting",)
    assert (
        rows["Так, вижу ваш договор."].false_alarms == ()
    )  # the joined turn's alert belongs to its neighbour
    assert rows["Позовите руководителя!"].misses == ("escalation_request",)
    assert rows["Позовите руководителя!"].false_alarms == ("customer_complaint",)
    assert rows[None].false_alarms == ("not_my_job",) and rows[None].heard[0].start == 14.0
    assert [r.said.start if r.said else r.heard[0].start for r in result.rows] == [
        0.5,
        2.8,
        5.8,
        7.3,
        9.8,
        14.0,
    ]


def test_a_turn_heard_by_the_other_speaker_or_not_at_all_is_missed():
    heard = [HeardTurn("agent", "Когда вы уже почините интернет?", 2.8, 5.0, ("asks_when",))]
    result = score_call("call", SAID[:2], heard)
    assert result.hits == 0 and result.rows[1].misses == ("asks_when",)
    assert result.false_alarms == 1  # asks_when on an agent turn where the agent said nothing of it
    unknown = [HeardTurn("unknown", "Когда вы уже почините интернет?", 2.8, 5.0, ("asks_when",))]
    assert score_call("mono", SAID[:2], unknown).hits == 1  # a mono recording's turn may be either side


def test_a_brief_touch_of_a_neighbouring_turn_does_not_make_it_its_own():
    """Pre-roll of 0.2 s into the next said turn of the same speaker is not that turn."""
    heard = [HeardTurn("agent", "Так, вижу ваш договор.", 5.7, 7.5, ("blame_shifting",))]
    result = score_call("call", SAID, heard)
    assert result.hits == 0 and result.false_alarms == 1


def test_repeated_runs_of_words_are_found_unless_said_so():
    assert repeated_runs(
        "Let me speak to your manager. Let me speak to your manager. Let me speak",
        "Let me speak to your manager.",
    ) == ("let me speak to your manager",)
    assert repeated_runs(
        "Хорошо, одну минуту, я открываю вашу карточку. Хорошо, одну минуту, я открываю вашу карточку."
    ) == ("хорошо одну минуту я открываю вашу карточку",)
    assert repeated_runs("When we'll miss me big. When we'll miss me big. When") == (
        "when we ll miss me big",
    )
    assert repeated_runs("Алло? Алло? Вы меня слышите?") == ()  # two words: people do that
    said = "Верните мне деньги, верните мне деньги немедленно!"
    assert repeated_runs("верните мне деньги верните мне деньги немедленно", said) == ()


def test_report_totals_by_split_and_category_and_as_json():
    heard = [HeardTurn("customer", "когда почините", 2.8, 5.0, ("asks_when",))]
    looped = [
        HeardTurn("customer", "позовите вашего руководителя позовите вашего руководителя позовите", 9.8, 11.0)
    ]
    report = CallSetReport(
        "live",
        (
            score_call("a", SAID, heard, split="tune"),
            score_call("b", SAID, looped, split="heldout"),
        ),
        failed=(("c", "c.yaml: turns: item 2: lang: unknown language 'de'"),),
    )
    assert report.totals().to_dict() == {
        "calls": 2,
        "expected": 6,
        "hits": 1,
        "recall": 0.167,
        "false_alarms": 0,
        "false_alarms_per_call": 0.0,
        "repeated_finals": 1,
    }
    assert report.totals("heldout").hits == 0 and report.totals("tune").hits == 1
    counts = {c.category: (c.expected, c.hits, c.false_alarms) for c in report.categories()}
    assert counts == {"asks_when": (2, 1, 0), "blame_shifting": (2, 0, 0), "escalation_request": (2, 0, 0)}
    data = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    assert data["by_split"]["heldout"]["repeated_finals"] == 1
    assert data["calls"][1]["turns"][4]["repeated"] == ["позовите вашего руководителя"]
    text = render_report(report)
    assert "MISSED escalation_request" in text and "REPEATS «позовите вашего руководителя»" in text
    assert "FAILED c: c.yaml: turns: item 2" in text
