"""Audits of recorded calls: upload jobs, one row per audited recording, and reviewers' flags.

Shares the server's database (the SQLite file or PostgreSQL, :mod:`server.storage`) with
:mod:`server.live.store`: its own tables, its own connection. The report of a call is kept whole as JSON
(its schema is in :mod:`models.audit` and the README); what the review page filters on (score,
categories, date) is kept in columns. Each alert detection of a report becomes a flag a reviewer confirms
or dismisses; dismissed flags are what trainers turn into counter-examples.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from server.search import index as search_index
from server.storage.database import DatabaseError, Row, Transaction
from server.storage.tables import TableStore

logger = logging.getLogger(__name__)

AuditStatus = Literal["queued", "running", "done", "failed"]
FlagStatus = Literal["pending", "confirmed", "dismissed"]
FLAG_STATUSES: tuple[str, ...] = ("pending", "confirmed", "dismissed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_jobs (
    id          TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    options     TEXT NOT NULL              -- JSON: channels, language, keep_pii
);
CREATE TABLE IF NOT EXISTS audited_calls (
    id          TEXT PRIMARY KEY,
    job_id      TEXT NOT NULL REFERENCES audit_jobs (id) ON DELETE CASCADE,
    file_name   TEXT NOT NULL,             -- as uploaded, for people
    audio_path  TEXT NOT NULL,             -- where the recording is kept for playback
    status      TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    error       TEXT,
    duration    REAL,
    score       REAL,
    categories  TEXT NOT NULL DEFAULT '',  -- ' cat1 cat2 ' of its alert detections, for filtering
    report      TEXT,                      -- JSON, once done
    created_at  TEXT NOT NULL,
    finished_at TEXT,
    agent       TEXT,                      -- the agent user named on the call at upload, NULL if none
    practices   TEXT                       -- ' apology timeline ' of its practice detections (NULL: not yet)
);
CREATE INDEX IF NOT EXISTS audited_calls_created ON audited_calls (created_at);
CREATE TABLE IF NOT EXISTS flags (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     TEXT NOT NULL REFERENCES audited_calls (id) ON DELETE CASCADE,
    detection   INTEGER NOT NULL,          -- index into the report's detections
    category    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    speaker     TEXT NOT NULL,
    start_sec   REAL NOT NULL,
    end_sec     REAL NOT NULL,
    text        TEXT NOT NULL,
    lang        TEXT,
    score       REAL NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'dismissed')),
    note        TEXT NOT NULL DEFAULT '',
    reviewed_at TEXT
);
CREATE INDEX IF NOT EXISTS flags_call ON flags (call_id, start_sec);
"""


class AuditStoreError(DatabaseError):
    """A request the audit store cannot satisfy; UnknownAuditError when the id does not exist."""


class UnknownAuditError(AuditStoreError):
    pass


@dataclass(frozen=True)
class AuditedCall:
    id: str
    job_id: str
    file_name: str
    audio_path: str
    status: AuditStatus
    error: str | None
    duration: float | None
    score: float | None
    categories: tuple[str, ...]
    created_at: str
    finished_at: str | None
    agent: str | None = None  # the agent user named on the call at upload


@dataclass(frozen=True)
class Flag:
    id: int
    call_id: str
    detection: int
    category: str
    kind: str
    speaker: str
    start: float
    end: float
    text: str
    lang: str | None
    score: float
    status: FlagStatus
    note: str
    reviewed_at: str | None


