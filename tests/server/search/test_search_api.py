"""GET /v1/search on a real server: hits with marked words, context and where to open them; roles; and
a clear 422 for every kind of bad input (each case says what was tried)."""

from __future__ import annotations

import pytest


def _seed(server) -> str:
    """A live call of agent «ghost» (no such user) and an audited call of «anna»; returns the audited id."""
    store = server.engine.store
    store.create_call("call-1", ["agent", "customer"], "ru", "pcm16", 8000, agent="ghost")
    store.add_turn("call-1", "customer", "Где мой заказ?", 0.5, 2.0)
    turn = store.add_turn("call-1", "agent", "Мы этим не занимаемся, звоните на склад.", 2.5, 5.0)
    store.add_alert("call-1", turn, "not_my_job", "forbidden", "agent", "x", 2.5, 5.0, 0.9, ["Я узнаю"], 1)
    store.end_call("call-1", "completed")
    audits = server.app.state.audits
    _, [audited] = audits.create_job({}, [("a.wav", "/nowhere/a.wav")], agent="anna")
    audits.save_report(
        audited,
        {
            "duration": 9.0,
            "language": "ru",
            "turns": [
                {"index": 0, "speaker": "customer", "start": 0.4, "end": 2.0, "text": "Алло?"},
                {"index": 1, "speaker": "agent", "start": 2.2, "end": 4.0, "text": "Я этим не занимаюсь."},
            ],
            "detections": [],
            "scorecard": {"score": 0.5},
        },
    )
    return audited


def test_reviewer_finds_inflected_words_in_live_and_audited_calls(live_server):
    audited = _seed(live_server)
    response = live_server.http("reviewer").get(f"{live_server.url}/v1/search", params={"q": "занимаюсь"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2
    by_source = {h["source"]: h for h in body["hits"]}
    live = by_source["live"]
    assert live["call_id"] == "call-1" and live["agent"] == "ghost" and live["start"] == 2.5
    assert [s for s in live["segments"] if s["match"]] == [{"text": "занимаемся", "match": True}]
    assert "".join(s["text"] for s in live["segments"]) == live["text"]
    assert live["before"]["text"] == "Где мой заказ?" and live["after"] is None
    assert live["categories"] == ["not_my_job"] and live["has_recording"] is False
    assert live["open"] == "/review?live=call-1&turn=" + str(live["turn"]) + "&t=2.5"
    heard = by_source["audited"]
    assert heard["call_id"] == audited and heard["open"] == f"/review?call={audited}&turn=1&t=2.2"
    only_live = live_server.http("reviewer").get(
        f"{live_server.url}/v1/search", params={"q": "занимаюсь", "source": "live", "agent": "ghost"}
    )
    assert [h["call_id"] for h in only_live.json()["hits"]] == ["call-1"]


def test_roles(live_server):
    url = f"{live_server.url}/v1/search"
    assert live_server.http("trainer").get(url, params={"q": "заказ"}).status_code == 200
    assert live_server.http("admin").get(url, params={"q": "заказ"}).status_code == 200
    refused = live_server.http("agent").get(url, params={"q": "заказ"})
    assert refused.status_code == 403 and "agent" in refused.json()["detail"]
    import httpx

    assert httpx.get(url, params={"q": "заказ"}).status_code == 401


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": ""}, "empty"),  # nothing typed
        ({"q": "   "}, "empty"),  # only spaces
        ({"q": "?!*()"}, "no words"),  # only special characters
        ({"q": "слово " * 40}, "at most 200"),  # longer than a query can be
        ({"q": "заказ", "speaker": "robot"}, "speaker must be one of"),
        ({"q": "заказ", "source": "archive"}, "source must be one of"),
        ({"q": "заказ", "agent": "nobody"}, "unknown agent 'nobody'"),  # no such user, no call names it
        ({"q": "заказ", "agent": "bad name!"}, "must be a user name"),
        ({"q": "заказ", "category": "rudeness"}, "unknown category 'rudeness'"),
        ({"q": "заказ", "since": "last week"}, "not a date"),
        ({"q": "заказ", "until": "2025-13-40"}, "not a date"),
        ({"q": "заказ", "since": "2025-03-02", "until": "2025-03-01"}, "wrong way round"),
    ],
)
def test_bad_input_is_a_clear_422(live_server, params, message):
    response = live_server.http("reviewer").get(f"{live_server.url}/v1/search", params=params)
    assert response.status_code == 422, (params, response.text)
    assert message in response.json()["detail"], response.json()


def test_limit_out_of_range_is_422(live_server):
    response = live_server.http("reviewer").get(f"{live_server.url}/v1/search", params={"q": "a", "limit": 0})
    assert response.status_code == 422


def test_known_agents_and_categories_are_accepted(live_server):
    """A user with no calls yet, an agent only a call names, a category of the pack, a one-day range."""
    _seed(live_server)
    url = f"{live_server.url}/v1/search"
    http = live_server.http("reviewer")
    assert http.get(url, params={"q": "заказ", "agent": "oleg"}).json()["total"] == 0
    assert http.get(url, params={"q": "заказ", "agent": "ghost"}).json()["total"] == 1
    assert http.get(url, params={"q": "склад", "category": "not_my_job"}).json()["total"] == 1
    from datetime import UTC, datetime

    today = datetime.now(UTC).date().isoformat()
    assert http.get(url, params={"q": "заказ", "since": today, "until": today}).json()["total"] == 1


def test_search_on_postgresql(postgres_live_server):
    _seed(postgres_live_server)
    url, http = f"{postgres_live_server.url}/v1/search", postgres_live_server.http("reviewer")
    response = http.get(url, params={"q": '"не занимаемся"'})
    assert response.status_code == 200, response.text
    assert sorted(h["source"] for h in response.json()["hits"]) == ["audited", "live"]
    only_live = http.get(url, params={"q": '"не занимаюсь звоните"'}).json()["hits"]
    assert [h["call_id"] for h in only_live] == ["call-1"]
