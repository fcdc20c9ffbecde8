"""The audit, pack and user stores on SQLite and PostgreSQL (each test runs on both): what the API tests
rely on, checked on the store itself, so a dialect difference shows here first."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.packs import load_pack
from server.access.store import AuthStore, Role, UnknownUserError, UserConflictError
from server.audits.store import AuditStore, AuditStoreError, UnknownAuditError, flag_row
from server.packs.store import PackExistsError, PackStore, UnknownPackError


def _report(score: float, categories: list[str]) -> dict:
    detections = [
        {
            "category": c,
            "kind": "forbidden",
            "speaker": "agent",
            "start": 1.5 * i,
            "end": 1.5 * i + 1,
            "text": f"фраза {i} 100%",
            "score": 0.8,
        }
        for i, c in enumerate(categories)
    ]
    detections.append({"category": "greeting", "kind": "practice", "speaker": "agent", "text": "hi"})
    return {"duration": 61.5, "language": "ru", "scorecard": {"score": score}, "detections": detections}


def test_audit_jobs_reports_filters_and_flags(store_location: str | Path):
    with AuditStore(store_location) as store:
        job, calls = store.create_job({"channels": 2}, [(f"call{i}.wav", f"/rec/{i}.wav") for i in range(3)])
        assert store.job_options(job) == {"channels": 2}
        assert [c.file_name for c in store.job_calls(job)] == ["call0.wav", "call1.wav", "call2.wav"]
        assert [c.id for c in store.queued()] == calls  # oldest first, then in upload order
        store.mark_running(calls[0])
        store.save_report(calls[0], _report(0.4, ["rude", "not_my_job"]))
        store.save_report(calls[1], _report(0.9, ["not_my_job"]))
        store.mark_failed(calls[2], "unreadable audio")
        assert store.queued() == []

        done, report = store.get_call(calls[0])
        assert (done.status, done.duration, done.score) == ("done", 61.5, 0.4)
        assert done.categories == ("not_my_job", "rude") and report["detections"][0]["text"] == "фраза 0 100%"
        assert [c.id for c in store.list_calls()] == [calls[0], calls[1], calls[2]]  # worst score first
        assert [c.id for c in store.list_calls(category="rude")] == [calls[0]]
        assert [c.id for c in store.list_calls(category="not_my")] == []  # whole categories only
        assert [c.id for c in store.list_calls(min_score=0.5)] == [calls[1]]
        assert store.get_call(calls[2])[0].error == "unreadable audio"

        flags = store.flags(calls[0])
        assert [(f.category, f.start) for f in flags] == [("rude", 0.0), ("not_my_job", 1.5)]
        dismissed = store.review_flag(flags[1].id, "dismissed", "said as a joke")
        assert dismissed.status == "dismissed" and dismissed.reviewed_at is not None
        assert [f.id for f in store.reviewed_flags()] == [flags[1].id]
        assert flag_row(store.reviewed_flags("dismissed")[0])["dismissed"] == "not_my_job"
        store.save_report(calls[0], _report(0.5, ["rude"]))  # audited again: its flags start over
        assert [f.status for f in store.flags(calls[0])] == ["pending"]

        with pytest.raises(UnknownAuditError):
            store.get_call("call-nope")
        with pytest.raises(UnknownAuditError):
            store.review_flag(999999, "confirmed")
        with pytest.raises(AuditStoreError, match="flag status must be"):
            store.review_flag(flags[0].id, "maybe")  # type: ignore[arg-type]


def test_pack_versions_publish_and_clone(store_location: str | Path):
    default = load_pack()
    with PackStore(store_location, seed=default) as store:
        assert store.active() == (default.name, 1)
        assert store.get(default.name) == default.model_copy(update={"version": 1})
        second = store.save(default, note="second")
        assert second.version == 2 and store.active() == (default.name, 1)
        store.publish(default.name, 2)
        clone = store.clone(default.name, 1, "Zeta pack")
        other = store.clone(default.name, 1, "alpha pack")
        assert clone.version == other.version == 1
        listed = [(v.name, v.version, v.active) for v in store.versions()]
        # names in byte order on both databases (upper case first), newest version first
        assert listed == [
            ("Zeta pack", 1, False),
            ("alpha pack", 1, False),
            (default.name, 2, True),
            (default.name, 1, False),
        ]
        store.publish(default.name, 1)  # a roll-back
        assert store.active() == (default.name, 1)
        assert store.yaml(default.name, 2).count("version: 2") == 1
        with pytest.raises(PackExistsError):
            store.save(default, new=True)
        with pytest.raises(UnknownPackError):
            store.publish(default.name, 9)
        with pytest.raises(UnknownPackError):
            store.save(default.model_copy(update={"name": "never made"}))
    with PackStore(store_location, seed=load_pack()) as again:  # a restart seeds nothing
        assert again.active() == (default.name, 1) and len(again.versions(default.name)) == 2


def test_users_tokens_sessions_and_revocation(store_location: str | Path):
    with AuthStore(store_location) as store:
        assert not store.has_admin()
        store.add_user("root", Role.ADMIN, "long enough pw")
        store.add_user("Zed", "agent")
        store.add_user("anna.b", "agent", "another long pw")
        assert store.has_admin()
        assert [u.name for u in store.list_users()] == ["Zed", "anna.b", "root"]  # byte order on both
        token = store.issue_token("Zed", "script")
        store.issue_token("Zed")
        zed = store.get_user("Zed")
        assert (zed.role, zed.has_password, zed.tokens) == (Role.AGENT, False, 2)
        assert store.authenticate(token).name == "Zed"
        assert store.check_password("anna.b", "another long pw").role is Role.AGENT
        assert store.check_password("anna.b", "wrong password") is None
        session = store.start_session("root")
        assert store.authenticate(session).via == "session"
        store.end_session(session)
        assert store.authenticate(session) is None
        store.revoke_user("Zed")
        assert store.authenticate(token) is None and store.get_user("Zed").revoked_at is not None
        with pytest.raises(UserConflictError, match="already revoked"):
            store.revoke_user("Zed")
        with pytest.raises(UserConflictError, match="already exists"):
            store.add_user("root", "agent")
        with pytest.raises(UnknownUserError):
            store.issue_token("ghost")
