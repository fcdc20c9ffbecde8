"""The QA review page (ui/static/review.*) in a real headless Chromium against the `live_server` fixture.

Audited calls are put in the running server's own audit store (``live_server.app.state.audits``) with
reports built here, each pointing at a real WAV file, so the page reads them through the real API and plays
the real recording; the upload tests go through the real ``POST /v1/audits`` and background audit.
What the page shows is checked through the DOM ids and classes listed in ui/static/review.js.
Set CALLBUFFER_UPDATE_SCREENSHOT=1 to rewrite docs/review.png from `test_review_screenshot`.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audio.synth import SynthCall

expect = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed").expect
REPO = Path(__file__).resolve().parents[2]
LAPTOP = {"width": 1366, "height": 768}  # the context_options viewport of tests/ui/conftest.py

AUDIO_SECONDS = 40.0

NOT_MY_JOB_TEXT = "Я этим не занимаюсь, звоните в техподдержку."
ASKS_WHEN_TEXT = "Интернет опять не работает, когда почините?"
TITLES = {
    "not_my_job": "Отказ заниматься вопросом",
    "asks_when": "Клиент спрашивает о сроках",
    "greeting": "Приветствие",
    "rude_customer": "Грубость клиента",
}


# -- reports ------------------------------------------------------------------------------------------


def turn(index: int, speaker: str, start: float, end: float, text: str) -> dict:
    return {"index": index, "speaker": speaker, "start": start, "end": end, "text": text}


def detection(t: dict, category: str, kind: str, span: tuple[int, int] | None = None, score=0.9) -> dict:
    return {
        "turn": t["index"],
        "category": category,
        "kind": kind,
        "speaker": t["speaker"],
        "start": t["start"],
        "end": t["end"],
        "text": t["text"],
        "span": list(span or (0, len(t["text"]))),
        "score": score,
        "example": "",
        "title": TITLES[category],
        "suggestions": ["Я сама всё узнаю."] if kind != "practice" else [],
    }


def report(
    file: str,
    score: float,
    turns: list[dict],
    detections: list[dict],
    items: list[dict],
    *,
    diarization: str = "channels",
    **extra: Any,
) -> dict:
    failed = sum(i["status"] == "failed" for i in items)
    passed = sum(i["status"] == "passed" for i in items)
    data = {
        "schema": 1,
        "file": file,
        "duration": 30.0,
        "language": "ru",
        "diarization": diarization,
        "masked": True,
        "turns": turns,
        "detections": detections,
        "talk_time": {"agent": 12.5, "customer": 8.0, "unknown": 0.0},
        "silences": [{"start": 14.0, "end": 18.0, "duration": 4.0}],
        "overtalk": [],
        "scorecard": {"score": score, "passed": passed, "failed": failed, "items": items},
    }
    data.update(extra)
    return data


def item(item_id: str, title: str, status: str, turns: list[int], note: str = "") -> dict:
    return {"id": item_id, "title": title, "status": status, "turns": turns, "note": note}


BAD_TURNS = [
    turn(0, "agent", 0.5, 3.0, "Добрый день, компания «Связь», меня зовут Анна."),
    turn(1, "customer", 4.0, 9.0, ASKS_WHEN_TEXT),
    turn(2, "agent", 12.0, 14.0, NOT_MY_JOB_TEXT),
    turn(3, "customer", 20.0, 24.0, "Я уже три раза звонил!"),
]


def bad_report() -> dict:
    t = BAD_TURNS
    return report(
        "bad.wav",
        0.25,
        t,
        [
            detection(t[0], "greeting", "practice"),
            detection(t[1], "asks_when", "trigger", (28, 42)),
            detection(t[2], "not_my_job", "forbidden", (0, 19), 0.93),
        ],
        [
            item("greeting", "Поздоровался и представился", "passed", [0]),
            item("no_forbidden", "Без запрещённых фраз", "failed", [2], "not_my_job"),
            item("answered_when", "Назвал сроки", "failed", [1, 3]),
            item("farewell", "Попрощался", "not_applicable", []),
        ],
    )


def ok_report() -> dict:
    t = [turn(0, "customer", 1.0, 5.0, ASKS_WHEN_TEXT), turn(1, "agent", 6.0, 9.0, "Сейчас проверю сроки.")]
    return report(
        "ok.wav",
        0.6,
        t,
        [detection(t[0], "asks_when", "trigger", (28, 42))],
        [
            item("answered_when", "Назвал сроки", "passed", [1]),
            item("greeting", "Поздоровался", "failed", []),
        ],
    )


def good_report() -> dict:
    t = [turn(0, "agent", 0.5, 3.0, "Добрый день, меня зовут Анна, чем помочь?")]
    return report(
        "good.wav",
        0.95,
        t,
        [detection(t[0], "greeting", "practice")],
        [item("greeting", "Поздоровался", "passed", [0])],
    )


def mono_report() -> dict:
    t = [
        turn(0, "unknown", 0.5, 3.0, "Алло, слушаю."),
        turn(1, "unknown", 3.5, 7.0, "Вы что там, совсем уже?!"),
    ]
    return report(
        "mono.wav",
        0.75,
        t,
        [detection(t[1], "rude_customer", "trigger")],
        [item("no_forbidden", "Без запрещённых фраз", "passed", [])],
        diarization="none",
        notes=["mono recording: speakers could not be told apart"],
        talk_time={"agent": 0.0, "customer": 0.0, "unknown": 6.0},
    )


# -- fixtures -----------------------------------------------------------------------------------------


def write_wav(path: Path, seconds: float = AUDIO_SECONDS, rate: int = 8000) -> Path:
    """A real stereo 16-bit WAV: a quiet tone on each channel (what matters is that it loads and seeks)."""
    t = np.arange(int(seconds * rate)) / rate
    left, right = 0.1 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 660 * t)
    return SynthCall(np.stack([left, right]).astype(np.float32), rate).write_wav(path)


@pytest.fixture
def store(live_server):
    """The running server's audit store, once its runner has looked at the (empty) queue."""
    runner = getattr(live_server.app.state, "audit_runner", None)
    if runner is not None:
        assert runner.wait_idle(30)
    return live_server.app.state.audits


