"""Databases from before trends: calls get score and practices columns (and their indexes), users a team,
and audited calls the practices of their stored reports, on both databases, keeping what was there."""

from __future__ import annotations

from server.access.store import AuthStore
from server.audits.store import AuditStore
from server.live.store import Store
from server.storage.database import open_database

V3_CALLS = """CREATE TABLE calls (
    call_id TEXT PRIMARY KEY, roles TEXT NOT NULL, language TEXT, encoding TEXT NOT NULL,
    sample_rate INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'active', created_at TEXT NOT NULL,
    ended_at TEXT, agent TEXT, frontend TEXT
)"""
V1_USERS = """CREATE TABLE users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT, created_at TEXT NOT NULL, revoked_at TEXT
)"""


def test_older_tables_are_migrated(store_location):
    db = open_database(store_location)
    try:
        with db.write("test") as tx:
            tx.execute(V3_CALLS)
            tx.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            tx.execute("INSERT INTO schema_version (version) VALUES (3)")
            tx.execute(
                "INSERT INTO calls (call_id, roles, encoding, sample_rate, status, created_at, agent)"
                " VALUES ('old', '[\"agent\"]', 'pcm16', 8000, 'completed', '2025-01-02T10:00', 'anna')"
            )
            tx.execute(V1_USERS)
            tx.execute("CREATE TABLE users_schema_version (version INTEGER NOT NULL)")
            tx.execute("INSERT INTO users_schema_version (version) VALUES (1)")
            tx.execute("INSERT INTO users (name, role, created_at) VALUES ('anna', 'agent', '2025-01-01')")
    finally:
        db.close()
    with Store(store_location) as live:
        old = live.get_call("old")
        assert (old.agent, old.score, old.practices) == ("anna", None, None)
        assert live.unscored_calls() == ["old"]  # the server's scorer scores it
        assert live.set_scorecard("old", 0.5, ["apology"])
        assert live.get_call("old").practices == ("apology",)
    with AuthStore(store_location) as auth:
        assert auth.get_user("anna").team is None
        assert auth.set_team("anna", "north").team == "north"


def test_audited_calls_get_the_practices_of_their_reports(store_location):
    report = {
        "detections": [
            {"category": "apology", "kind": "practice"},
            {"category": "not_my_job", "kind": "forbidden"},
        ]
    }
    with AuditStore(store_location) as audits:
        call_id = audits.create_job({}, [("a.wav", "/nowhere/a.wav")], "anna")[1][0]
        audits.save_report(call_id, {**report, "scorecard": {"score": 0.5}})
    db = open_database(store_location)
    try:
        assert db.read("SELECT practices FROM audited_calls")[0][0] == " apology "
        with db.write("test") as tx:  # as a report stored before practices were kept
            tx.execute("UPDATE audited_calls SET practices = NULL")
        with AuditStore(store_location):
            pass
        assert db.read("SELECT practices FROM audited_calls")[0][0] == " apology "
    finally:
        db.close()
