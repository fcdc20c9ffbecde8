"""The agent sidebar (ui/static/agent.*) in a real headless Chromium against the `live_server` fixture.

Each test drives the page the way an agent would (open a link, click, read) while the server pushes protocol
events; what the page shows is checked through the DOM ids and classes listed in ui/static/agent.js.
Set CALLBUFFER_UPDATE_SCREENSHOT=1 to rewrite docs/sidebar.png from `test_sidebar_screenshot`.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed").expect
REPO = Path(__file__).resolve().parents[2]

WIDTH = 380  # the sidebar must fit this


def turn(speaker: str, text: str, start: float, end: float | None = None, final: bool = True) -> dict:
    return {
        "type": "transcript",
        "speaker": speaker,
        "text": text,
        "start": start,
        "end": start + 2.0 if end is None else end,
        "final": final,
    }


def alert(
    kind: str,
    category: str,
    title: str,
    speaker: str,
    text: str,
    start: float,
    span: tuple[int, int],
    suggestions: list[str],
) -> dict:
    return {
        "type": "alert",
        "kind": kind,
        "category": category,
        "title": title,
        "speaker": speaker,
        "text": text,
        "start": start,
        "end": start + 2.0,
        "score": 0.91,
        "suggestions": suggestions,
        "span": list(span),
        "pack_version": 1,
    }


NOT_MY_JOB_TEXT = "Я этим не занимаюсь, звоните в техподдержку."
NOT_MY_JOB = alert(
    "forbidden",
    "not_my_job",
    "Отказ заниматься вопросом",
    "agent",
    NOT_MY_JOB_TEXT,
    4.0,
    (0, 19),
    [
        "Я сама узнаю, кто этим занимается, и передам ему всё.",
        "Давайте я зафиксирую обращение и прослежу за ним.",
        "Сейчас разберёмся вместе.",
    ],
)
ASKS_WHEN_TEXT = "Интернет опять не работает, когда почините?"
ASKS_WHEN = alert(
    "trigger",
    "asks_when",
    "Клиент спрашивает о сроках",
    "customer",
    ASKS_WHEN_TEXT,
    0.0,
    (28, 42),
    ["Я проверю статус работ и назову точный срок.", "Давайте я узнаю сроки прямо сейчас."],
)


@pytest.fixture
def context_options() -> dict[str, Any]:
    return {
        "viewport": {"width": WIDTH, "height": 720},
        "permissions": ["clipboard-read", "clipboard-write"],
        "locale": "ru-RU",
        "timezone_id": "UTC",
    }


@pytest.fixture
def open_sidebar(new_page, live_server, login) -> Any:
    """open_sidebar(path) -> a page at live_server.url + path, signed in as the test agent; any JS error or
    CSP refusal fails the test."""
    login(live_server, "agent")

    def _open(path: str) -> Any:
        page = new_page()
        page.goto(live_server.url + path)
        return page

    _open.server = live_server
    return _open


def listeners(server, call_id: str) -> int:
    """How many sidebar sockets the server's hub has subscribed to the call."""
    hub = server.app.state.calls.hub
    return server.on_loop(hub.listener_count, call_id)


