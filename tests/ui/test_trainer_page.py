"""The trainer workspace (ui/static/trainer.*) in a real headless Chromium against a real server.

Each test drives the page as a trainer would (pick a category, type, click, upload a file) and checks what
the page shows through the DOM ids and classes listed in ui/static/trainer.js, and what the server stored
through its API. The classifier of each pack version is the real one. Tests that only add versions share
`module_server`; publishing changes what live calls use, so those tests get a fresh `live_server`.
Set CALLBUFFER_UPDATE_SCREENSHOT=1 to rewrite docs/trainer.png from `test_trainer_screenshot`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audio.synth import SynthCall

expect = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed").expect
REPO = Path(__file__).resolve().parents[2]

BUILD_MS = 90_000  # a version's classifier is built on first use (seconds; tens on a slow machine)
HTML_PHRASE = "<img src=x onerror=alert(1)>"
# Said by an agent, refusing the question; the bundled pack (version 1) does not catch it as a refusal
# (on some CPUs' int8 products it raises nothing, on others blaming_customer).
MISSED = "Разбирайтесь с курьером сами, я тут ни при чём."
EXAMPLES_RU = '.phrase-group[data-list="examples"][data-lang="ru"]'
COUNTER_RU = '.phrase-group[data-list="counter_examples"][data-lang="ru"]'
REFUSED = r"status of 422"  # Chromium logs a refused request as a console error
HEAR_MS = 180_000  # a call script is spoken, heard by Whisper and judged: 10-60 s, more on a slow machine
SAID = [
    "Good afternoon, support, Anna speaking.",
    "I want to speak to your manager right now.",
    "Of course, I will put you through to my manager.",
]
# A labelled call in English, both sides spoken by espeak-ng; the customer asks for a manager.
CALL_SCRIPT = f"""\
voices:
  agent: {{tts: espeak-ng, voice: en-us+m3}}
  customer: {{tts: espeak-ng, voice: en-us+f2}}
turns:
  - {{speaker: agent, lang: en, text: "{SAID[0]}"}}
  - speaker: customer
    lang: en
    text: {SAID[1]}
    expect: [escalation_request]
  - {{speaker: agent, lang: en, text: "{SAID[2]}"}}
