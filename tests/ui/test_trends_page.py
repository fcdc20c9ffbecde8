"""The trends page (/trends) and an agent's own page (/me) in a real headless Chromium against a real
server holding the known calls of tests/server/stats/known_calls.py: the plots draw exactly the numbers
worked out there (read back from the Chart.js chart objects and their CSV downloads), filters change them,
and an agent sees only their own numbers and calls, on the page and through the API.

Set CALLBUFFER_UPDATE_SCREENSHOT=1 to rewrite docs/trends.png from the synthetic calls of
bench/synthetic_calls.py (`test_trends_screenshot`)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from tests.server.stats.known_calls import EXPECTED, write_known_calls

expect = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed").expect
REPO = Path(__file__).resolve().parents[2]
PLOTS = 8  # on /trends


@pytest.fixture(scope="module")
def server(module_server):
    write_known_calls(module_server.settings.database)
    return module_server


def _chart(page, plot_id: str) -> dict:
    """What the plot's Chart.js chart draws: its labels, and each dataset's label and values."""
    return page.evaluate(
        """(id) => {
            const chart = window.Chart.getChart(document.querySelector(`#${id} canvas`));
            return {labels: chart.data.labels,
                    datasets: chart.data.datasets.map((d) => ({label: d.label, data: d.data}))};
        }""",
        plot_id,
    )


def _painted(page, plot_id: str) -> int:
    """How many pixels of the plot's canvas are painted (not transparent)."""
    return page.evaluate(
        """(id) => {
            const canvas = document.querySelector(`#${id} canvas`);
            const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted += 1;
            return painted;
        }""",
        plot_id,
    )


def _open(page, server, path: str, ready: int, wait_until) -> None:
    page.goto(f"{server.url}{path}")
    wait_until(page, f"document.querySelectorAll('.plot[data-state=\"ready\"]').length === {ready}", 20)


def _csv(page, plot_id: str) -> list[dict]:
    with page.expect_download() as download:
        page.click(f"#{plot_id} .plot-csv")
    return list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))


def test_trend_plots_draw_the_known_numbers(server, new_page, login, wait_until):
    login(server, "reviewer")
    page = new_page()
    _open(page, server, "/trends", PLOTS, wait_until)
    by_agent = _chart(page, "plot-alerts-agent")
    expected = EXPECTED["alerts", "agent"]
    assert by_agent["labels"] == list(expected)  # anna, boris, oleg, then calls naming no agent
    assert by_agent["datasets"][0]["data"] == [value for _, _, value in expected.values()]
    assert _painted(page, "plot-alerts-agent") > 1000
    weeks = _chart(page, "plot-alerts-time")
    assert weeks["labels"] == ["2025-03-03", "2025-03-10"] and weeks["datasets"][0]["data"] == [120.0, 100.0]
    assert _chart(page, "plot-pass-time")["datasets"][0]["data"] == [50.0, 50.0]
    teams = _chart(page, "plot-alerts-team")
    assert dict(zip(teams["labels"], teams["datasets"][0]["data"], strict=True)) == {
        "north": 133.33,
        "south": 100.0,
        "no team": 100.0,
    }
    practices = _chart(page, "plot-practices-agent")
    apology = next(d for d in practices["datasets"] if d["label"] == "Apology")
    assert dict(zip(practices["labels"], apology["data"], strict=True)) == {
        "anna": 33.33,
        "boris": 0.0,
        "oleg": 100.0,  # L2 and A2
        "no agent": None,
    }
    # another practice per agent, picked in the plot's own select; its CSV has just that practice
    page.select_option("#plot-practices-agent-choice", "timeline")
    wait_until(page, "document.querySelector('#plot-practices-agent').dataset.state === 'ready'")
    timeline = _chart(page, "plot-practices-agent")["datasets"]
    assert [d["label"] for d in timeline] == ["Concrete timeline"]
    assert dict(zip(practices["labels"], timeline[0]["data"], strict=True)) == {
        "anna": 66.67,
        "boris": 0.0,
        "oleg": 0.0,
        "no agent": None,
    }
    assert [(r["agent"], r["practice"], r["value"]) for r in _csv(page, "plot-practices-agent")] == [
        ("anna", "timeline", "66.67"),
        ("boris", "timeline", "0.00"),
        ("oleg", "timeline", "0.00"),
        ("no agent", "timeline", ""),
    ]
    overall = _chart(page, "plot-practices-category")
    assert dict(zip(overall["labels"], overall["datasets"][0]["data"], strict=False))["Apology"] == 50.0
    rows = _csv(page, "plot-alerts-agent")
    assert [(r["agent"], int(r["calls"]), int(r["count"]), r["value"]) for r in rows] == [
        (key, calls, count, f"{value:.2f}") for key, (calls, count, value) in expected.items()
    ]
    expect(page.locator("#plot-alerts-agent .plot-table tbody tr")).to_have_count(4)


