"""The trend routes on a real server (uvicorn, real HTTP): the numbers of the known calls, the same as CSV,
who may see what (an agent only their own), and clear 422s for wrong parameters."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from tests.server.stats.known_calls import EXPECTED, TOTALS, write_known_calls


@pytest.fixture(scope="module")
def server(module_server):
    write_known_calls(module_server.settings.database)  # anna and oleg are the server's test agents
    return module_server


def _get(server, user: str, path: str, **params):
    return server.http(user).get(f"{server.url}{path}", params=params)


def _rows(body: dict) -> dict:
    def key(row: dict) -> str | tuple[str, str]:
        return row["key"] if row["series"] is None else (row["key"], row["series"])

    return {key(r): (r["calls"], r["count"], r["value"]) for r in body["rows"]}


@pytest.mark.parametrize("user", ["reviewer", "trainer", "admin"])
def test_supervisors_see_every_agent(server, user):
    response = _get(server, user, "/v1/stats", metric="alerts", group="agent")
    assert response.status_code == 200, response.text
    body = response.json()
    assert _rows(body) == EXPECTED["alerts", "agent"]
    assert (body["total"]["calls"], body["total"]["count"], body["total"]["value"]) == TOTALS["alerts"]
    assert body["unit"] == "alerts per 100 calls"


def test_the_csv_has_the_same_numbers(server):
    params = {"metric": "practices", "group": "agent"}
    body = _get(server, "reviewer", "/v1/stats", **params).json()
    for path, extra in (("/v1/stats.csv", {}), ("/v1/stats", {"format": "csv"})):
        response = _get(server, "reviewer", path, **params, **extra)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        assert 'filename="callbuffer-practices-by-agent.csv"' in response.headers["content-disposition"]
        table = list(csv.DictReader(io.StringIO(response.text)))
        assert list(table[0]) == ["agent", "practice", "calls", "count", "value"]
        assert [(r["agent"], r["practice"], int(r["calls"]), int(r["count"])) for r in table] == [
            (r["key"], r["series"], r["calls"], r["count"]) for r in body["rows"]
        ]
        assert [r["value"] for r in table] == [
            "" if r["value"] is None else f"{r['value']:.2f}" for r in body["rows"]
        ]


def test_an_agent_gets_only_their_own_numbers(server):
    # anna: L1, L3 and A1 (4 alerts over 3 calls), whatever the grouping
    mine = _get(server, "agent", "/v1/stats", metric="alerts", group="agent").json()
    assert _rows(mine) == {"anna": (3, 4, 133.33)} and mine["filters"]["agent"] == "anna"
    by_team = _get(server, "agent", "/v1/stats", metric="alerts", group="team").json()
    assert _rows(by_team) == {"north": (3, 4, 133.33)}
    by_category = _rows(_get(server, "agent", "/v1/stats", metric="alerts", group="category").json())
    assert by_category["not_my_job"] == (3, 3, 100.0) and by_category["blame_shifting"] == (3, 0, 0.0)
    assert _get(server, "agent", "/v1/stats", agent="anna").status_code == 200


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/stats", {"agent": "oleg"}),
        ("/v1/stats.csv", {"agent": "oleg"}),
        ("/v1/stats", {"team": "south"}),
        ("/v1/stats/calls", {"agent": "oleg"}),
    ],
)
def test_an_agent_asking_for_another_is_refused(server, path, params):
    response = _get(server, "agent", path, **params)
    assert response.status_code == 403, response.text
    assert "only their own" in response.json()["detail"]


def test_an_agents_calls_that_raised_alerts(server):
    calls = _get(server, "agent", "/v1/stats/calls").json()["calls"]
    assert [(c["source"], c["agent"]) for c in calls] == [("audited", "anna"), ("live", "anna")]
    assert [a["category"] for a in calls[1]["alerts"]] == ["not_my_job", "not_my_job", "customer_complaint"]
    everyone = _get(server, "reviewer", "/v1/stats/calls").json()["calls"]
    assert {c["agent"] for c in everyone} == {"anna", "oleg", "boris", None}
    options = _get(server, "agent", "/v1/stats/options").json()
    assert options["agents"] == ["anna"] and options["teams"] == ["north"]
    assert {"anna", "oleg", "boris"} <= set(_get(server, "reviewer", "/v1/stats/options").json()["agents"])


def test_other_roles_and_strangers_are_refused(server):
    assert _get(server, "telephony", "/v1/stats").status_code == 403
    assert httpx.get(f"{server.url}/v1/stats").status_code == 401


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"category": "rudeness"}, "unknown category 'rudeness'"),
        ({"metric": "alerts", "category": "apology"}, "good practice, not an alert"),
        ({"agent": "nobody"}, "unknown agent 'nobody'"),
        ({"team": "east"}, "unknown team 'east'"),
        ({"since": "2025-13-01"}, "since must be a date as YYYY-MM-DD"),
        ({"until": "yesterday"}, "until must be a date as YYYY-MM-DD"),
        ({"since": "2025-03-10", "until": "2025-03-01"}, "the wrong way round"),
        ({"metric": "pass", "group": "category"}, "metric=pass has no categories"),
        ({"group": "month"}, "unknown group 'month'"),
        ({"source": "email"}, "unknown source 'email'"),
    ],
)
def test_wrong_parameters_are_422_with_a_message(server, params, message):
    for path in ("/v1/stats", "/v1/stats.csv", "/v1/stats/calls"):
        if path == "/v1/stats/calls" and "group" in params:
            continue
        response = _get(server, "reviewer", path, **params)
        assert response.status_code == 422, (path, params, response.text)
        assert message in response.json()["detail"], response.json()


def test_users_have_teams(server):
    admin = server.http("admin")
    response = admin.post(f"{server.url}/v1/users", json={"name": "vera", "role": "agent", "team": "north"})
    assert response.status_code == 201 and response.json()["user"]["team"] == "north"
    bad = admin.post(f"{server.url}/v1/users", json={"name": "ivan", "role": "agent", "team": "no team"})
    assert bad.status_code == 422 and "bad team name" in bad.json()["detail"]
    listed = {u["name"]: u["team"] for u in admin.get(f"{server.url}/v1/users").json()}
    assert listed["vera"] == "north" and listed["anna"] == "north" and listed["rita"] is None
