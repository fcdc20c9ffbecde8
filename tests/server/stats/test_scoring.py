"""The scorecard of a live call once it ends: its stored turns judged again by the real classifier of the
default pack, with the scorecard an audit uses; the background scorer picks up ended calls by itself."""

from __future__ import annotations

import pytest

from server.live.store import Store
from server.stats.scoring import LiveScorer, score_live_call
from tests.conftest import wait_for

TURNS = [  # a complaint, then an apology and a concrete time from the agent
    ("customer", "Я уже третий раз звоню, это безобразие, у меня до сих пор нет интернета!"),
    ("agent", "Простите, пожалуйста, мне очень жаль, что так вышло."),
    ("agent", "Мастер приедет завтра до двенадцати часов, я лично прослежу."),
]


def _call(store: Store, call_id: str, turns=TURNS) -> None:
    store.create_call(call_id, ["agent", "customer"], "ru", "pcm16", 8000, agent="anna")
    for i, (speaker, text) in enumerate(turns):
        store.add_turn(call_id, speaker, text, i * 6.0, i * 6.0 + 5)


@pytest.fixture
def store(store_location):
    with Store(store_location) as store:
        yield store


def test_an_ended_call_gets_its_scorecard_and_practices(store, classifier):
    _call(store, "c1")
    assert score_live_call(store, classifier, "c1") is None  # still active: not scored
    store.end_call("c1", "completed")
    card = score_live_call(store, classifier, "c1")
    assert card is not None
    stored = store.get_call("c1")
    assert stored.score == card.score
    assert {"apology", "timeline"} <= set(stored.practices)
    assert card.item("apology").status == "passed" and card.item("no_forbidden").status == "passed"


def test_a_call_with_a_forbidden_phrase_fails(store, classifier):
    _call(
        store,
        "c2",
        [("customer", "Когда вы уже почините?"), ("agent", "Я этим не занимаюсь, звоните в другой отдел.")],
    )
    store.end_call("c2", "completed")
    card = score_live_call(store, classifier, "c2")
    assert card.item("no_forbidden").status == "failed" and store.get_call("c2").score < 1.0


def test_a_resumed_call_is_scored_again_when_it_ends(store, classifier):
    _call(store, "c3")
    store.end_call("c3", "disconnected")
    score_live_call(store, classifier, "c3")
    assert store.get_call("c3").score is not None
    store.create_call("c3", ["agent", "customer"], "ru", "pcm16", 8000, agent="anna")  # resumed
    assert store.get_call("c3").score is None and store.get_call("c3").practices is None
    assert store.unscored_calls() == []  # active again: not to be scored yet
    store.end_call("c3", "completed")
    assert store.unscored_calls() == ["c3"]


def test_the_background_scorer_scores_ended_calls(store, classifier):
    _call(store, "c4")
    _call(store, "c5")
    store.end_call("c4", "completed")
    scorer = LiveScorer(store, lambda: classifier, every=0.1).start()
    try:
        wait_for(lambda: store.get_call("c4").score is not None, 60, "c4 scored")
        assert store.get_call("c5").score is None  # still active
        store.end_call("c5", "disconnected")
        wait_for(lambda: store.get_call("c5").score is not None, 60, "c5 scored")
    finally:
        scorer.stop()
    assert store.unscored_calls() == []