def test_filters_change_the_plots_and_the_address(server, new_page, login, wait_until):
    login(server, "reviewer")
    page = new_page()
    _open(page, server, "/trends", PLOTS, wait_until)
    page.select_option("#f-agent", "anna")
    page.select_option("#f-category", "not_my_job")
    page.select_option("#f-period", "day")
    page.fill("#f-since", "2025-03-03")
    page.fill("#f-until", "2025-03-04")
    page.click("#f-apply")
    wait_until(
        page,
        "window.Chart.getChart(document.querySelector('#plot-alerts-agent canvas')).data.labels.length === 1",
    )
    wait_until(page, f"document.querySelectorAll('.plot[data-state=\"ready\"]').length === {PLOTS}")
    assert _chart(page, "plot-alerts-agent")["datasets"][0]["data"] == [100.0]  # L1 twice and A1, 3 calls
    days = _chart(page, "plot-alerts-time")
    assert days["labels"] == ["2025-03-03", "2025-03-04"] and days["datasets"][0]["data"] == [200.0, 50.0]
    assert "agent=anna" in page.url and "category=not_my_job" in page.url
    rows = _csv(page, "plot-alerts-time")
    assert [(r["day"], r["value"]) for r in rows] == [("2025-03-03", "200.00"), ("2025-03-04", "50.00")]
    page.fill("#f-since", "2025-03-10")
    page.click("#f-apply")
    expect(page.locator("#filter-error")).to_contain_text("before")


def test_an_agent_sees_only_their_own(server, new_page, login, wait_until, context):
    login(server, "agent")  # anna
    page = new_page()
    _open(page, server, "/me", 4, wait_until)
    expect(page.locator("#me-name")).to_contain_text("anna")
    categories = _chart(page, "my-alerts-category")
    numbers = dict(zip(categories["labels"], categories["datasets"][0]["data"], strict=True))
    assert numbers["Refusing ownership"] == 100.0 and numbers["Blaming others"] == 0.0
    expect(page.locator("#my-alerts-category .plot-note")).to_contain_text("3 calls")
    calls = page.locator("#my-calls .my-call")
    expect(calls).to_have_count(2)  # L1 and A1; L6 is still active
    assert calls.nth(1).get_attribute("data-call-id") == "L1"
    expect(page.locator("main")).not_to_contain_text("oleg")
    expect(page.locator("main")).not_to_contain_text("L2")
    # the API says no to another agent's numbers and calls, whatever the page does
    for path in ("/v1/stats?agent=oleg", "/v1/stats/calls?agent=oleg", "/v1/stats.csv?agent=oleg"):
        assert context.request.get(f"{server.url}{path}").status == 403
    # and the supervisors' page is not for agents
    page.goto(f"{server.url}/trends")
    expect(page.locator("body")).to_have_attribute("data-auth", "denied")


@pytest.mark.skipif(not os.environ.get("CALLBUFFER_UPDATE_SCREENSHOT"), reason="writes docs/trends.png")
def test_trends_screenshot(shared_models, cache_dir, tmp_path, browser, wait_until):
    """docs/trends.png: the trends page over 3000 synthetic calls (bench/synthetic_calls.py), their
    agents put in three teams (the generator makes agents without one)."""
    import sys
    from datetime import UTC, datetime

    from server.access.store import AuthStore
    from tests.conftest import _serve

    sys.path.insert(0, str(REPO / "bench"))
    from synthetic_calls import generate

    data = tmp_path / "data"
    data.mkdir()
    db = data / "callbuffer.db"
    summary = generate(db, calls=3000, seed=1, end=datetime(2025, 6, 30, 18, tzinfo=UTC))
    with AuthStore(db) as auth:
        for i, name in enumerate(summary.agents):
            auth.set_team(name, ("north", "south", "east")[i % 3])
    # the scorer of ended live calls waits: the page is shot before it would start
    server = _serve(
        shared_models, cache_dir, tmp_path / "served", database_url=f"sqlite:///{db}", score_every=3600
    )
    try:
        context = browser.new_context(
            viewport={"width": 1400, "height": 1580}, locale="en-US", timezone_id="UTC"
        )
        account = server.users["reviewer"]
        context.request.post(
            f"{server.url}/v1/auth/login", data={"name": account.name, "password": account.password}
        )
        page = context.new_page()
        page.goto(f"{server.url}/trends?since=2025-04-07&until=2025-06-29")
        wait_until(page, f"document.querySelectorAll('.plot[data-state=\"ready\"]').length === {PLOTS}", 30)
        page.screenshot(path=str(REPO / "docs" / "trends.png"))
        context.close()
    finally:
        server.stop()
        server.engine.store.close()