@pytest.fixture
def seed(store, tmp_path):
    """seed(file_name, report) -> the id of an audited call stored with that report and a real WAV."""
    audio = write_wav(tmp_path / "recording.wav")

    def _seed(file_name: str, report_dict: dict) -> str:
        options = {"channels": ["agent", "customer"], "language": "ru", "keep_pii": False}
        _, [call_id] = store.create_job(options, [(file_name, str(audio))])
        store.save_report(call_id, report_dict)
        return call_id

    return _seed


@pytest.fixture
def seeded(seed) -> dict[str, str]:
    """Four audited calls: file name -> call id."""
    return {
        "bad.wav": seed("bad.wav", bad_report()),
        "good.wav": seed("good.wav", good_report()),
        "mono.wav": seed("mono.wav", mono_report()),
        "ok.wav": seed("ok.wav", ok_report()),
    }


@pytest.fixture
def open_review(new_page, live_server, login) -> Any:
    """open_review(path="/review") -> a page at live_server.url + path, signed in as the test reviewer,
    with the call list loaded; any JS error, console error or CSP refusal fails the test."""
    login(live_server, "reviewer")

    def _open(path: str = "/review") -> Any:
        page = new_page()
        page.goto(live_server.url + path)
        expect(page.locator("#call-list-note")).not_to_have_text(re.compile("Loading"))
        return page

    return _open


def rows(page) -> Any:
    return page.locator("#call-list > li.call-row")


def open_call(page, file_name: str) -> Any:
    page.locator("#call-list .call-open", has_text=file_name).click()
    expect(page.locator("#detail-title")).to_have_text(file_name)
    expect(page.locator("#detail-body")).to_be_visible()
    return page


# -- tests --------------------------------------------------------------------------------------------


def test_list_worst_first_with_badges(open_review, seeded):
    """Four audited calls: listed worst score first, each with its file, date, duration, a score badge
    coloured by level, its alert categories and the count of flags still to review."""
    page = open_review()
    expect(rows(page).locator(".call-file")).to_have_text(["bad.wav", "ok.wav", "mono.wav", "good.wav"])
    badges = rows(page).locator(".score-badge")
    expect(badges).to_have_text(["25%", "60%", "75%", "95%"])
    assert [badges.nth(i).get_attribute("data-level") for i in range(4)] == ["poor", "fair", "fair", "good"]
    colours = {badges.nth(i).evaluate("e => getComputedStyle(e).backgroundColor") for i in (0, 1, 3)}
    assert len(colours) == 3
    bad = rows(page).nth(0)
    expect(bad.locator(".call-duration")).to_have_text("00:30")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    expect(bad.locator(".call-date")).to_contain_text(today)
    expect(bad.locator(".chip")).to_have_count(2)
    assert sorted(bad.locator(".chip").evaluate_all("cs => cs.map(c => c.dataset.category)")) == [
        "asks_when",
        "not_my_job",
    ]
    expect(bad.locator(".call-pending")).to_have_text("2 to review")
    expect(rows(page).nth(3).locator(".call-pending")).to_have_text("reviewed")  # nothing flagged
    expect(rows(page).nth(3).locator(".chip")).to_have_count(0)  # practice detections are not alerts
    expect(page.locator("#export-flags")).to_have_attribute("href", "/v1/flags/export")


