"""Phrase packs on a real server: versions, edit, diff, import/export, try, evaluate, publish and roll back
while calls stream. The classifier of each version is the real one (built, cached by content)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from server.live.protocol import StartMessage
from server.live.simulate import pcm16_frames, stream_call

EXTRA = "Это вообще не моя забота, разбирайтесь сами."


@pytest.fixture(scope="module")
def server(module_server):
    return module_server


def _edited(server, phrase: str = EXTRA) -> dict:
    """The active pack as JSON with one more not_my_job example."""
    pack = server.http("trainer").get(f"{server.url}/v1/packs/default/versions/1").json()
    for category in pack["categories"]:
        if category["id"] == "not_my_job":
            category["examples"]["ru"].append(phrase)
    return pack


def test_the_default_pack_is_version_1_and_active(server):
    listing = server.http("trainer").get(f"{server.url}/v1/packs").json()
    assert listing["active"] == {"name": "default", "version": 1}
    assert [v["version"] for v in listing["versions"] if v["name"] == "default"][-1] == 1


def test_edit_saves_a_new_version_and_diff_shows_the_change(server):
    saved = server.http("trainer").put(
        f"{server.url}/v1/packs/default", json=_edited(server), params={"note": "one more"}
    )
    assert saved.status_code == 200, saved.text
    version = saved.json()["version"]
    assert version >= 2
    diff = (
        server.http("trainer")
        .get(f"{server.url}/v1/packs/default/diff", params={"from": 1, "to": version})
        .json()
    )
    assert diff["categories"] == [
        {
            "id": "not_my_job",
            "status": "changed",
            "fields": {},
            "phrases": [{"list": "examples", "lang": "ru", "added": [EXTRA], "removed": []}],
        }
    ]
    assert (
        server.http("trainer").get(f"{server.url}/v1/packs").json()["active"]["version"] == 1
    )  # saving is not publishing


def test_export_and_import_round_trip_exactly(server):
    exported = server.http("trainer").get(f"{server.url}/v1/packs/default/versions/1/export")
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    imported = server.http("trainer").post(
        f"{server.url}/v1/packs/import", files={"file": ("default.yaml", exported.text)}
    )
    assert imported.status_code == 201, imported.text
    version = imported.json()["version"]
    again = server.http("trainer").get(f"{server.url}/v1/packs/default/versions/{version}/export").text
    assert again.replace(f"version: {version}\n", "version: 1\n", 1) == exported.text
    empty = (
        server.http("trainer")
        .get(f"{server.url}/v1/packs/default/diff", params={"from": 1, "to": version})
        .json()
    )
    assert empty["categories"] == [] and empty["neutral"] == []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: x\ncategories: [\n", ["bad.yaml", "line"]),
        (
            "name: x\ncategories:\n- {id: a_b, kind: rude, speaker: agent, title: {en: A},"
            " examples: {en: [hi]}}\n",
            ["bad.yaml", "line 3", "category a_b", "kind"],
        ),
        (
            "name: x\ncategories:\n- {id: a_b, kind: practice, speaker: agent, title: {en: A},"
            " examples: {en: ['']}}\n",
            ["bad.yaml", "line 3", "category a_b", "examples"],
        ),
    ],
)
def test_a_bad_import_is_refused_naming_file_and_field(server, text, words):
    response = server.http("trainer").post(
        f"{server.url}/v1/packs/import", files={"file": ("bad.yaml", text)}
    )
    assert response.status_code == 422
    assert all(word in response.json()["detail"] for word in words), response.json()


def test_huge_and_binary_imports_are_refused(server):
    huge = "name: x\n" + "#" * (3 << 20)
    assert (
        server.http("trainer")
        .post(f"{server.url}/v1/packs/import", files={"file": ("big.yaml", huge)})
        .status_code
        == 413
    )
    binary = server.http("trainer").post(
        f"{server.url}/v1/packs/import", files={"file": ("b.yaml", b"\xff\xfe\x00")}
    )
    assert binary.status_code == 422 and "UTF-8" in binary.json()["detail"]


def test_duplicate_category_ids_and_unknown_versions(server):
    pack = _edited(server)
    pack["categories"].append(pack["categories"][0])
    assert server.http("trainer").put(f"{server.url}/v1/packs/default", json=pack).status_code == 422
    assert server.http("trainer").get(f"{server.url}/v1/packs/default/versions/999").status_code == 404
    assert server.http("trainer").post(f"{server.url}/v1/packs/nope/versions/1/publish").status_code == 404


def test_html_in_a_phrase_is_stored_as_text(server):
    script = '<script>alert("x")</script> не моя работа'
    version = (
        server.http("trainer")
        .put(f"{server.url}/v1/packs/default", json=_edited(server, script))
        .json()["version"]
    )
    stored = server.http("trainer").get(f"{server.url}/v1/packs/default/versions/{version}").json()
    examples = next(c for c in stored["categories"] if c["id"] == "not_my_job")["examples"]["ru"]
    assert script in examples


def test_clone_makes_a_new_pack(server):
    cloned = server.http("trainer").post(
        f"{server.url}/v1/packs/default/clone", json={"new_name": "team-b", "version": 1}
    )
    assert cloned.status_code == 201 and cloned.json() == {"name": "team-b", "version": 1}
    again = server.http("trainer").post(f"{server.url}/v1/packs/default/clone", json={"new_name": "team-b"})
    assert again.status_code == 409


def test_try_a_phrase(server):
    response = server.http("trainer").post(
        f"{server.url}/v1/packs/default/versions/1/try",
        json={"text": "Я этим не занимаюсь, звоните в другой отдел", "speaker": "agent", "lang": "ru"},
        timeout=120,
    )
    labels = response.json()["labels"]
    assert labels[0]["category"] == "not_my_job" and labels[0]["kind"] == "forbidden"
    assert labels[0]["example"] and labels[0]["end"] > labels[0]["start"]
    assert (
        server.http("trainer")
        .post(f"{server.url}/v1/packs/default/versions/1/try", json={"text": ""})
        .status_code
        == 422
    )


def test_evaluate_a_draft_against_the_active_version(server):
    draft = (
        server.http("trainer").put(f"{server.url}/v1/packs/default", json=_edited(server)).json()["version"]
    )
    rows = "\n".join(
        json.dumps(r, ensure_ascii=False)
        for r in [
            {
                "id": "a",
                "text": "Это вообще не моя забота, разбирайтесь сами.",
                "speaker": "agent",
                "labels": ["not_my_job"],
            },
            {"id": "b", "text": "Сейчас всё проверю и перезвоню вам.", "speaker": "agent", "labels": []},
        ]
    )
    response = server.http("trainer").post(
        f"{server.url}/v1/packs/default/versions/{draft}/evaluate",
        content=rows,
        headers={"content-type": "application/x-ndjson"},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["draft"]["version"] == draft and result["active"]["version"] == 1
    assert {c["category"] for c in result["draft"]["categories"]} >= {"not_my_job"}
    assert all(set(c) >= {"id", "text", "active", "draft"} for c in result["changed"])
    bad = server.http("trainer").post(
        f"{server.url}/v1/packs/default/versions/{draft}/evaluate",
        content='{"text": "x", "labels": ["no_such_category"]}',
        headers={"content-type": "application/x-ndjson"},
    )
    assert bad.status_code == 422 and "no_such_category" in bad.json()["detail"]


def test_publish_while_four_calls_stream(server, ru_call):
    """Four calls stream the first half of the Russian call, a new version is published, they stream the
    rest: no call drops, alerts before the publish name version 1, alerts after it the new version; then
    publishing version 1 again rolls back."""
    draft = (
        server.http("trainer").put(f"{server.url}/v1/packs/default", json=_edited(server)).json()["version"]
    )
    frames = list(pcm16_frames(ru_call.samples, ru_call.sample_rate))
    half = len(frames) // 2
    start = StartMessage(
        encoding="pcm16", sample_rate=8000, channels=2, roles=["agent", "customer"], language="ru"
    )
    gate = threading.Event()
    results = {}

    def frames_for(call: str):
        for i, frame in enumerate(frames):
            if i == half:
                gate.wait(600)
            yield frame

    def run(call: str) -> None:
        results[call] = asyncio.run(
            stream_call(
                server.ws, call, start, frames_for(call), realtime=False, token=server.token("telephony")
            )
        )

    threads = [threading.Thread(target=run, args=(f"pub-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(15)  # the first halves are in and judged
    response = server.http("trainer").post(
        f"{server.url}/v1/packs/default/versions/{draft}/publish", timeout=600
    )
    assert response.status_code == 200 and response.json()["active"]["version"] == draft
    cut = half * 0.02
    gate.set()
    for t in threads:
        t.join(600)
    for call, result in results.items():
        assert result.close_code == 1000, call
        alerts = [r.event for r in result.events if r.event["type"] == "alert"]
        assert {a["pack_version"] for a in alerts if a["end"] < cut - 1} == {1}, call
        assert {a["pack_version"] for a in alerts if a["start"] > cut + 1} == {draft}, call
    rolled = server.http("trainer").post(f"{server.url}/v1/packs/default/versions/1/publish", timeout=600)
    assert rolled.json()["active"] == {"name": "default", "version": 1}


CALL_SCRIPT = """\
split: heldout
voices:
  customer: {tts: espeak-ng, voice: en-us+f2}
