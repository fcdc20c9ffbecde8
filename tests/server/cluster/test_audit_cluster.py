"""Audits on the Ray cluster's speech machines (a real local cluster: separate raylet and worker
processes on 127.0.0.1): ``callbuffer audit --ray`` hears a batch as the in-process audit does, resumes,
skips bad files with their reasons, loses no recording when a speech node dies mid-batch; the server's
upload queue with ``ray`` set audits on the cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from server.cli.audit import INDEX_NAME, audit
from server.cluster.actors import NAMESPACE, join_cluster
from server.cluster.audit_pool import speech_nodes
from tests.conftest import wait_for

ray = pytest.importorskip("ray")

SHORT_SCRIPT = """
- speaker: agent
  lang: en
  text: Good morning, customer support, how can I help?
- speaker: customer
  lang: en
  text: My internet is down again.
- speaker: agent
  lang: en
  text: That's not my department, call billing.
"""


@pytest.fixture
def cluster(speech_cluster):
    """The package's cluster, joined by this process, with two live speech nodes (an earlier test may
    have killed one)."""
    join_cluster(speech_cluster.address)
    speech_cluster.ensure_speech_nodes(2)
    return speech_cluster


def _padded(call, seconds: float):
    """The call with `seconds` of silence before it: other bytes, the same conversation."""
    from audio.synth import SynthCall

    pad = round(seconds * call.sample_rate)
    return SynthCall(np.pad(call.samples, ((0, 0), (pad, 0))), call.sample_rate)


@pytest.fixture(scope="module")
def batch(tmp_path_factory, ru_call, en_call) -> Path:
    """A folder: the Russian and English complaint calls, a short English call, a corrupt file and an
    empty one."""
    from audio.synth import MissingToolError, build_call, load_script

    folder = tmp_path_factory.mktemp("batch")
    (folder / "script.yaml").write_text(SHORT_SCRIPT, encoding="utf-8")
    try:
        short = build_call(load_script(folder / "script.yaml"))
    except MissingToolError as exc:
        pytest.skip(str(exc))
    (folder / "script.yaml").unlink()
    short.write_wav(folder / "short.wav", "mulaw")
    ru_call.write_wav(folder / "ru.wav", "mulaw")
    en_call.write_wav(folder / "en.wav")
    (folder / "corrupt.ogg").write_bytes(b"OggS" + bytes(range(256)) * 8)
    (folder / "empty.flac").write_bytes(b"")
    return folder


def _reports(out: Path) -> dict[str, dict]:
    """The reports in `out` by their recording's file name."""
    found = {}
    for line in (out / INDEX_NAME).read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        found[Path(entry["source"]).name] = json.loads(Path(entry["report"]).read_text(encoding="utf-8"))
    return found


def _heard(report: dict) -> tuple[list, list]:
    return (
        [(t["speaker"], t["text"]) for t in report["turns"]],
        sorted((d["turn"], d["category"]) for d in report["detections"]),
    )