"""


# -- the server's API ---------------------------------------------------------------------------------


def listing(server) -> dict:
    return server.http("trainer").get(f"{server.url}/v1/packs").json()


def pack_json(server, version: int) -> dict:
    return server.http("trainer").get(f"{server.url}/v1/packs/default/versions/{version}").json()


def category(pack: dict, category_id: str) -> dict:
    return next(c for c in pack["categories"] if c["id"] == category_id)


def save_draft(server, *, examples: list[str], note: str = "test draft") -> int:
    """A new version of the default pack: version 1 with more not_my_job examples (ru)."""
    pack = pack_json(server, 1)
    category(pack, "not_my_job")["examples"]["ru"].extend(examples)
    saved = server.http("trainer").put(f"{server.url}/v1/packs/default", json=pack, params={"note": note})
    assert saved.status_code == 200, saved.text
    return saved.json()["version"]


def write_wav(path: Path, seconds: float = 5.0, rate: int = 8000) -> Path:
    """A real stereo 16-bit WAV (a quiet tone): an audited call needs a recording."""
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.1 * np.sin(2 * np.pi * 440 * t)
    return SynthCall(np.stack([tone, tone]).astype(np.float32), rate).write_wav(path)


# -- the browser --------------------------------------------------------------------------------------


@pytest.fixture
def open_trainer(new_page, login) -> Any:
    """open_trainer(server, query="", path="/static/trainer.html") -> a page, signed in as the test
    trainer, with the packs and suggestions loaded; any JS error, console error, CSP refusal or browser
    dialog (alert, confirm) fails the test."""

    def _open(server, query: str = "", path: str = "/static/trainer.html") -> Any:
        login(server, "trainer")
        page = new_page()
        page.goto(server.url + path + query)
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=30000)
        return page

    return _open


def open_category(page, category_id: str) -> Any:
    page.locator(f'#category-list > li[data-category="{category_id}"] .cat-open').click()
    expect(page.locator("#category-editor")).to_have_attribute("data-category", category_id)
    return page.locator("#category-editor")


def add_phrase(page, group: str, text: str) -> None:
    page.locator(f"#phrase-lists {group} .phrase-new").fill(text)
    page.locator(f"#phrase-lists {group} .phrase-add").click()


def phrase_values(page, group: str) -> list[str]:
    return page.locator(f"#phrase-lists {group} .phrase-input").evaluate_all("els => els.map(e => e.value)")


def save(page, note: str) -> int:
    """Save the edited pack with `note`; returns the new version, once the page has opened it."""
    page.locator("#save-note").fill(note)
    page.locator("#save-version").click()
    status = page.locator("#save-status")
    expect(status).to_have_attribute("data-state", "done", timeout=15000)
    version = int(re.search(r"Saved as v(\d+)", status.inner_text()).group(1))
    expect(page.locator("#version-select")).to_have_value(str(version))
    expect(page.locator("#dirty-note")).to_be_hidden()
    return version


def selected(page, tab: str) -> None:
    page.locator(f"#tab-{tab}").click()
    expect(page.locator(f"#panel-{tab}")).to_be_visible()


# -- tests --------------------------------------------------------------------------------------------


def test_opens_on_the_active_version_from_both_paths(open_trainer, module_server):
    """At /trainer and /static/trainer.html the page opens the live version, marked active, with the
    pack's categories (kind badge, title, id) and an export link for that version."""
    active = listing(module_server)["active"]
    for path in ("/trainer", "/static/trainer.html"):
        page = open_trainer(module_server, path=path)
        expect(page.locator("#pack-select")).to_have_value(active["name"])
        expect(page.locator("#version-select")).to_have_value(str(active["version"]))
        expect(page.locator("#version-select option:checked")).to_contain_text("active")
        expect(page.locator("#version-meta .active-badge")).to_be_visible()
        expect(page.locator("#live-note")).to_contain_text(f"v{active['version']}")
        expect(page.locator("#publish")).to_be_disabled()  # already live
        row = page.locator('#category-list > li[data-category="not_my_job"]')
        expect(row.locator(".kind-badge")).to_have_text("forbidden")
        expect(row.locator(".cat-title")).to_have_text("Отказ заниматься вопросом")
        expect(page.locator("#category-list > li")).to_have_count(
            len(pack_json(module_server, 1)["categories"])
        )
        expect(page.locator("#export-link")).to_have_attribute(
            "href", f"/v1/packs/default/versions/{active['version']}/export"
        )
        page.close()


def test_edit_save_and_diff_show_the_added_phrase(open_trainer, module_server):
    """Add a not_my_job example, save with a note: a new version appears in the list and in the API,
    is opened in the editor, and its diff against the version it came from lists exactly that phrase."""
    page = open_trainer(module_server)
    base = int(page.locator("#version-select").input_value())
    open_category(page, "not_my_job")
    add_phrase(page, EXAMPLES_RU, MISSED)
    expect(page.locator("#dirty-note")).to_be_visible()
    expect(page.locator('#category-list > li[data-category="not_my_job"]')).to_have_class(
        re.compile("is-changed")
    )
    version = save(page, "courier refusal")
    assert version > base
    stored = listing(module_server)
    assert stored["active"]["version"] != version  # saving is not publishing
    assert any(v["version"] == version and v["note"] == "courier refusal" for v in stored["versions"])
    assert MISSED in category(pack_json(module_server, version), "not_my_job")["examples"]["ru"]
    expect(page.locator(f'#version-select option[value="{version}"]')).to_contain_text("courier refusal")
    assert MISSED in phrase_values(page, EXAMPLES_RU)  # the editor shows the saved version

    selected(page, "diff")
    expect(page.locator("#diff-from")).to_have_value(str(base))
    expect(page.locator("#diff-to")).to_have_value(str(version))
    changes = page.locator("#diff-result > li.diff-cat")
    expect(changes).to_have_count(1)
    change = changes.first
    expect(change).to_have_attribute("data-category", "not_my_job")
    expect(change).to_have_attribute("data-status", "changed")
    group = change.locator('.diff-group[data-list="examples"][data-lang="ru"]')
    expect(group.locator(".diff-added .diff-text")).to_have_text([MISSED])
    expect(group.locator(".diff-removed")).to_have_count(0)
    # The other way round the phrase is removed; a version against itself has no differences.
    page.locator("#diff-from").select_option(str(version))
    page.locator("#diff-to").select_option(str(base))
    page.locator("#diff-run").click()
    expect(page.locator("#diff-result .diff-removed .diff-text")).to_have_text([MISSED])
    page.locator("#diff-to").select_option(str(version))
    page.locator("#diff-run").click()
    expect(page.locator("#diff-status")).to_contain_text("No differences")
    expect(page.locator("#diff-result > li")).to_have_count(0)