def test_filters_narrow_the_list(open_review, seeded):
    """The category select lists the taxonomy ids seen in the list; choosing one, a score range, or a
    date range narrows the list through the API; Reset shows everything again."""
    page = open_review()
    expect(rows(page)).to_have_count(4)
    options = page.locator("#filter-category option")
    assert options.evaluate_all("os => os.map(o => o.value)") == [
        "",
        "asks_when",
        "not_my_job",
        "rude_customer",
    ]

    page.locator("#filter-category").select_option("not_my_job")
    expect(rows(page).locator(".call-file")).to_have_text(["bad.wav"])
    page.locator("#filter-category").select_option("asks_when")
    expect(rows(page).locator(".call-file")).to_have_text(["bad.wav", "ok.wav"])
    assert options.count() == 4  # choices stay while filtered

    page.locator("#filter-reset").click()
    expect(rows(page)).to_have_count(4)
    page.locator("#filter-min-score").fill("50")
    page.locator("#filter-max-score").fill("80")
    page.locator("#filter-apply").click()
    expect(rows(page).locator(".call-file")).to_have_text(["ok.wav", "mono.wav"])
    page.locator("#filter-max-score").fill("150")
    page.locator("#filter-apply").click()
    expect(page.locator("#filter-error")).to_be_visible()
    expect(rows(page).locator(".call-file")).to_have_text(["ok.wav", "mono.wav"])

    page.locator("#filter-reset").click()
    expect(page.locator("#filter-error")).to_be_hidden()
    today = datetime.now(UTC).date()
    page.locator("#filter-since").fill((today + timedelta(days=1)).isoformat())
    page.locator("#filter-apply").click()
    expect(rows(page)).to_have_count(0)
    expect(page.locator("#call-list-note")).to_contain_text("No calls match")
    page.locator("#filter-since").fill(today.isoformat())
    page.locator("#filter-until").fill(today.isoformat())  # the whole day, inclusive
    page.locator("#filter-apply").click()
    expect(rows(page)).to_have_count(4)