def test_audit_on_the_cluster_hears_as_in_process_resumes_and_skips_bad_files(
    cluster, batch, cache_dir, tmp_path
):
    """Tried: the batch folder (three calls, a corrupt and an empty file) audited by `callbuffer audit
    --ray` on two speech nodes, then by the in-process audit, then by `--ray` again into the same folder.
    Expected: the same turns, texts and detections from both; each bad file reported with its own path
    and the in-process reason (not a Ray traceback, not the worker's temporary file); the summaries
    alike; the second cluster run skipping every call without auditing anything."""
    runner = CliRunner()
    env = {"CALLBUFFER_CACHE_DIR": str(cache_dir)}
    on_cluster, in_process = tmp_path / "cluster", tmp_path / "local"

    remote = runner.invoke(
        audit, [str(batch), "--out", str(on_cluster), "--ray", cluster.address, "--parallel", "2"], env=env
    )
    assert remote.exit_code == 0, remote.output
    assert "audited 3, already audited 0, failed 2" in remote.stderr
    assert "2 audit workers on 2 speech machines" in remote.stderr
    assert f"error: {batch / 'corrupt.ogg'}: cannot decode" in remote.stderr
    assert f"error: {batch / 'empty.flac'}: file is empty (skipped)" in remote.stderr
    assert "RayTaskError" not in remote.stderr and "recording.ogg" not in remote.stderr

    local = runner.invoke(audit, [str(batch), "--out", str(in_process)], env=env)
    assert local.exit_code == 0, local.output
    assert "audited 3, already audited 0, failed 2" in local.stderr
    bad = sorted(line for line in local.stderr.splitlines() if line.startswith("error:"))
    assert bad == sorted(line for line in remote.stderr.splitlines() if line.startswith("error:"))

    cluster_reports, local_reports = _reports(on_cluster), _reports(in_process)
    assert sorted(cluster_reports) == sorted(local_reports) == ["en.wav", "ru.wav", "short.wav"]
    for name, report in cluster_reports.items():
        assert report["source"] == str(batch / name)
        assert report["sha256"] == local_reports[name]["sha256"]
        assert report["model"] == local_reports[name]["model"]
        assert _heard(report) == _heard(local_reports[name]), name
    assert "not_my_job" in {d["category"] for d in cluster_reports["ru.wav"]["detections"]}
    summary = json.loads((on_cluster / "summary.json").read_text())
    assert summary["categories"] == json.loads((in_process / "summary.json").read_text())["categories"]

    again = runner.invoke(audit, [str(batch), "--out", str(on_cluster), "--ray", cluster.address], env=env)
    assert again.exit_code == 0, again.output
    assert "audited 0, already audited 3, failed 2" in again.stderr
    assert len((on_cluster / INDEX_NAME).read_text().splitlines()) == 3


def test_a_speech_node_killed_mid_batch_loses_no_recording_and_reports_none_twice(
    cluster, ru_call, en_call, cache_dir, tmp_path
):
    """Tried: four recordings (the two complaint calls, each also with silence before it) audited by
    `callbuffer audit --ray --parallel 2` in another process; once the first report is written and both
    workers have the next ones in hand, one speech node (raylet and workers, no goodbye) is killed.
    Expected: the lost recording is sent again to a worker on the other node; every recording gets
    exactly one index line and one report, heard as the others of its call; then the node comes back."""
    folder = tmp_path / "calls"
    folder.mkdir()
    for name, call in (("ru", ru_call), ("en", en_call)):
        call.write_wav(folder / f"{name}-a.wav", "mulaw")
        _padded(call, 0.7).write_wav(folder / f"{name}-b.wav", "mulaw")
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-c",
        "from server.cli.main import main; main()",
        "audit",
        str(folder),
        "--out",
        str(out),
    ]
    command += ["--ray", cluster.address, "--parallel", "2"]
    env = {**os.environ, "CALLBUFFER_CACHE_DIR": str(cache_dir)}
    batch = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = sorted(speech_nodes())[0]
    try:
        index = out / INDEX_NAME
        wait_for(lambda: index.is_file() and index.read_text().strip(), 600, "the first report")
        time.sleep(1.0)  # the worker that wrote it has its next recording in hand by now
        assert batch.poll() is None, "the batch ended before a node could be killed"
        cluster.kill_node(victim)
        _, stderr = batch.communicate(timeout=900)
    finally:
        if batch.poll() is None:
            batch.kill()
        cluster.add_speech_node()
    assert batch.returncode == 0, stderr
    assert "audited 4, already audited 0, failed 0" in stderr
    assert "sent again after their worker was lost" in stderr
    lines = [json.loads(line) for line in (out / INDEX_NAME).read_text().splitlines()]
    assert sorted(Path(e["source"]).name for e in lines) == ["en-a.wav", "en-b.wav", "ru-a.wav", "ru-b.wav"]
    assert len(list(out.glob("*-*.json"))) == 4
    reports = _reports(out)
    for name in ("ru", "en"):
        a, b = reports[f"{name}-a.wav"], reports[f"{name}-b.wav"]
        assert a["turns"] and b["turns"]
        assert {d["category"] for d in a["detections"]} & {d["category"] for d in b["detections"]}
    wait_for(lambda: victim not in speech_nodes() and len(speech_nodes()) == 2, 120, "the node to be back")