def test_cues_are_shown_edited_saved_and_diffed(open_trainer, module_server):
    """The timeline practice shows the pack's time cue and asks_when its question cue; giving next_steps
    the time cue, taking it from vague_timeline and making the question cue evidence against
    customer_complaint saves all three in the new version, and the diff names the fields that changed."""
    page = open_trainer(module_server)
    base = int(page.locator("#version-select").input_value())
    open_category(page, "timeline")
    expect(page.locator("#edit-cue-time")).to_have_value("for")
    expect(page.locator("#edit-cue-when")).to_have_value("")
    open_category(page, "asks_when")
    expect(page.locator("#edit-cue-when")).to_have_value("for")
    expect(page.locator("#edit-cue-time")).to_have_value("")
    open_category(page, "customer_complaint")
    page.locator("#edit-cue-when").select_option("against")
    open_category(page, "next_steps")
    expect(page.locator("#edit-cue-time")).to_have_value("")
    page.locator("#edit-cue-time").select_option("for")
    open_category(page, "vague_timeline")
    expect(page.locator("#edit-cue-time")).to_have_value("against")
    page.locator("#edit-cue-time").select_option("")
    version = save(page, "cue moved")
    stored = pack_json(module_server, version)
    assert category(stored, "next_steps")["cues"] == {"promised_time": "for"}
    assert category(stored, "vague_timeline")["cues"] == {}
    assert category(stored, "timeline")["cues"] == {"promised_time": "for"}
    assert category(stored, "customer_complaint")["cues"] == {"when_question": "against"}
    assert category(stored, "asks_when")["cues"] == {"when_question": "for"}
    open_category(page, "next_steps")
    expect(page.locator("#edit-cue-time")).to_have_value("for")

    selected(page, "diff")
    page.locator("#diff-from").select_option(str(base))
    page.locator("#diff-to").select_option(str(version))
    page.locator("#diff-run").click()
    changes = page.locator("#diff-result > li.diff-cat")
    expect(changes).to_have_count(3)
    field = page.locator('#diff-result > li[data-category="next_steps"] dd[data-field="cues"]')
    expect(field.locator("ins")).to_have_text("promised_time: for")


def test_refused_version_shows_the_servers_reasons(open_trainer, module_server, problems):
    """An emptied example and an alert category with no responses are refused (422): no version is
    saved, the messages name the category and the field, the empty field is marked, and after fixing
    both the save goes through and the messages go away."""
    problems.allow(REFUSED)
    before = len(listing(module_server)["versions"])
    page = open_trainer(module_server)
    open_category(page, "not_my_job")
    page.locator(f"#phrase-lists {EXAMPLES_RU} .phrase-input").nth(1).fill("   ")
    open_category(page, "blame_shifting")
    for _ in range(page.locator("#phrase-lists .phrase-section[data-list=responses] .phrase-input").count()):
        page.locator("#phrase-lists .phrase-section[data-list=responses] .phrase-delete").first.click()
    page.locator("#save-version").click()
    expect(page.locator("#save-status")).to_have_attribute("data-state", "error")
    errors = page.locator("#save-error-list > li")
    expect(errors).to_have_count(2)
    expect(page.locator("#save-errors")).to_be_visible()
    expect(errors.filter(has_text="not_my_job")).to_contain_text("examples › ru › #2")
    expect(errors.filter(has_text="blame_shifting")).to_contain_text("an alert category needs responses")
    assert len(listing(module_server)["versions"]) == before
    # The first refused category is opened, its empty phrase marked.
    expect(page.locator("#category-editor")).to_have_attribute("data-category", "not_my_job")
    bad = page.locator(f"#phrase-lists {EXAMPLES_RU} .phrase-input").nth(1)
    expect(bad).to_have_class(re.compile("is-invalid"))
    bad.fill("Это не ко мне, звоните в сервис.")
    expect(bad).not_to_have_class(re.compile("is-invalid"))
    errors.filter(has_text="blame_shifting").locator(".save-error-open").click()
    expect(page.locator("#category-editor")).to_have_attribute("data-category", "blame_shifting")
    add_phrase(page, '.phrase-group[data-list="responses"][data-lang="ru"]', "Давайте я сам разберусь.")
    version = save(page, "fixed")
    expect(page.locator("#save-errors")).to_be_hidden()
    assert len(listing(module_server)["versions"]) == before + 1
    assert category(pack_json(module_server, version), "blame_shifting")["responses"] == {
        "ru": ["Давайте я сам разберусь."],
        "en": [],
    }