def test_detail_scorecard_transcript_and_flags(open_review, seeded):
    """Opened the worst call with the keyboard: the scorecard with each item's status and links to its
    turns (a link scrolls to and highlights the turn), talk time, the transcript by speaker with mm:ss
    times and the flagged turns marked with category title and kind, the flags, and the audio player."""
    page = open_review()
    page.locator("#call-list .call-open").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#detail-title")).to_have_text("bad.wav")
    assert page.url.endswith(f"?call={seeded['bad.wav']}")
    expect(page.locator("#detail-score")).to_have_text("25%")
    expect(page.locator("#diarization-banner")).to_be_hidden()

    items = page.locator("#scorecard tbody tr.score-item")
    expect(items.locator(".item-name")).to_have_text(
        ["Поздоровался и представился", "Без запрещённых фраз", "Назвал сроки", "Попрощался"]
    )
    statuses = items.locator(".item-status").evaluate_all("es => es.map(e => e.dataset.status)")
    assert statuses == ["passed", "failed", "failed", "not_applicable"]
    expect(items.nth(2).locator("a.turn-ref")).to_have_text(["00:04", "00:20"])
    expect(page.locator("#scorecard-summary")).to_contain_text("25%")

    talk = page.locator("#talk-time .talk-row")
    expect(talk).to_have_count(2)
    expect(talk.nth(0)).to_contain_text("00:12")
    expect(page.locator("#timing-extra")).to_contain_text("1 silence")

    turns = page.locator("#transcript-list > li.turn")
    expect(turns).to_have_count(4)
    expect(turns.locator(".turn-time")).to_have_text(["00:00", "00:04", "00:12", "00:20"])
    assert turns.evaluate_all("ts => ts.map(t => t.dataset.speaker)") == [
        "agent",
        "customer",
        "agent",
        "customer",
    ]
    expect(turns.nth(2).locator(".turn-speaker")).to_contain_text("Agent")
    expect(turns.nth(2)).to_have_class(re.compile(r"\bis-flagged-forbidden\b"))
    expect(turns.nth(1)).to_have_class(re.compile(r"\bis-flagged-trigger\b"))
    expect(turns.nth(3)).not_to_have_class(re.compile(r"\bis-flagged\b"))
    expect(turns.nth(2).locator(".turn-flag-title")).to_have_text("Отказ заниматься вопросом")
    expect(turns.nth(2).locator(".turn-flag-kind")).to_contain_text("Don't say this")
    expect(turns.nth(1).locator(".turn-flag-kind")).to_contain_text("Customer needs care")
    expect(turns.nth(2).locator("mark")).to_have_text(NOT_MY_JOB_TEXT[0:19])
    expect(turns.locator("button.play-from")).to_have_count(4)

    flags = page.locator("#flag-list > li.flag")
    expect(flags).to_have_count(2)
    expect(flags.locator(".flag-title")).to_have_text(
        [re.compile("^Клиент спрашивает о сроках"), re.compile("^Отказ заниматься вопросом")]
    )
    expect(flags.nth(1).locator(".flag-text")).to_have_text(NOT_MY_JOB_TEXT)
    expect(flags.nth(1).locator(".flag-time")).to_have_text("00:12–00:14")
    assert flags.evaluate_all("fs => fs.map(f => f.dataset.status)") == ["pending", "pending"]
    expect(page.locator("#flag-count")).to_contain_text("2 of 2 to review")
    assert page.locator("audio#player").get_attribute("src") == f"/v1/audited-calls/{seeded['bad.wav']}/audio"

    # a turn link: scrolls the transcript's turn into view and highlights it
    page.locator("#detail").evaluate("e => { e.scrollTop = 0; }")
    items.nth(2).locator("a.turn-ref").nth(1).click()
    expect(turns.nth(3)).to_have_class(re.compile(r"\bis-highlighted\b"))
    expect(turns.nth(3)).to_be_in_viewport()
    expect(turns.nth(3)).to_be_focused()
    items.nth(1).locator("a.turn-ref").press("Enter")
    expect(turns.nth(2)).to_have_class(re.compile(r"\bis-highlighted\b"))
    expect(page.locator("#transcript-list .is-highlighted")).to_have_count(1)


def test_confirm_and_dismiss(open_review, seeded, store):
    """Confirmed one flag with a note and dismissed the other: each flag shows its new state at once, the
    list's count of flags to review drops, the store has the verdicts, and a reload shows them; undo puts a
    flag back to pending."""
    call_id = seeded["bad.wav"]
    page = open_call(open_review(), "bad.wav")
    flags = page.locator("#flag-list > li.flag")
    forbidden = flags.filter(has=page.locator(".flag-category", has_text="not_my_job"))
    trigger = flags.filter(has=page.locator(".flag-category", has_text="asks_when"))

    forbidden.locator(".flag-note").fill("точно запрещённая фраза")
    forbidden.locator(".flag-confirm").click()
    expect(forbidden).to_have_attribute("data-status", "confirmed")
    expect(forbidden.locator(".flag-state")).to_contain_text("Confirmed")
    expect(forbidden.locator(".flag-confirm")).to_have_attribute("aria-pressed", "true")
    trigger.locator(".flag-dismiss").focus()
    page.keyboard.press("Enter")
    expect(trigger).to_have_attribute("data-status", "dismissed")
    expect(trigger.locator(".flag-state")).to_contain_text("Dismissed")
    expect(page.locator("#flag-count")).to_contain_text("0 of 2 to review")
    expect(rows(page).nth(0).locator(".call-pending")).to_have_text("reviewed")
    background = {f.evaluate("e => getComputedStyle(e).backgroundColor") for f in (forbidden, trigger)}
    assert len(background) == 2

    by_category = {f.category: f for f in store.flags(call_id)}
    assert by_category["not_my_job"].status == "confirmed"
    assert by_category["not_my_job"].note == "точно запрещённая фраза"
    assert by_category["asks_when"].status == "dismissed"

    page.reload()
    expect(page.locator("#detail-title")).to_have_text("bad.wav")  # ?call= reopens it
    expect(forbidden).to_have_attribute("data-status", "confirmed")
    expect(forbidden.locator(".flag-note")).to_have_value("точно запрещённая фраза")
    expect(trigger).to_have_attribute("data-status", "dismissed")
    trigger.locator(".flag-reset").click()
    expect(trigger).to_have_attribute("data-status", "pending")
    expect(rows(page).nth(0).locator(".call-pending")).to_have_text("1 to review")
    assert {f.category: f.status for f in store.flags(call_id)} == {
        "not_my_job": "confirmed",
        "asks_when": "pending",
    }


