"""The agent named on audited calls: stored, migrated into older databases, given at upload, filtered on,
and refused when it is not a user name."""

from __future__ import annotations

import sqlite3

from click.testing import CliRunner

from server.audits.store import AuditStore
from server.cli.audit import audit


def test_agent_is_stored_and_filtered(store_location):
    with AuditStore(store_location) as store:
        _, [named] = store.create_job({}, [("a.wav", "/a.wav")], agent="anna")
        _, [unnamed] = store.create_job({}, [("b.wav", "/b.wav")])
        assert store.get_call(named)[0].agent == "anna" and store.get_call(unnamed)[0].agent is None
        assert [c.id for c in store.list_calls(agent="anna")] == [named]


def test_an_older_database_gains_the_agent_column(tmp_path):
    """audited_calls as version 1 made it (no agent): opened, it has the column, and old rows have none."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE audit_jobs (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, options TEXT NOT NULL);
            CREATE TABLE audited_calls (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, file_name TEXT NOT NULL,
                audio_path TEXT NOT NULL, status TEXT NOT NULL, error TEXT, duration REAL, score REAL,
                categories TEXT NOT NULL DEFAULT '', report TEXT, created_at TEXT NOT NULL, finished_at TEXT);
            CREATE TABLE audits_schema_version (version INTEGER NOT NULL);
            INSERT INTO audits_schema_version VALUES (1);
            INSERT INTO audit_jobs VALUES ('job-1', '2025-01-01T00:00:00.000+00:00', '{}');
            INSERT INTO audited_calls (id, job_id, file_name, audio_path, status, created_at)
                VALUES ('call-1', 'job-1', 'a.wav', '/a.wav', 'queued', '2025-01-01T00:00:00.000+00:00');
            """
        )
    db.close()
    with AuditStore(path) as store:
        assert store.get_call("call-1")[0].agent is None
        _, [new] = store.create_job({}, [("b.wav", "/b.wav")], agent="oleg")
        assert store.get_call(new)[0].agent == "oleg"


def test_upload_names_the_agent_and_a_bad_name_is_422(live_server, tmp_path):
    wav = tmp_path / "broken.wav"
    wav.write_bytes(b"RIFF not audio" * 10)  # fails its audit at once; the agent is kept all the same
    http, url = live_server.http("reviewer"), f"{live_server.url}/v1/audits"
    with wav.open("rb") as f:
        bad = http.post(url, files=[("files", ("broken.wav", f, "audio/wav"))], data={"agent": "not a name!"})
    assert bad.status_code == 422 and "agent must be a user name" in bad.json()["detail"]
    with wav.open("rb") as f:
        ok = http.post(url, files=[("files", ("broken.wav", f, "audio/wav"))], data={"agent": "anna"})
    assert ok.status_code == 202 and ok.json()["calls"][0]["agent"] == "anna"
    listed = http.get(f"{live_server.url}/v1/audited-calls", params={"agent": "anna"}).json()["calls"]
    assert [c["agent"] for c in listed] == ["anna"]


def test_cli_refuses_a_bad_agent_before_loading_models(tmp_path):
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"x")
    result = CliRunner().invoke(audit, [str(wav), "--agent", "two words", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "not a user name" in result.output