def wait_listeners(server, call_id: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while listeners(server, call_id) < count:
        assert time.monotonic() < deadline, f"no {count} sidebars were subscribed to {call_id}"
        time.sleep(0.02)


def joined(open_sidebar, call_id: str) -> Any:
    """A sidebar opened with ?call=ID, live on the call's events socket and subscribed to the call.

    The page says "live" once the socket is open; the server subscribes it a little later, after checking
    its session, and an event that is not replayed (a partial, an overload) published in between is lost.
    """
    server = open_sidebar.server
    before = listeners(server, call_id)
    page = open_sidebar(f"/agent?call={call_id}")
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    wait_listeners(server, call_id, before + 1)
    return page


def test_join_via_query_param(open_sidebar, live_server):
    """Opened /agent?call=ID: the header names the call, the socket goes live, the picker hides and the
    call's events show."""
    page = open_sidebar("/agent?call=q-4711")
    expect(page.locator("#call-id")).to_have_text("q-4711")
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    expect(page.locator("#picker")).to_be_hidden()
    live_server.publish("q-4711", turn("customer", "Алло, здравствуйте", 0.4))
    expect(page.locator("#transcript-list .turn")).to_have_text([re.compile("Алло, здравствуйте")])
    assert "q-4711" in page.title()


def test_join_from_list_and_text_box(open_sidebar, live_server):
    """Opened / with no call: picked a call from the active list, then joined another by typing its id;
    an invalid id is refused with a message and nothing is opened."""
    live_server.publish("list-1", turn("customer", "Первый звонок", 1.0))
    live_server.publish("typed-2", turn("agent", "Второй звонок", 2.0))
    page = open_sidebar("/")
    expect(page.locator("#status")).to_have_attribute("data-state", "idle")

    page.locator('#call-list .call-item[data-call-id="list-1"]').click()
    expect(page.locator("#call-id")).to_have_text("list-1")
    expect(page.locator("#transcript-list .turn")).to_have_text([re.compile("Первый звонок")])  # replay
    assert page.url.endswith("?call=list-1")

    page.locator("#switch-call").click()
    page.locator("#call-input").fill("no/such call")
    page.locator("#join-btn").click()
    expect(page.locator("#join-error")).to_be_visible()
    expect(page.locator("#call-id")).to_have_text("list-1")

    page.locator("#call-input").fill("typed-2")
    page.locator("#join-btn").click()
    expect(page.locator("#call-id")).to_have_text("typed-2")
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    expect(page.locator("#transcript-list .turn")).to_have_text([re.compile("Второй звонок")])


def test_transcript_speakers_order_and_partials(open_sidebar, live_server):
    """Sent customer partials, an agent final, then the customer's final at the same start: both speakers
    show in call-time order with mm:ss stamps, styled apart; the partial is grey italic and its final
    replaces it in place."""
    page = joined(open_sidebar, "tr-1")
    turns = page.locator("#transcript-list .turn")
    live_server.publish("tr-1", turn("customer", "Интернет опять", 3.0, 4.0, final=False))
    live_server.publish("tr-1", turn("customer", "Интернет опять не работает", 3.0, 5.0, final=False))
    expect(turns).to_have_count(1)
    partial = page.locator("#transcript-list .turn.is-partial .turn-text")
    expect(partial).to_have_text("Интернет опять не работает")
    assert partial.evaluate("e => getComputedStyle(e).fontStyle") == "italic"
    partial_colour = partial.evaluate("e => getComputedStyle(e).color")

    live_server.publish("tr-1", turn("customer", ASKS_WHEN_TEXT, 3.0, 6.5))
    live_server.publish("tr-1", turn("agent", NOT_MY_JOB_TEXT, 67.2, 70.0))
    expect(turns).to_have_count(2)
    expect(page.locator("#transcript-list .turn.is-partial")).to_have_count(0)
    expect(turns.locator(".turn-text")).to_have_text([ASKS_WHEN_TEXT, NOT_MY_JOB_TEXT])
    expect(turns.locator(".turn-time")).to_have_text(["00:03", "01:07"])
    assert [turns.nth(i).get_attribute("data-speaker") for i in range(2)] == ["customer", "agent"]
    expect(turns.nth(0)).to_have_class(re.compile(r"\bturn--customer\b"))
    expect(turns.nth(1)).to_have_class(re.compile(r"\bturn--agent\b"))
    final_style = turns.nth(0).locator(".turn-text").evaluate("e => getComputedStyle(e).fontStyle")
    assert final_style == "normal"
    assert turns.nth(0).locator(".turn-text").evaluate("e => getComputedStyle(e).color") != partial_colour
    backgrounds = [turns.nth(i).evaluate("e => getComputedStyle(e).backgroundColor") for i in range(2)]
    assert backgrounds[0] != backgrounds[1]

    live_server.publish("tr-1", turn("customer", "Интернет опять", 3.0, 4.0, final=False))  # late partial
    live_server.publish("tr-1", turn("customer", "Ну и?", 71.0))
    expect(turns).to_have_count(3)
    expect(turns.nth(0).locator(".turn-text")).to_have_text(ASKS_WHEN_TEXT)


def test_alert_cards_and_copy(open_sidebar, live_server):
    """Sent a customer trigger, then an agent forbidden phrase: a card each, newest on top, kind labelled
    and coloured apart, title, time, span highlighted, suggestion buttons; clicked one: its text is on
    the clipboard and the button says copied."""
    page = joined(open_sidebar, "al-1")
    expect(page.locator("#alert-list")).to_have_attribute("aria-live", "polite")
    live_server.publish("al-1", turn("customer", ASKS_WHEN_TEXT, 0.0))
    live_server.publish("al-1", ASKS_WHEN)
    live_server.publish("al-1", turn("agent", NOT_MY_JOB_TEXT, 4.0))
    live_server.publish("al-1", NOT_MY_JOB)

    cards = page.locator("#alert-list > li.alert")
    expect(cards).to_have_count(2)
    forbidden, trigger = cards.nth(0), cards.nth(1)
    expect(forbidden).to_have_class(re.compile(r"\balert--forbidden\b"))
    expect(trigger).to_have_class(re.compile(r"\balert--trigger\b"))
    expect(forbidden.locator(".alert-kind")).to_contain_text("Don't say this")
    expect(trigger.locator(".alert-kind")).to_contain_text("Customer needs care")
    kind_colours = {
        c.locator(".alert-kind").evaluate("e => getComputedStyle(e).backgroundColor")
        for c in (forbidden, trigger)
    }
    assert len(kind_colours) == 2
    expect(forbidden.locator(".alert-title")).to_have_text("Отказ заниматься вопросом")
    expect(forbidden.locator(".alert-time")).to_have_text("00:04")
    expect(forbidden.locator(".alert-text")).to_have_text(NOT_MY_JOB_TEXT)
    expect(forbidden.locator(".alert-text mark")).to_have_text(NOT_MY_JOB_TEXT[0:19])
    expect(trigger.locator(".alert-text mark")).to_have_text(ASKS_WHEN_TEXT[28:42])
    expect(trigger.locator("button.suggestion")).to_have_count(2)
    buttons = forbidden.locator("button.suggestion")
    expect(buttons.locator(".suggestion-text")).to_have_text(NOT_MY_JOB["suggestions"])

    buttons.nth(1).click()
    expect(buttons.nth(1)).to_have_attribute("data-copied", "true")
    expect(buttons.nth(1).locator(".suggestion-flag")).to_contain_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == NOT_MY_JOB["suggestions"][1]


def test_server_text_is_shown_literally(open_sidebar, live_server):
    """Sent markup and scripts in a transcript, alert title/text/suggestions, overload and error messages:
    every one shows as literal text, no element is created from it and no script runs."""
    img = '<img src="x" onerror="window.__pwned = 1; alert(1)">'
    script = "<script>window.__pwned = 2</script>"
    page = joined(open_sidebar, "xss-1")
    live_server.publish("xss-1", turn("customer", f"смотрите {img}", 1.0))
    live_server.publish(
        "xss-1",
        alert(
            "forbidden",
            "not_my_job",
            "<b>Bold</b> title",
            "agent",
            f"я {script} не занимаюсь",
            3.0,
            (2, 2 + len(script)),
            [img, script, '"><svg onload="window.__pwned = 3">'],
        ),
    )
    live_server.publish("xss-1", {"type": "overload", "message": "<i>slow</i>", "queued": 3})
    live_server.publish("xss-1", {"type": "error", "message": img})

    expect(page.locator("#transcript-list .turn-text")).to_have_text([f"смотрите {img}"])
    card = page.locator("#alert-list > li.alert")
    expect(card.locator(".alert-title")).to_have_text("<b>Bold</b> title")
    expect(card.locator(".alert-text mark")).to_have_text(script)
    expect(card.locator(".suggestion-text")).to_have_text(
        [img, script, '"><svg onload="window.__pwned = 3">']
    )
    expect(page.locator("#overload-text")).to_contain_text("<i>slow</i>")
    expect(page.locator("#error-text")).to_have_text(img)
    assert page.locator("body img, body svg, body b, body i").count() == 0
    assert page.locator("script").count() == 2  # common.js and agent.js only
    card.locator("button.suggestion").nth(0).click()
    expect(card.locator("button.suggestion").nth(0)).to_have_attribute("data-copied", "true")
    assert page.evaluate("navigator.clipboard.readText()") == img
    page.wait_for_timeout(200)  # give a stray onerror time to fire
    assert page.evaluate("window.__pwned") is None


def test_two_sidebars_on_one_call(open_sidebar, live_server):
    """Opened two sidebars on the same call: both receive the same live transcript and alert."""
    first, second = joined(open_sidebar, "two-1"), joined(open_sidebar, "two-1")
    live_server.publish("two-1", turn("agent", NOT_MY_JOB_TEXT, 4.0))
    live_server.publish("two-1", NOT_MY_JOB)
    for page in (first, second):
        expect(page.locator("#transcript-list .turn-text")).to_have_text([NOT_MY_JOB_TEXT])
        expect(page.locator("#alert-list > li.alert .alert-title")).to_have_text([NOT_MY_JOB["title"]])


def test_reconnects_without_duplicates(open_sidebar, live_server, wait_until):
    """Dropped the sidebar's socket without `end` and sent a turn while it was away: the page showed
    "reconnecting", opened a new socket by itself, got the replay and showed the missed turn and later
    live events, with no turn or alert twice."""
    page = open_sidebar("/agent?call=rc-1")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    wait_listeners(live_server, "rc-1", 1)  # the partial below is not replayed to a late subscriber
    live_server.publish("rc-1", turn("customer", ASKS_WHEN_TEXT, 0.0))
    live_server.publish("rc-1", ASKS_WHEN)
    live_server.publish("rc-1", turn("agent", "Секунду, проверяю", 5.0, 6.0, final=False))
    expect(page.locator("#alert-list > li.alert")).to_have_count(1)
    expect(page.locator("#transcript-list .turn")).to_have_count(2)
    page.evaluate(
        """() => {
            window.__states = [];
            new MutationObserver(() => {
                const s = document.getElementById("status");
                window.__states.push([s.dataset.state, s.textContent]);
            }).observe(document.getElementById("status"), {attributes: true, childList: true});
        }"""
    )

    live_server.drop_sidebars("rc-1")
    live_server.publish("rc-1", turn("agent", "Секунду, проверяю статус работ.", 5.0, 7.0))  # missed
    wait_until(page, "window.__states.some(([state]) => state === 'reconnecting')")
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    states = page.evaluate("window.__states")
    assert any(state == "reconnecting" and "Reconnecting" in text for state, text in states), states
    assert states[-1][0] == "live"
    live_server.publish("rc-1", turn("customer", "Хорошо, жду.", 9.0))
    live_server.publish("rc-1", NOT_MY_JOB | {"start": 5.0, "text": "Секунду, проверяю статус работ."})

    turns = page.locator("#transcript-list .turn")
    expect(turns.locator(".turn-text")).to_have_text(
        [ASKS_WHEN_TEXT, "Секунду, проверяю статус работ.", "Хорошо, жду."]
    )
    expect(page.locator("#transcript-list .turn.is-partial")).to_have_count(0)
    expect(page.locator("#alert-list > li.alert")).to_have_count(2)
    page.wait_for_timeout(300)  # nothing more trickles in
    expect(turns).to_have_count(3)
    expect(page.locator("#alert-list > li.alert")).to_have_count(2)
    assert len(sockets) == 2 and all(url.endswith("/v1/calls/rc-1/events") for url in sockets)


def test_end_shows_ended_and_stops(open_sidebar, live_server):
    """Sent `end`: the status and the transcript say the call ended and no new socket is opened;
    a sidebar opened after the end gets the replay and the ended state too."""
    page = open_sidebar("/agent?call=end-1")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    live_server.publish("end-1", turn("agent", "Всего доброго!", 30.0))
    live_server.publish("end-1", {"type": "end"})
    expect(page.locator("#status")).to_have_attribute("data-state", "ended")
    expect(page.locator("#status")).to_contain_text("Call ended")
    expect(page.locator("#call-ended")).to_be_visible()
    page.wait_for_timeout(1500)  # three backoff periods: a reconnect would have happened
    expect(page.locator("#status")).to_have_attribute("data-state", "ended")
    assert len(sockets) == 1

    late = open_sidebar("/agent?call=end-1")
    expect(late.locator("#status")).to_have_attribute("data-state", "ended")
    expect(late.locator("#transcript-list .turn-text")).to_have_text(["Всего доброго!"])


def test_overload_banner_is_dismissible(open_sidebar, live_server):
    """Sent `overload`: a banner with the message and queue length shows; the close button hides it and
    the next overload shows it again."""
    page = joined(open_sidebar, "ov-1")
    banner = page.locator("#overload-banner")
    expect(banner).to_be_hidden()
    live_server.publish("ov-1", {"type": "overload", "message": "Server is behind", "queued": 7})
    expect(banner).to_be_visible()
    expect(page.locator("#overload-text")).to_contain_text("Server is behind")
    expect(page.locator("#overload-text")).to_contain_text("7")
    page.locator("#overload-dismiss").click()
    expect(banner).to_be_hidden()
    live_server.publish("ov-1", {"type": "overload", "message": "Still behind", "queued": 9})
    expect(page.locator("#overload-text")).to_contain_text("Still behind")
    expect(banner).to_be_visible()


def test_autoscroll_unless_scrolled_up(open_sidebar, live_server, wait_until):
    """Sent many turns: the transcript follows the newest; scrolled up and sent more: it stayed where the
    user was and offered a jump button, which goes back to the bottom."""
    page = joined(open_sidebar, "sc-1")
    box = page.locator("#transcript-scroll")
    for i in range(30):
        live_server.publish("sc-1", turn("agent" if i % 2 else "customer", f"Реплика номер {i}", i * 3.0))
    expect(page.locator("#transcript-list .turn")).to_have_count(30)
    at_bottom = "e => e.scrollHeight - e.scrollTop - e.clientHeight < 2"
    wait_until(page, f"({at_bottom})(document.getElementById('transcript-scroll'))")

    box.evaluate("e => { e.scrollTop = 0; }")
    page.wait_for_timeout(100)
    live_server.publish("sc-1", turn("customer", "Новая реплика", 100.0))
    expect(page.locator("#transcript-list .turn")).to_have_count(31)
    expect(page.locator("#jump-latest")).to_be_visible()
    assert box.evaluate("e => e.scrollTop") == 0
    page.locator("#jump-latest").click()
    assert box.evaluate(at_bottom)
    expect(page.locator("#jump-latest")).to_be_hidden()


def test_sidebar_screenshot(open_sidebar, live_server, tmp_path):
    """Showed a few turns and two alerts in a 380 px wide sidebar: nothing overflows sideways; the
    screenshot is written (to docs/sidebar.png when CALLBUFFER_UPDATE_SCREENSHOT=1)."""
    page = joined(open_sidebar, "4711")
    page.set_viewport_size({"width": WIDTH, "height": 1000})
    live_server.publish("4711", turn("customer", ASKS_WHEN_TEXT, 0.0, 3.5))
    live_server.publish("4711", ASKS_WHEN)
    live_server.publish("4711", turn("agent", NOT_MY_JOB_TEXT, 4.0, 7.0))
    live_server.publish("4711", NOT_MY_JOB)
    live_server.publish("4711", turn("customer", "Я уже три раза звонил!", 7.8, 9.6))
    live_server.publish("4711", turn("agent", "Простите, сейчас я сама", 10.1, 11.0, final=False))
    expect(page.locator("#alert-list > li.alert")).to_have_count(2)
    expect(page.locator("#transcript-list .turn")).to_have_count(4)
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    for selector in ("#alert-list", "#transcript-list", "header"):
        assert page.locator(selector).evaluate("e => e.scrollWidth <= e.clientWidth"), selector
    page.mouse.move(0, 0)
    shot = tmp_path / "sidebar.png"
    page.screenshot(path=str(shot), animations="disabled", caret="hide")
    assert shot.stat().st_size > 10_000
    if os.environ.get("CALLBUFFER_UPDATE_SCREENSHOT"):
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "sidebar.png")