def test_play_from_here(open_review, seeded, wait_until):
    """The recording loads in the player; "play from here" on a flag seeks to a second before its start
    and plays; on the first turn it starts at 0, never below."""
    page = open_call(open_review(), "bad.wav")
    wait_until(page, "document.querySelector('audio').readyState >= 1")
    assert page.evaluate("document.querySelector('audio').duration") == pytest.approx(AUDIO_SECONDS, abs=0.1)

    forbidden = page.locator(
        "#flag-list > li.flag", has=page.locator(".flag-category", has_text="not_my_job")
    )
    forbidden.locator("button.play-from").click()
    wait_until(page, "!document.querySelector('audio').paused")
    now = page.evaluate("document.querySelector('audio').currentTime")
    assert 11.0 <= now < 12.5, now

    page.locator("#transcript-list > li.turn").nth(0).locator("button.play-from").click()
    now = page.evaluate("document.querySelector('audio').currentTime")
    assert 0.0 <= now < 1.0, now  # turn at 0.5 s: max(0, 0.5 - 1)
    page.locator("#transcript-list > li.turn").nth(3).locator("button.play-from").focus()
    page.keyboard.press("Enter")
    now = page.evaluate("document.querySelector('audio').currentTime")
    assert 19.0 <= now < 20.5, now
    page.evaluate("document.querySelector('audio').pause()")


def test_server_text_is_shown_literally(open_review, seed, store):
    """Markup and scripts in a file name, turn text, titles, scorecard notes, report notes and a flag note
    all show as literal text; no element is created from them and no script runs."""
    img = '<img src="x" onerror="window.__pwned = 1">'
    script = "<script>window.__pwned = 2</script>"
    t = [turn(0, "agent", 1.0, 4.0, f"я {script} не занимаюсь {img}")]
    d = detection(t[0], "not_my_job", "forbidden", (2, 2 + len(script)))
    d["title"] = "<b>Bold</b> title"
    evil = report(
        f"{img}.wav",
        0.1,
        t,
        [d],
        [item("no_forbidden", "<i>italic</i> item", "failed", [0], img)],
        notes=[script],
    )
    call_id = seed(f"{img}.wav", evil)
    [flag] = store.flags(call_id)
    store.review_flag(flag.id, "dismissed", img)

    page = open_review()
    expect(rows(page).locator(".call-file")).to_have_text([f"{img}.wav"])
    page.locator("#call-list .call-open").first.click()
    expect(page.locator("#detail-title")).to_have_text(f"{img}.wav")
    expect(page.locator("#transcript-list .turn-text")).to_have_text(f"я {script} не занимаюсь {img}")
    expect(page.locator("#transcript-list .turn-text mark")).to_have_text(script)
    expect(page.locator("#transcript-list .turn-flag-title")).to_have_text("<b>Bold</b> title")
    expect(page.locator("#flag-list .flag-title")).to_contain_text("<b>Bold</b> title")
    expect(page.locator("#flag-list .flag-note")).to_have_value(img)
    expect(page.locator("#scorecard .item-name")).to_have_text("<i>italic</i> item")
    expect(page.locator("#scorecard .item-note")).to_have_text(img)
    expect(page.locator("#report-notes li")).to_have_text([script])
    assert page.locator("body img, body svg, body b, body i").count() == 0
    assert page.locator("script").count() == 2  # common.js and review.js only
    page.wait_for_timeout(200)  # give a stray onerror time to fire
    assert page.evaluate("window.__pwned") is None


def test_diarization_banner(open_review, seeded):
    """A mono report (diarization "none") shows the banner that speakers could not be told apart, and its
    turns by an unknown speaker; a stereo call does not."""
    page = open_call(open_review(), "mono.wav")
    banner = page.locator("#diarization-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Speakers could not be told apart")
    turns = page.locator("#transcript-list > li.turn")
    assert turns.evaluate_all("ts => ts.map(t => t.dataset.speaker)") == ["unknown", "unknown"]
    expect(page.locator("#talk-time .talk-row")).to_have_count(3)
    open_call(page, "bad.wav")
    expect(banner).to_be_hidden()


