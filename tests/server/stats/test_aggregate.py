"""Trends over a small known set of calls (tests/server/stats/known_calls.py), written through the real
stores, on SQLite and on PostgreSQL: every number is worked out by hand there."""

from __future__ import annotations

import pytest

from models.packs import load_pack
from server.stats.aggregate import StatsReader
from server.stats.query import StatsError, Taxonomy, parse_query
from tests.server.stats.known_calls import EXPECTED, TOTALS, write_known_calls

TAXONOMY = Taxonomy.of(load_pack())


@pytest.fixture
def reader(store_location):
    write_known_calls(store_location)
    reader = StatsReader(store_location)
    yield reader
    reader.close()


def _numbers(reader: StatsReader, **params: str) -> tuple[dict, tuple]:
    result = reader.compute(parse_query(TAXONOMY, **params), TAXONOMY)
    rows = {
        (r.key if r.series is None else (r.key, r.series)): (r.calls, r.count, r.value) for r in result.rows
    }
    return rows, (result.total.calls, result.total.count, result.total.value)


@pytest.mark.parametrize(("metric", "group"), sorted(EXPECTED))
def test_every_trend_of_the_known_calls(reader, metric, group):
    rows, total = _numbers(reader, metric=metric, group=group)
    for key, expected in EXPECTED[metric, group].items():
        assert rows[key] == expected, (metric, group, key)
    assert total == TOTALS[metric]


def test_days_without_calls_are_on_the_axis_in_order(reader):
    rows, _ = _numbers(reader, metric="alerts", group="day", since="2025-03-01", until="2025-03-11")
    assert list(rows) == [f"2025-03-{d:02d}" for d in range(1, 12)]
    weeks, _ = _numbers(reader, metric="pass", group="week")
    assert list(weeks) == ["2025-03-03", "2025-03-10"]


def test_filters(reader):
    # live calls only: L1-L5 (L6 is still active), six alerts
    assert _numbers(reader, metric="alerts", group="agent", source="live")[1] == (5, 6, 120.0)
    # audited only: A1 (one flag counted, one dismissed) and A2; A3 failed
    assert _numbers(reader, metric="alerts", group="agent", source="audited")[1] == (2, 2, 100.0)
    # anna's not_my_job: L1 twice and A1, over her three calls
    rows, total = _numbers(reader, metric="alerts", group="day", agent="anna", category="not_my_job")
    assert (
        total == (3, 3, 100.0) and rows["2025-03-03"] == (1, 2, 200.0) and rows["2025-03-04"] == (2, 1, 50.0)
    )
    # one day: L3, L4 and A1
    assert _numbers(reader, metric="alerts", group="team", since="2025-03-04", until="2025-03-04")[1] == (
        3,
        2,
        66.67,
    )
    # a team: oleg's L2 and A2; agents without a team: boris and the call naming no agent
    assert _numbers(reader, metric="pass", group="agent", team="south")[0] == {"oleg": (2, 1, 50.0)}
    assert _numbers(reader, metric="alerts", group="agent", team="no team")[0] == {
        "boris": (1, 1, 100.0),
        "no agent": (1, 1, 100.0),
    }
    # one practice, by week
    rows, total = _numbers(reader, metric="practices", group="week", category="apology")
    assert rows == {("2025-03-03", "apology"): (4, 2, 50.0), ("2025-03-10", "apology"): (2, 1, 50.0)}
    assert total == (6, 3, 50.0)


def test_a_stricter_pass_mark_counts_calls_that_reach_it(store_location):
    write_known_calls(store_location)
    with_mark = StatsReader(store_location, pass_score=0.5)
    try:  # scores 1.0, 0.5, 1.0, 0.0, 0.75, 1.0: five reach 0.5
        result = with_mark.compute(parse_query(TAXONOMY, metric="pass", group="day"), TAXONOMY)
        assert (result.total.calls, result.total.count) == (6, 5)
    finally:
        with_mark.close()


def test_calls_that_raised_alerts_with_their_alerts(reader):
    calls = reader.alerted_calls(parse_query(TAXONOMY, agent="anna"))
    # L6 is active, L3 raised nothing, A3 failed: L1 and A1, newest first, A1 without its dismissed flag
    assert [(c.source, c.created_at[:10]) for c in calls] == [
        ("audited", "2025-03-04"),
        ("live", "2025-03-03"),
    ]
    assert [a.category for a in calls[0].alerts] == ["not_my_job"]
    assert [a.category for a in calls[1].alerts] == ["not_my_job", "not_my_job", "customer_complaint"]
    only = reader.alerted_calls(parse_query(TAXONOMY, category="blame_shifting"))
    assert [(c.id, c.agent) for c in only] == [("L2", "oleg")]


def test_who_and_what_the_filters_may_name(reader):
    assert reader.agents() == ["anna", "boris", "oleg"]
    assert reader.teams() == ["north", "south"]
    assert reader.known_agent("boris") and not reader.known_agent("nobody")
    assert reader.known_team("north") and reader.known_team("no team") and not reader.known_team("east")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"metric": "alerts", "category": "rudeness"}, "unknown category 'rudeness'"),
        ({"metric": "alerts", "category": "apology"}, "good practice, not an alert"),
        ({"metric": "practices", "category": "not_my_job"}, "an alert, not a good practice"),
        ({"metric": "pass", "group": "category"}, "metric=pass has no categories"),
        ({"metric": "speed"}, "unknown metric 'speed'"),
        ({"group": "month"}, "unknown group 'month'"),
        ({"source": "phone"}, "unknown source 'phone'"),
        ({"since": "03/01/2025"}, "since must be a date as YYYY-MM-DD"),
        ({"until": "2025-02-30"}, "until must be a date as YYYY-MM-DD"),
        ({"since": "2025-03-10", "until": "2025-03-01"}, "the wrong way round"),
    ],
)
def test_wrong_parameters_say_what_is_wrong(params, message):
    with pytest.raises(StatsError, match=message):
        parse_query(TAXONOMY, **params)
