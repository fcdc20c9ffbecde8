"""The audit API on a real server: uploads run through the real audit (Whisper, classifier, scorecard) on
the background runner; reviewers read reports, play the audio from a moment, confirm or dismiss flags, and
trainers export the reviewed flags."""

from __future__ import annotations

import json
import time

import pytest


def _wait_job(server, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = server.http("reviewer").get(f"{server.url}/v1/audits/{job_id}", timeout=30).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture(scope="module")
def uploaded(module_server, ru_call, tmp_path_factory):
    """The Russian test call and a corrupt file uploaded in one job, audited by the real runner."""
    tmp_path = tmp_path_factory.mktemp("upload")
    wav = ru_call.write_wav(tmp_path / "ru complaint.wav")
    corrupt = tmp_path / "broken.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 10)
    with wav.open("rb") as good, corrupt.open("rb") as bad:
        response = module_server.http("reviewer").post(
            f"{module_server.url}/v1/audits",
            files=[
                ("files", ("ru complaint.wav", good, "audio/wav")),
                ("files", ("broken.wav", bad, "audio/wav")),
            ],
            data={"channels": "agent,customer", "language": "ru"},
            timeout=60,
        )
    assert response.status_code == 202, response.text
    job = response.json()
    assert [c["file"] for c in job["calls"]] == ["ru complaint.wav", "broken.wav"]
    return _wait_job(module_server, job["id"])


def test_upload_is_audited_and_a_corrupt_file_fails_alone(module_server, uploaded):
    good, bad = uploaded["calls"]
    assert good["status"] == "done" and bad["status"] == "failed"
    assert bad["error"] and "broken.wav" not in (good["error"] or "")
    report = good["report"]
    categories = {d["category"] for d in report["detections"]}
    assert {"not_my_job", "customer_complaint", "escalation_request"} <= categories
    assert report["scorecard"]["items"] and good["score"] == report["scorecard"]["score"]
    listed = module_server.http("reviewer").get(f"{module_server.url}/v1/audited-calls").json()["calls"]
    assert [c["id"] for c in listed if c["status"] == "done"] == [good["id"]]
    assert listed[0]["pending_flags"] >= 3


def test_review_filters(module_server, uploaded):
    good = uploaded["calls"][0]
    base = f"{module_server.url}/v1/audited-calls"
    assert [
        c["id"]
        for c in module_server.http("reviewer").get(base, params={"category": "not_my_job"}).json()["calls"]
    ] == [good["id"]]
    assert (
        module_server.http("reviewer")
        .get(base, params={"category": "giving_up", "min_score": 0.99})
        .json()["calls"]
        == []
    )
    assert module_server.http("reviewer").get(base, params={"category": "Not A Category"}).status_code == 422
    assert module_server.http("reviewer").get(base, params={"since": "2999-01-01"}).json()["calls"] == []


def test_flags_are_reviewed_and_exported_for_trainers(module_server, uploaded):
    call_id = uploaded["calls"][0]["id"]
    detail = module_server.http("reviewer").get(f"{module_server.url}/v1/audited-calls/{call_id}").json()
    flags = detail["flags"]
    assert flags and all(f["status"] == "pending" for f in flags)
    first, second = flags[0], flags[1]
    confirmed = (
        module_server.http("reviewer")
        .put(f"{module_server.url}/v1/flags/{first['id']}", json={"status": "confirmed"})
        .json()
    )
    dismissed = (
        module_server.http("reviewer")
        .put(
            f"{module_server.url}/v1/flags/{second['id']}",
            json={"status": "dismissed", "note": "said politely"},
        )
        .json()
    )
    assert confirmed["status"] == "confirmed" and dismissed["note"] == "said politely"
    assert (
        module_server.http("reviewer")
        .put(f"{module_server.url}/v1/flags/999999", json={"status": "confirmed"})
        .status_code
        == 404
    )
    assert (
        module_server.http("reviewer")
        .put(f"{module_server.url}/v1/flags/{first['id']}", json={"status": "maybe"})
        .status_code
        == 422
    )
    rows = [
        json.loads(line)
        for line in module_server.http("trainer")
        .get(f"{module_server.url}/v1/flags/export")
        .text.splitlines()
    ]
    assert [(r["labels"], r.get("dismissed")) for r in rows] == [
        ([first["category"]], None),
        ([], second["category"]),
    ]
    assert all(r["text"] and r["speaker"] in ("agent", "customer") for r in rows)


def test_audio_is_kept_and_served_with_ranges(module_server, uploaded, ru_call):
    call_id = uploaded["calls"][0]["id"]
    url = f"{module_server.url}/v1/audited-calls/{call_id}/audio"
    whole = module_server.http("reviewer").get(url)
    assert whole.status_code == 200 and whole.content[:4] == b"RIFF"
    part = module_server.http("reviewer").get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == whole.content[1000:2000]
    assert (
        module_server.http("reviewer").get(f"{module_server.url}/v1/audited-calls/nope/audio").status_code
        == 404
    )


def test_upload_limits_and_bad_form(live_server, tmp_path):
    """A file over the size limit is refused with 413 and nothing is kept; bad channel roles get 422."""
    live_server.settings.max_upload_mb = 1
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (2 << 20))
    with big.open("rb") as handle:
        response = live_server.http("reviewer").post(
            f"{live_server.url}/v1/audits", files={"files": ("big.wav", handle)}, timeout=60
        )
    assert response.status_code == 413 and "1 MB" in response.json()["detail"]
    assert not any((live_server.settings.data_dir / "recordings").glob("big*"))
    with big.open("rb") as handle:
        response = live_server.http("reviewer").post(
            f"{live_server.url}/v1/audits", files={"files": ("a.wav", handle)}, data={"channels": "boss"}
        )
    assert response.status_code == 422
    assert live_server.http("reviewer").get(f"{live_server.url}/v1/audits/job-missing").status_code == 404