@dataclass(frozen=True)
class AuditImport:
    """An audited call with its finished report, loaded in bulk (:meth:`AuditStore.import_calls`)."""

    file_name: str
    audio_path: str
    created_at: str  # UTC ISO 8601
    report: dict[str, Any]
    agent: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class AuditStore(TableStore):
    """Thread-safe access to the audit tables of the server's database."""

    name = "audits"
    schema = _SCHEMA
    schema_version = 3  # 2: audited_calls.agent; 3: audited_calls.practices (server.stats)
    migrations = {
        1: ("ALTER TABLE audited_calls ADD COLUMN agent TEXT",),  # from before calls named agents
        2: ("ALTER TABLE audited_calls ADD COLUMN practices TEXT",),  # filled from the reports on open
    }
    error = AuditStoreError

    def __init__(self, location: str | Path) -> None:
        super().__init__(location)
        try:  # the search index of the reports' turns (server.search), filled once for an older database
            with self._db.write(search_index.LOCK) as tx:
                search_index.prepare(tx, self.dialect, "audited", search_index.audited_backfill)
        except BaseException:
            self.close()
            raise

    def _init_schema(self) -> None:
        super()._init_schema()
        self._fill_practices()

    def _fill_practices(self) -> None:
        """Reports stored before audited calls kept their practices (schema 2) get them now, once."""
        rows = self._read("SELECT id, report FROM audited_calls WHERE status = 'done' AND practices IS NULL")
        if not rows:
            return
        with self._write() as conn:
            for row in rows:
                report = json.loads(row["report"]) if row["report"] else {}
                conn.execute(
                    "UPDATE audited_calls SET practices = ? WHERE id = ?", (practices_of(report), row["id"])
                )
        logger.info("practices of %d audited calls filled in from their reports", len(rows))

    # -- jobs and calls -----------------------------------------------------------------------------------

    def create_job(
        self, options: dict[str, Any], files: list[tuple[str, str]], agent: str | None = None
    ) -> tuple[str, list[str]]:
        """A job for uploaded recordings [(file name, stored audio path)], each naming `agent` (the agent
        user on the calls, or None); returns (job id, call ids)."""
        job_id, now = new_id("job"), _now()
        call_ids = [new_id("call") for _ in files]
        with self._write() as conn:
            conn.execute(
                "INSERT INTO audit_jobs (id, created_at, options) VALUES (?, ?, ?)",
                (job_id, now, json.dumps(options)),
            )
            for call_id, (name, audio_path) in zip(call_ids, files, strict=True):
                conn.execute(
                    "INSERT INTO audited_calls (id, job_id, file_name, audio_path, status, created_at,"
                    " agent) VALUES (?, ?, ?, ?, 'queued', ?, ?)",
                    (call_id, job_id, name, audio_path, now, agent or None),
                )
        return job_id, call_ids

    def job_options(self, job_id: str) -> dict[str, Any]:
        rows = self._read("SELECT options FROM audit_jobs WHERE id = ?", (job_id,))
        if not rows:
            raise UnknownAuditError(f"unknown audit job {job_id!r}")
        return json.loads(rows[0]["options"])

    def job_calls(self, job_id: str) -> list[AuditedCall]:
        if not self._read("SELECT 1 FROM audit_jobs WHERE id = ?", (job_id,)):
            raise UnknownAuditError(f"unknown audit job {job_id!r}")
        rows = self._read("SELECT * FROM audited_calls WHERE job_id = ? ORDER BY rowid", (job_id,))
        return [_call(r) for r in rows]

    def queued(self) -> list[AuditedCall]:
        """Recordings waiting for their audit, oldest first (also those interrupted by a restart)."""
        rows = self._read(
            "SELECT * FROM audited_calls WHERE status IN ('queued', 'running') ORDER BY created_at, rowid"
        )
        return [_call(r) for r in rows]

    def mark_running(self, call_id: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE audited_calls SET status = 'running' WHERE id = ?", (call_id,))

    def mark_failed(self, call_id: str, error: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE audited_calls SET status = 'failed', error = ?, finished_at = ? WHERE id = ?",
                (error, _now(), call_id),
            )

    def save_report(self, call_id: str, report: dict[str, Any]) -> None:
        """Store a finished report, open a pending flag for each of its alert detections, and index its
        turns for search (all in one transaction)."""
        with self._write() as conn:
            self._store_report(conn, call_id, report, _now())

    def import_calls(self, calls: Sequence[AuditImport], options: dict[str, Any] | None = None) -> list[str]:
        """Audited calls with their reports, in one job and one transaction (synthetic data, migrations
        from another system); returns their ids. Flags and the search index as :meth:`save_report`."""
        job_id = new_id("job")
        ids = [new_id("call") for _ in calls]
        with self._write() as conn:
            conn.execute(
                "INSERT INTO audit_jobs (id, created_at, options) VALUES (?, ?, ?)",
                (job_id, _now(), json.dumps(options or {})),
            )
            for call_id, call in zip(ids, calls, strict=True):
                conn.execute(
                    "INSERT INTO audited_calls (id, job_id, file_name, audio_path, status, created_at,"
                    " agent) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                    (call_id, job_id, call.file_name, call.audio_path, call.created_at, call.agent),
                )
                self._store_report(conn, call_id, call.report, call.created_at)
        return ids

    def _store_report(self, conn: Transaction, call_id: str, report: dict[str, Any], finished: str) -> None:
        detections = report.get("detections", [])
        alerts = [(i, d) for i, d in enumerate(detections) if d.get("kind") in ("forbidden", "trigger")]
        categories = " " + " ".join(sorted({d["category"] for _, d in alerts})) + " "
        conn.execute(
            "UPDATE audited_calls SET status = 'done', error = NULL, duration = ?, score = ?,"
            " categories = ?, practices = ?, report = ?, finished_at = ? WHERE id = ?",
            (
                report.get("duration"),
                (report.get("scorecard") or {}).get("score"),
                categories,
                practices_of(report),  # for trends (server.stats)
                json.dumps(report, ensure_ascii=False),
                finished,
                call_id,
            ),
        )
        conn.execute("DELETE FROM flags WHERE call_id = ?", (call_id,))
        for index, d in alerts:
            conn.execute(
                "INSERT INTO flags (call_id, detection, category, kind, speaker, start_sec, end_sec,"
                " text, lang, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    index,
                    d["category"],
                    d["kind"],
                    d.get("speaker", "unknown"),
                    float(d.get("start", 0.0)),
                    float(d.get("end", 0.0)),
                    d.get("text", ""),
                    report.get("language"),
                    float(d.get("score", 0.0)),
                ),
            )
        row = conn.execute("SELECT agent, created_at FROM audited_calls WHERE id = ?", (call_id,)).fetchone()
        if row is None:
            raise UnknownAuditError(f"unknown audited call {call_id!r}")
        search_index.remove_call(conn, self.dialect, "audited", call_id)
        turns = search_index.report_turns(call_id, row["agent"], row["created_at"], report)
        search_index.add_turns(conn, self.dialect, turns)

    def get_call(self, call_id: str) -> tuple[AuditedCall, dict[str, Any] | None]:
        rows = self._read("SELECT * FROM audited_calls WHERE id = ?", (call_id,))
        if not rows:
            raise UnknownAuditError(f"unknown audited call {call_id!r}")
        report = rows[0]["report"]
        return _call(rows[0]), json.loads(report) if report else None

    def list_calls(
        self,
        *,
        category: str | None = None,
        agent: str | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 200,
    ) -> list[AuditedCall]:
        """Audited recordings, worst score first, then newest; filters are optional."""
        where, params = ["1 = 1"], []
        if category:
            where.append("categories LIKE ?")
            params.append(f"% {category} %")
        if agent:
            where.append("agent = ?")
            params.append(agent)
        if min_score is not None:
            where.append("score >= ?")
            params.append(min_score)
        if max_score is not None:
            where.append("score <= ?")
            params.append(max_score)
        if since:
            where.append("created_at >= ?")
            params.append(since)
        if until:
            where.append("created_at < ?")
            params.append(until)
        sql = (
            f"SELECT * FROM audited_calls WHERE {' AND '.join(where)}"
            " ORDER BY score IS NULL, score, created_at DESC LIMIT ?"
        )
        return [_call(r) for r in self._read(sql, (*params, limit))]

    # -- flags --------------------------------------------------------------------------------------------

    def flags(self, call_id: str) -> list[Flag]:
        return [
            _flag(r)
            for r in self._read("SELECT * FROM flags WHERE call_id = ? ORDER BY start_sec, id", (call_id,))
        ]

    def review_flag(self, flag_id: int, status: FlagStatus, note: str = "") -> Flag:
        if status not in FLAG_STATUSES:
            raise AuditStoreError(f"flag status must be one of {', '.join(FLAG_STATUSES)}, got {status!r}")
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE flags SET status = ?, note = ?, reviewed_at = ? WHERE id = ?",
                (status, note, None if status == "pending" else _now(), flag_id),
            )
            if cursor.rowcount == 0:
                raise UnknownAuditError(f"unknown flag {flag_id}")
        return _flag(self._read("SELECT * FROM flags WHERE id = ?", (flag_id,))[0])

    def flag_rows(self, status: FlagStatus | None = None) -> list[str]:
        """Reviewed flags as JSON lines of the evaluation format (see :func:`flag_row`)."""
        return [json.dumps(flag_row(f), ensure_ascii=False) for f in self.reviewed_flags(status)]

    def reviewed_flags(self, status: FlagStatus | None = None) -> list[Flag]:
        """Confirmed and dismissed flags (or one of the two), oldest review first, for trainers."""
        if status is None:
            rows = self._read("SELECT * FROM flags WHERE status != 'pending' ORDER BY reviewed_at, id")
        else:
            rows = self._read("SELECT * FROM flags WHERE status = ? ORDER BY reviewed_at, id", (status,))
        return [_flag(r) for r in rows]