def test_a_real_call_reaches_the_sidebar(open_sidebar, live_server, ru_call):
    """End to end, nothing injected: the Russian test call (festival speech, 8 kHz telephone band) is
    streamed through the real server with the protocol; the sidebar shows both speakers' turns and a red
    card for the agent's «Я этим не занимаюсь…» with its suggestions, and ends with the call."""
    import asyncio
    import threading

    from server.live.protocol import StartMessage
    from server.live.simulate import pcm16_frames, stream_call

    page = joined(open_sidebar, "e2e-1")
    start = StartMessage(
        encoding="pcm16", sample_rate=8000, channels=2, roles=["agent", "customer"], language="ru"
    )
    frames = list(pcm16_frames(ru_call.samples, ru_call.sample_rate))
    # Playwright's sync API owns this thread's event loop; the caller streams from its own thread.
    caller = threading.Thread(
        target=lambda: asyncio.run(
            stream_call(
                live_server.ws,
                "e2e-1",
                start,
                frames,
                realtime=False,
                token=live_server.token("telephony"),
            )
        )
    )
    caller.start()
    caller.join(timeout=300)
    expect(page.locator("#status")).to_have_attribute("data-state", "ended", timeout=60000)
    expect(page.locator("#transcript-list .turn--agent").first).to_be_visible()
    expect(page.locator("#transcript-list .turn--customer").first).to_be_visible()
    card = page.locator("#alert-list > li.alert--forbidden", has_text="занимаюсь").first
    expect(card).to_be_visible()
    expect(card.locator(".alert-text mark")).not_to_be_empty()
    assert 1 <= card.locator("button.suggestion").count() <= 3
    expect(page.locator("#alert-list > li.alert--trigger").first).to_be_visible()