def test_served_at_both_urls(open_review, seeded):
    """/review and /static/review.html are the same page: both list the calls and open ?call=ID."""
    for path in ("/review", "/static/review.html"):
        page = open_review(f"{path}?call={seeded['ok.wav']}")
        expect(rows(page)).to_have_count(4)
        expect(page.locator("#detail-title")).to_have_text("ok.wav")
        expect(page.locator("#flag-list > li.flag")).to_have_count(1)
        page.close()


def test_upload_too_large_shows_413(open_review, live_server, store, problems, tmp_path):
    """Uploaded a file past the server's upload limit: the server answers 413 and the form says the file
    is too large with the server's reason; no audit job is created."""
    live_server.engine.settings.max_upload_mb = 1  # this test's own server: a real limit, easy to pass
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (1536 << 10))
    problems.allow(r"Failed to load resource.*\b413\b")  # Chromium logs the refused POST itself
    page = open_review()
    page.locator("#upload-box summary").click()
    page.locator("#upload-files").set_input_files(str(big))
    page.locator("#upload-submit").click()
    status = page.locator("#upload-status")
    expect(status).to_have_attribute("data-state", "error")
    expect(status).to_contain_text("413")
    expect(status).to_contain_text("big.wav is larger than the 1 MB upload limit")
    expect(status).to_be_visible()
    expect(page.locator("#upload-submit")).to_be_enabled()
    assert store.list_calls() == []


def test_upload_without_files_says_so(open_review):
    """Submitted the upload form with no file: it says to choose one and sends nothing."""
    page = open_review()
    requests: list[str] = []
    page.on("request", lambda r: r.method == "POST" and requests.append(r.url))
    page.locator("#upload-box summary").click()
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-status")).to_have_attribute("data-state", "error")
    expect(page.locator("#upload-status")).to_contain_text("Choose")
    assert requests == []


def test_upload_is_audited_and_listed(open_review, store, tmp_path):
    """Uploaded a short spoken call with the form: the page follows the job until the real audit is done,
    then the call is in the list and opens with its transcript."""
    from audio.synth import MissingToolError, ScriptTurn, build_call

    script = [
        ScriptTurn("customer", "Здравствуйте, у меня не работает интернет.", "ru"),
        ScriptTurn("agent", "Я этим не занимаюсь, звоните в техподдержку.", "ru"),
    ]
    try:
        wav = build_call(script).write_wav(tmp_path / "spoken call.wav")
    except MissingToolError as exc:
        pytest.skip(str(exc))
    page = open_review()
    expect(page.locator("#call-list-note")).to_contain_text("No audited calls yet")
    page.locator("#upload-box summary").click()
    page.locator("#upload-files").set_input_files(str(wav))
    page.locator("#upload-channels").select_option("agent,customer")
    page.locator("#upload-language").select_option("ru")
    page.locator("#upload-submit").click()
    status = page.locator("#upload-status")
    expect(status).to_have_attribute("data-state", re.compile("queued|running"), timeout=10000)
    expect(status).to_have_attribute("data-state", "done", timeout=240000)
    expect(status).to_contain_text("Audited 1 recording")
    expect(rows(page).locator(".call-file")).to_have_text(["spoken call.wav"])
    [call] = store.list_calls()
    assert call.status == "done"
    open_call(page, "spoken call.wav")
    expect(page.locator("#transcript-list > li.turn").first).to_be_visible()
    expect(page.locator("#scorecard tbody tr.score-item").first).to_be_visible()


def test_review_screenshot(open_review, seeded, tmp_path, wait_until):
    """The worst call open on a laptop screen: nothing overflows sideways; the screenshot is written (to
    docs/review.png when CALLBUFFER_UPDATE_SCREENSHOT=1)."""
    page = open_call(open_review(), "bad.wav")
    flag = page.locator("#flag-list > li.flag").nth(1)
    flag.locator(".flag-note").fill("Отказ — подтверждаю")
    flag.locator(".flag-confirm").click()
    expect(flag).to_have_attribute("data-status", "confirmed")
    wait_until(page, "document.querySelector('audio').readyState >= 1")
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    for selector in ("#call-list", "#detail", "header", "#transcript-list", "#scorecard"):
        assert page.locator(selector).evaluate("e => e.scrollWidth <= e.clientWidth + 1"), selector
    page.locator("#detail").evaluate("e => { e.scrollTop = 0; }")
    page.mouse.move(0, 0)
    shot = tmp_path / "review.png"
    page.screenshot(path=str(shot), animations="disabled", caret="hide")
    assert shot.stat().st_size > 10_000
    if os.environ.get("CALLBUFFER_UPDATE_SCREENSHOT"):
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "review.png")