def practices_of(report: dict[str, Any]) -> str:
    """' apology timeline ': the good-practice categories the report's detections found, for trends."""
    found = {d["category"] for d in report.get("detections", []) if d.get("kind") == "practice"}
    return " " + " ".join(sorted(found)) + " "


def flag_row(flag: Flag) -> dict[str, Any]:
    """A reviewed flag as a row of the shared evaluation format: a confirmed flag is an example of its
    category, a dismissed one a turn that must not raise it (no labels; ``dismissed`` names the category),
    which is what trainers turn into counter-examples."""
    row: dict[str, Any] = {
        "id": f"flag-{flag.id}",
        "text": flag.text,
        "lang": flag.lang,
        "speaker": flag.speaker,
        "labels": [flag.category] if flag.status == "confirmed" else [],
    }
    if flag.status == "dismissed":
        row["dismissed"] = flag.category
    row.update({"source": flag.call_id, "note": flag.note})
    return row


def _call(row: Row) -> AuditedCall:
    return AuditedCall(
        id=row["id"],
        job_id=row["job_id"],
        file_name=row["file_name"],
        audio_path=row["audio_path"],
        status=row["status"],
        error=row["error"],
        duration=row["duration"],
        score=row["score"],
        categories=tuple(row["categories"].split()),
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        agent=row["agent"],
    )


def _flag(row: Row) -> Flag:
    return Flag(
        id=row["id"],
        call_id=row["call_id"],
        detection=row["detection"],
        category=row["category"],
        kind=row["kind"],
        speaker=row["speaker"],
        start=row["start_sec"],
        end=row["end_sec"],
        text=row["text"],
        lang=row["lang"],
        score=row["score"],
        status=row["status"],
        note=row["note"],
        reviewed_at=row["reviewed_at"],
    )
