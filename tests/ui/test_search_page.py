"""Search on the review page in a real headless Chromium: a reviewer types an inflected Russian word and
lands on the turn, in an audited call whose real recording (the festival-spoken Russian complaint call)
plays from that moment, or in a live call's read-only transcript.

The audited call's report is the call script's own turns at the times they were spoken in the WAV, stored
through the running server's audit store; the live call goes through its calls store. The page reads both
through the real /v1/search, /v1/audited-calls and /v1/calls routes.
"""

from __future__ import annotations

import re

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed").expect

PLAY_LEAD_S = 1.0  # review.js starts a second before the turn


@pytest.fixture
def audited_call(live_server, ru_call, tmp_path) -> tuple[str, int, float]:
    """The Russian complaint call audited with its script as the transcript; (call id, turn index and
    start of «Я этим не занимаюсь…»)."""
    runner = live_server.app.state.audit_runner
    assert runner.wait_idle(30)
    wav = ru_call.write_wav(tmp_path / "ru-complaint.wav")
    turns = [
        {"index": i, "speaker": t.speaker, "start": round(t.start, 2), "end": round(t.end, 2), "text": t.text,
         "lang": t.lang}
        for i, t in enumerate(ru_call.turns)
    ]  # fmt: skip
    index = next(i for i, t in enumerate(turns) if "не занимаюсь" in t["text"])
    assert turns[index]["start"] > 3, "the turn must start late enough to tell a seek from the start"
    report = {
        "duration": round(ru_call.duration, 2),
        "language": "ru",
        "roles": ["agent", "customer"],
        "turns": turns,
        "detections": [],
        "scorecard": {"score": 0.4, "passed": 0, "failed": 1, "items": []},
    }
    audits = live_server.app.state.audits
    _, [call_id] = audits.create_job(
        {"channels": ["agent", "customer"]}, [("ru-complaint.wav", str(wav))], "anna"
    )
    audits.save_report(call_id, report)
    return call_id, index, turns[index]["start"]


@pytest.fixture
def live_call(live_server) -> str:
    store = live_server.engine.store
    store.create_call("live-42", ["agent", "customer"], "ru", "pcm16", 8000, agent="oleg")
    store.add_turn("live-42", "customer", "У меня списали деньги дважды.", 0.5, 3.0)
    turn = store.add_turn("live-42", "agent", "Мы этим не занимаемся, это к банку.", 3.5, 6.0)
    store.add_alert("live-42", turn, "not_my_job", "forbidden", "agent", "x", 3.5, 6.0, 0.9, ["Я узнаю"], 1,
                    title="Отказ заниматься вопросом", span=(3, 21))  # fmt: skip
    store.add_turn("live-42", "customer", "Как это не занимаетесь?", 6.5, 8.0)
    store.end_call("live-42", "completed")
    return "live-42"


@pytest.fixture
def review(new_page, live_server, login):
    login(live_server, "reviewer")
    page = new_page()
    page.goto(live_server.url + "/review")
    expect(page.locator("#call-list-note")).not_to_have_text(re.compile("Loading"))
    return page


def search(page, text: str) -> None:
    page.locator("#search-q").fill(text)
    page.locator("#search-q").press("Enter")
    expect(page.locator("#search-note")).to_have_attribute("data-state", "done")


def test_an_inflected_word_lands_on_the_turn_with_the_recording_there(
    review, audited_call, live_call, wait_until
):
    """«занимаемся» finds «Я этим не занимаюсь…» (and the live «Мы этим не занимаемся…»), the match
    marked; clicking the audited hit opens the call with that turn highlighted and in view, and the
    recording playing from a second before it."""
    call_id, index, start = audited_call
    page = review
    search(page, "занимаемся")
    hits = page.locator("#search-results > li.search-hit")
    expect(hits).to_have_count(3)  # and «Как это не занимаетесь?» of the live call
    expect(page.locator("#search-count")).to_have_text("· 3")
    audited = hits.filter(has=page.locator(".search-source--audited"))
    expect(audited.locator("mark.search-mark")).to_have_text(["занимаюсь"])
    expect(audited.locator(".search-line--hit")).to_contain_text("Я этим не занимаюсь")
    expect(audited.locator(".search-line--before")).to_be_visible()  # the turn before, for context
    live = hits.filter(has=page.locator(".search-source--live"))
    expect(live.locator("mark")).to_have_text(["занимаемся", "занимаетесь"])  # its turns, in order

    audited.locator("button.search-open").click()
    expect(page.locator("#detail-title")).to_have_text("ru-complaint.wav")
    turn = page.locator(f"#turn-{index}")
    expect(turn).to_have_class(re.compile("is-highlighted"))
    expect(turn).to_be_in_viewport()
    wait_until(page, "!document.querySelector('#player').paused")
    now = page.evaluate("document.querySelector('#player').currentTime")
    assert start - PLAY_LEAD_S - 0.1 <= now < start + 1.0, (now, start)
    assert f"call={call_id}" in page.url and f"turn={index}" in page.url
    page.evaluate("document.querySelector('#player').pause()")


def test_a_live_hit_opens_the_live_transcript_at_the_turn(review, live_call):
    page = review
    search(page, "занимаюсь")
    hit = page.locator("#search-results > li.search-hit").filter(
        has=page.locator(".search-line--hit", has_text="банку")
    )
    expect(hit.locator("mark")).to_have_text(["занимаемся"])
    expect(hit.locator(".search-line--after")).to_contain_text("Как это не занимаетесь?")
    hit.locator("button.search-open").click()
    expect(page.locator("#live-body")).to_be_visible()
    expect(page.locator("#detail-body")).to_be_hidden()
    target = page.locator("#live-transcript > li.is-highlighted")
    expect(target).to_contain_text("Мы этим не занимаемся, это к банку.")
    expect(target.locator(".turn-flag")).to_contain_text("Отказ заниматься вопросом")
    assert "live=live-42" in page.url


def test_bad_input_says_what_is_wrong(review, live_call, problems):
    """Only special characters: the server's 422 message is shown, nothing breaks."""
    problems.allow(r"status of 422")  # the browser logs the refused request itself
    page = review
    page.locator("#search-q").fill('*()"^')
    page.locator("#search-q").press("Enter")
    expect(page.locator("#search-note")).to_have_attribute("data-state", "error")
    expect(page.locator("#search-note")).to_contain_text("no words")
    search(page, "несуществующееслово")
    expect(page.locator("#search-note")).to_contain_text("Nothing found")