def _wait_job(server, job_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = server.http("reviewer").get(f"{server.url}/v1/audits/{job_id}", timeout=30).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def _audit_workers() -> list[str]:
    return [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == NAMESPACE and a["name"].startswith("audit-")
    ]


def test_uploads_with_ray_are_audited_on_the_cluster(cluster, shared_models, cache_dir, tmp_path, ru_call):
    """Tried: a server started with `ray` set to the cluster (its live pool in process), given the Russian
    complaint call and a broken file in one upload. Expected: the call audited (the alerts the in-process
    upload test expects) by one audit worker in another process on a speech node, the broken file failed
    alone with its reason, and the worker ended with the server."""
    from tests.conftest import _serve

    wav = ru_call.write_wav(tmp_path / "ru complaint.wav")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 10)
    before = set(_audit_workers())
    server = _serve(shared_models, cache_dir, tmp_path / "data", ray=cluster.address)
    try:
        with wav.open("rb") as good, broken.open("rb") as bad:
            response = server.http("reviewer").post(
                f"{server.url}/v1/audits",
                files=[
                    ("files", ("ru complaint.wav", good, "audio/wav")),
                    ("files", ("broken.wav", bad, "audio/wav")),
                ],
                data={"channels": "agent,customer", "language": "ru"},
                timeout=60,
            )
        assert response.status_code == 202, response.text
        job = _wait_job(server, response.json()["id"])
        workers = [name for name in _audit_workers() if name not in before]
        assert len(workers) == 1
        where = ray.get(ray.get_actor(workers[0], namespace=NAMESPACE).where.remote(), timeout=60)
    finally:
        server.stop()
        server.engine.store.close()
    good, bad = job["calls"]
    assert good["status"] == "done", good
    assert {"not_my_job", "customer_complaint", "escalation_request"} <= {
        d["category"] for d in good["report"]["detections"]
    }
    assert bad["status"] == "failed" and bad["error"]
    assert "RayTaskError" not in bad["error"] and "recording.wav" not in bad["error"]
    assert where["audits"] == 2 and where["pid"] != os.getpid() and where["node"] in speech_nodes()
    assert where["priority"] == "idle"  # below the live speech workers
    wait_for(lambda: not set(_audit_workers()) - before, 60, "the audit worker to end with the server")


def test_a_trainers_labelled_call_is_heard_on_the_cluster(cluster, shared_models, cache_dir, tmp_path):
    """Tried: a trainer's labelled call script sent to a server started with `ray` set to the cluster.
    Expected: the turn table as in process (the manager request heard and caught), heard by an audit
    worker that the request started on the cluster and ended when it was done, not by this process."""
    from tests.conftest import _serve
    from tests.server.packs.test_packs_api import CALL_SCRIPT

    before = set(_audit_workers())
    server = _serve(shared_models, cache_dir, tmp_path / "data", ray=cluster.address)
    seen: set[str] = set()
    watching = threading.Event()

    def watch() -> None:  # the request's audit worker, while it lives
        while not watching.is_set():
            seen.update(set(_audit_workers()) - before)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        reply = server.http("trainer").post(
            f"{server.url}/v1/packs/default/versions/1/evaluate-call",
            files={"script": ("refund.yaml", CALL_SCRIPT.encode(), "application/yaml")},
            timeout=600,
        )
    finally:
        watching.set()
        watcher.join(5)
        server.stop()
        server.engine.store.close()
    assert reply.status_code == 200, reply.text
    (call,) = reply.json()["calls"]
    said = [t for t in call["turns"] if t["said"]]
    assert "manager" in " ".join(h["text"] for h in said[1]["heard"]).lower()
    assert said[1]["hits"] + said[1]["misses"] == ["escalation_request"]
    assert len(seen) == 1  # one audit worker, on the cluster
    wait_for(lambda: not set(_audit_workers()) - before, 60, "the audit worker to end with the request")