def test_try_a_phrase_shows_what_fires(open_trainer, module_server):
    """«Я этим не занимаюсь» said by the agent raises not_my_job: its title, a score bar, the span that
    fired it highlighted, and the nearest example; the same words from the customer raise nothing of the
    agent's categories."""
    page = open_trainer(module_server)
    page.locator("#try-speaker").select_option("agent")
    page.locator("#try-lang").select_option("ru")
    page.locator("#try-text").press_sequentially("Я этим не занимаюсь", delay=20)
    hit = page.locator('#try-results > li[data-category="not_my_job"]')
    expect(hit).to_be_visible(timeout=BUILD_MS)
    expect(hit.locator(".kind-badge")).to_have_text("forbidden")
    expect(hit.locator(".try-title")).to_have_text("Отказ заниматься вопросом")
    expect(hit.locator(".try-span")).not_to_be_empty()
    assert "занимаюсь" in hit.locator(".try-span").inner_text()
    expect(hit.locator(".try-example-text")).to_have_text(re.compile(r"\S"))
    assert float(hit.locator(".score-value").inner_text()) > 0.5
    assert hit.locator(".score-fill").evaluate("e => e.getBoundingClientRect().width") > 10
    expect(page.locator("#try-status")).to_contain_text(re.compile(r"categor(y|ies) fire"))
    page.locator("#try-speaker").select_option("customer")
    expect(page.locator('#try-results > li[data-category="not_my_job"]')).to_have_count(0, timeout=30000)
    expect(page.locator("#try-status")).not_to_have_attribute("data-state", "busy")
    # "edit category" opens it in the editor.
    page.locator("#try-speaker").select_option("agent")
    expect(hit).to_be_visible(timeout=30000)
    hit.locator(".try-open").click()
    expect(page.locator("#category-editor")).to_have_attribute("data-category", "not_my_job")