turns:
  - {speaker: agent, lang: en, text: "Good afternoon, support, Anna speaking."}
  - speaker: customer
    lang: en
    text: I have waited a week for my refund. I want to speak to your manager.
    expect: [escalation_request]
    also_ok: [customer_complaint]
  - {speaker: agent, lang: en, text: "Of course. I will put you through to my manager now."}
"""


def test_a_labelled_call_is_spoken_heard_and_scored_with_a_version(server):
    """A trainer uploads a call script: the server speaks it (festival, espeak-ng), hears it with the
    audit's Whisper, judges it with version 1 and returns the turn table."""
    import shutil

    if shutil.which("text2wave") is None or shutil.which("espeak-ng") is None:
        pytest.skip("festival or espeak-ng is not installed")
    reply = server.http("trainer").post(
        f"{server.url}/v1/packs/default/versions/1/evaluate-call",
        files={"script": ("refund.yaml", CALL_SCRIPT.encode(), "application/yaml")},
        timeout=300,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["name"], body["version"], body["mode"]) == ("default", 1, "audit")
    (call,) = body["calls"]
    assert call["name"] == "refund" and call["split"] == "heldout"
    said = [t for t in call["turns"] if t["said"]]
    assert [t["speaker"] for t in said] == ["agent", "customer", "agent"]
    assert "manager" in " ".join(h["text"] for h in said[1]["heard"]).lower()
    assert said[1]["expect"] == ["escalation_request"]
    assert said[1]["hits"] + said[1]["misses"] == ["escalation_request"]
    assert body["totals"]["expected"] == 1