def test_evaluate_rows_against_the_live_version(open_trainer, module_server, tmp_path):
    """A JSONL file of labelled turns, run on a draft that learnt one more refusal: both versions' scores
    side by side with deltas, macro-F1 and false alarms of each, and the row the draft now gets right."""
    draft = save_draft(module_server, examples=[MISSED])
    live = listing(module_server)["active"]["version"]
    rows = [
        {"id": "courier", "text": MISSED, "speaker": "agent", "lang": "ru", "labels": ["not_my_job"]},
        {
            "id": "other-part",
            "text": "Я по другой части, тут помочь не смогу.",
            "speaker": "agent",
            "lang": "ru",
            "labels": ["not_my_job"],
            "also_ok": ["giving_up"],
        },
        {
            "id": "en-clean",
            "text": "I will check the delivery status for you right now.",
            "speaker": "agent",
            "lang": "en",
            "labels": [],
        },
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    page = open_trainer(module_server, f"?pack=default&version={draft}")
    selected(page, "eval")
    page.locator("#eval-file").set_input_files(str(path))
    expect(page.locator("#eval-status")).to_have_attribute("data-state", "done", timeout=BUILD_MS)
    expect(page.locator("#eval-status")).to_contain_text("3 rows")

    summary = page.locator("#eval-summary")
    expect(summary.locator("th.col-draft")).to_contain_text(f"v{draft}")
    expect(summary.locator("th.col-active")).to_contain_text(f"v{live}")
    macro = summary.locator('tr[data-metric="macro_f1"]')
    expect(macro.locator("td.draft")).to_have_text(re.compile(r"^\d\.\d{3}$"))
    expect(macro.locator("td.active")).to_have_text(re.compile(r"^\d\.\d{3}$"))
    expect(summary.locator('tr[data-metric="false_alarms"] td.draft')).to_contain_text("of 1 clean rows")

    row = page.locator('#eval-table tbody tr[data-category="not_my_job"]')
    expect(row.locator("td.support")).to_have_text("2")
    expect(row.locator('td[data-col="recall-draft"]')).to_have_text("1.00")
    expect(row.locator('td[data-col="recall-active"]')).to_have_text("0.50")
    expect(row.locator('td[data-col="recall-delta"]')).to_have_text("+0.50")
    expect(row.locator('td[data-col="recall-delta"]')).to_have_attribute("data-verdict", "better")
    expect(row.locator('td[data-col="f1-draft"]')).to_have_text("1.00")
    # Categories nobody labelled or raised are hidden until asked for.
    shown = page.locator("#eval-table tbody tr.eval-row").count()
    page.locator("#eval-all").check()
    assert page.locator("#eval-table tbody tr.eval-row").count() > shown

    changed = page.locator('#eval-changed > li[data-row-id="courier"]')
    expect(changed).to_be_visible()
    expect(changed).to_have_attribute("data-verdict", "better")
    expect(changed.locator(".changed-text")).to_have_text(MISSED)
    expect(changed.locator("dd.active")).not_to_contain_text("not_my_job")
    expect(changed.locator("dd.draft .chip")).to_have_text(["not_my_job"])
    expect(page.locator("#eval-changed-count")).not_to_have_text("(0)")


def test_evaluate_with_reviewers_flags_and_bad_rows(open_trainer, module_server, problems):
    """A pasted row that is not JSON is refused naming the line; with no reviewed flags on a fresh
    server the flags source says so."""
    problems.allow(REFUSED)
    page = open_trainer(module_server)
    selected(page, "eval")
    page.locator("#eval-run").click()
    expect(page.locator("#eval-status")).to_contain_text("Paste JSON lines")
    page.locator("#eval-text").fill('{"text": "Добрый день", "labels": []}\n{oops\n')
    page.locator("#eval-run").click()
    expect(page.locator("#eval-status")).to_have_attribute("data-state", "error", timeout=BUILD_MS)
    expect(page.locator("#eval-status")).to_contain_text(":2:")


def test_a_labelled_call_is_spoken_heard_and_shown_turn_by_turn(open_trainer, module_server, tmp_path):
    """A trainer uploads a call script and clicks "Hear the call": the page is busy while the server speaks
    and hears it, then shows the summary and the turn table: each said turn with what the recogniser
    heard, and the customer's expected alert as a hit or a miss (the recogniser decides which)."""
    for tool in ("espeak-ng", "text2wave", "sox"):
        if shutil.which(tool) is None:
            pytest.skip(f"Debian tool not installed: {tool}")
    script = tmp_path / "manager.yaml"
    script.write_text(CALL_SCRIPT, encoding="utf-8")
    page = open_trainer(module_server, "?pack=default&version=1")
    selected(page, "eval")
    page.locator("#call-file").set_input_files(str(script))
    page.locator("#call-run").click()
    status = page.locator("#call-status")
    expect(status).to_have_attribute("data-state", "busy")
    expect(page.locator("#call-run")).to_be_disabled()
    expect(page.locator("#call-elapsed")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    expect(status).to_have_attribute("data-state", "done", timeout=HEAR_MS)
    expect(status).to_contain_text("manager.yaml")
    expect(page.locator("#call-run")).to_be_enabled()
    expect(page.locator("#call-elapsed")).to_have_text("")

    said = page.locator('#call-table tbody tr.call-row[data-said="said"]')
    expect(said).to_have_count(3)
    expect(said.locator(".call-speaker")).to_have_text(["agent", "customer", "agent"])
    expect(said.locator(".call-said")).to_have_text(SAID)
    for i in range(3):
        expect(said.nth(i).locator(".call-heard-text").first).to_have_text(re.compile(r"\w"))
    asked = said.nth(1).locator('.call-chip[data-category="escalation_request"]')
    expect(asked).to_have_count(1)
    assert asked.get_attribute("data-outcome") in {"hit", "miss"}
    expect(page.locator('#call-summary tr[data-metric="alerts"] td')).to_contain_text("of 1")
    expect(page.locator("#call-summary .call-about")).to_contain_text("default v1")
    # Speech heard where nothing was said is shown as such.
    for row in page.locator('#call-table tbody tr.call-row[data-said="none"]').all():
        expect(row.locator(".call-said")).to_contain_text("(nothing said)")

    page.locator("#call-summary").scroll_into_view_if_needed()
    shot = tmp_path / "trainer-call.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def test_a_malformed_call_script_shows_the_servers_reason(open_trainer, module_server, problems):
    """No file asks for one; a script with an unknown language is refused with the server's own words,
    naming the file and the field, and no turn table is shown."""
    problems.allow(REFUSED)
    bad = CALL_SCRIPT.replace(f'lang: en, text: "{SAID[2]}"', f'lang: fr, text: "{SAID[2]}"')
    upload = {"name": "broken.yaml", "mimeType": "application/yaml", "buffer": bad.encode()}
    refused = module_server.http("trainer").post(
        f"{module_server.url}/v1/packs/default/versions/1/evaluate-call",
        files={"script": (upload["name"], upload["buffer"], upload["mimeType"])},
    )
    assert refused.status_code == 422, refused.text
    page = open_trainer(module_server, "?pack=default&version=1")
    selected(page, "eval")
    status = page.locator("#call-status")
    page.locator("#call-run").click()
    expect(status).to_have_attribute("data-state", "error")
    expect(status).to_contain_text("Choose a call script")
    page.locator("#call-file").set_input_files(files=[upload])
    page.locator("#call-run").click()
    expect(status).to_have_attribute("data-state", "error", timeout=BUILD_MS)
    expect(status).to_contain_text(refused.json()["detail"])
    for words in ("broken.yaml", "turns: item 2: lang", "'fr'"):
        expect(status).to_contain_text(words)
    expect(page.locator("#call-table")).to_be_hidden()
    expect(page.locator("#call-table tbody tr")).to_have_count(0)


def test_import_shows_file_line_and_field(open_trainer, module_server, problems, tmp_path):
    """A YAML file with a wrong kind is refused with its name, line, category and field; a good file (an
    export) becomes a new version and is opened."""
    problems.allow(REFUSED)
    page = open_trainer(module_server)
    bad = (
        "name: default\ncategories:\n"
        "- {id: a_b, kind: rude, speaker: agent, title: {en: A}, examples: {en: [hi]}}\n"
    )
    page.locator("#import-file").set_input_files(
        files=[{"name": "broken.yaml", "mimeType": "application/yaml", "buffer": bad.encode()}]
    )
    status = page.locator("#import-status")
    expect(status).to_have_attribute("data-state", "error")
    for words in ("broken.yaml", "line 3", "category a_b", "kind"):
        expect(status).to_contain_text(words)
    before = len(listing(module_server)["versions"])

    href = page.locator("#export-link").get_attribute("href")
    exported = module_server.http("trainer").get(module_server.url + href)
    assert exported.status_code == 200 and exported.text.startswith("name: default")
    good = tmp_path / "default.yaml"
    good.write_text(exported.text, encoding="utf-8")
    page.locator("#import-file").set_input_files(str(good))
    expect(status).to_have_attribute("data-state", "done", timeout=15000)
    versions = listing(module_server)["versions"]
    assert len(versions) == before + 1
    newest = max(v["version"] for v in versions if v["name"] == "default")
    expect(status).to_contain_text(f"default v{newest}")
    expect(page.locator("#version-select")).to_have_value(str(newest))


def test_html_in_phrases_renders_literally(open_trainer, module_server):
    """A phrase that looks like HTML is text everywhere: the editor, the saved version, the diff, try and
    evaluation rows; no element is created from it and nothing runs."""
    page = open_trainer(module_server)
    base = int(page.locator("#version-select").input_value())
    open_category(page, "not_my_job")
    add_phrase(page, EXAMPLES_RU, HTML_PHRASE)
    assert HTML_PHRASE in phrase_values(page, EXAMPLES_RU)
    version = save(page, HTML_PHRASE)
    assert HTML_PHRASE in category(pack_json(module_server, version), "not_my_job")["examples"]["ru"]
    expect(page.locator("#version-select option:checked")).to_contain_text(HTML_PHRASE)
    selected(page, "diff")
    page.locator("#diff-from").select_option(str(base))
    page.locator("#diff-run").click()
    expect(page.locator("#diff-result .diff-added .diff-text")).to_have_text([HTML_PHRASE])

    page.locator("#try-text").fill(HTML_PHRASE)
    hit = page.locator('#try-results > li[data-category="not_my_job"]')
    expect(hit).to_be_visible(timeout=BUILD_MS)
    expect(hit.locator(".try-text")).to_have_text(HTML_PHRASE)
    expect(hit.locator(".try-example-text")).to_have_text(HTML_PHRASE)  # its nearest example is itself

    selected(page, "eval")
    row = {"id": "html", "text": HTML_PHRASE, "speaker": "agent", "lang": "ru", "labels": []}
    page.locator("#eval-text").fill(json.dumps(row))
    page.locator("#eval-run").click()
    expect(page.locator("#eval-status")).to_have_attribute("data-state", "done", timeout=BUILD_MS)
    expect(page.locator('#eval-changed > li[data-row-id="html"] .changed-text')).to_have_text(HTML_PHRASE)
    assert page.locator("img").count() == 0
    assert page.evaluate("() => document.querySelectorAll('[onerror]').length") == 0


def test_dismissed_flags_become_counter_examples(open_trainer, module_server, tmp_path):
    """Flags reviewers dismissed are suggested as counter-examples of their category; Accept puts the
    text into that category's ru counter-examples in the editor and the next saved version keeps it;
    Reject hides a suggestion for good (remembered across reloads)."""
    store = module_server.app.state.audits
    runner = getattr(module_server.app.state, "audit_runner", None)
    if runner is not None:
        assert runner.wait_idle(30)
    wav = write_wav(tmp_path / "x.wav")
    accepted = "Этим займётся мой коллега, я передам."
    options = {"channels": ["agent", "customer"], "language": "ru", "keep_pii": False}
    _, [cid] = store.create_job(options, [("x.wav", str(wav))])
    detections = [
        {
            "category": "not_my_job",
            "kind": "forbidden",
            "speaker": "agent",
            "start": 1,
            "end": 2,
            "text": accepted,
            "score": 0.6,
        },
        {
            "category": "not_my_job",
            "kind": "forbidden",
            "speaker": "agent",
            "start": 3,
            "end": 4,
            "text": HTML_PHRASE,
            "score": 0.55,
        },
    ]
    store.save_report(
        cid, {"duration": 5, "language": "ru", "detections": detections, "scorecard": {"score": 0.5}}
    )
    flags = store.flags(cid)
    for flag in flags:
        store.review_flag(flag.id, "dismissed")
    ids = {flag.text: f"flag-{flag.id}" for flag in flags}

    page = open_trainer(module_server)
    group = page.locator('#suggestions .suggestion-group[data-category="not_my_job"]')
    keep = group.locator(f'.suggestion[data-flag-id="{ids[accepted]}"]')
    junk = group.locator(f'.suggestion[data-flag-id="{ids[HTML_PHRASE]}"]')
    expect(keep.locator(".suggestion-text")).to_have_text(accepted)
    expect(junk.locator(".suggestion-text")).to_have_text(HTML_PHRASE)
    expect(group.locator(".suggestion-group-title")).to_contain_text("Отказ заниматься вопросом")

    junk.locator(".suggestion-reject").click()
    expect(junk).to_have_count(0)
    keep.locator(".suggestion-accept").click()
    expect(keep).to_have_count(0)
    expect(page.locator("#category-editor")).to_have_attribute("data-category", "not_my_job")
    assert phrase_values(page, COUNTER_RU)[-1] == accepted
    expect(page.locator("#dirty-note")).to_be_visible()
    version = save(page, "counter-example from a dismissed flag")
    assert accepted in category(pack_json(module_server, version), "not_my_job")["counter_examples"]["ru"]
    assert phrase_values(page, COUNTER_RU)[-1] == accepted

    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=30000)
    expect(page.locator(f'.suggestion[data-flag-id="{ids[HTML_PHRASE]}"]')).to_have_count(0)  # rejected
    expect(page.locator(f'.suggestion[data-flag-id="{ids[accepted]}"]')).to_have_count(0)  # in the pack
    assert page.locator("img").count() == 0


def _stream(server, call_id: str, script) -> list[dict]:
    """Stream a synthetic call through the live protocol from its own thread; its alert events."""
    import asyncio
    import threading

    from server.live.protocol import StartMessage
    from server.live.simulate import pcm16_frames, stream_call

    start = StartMessage(
        encoding="pcm16", sample_rate=8000, channels=2, roles=["agent", "customer"], language="ru"
    )
    frames = list(pcm16_frames(script.samples, script.sample_rate))
    result = {}
    # Playwright's sync API owns this thread's event loop; the caller streams from its own thread.
    caller = threading.Thread(
        target=lambda: result.update(
            done=asyncio.run(
                stream_call(
                    server.ws,
                    call_id,
                    start,
                    frames,
                    realtime=False,
                    token=server.token("telephony"),
                )
            )
        )
    )
    caller.start()
    caller.join(timeout=300)
    assert result["done"].close_code == 1000
    return [r.event for r in result["done"].events if r.event["type"] == "alert"]


@pytest.fixture(scope="module")
def refusal_call():
    """A one-turn call: the agent refuses the question (festival's Russian voice, telephone band)."""
    from audio.synth import MissingToolError, ScriptTurn, build_call

    try:
        return build_call(
            [
                ScriptTurn(
                    "agent", "Я этим не занимаюсь, звоните в другой отдел.", "ru", expect=("not_my_job",)
                )
            ]
        )
    except MissingToolError as exc:
        pytest.skip(str(exc))


def test_publish_then_roll_back(open_trainer, live_server, refusal_call):
    """Publishing asks first ("Publish vN to live calls?"); Cancel does nothing, OK makes the version
    live: GET /v1/packs shows it active and a call streamed next gets alerts from it. Publishing version 1
    again is a roll-back, said so in the confirmation, and the next call is judged by version 1."""
    draft = save_draft(live_server, examples=[MISSED], note="to publish")
    page = open_trainer(live_server, f"?pack=default&version={draft}")
    dialog = page.locator("#confirm-dialog")
    publish = page.locator("#publish")
    expect(publish).to_be_enabled()
    publish.click()
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text(f"Publish v{draft} to live calls?")
    page.locator("#confirm-cancel").click()
    expect(dialog).to_be_hidden()
    assert listing(live_server)["active"]["version"] == 1

    publish.click()
    page.locator("#confirm-ok").click()
    status = page.locator("#publish-status")
    expect(status).to_have_attribute("data-state", "done", timeout=BUILD_MS)
    expect(status).to_contain_text(f"default v{draft} is live")
    assert listing(live_server)["active"] == {"name": "default", "version": draft}
    expect(page.locator("#version-select option:checked")).to_contain_text("active")
    expect(page.locator("#live-note")).to_contain_text(f"v{draft}")
    expect(publish).to_be_disabled()

    alerts = _stream(live_server, "trainer-published", refusal_call)
    assert any(a["category"] == "not_my_job" for a in alerts), alerts
    assert {a["pack_version"] for a in alerts} == {draft}

    page.locator("#version-select").select_option("1")
    expect(page.locator("#version-meta")).not_to_contain_text("active")
    publish.click()
    expect(page.locator("#confirm-text")).to_contain_text("Publish v1 to live calls?")
    expect(page.locator("#confirm-detail")).to_contain_text(f"rolls live calls back from v{draft}")
    page.locator("#confirm-ok").click()
    expect(status).to_contain_text("default v1 is live", timeout=BUILD_MS)
    assert listing(live_server)["active"] == {"name": "default", "version": 1}
    alerts = _stream(live_server, "trainer-rolled-back", refusal_call)
    assert alerts and {a["pack_version"] for a in alerts} == {1}


def test_unsaved_edits_are_kept_unless_discarded(open_trainer, module_server):
    """Switching version with unsaved edits asks first; Cancel keeps the edits, Discard opens the other
    version as stored."""
    other = str(save_draft(module_server, examples=["Это не мой участок, извините."], note="other"))
    page = open_trainer(module_server)
    current = page.locator("#version-select").input_value()
    open_category(page, "excuses")
    page.locator("#edit-title-en").fill("Excuses, edited")
    expect(page.locator("#dirty-note")).to_be_visible()
    page.locator("#version-select").select_option(other)
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.locator("#confirm-cancel").click()
    expect(page.locator("#version-select")).to_have_value(current)
    expect(page.locator("#edit-title-en")).to_have_value("Excuses, edited")
    page.locator("#version-select").select_option(other)
    page.locator("#confirm-ok").click()
    expect(page.locator("#version-select")).to_have_value(other)
    expect(page.locator("#dirty-note")).to_be_hidden()
    expect(page.locator("#edit-title-en")).not_to_have_value("Excuses, edited")


def test_trainer_screenshot(open_trainer, module_server, tmp_path):
    """A laptop-sized screenshot with a category open and a phrase tried (docs/trainer.png)."""
    page = open_trainer(module_server)
    open_category(page, "not_my_job")
    page.locator("#try-text").fill("Я этим не занимаюсь, звоните в другой отдел")
    expect(page.locator('#try-results > li[data-category="not_my_job"]')).to_be_visible(timeout=BUILD_MS)
    shot = tmp_path / "trainer.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("CALLBUFFER_UPDATE_SCREENSHOT"):
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "trainer.png")