@pytest.mark.parametrize(
    ("name", "body", "status", "words"),
    [
        (
            "refund.yaml",
            CALL_SCRIPT.replace('lang: en, text: "Of', 'lang: fr, text: "Of'),
            422,
            "refund.yaml: turns: item 2: lang",
        ),
        (
            "refund.yaml",
            CALL_SCRIPT.replace("[escalation_request]", "[escalation]"),
            422,
            "refund.yaml: turns: item 1: expect: 'escalation' is no alert category",
        ),
        (
            "refund.yaml",
            CALL_SCRIPT.replace("[escalation_request]", "[not_my_job]"),
            422,
            "'not_my_job' is raised on agent turns only",
        ),
        ("refund.yaml", "turns: [", 422, "refund.yaml: not valid YAML"),
        ("refund.wav", "RIFF....", 422, "refund.wav: a call script is a .yaml, .yml or .json file"),
        ("refund.yaml", "x" * (300 << 10), 413, "at most 256 KB"),
    ],
)
def test_a_bad_call_script_is_refused_naming_file_and_field(server, name, body, status, words):
    """Tried: an unknown language, an unknown category, a category of the other side, broken YAML, an
    audio file instead of a script, and a script too large; nothing is spoken or heard for any."""
    reply = server.http("trainer").post(
        f"{server.url}/v1/packs/default/versions/1/evaluate-call",
        files={"script": (name, body.encode(), "application/octet-stream")},
    )
    assert reply.status_code == status, reply.text
    assert words in reply.json()["detail"]


def test_a_labelled_call_needs_a_known_version_and_a_trainer(server):
    files = {"script": ("refund.yaml", CALL_SCRIPT.encode(), "application/yaml")}
    assert (
        server.http("trainer")
        .post(f"{server.url}/v1/packs/default/versions/99/evaluate-call", files=files)
        .status_code
        == 404
    )
    assert (
        server.http("agent")
        .post(f"{server.url}/v1/packs/default/versions/1/evaluate-call", files=files)
        .status_code
        == 403
    )
