"""Calls, their turns and their alerts: in the SQLite file on disk by default, or in PostgreSQL when
several servers share one database (:mod:`server.storage`).

Every write is its own committed transaction, so a process killed mid-call keeps everything written before
the kill.

Concurrency: one connection per Store, guarded by a lock, so worker threads and the event loop (through
``asyncio.to_thread``) can share a Store. Other processes (a second server, a report script) can read
while this one writes. A write that checks a call's state before changing it holds the call's write lock
throughout: on SQLite the file's (``BEGIN IMMEDIATE``, waiting for another process instead of failing
with "database is locked"), on PostgreSQL one per call id, so servers writing different calls do not wait
for each other.

Call life cycle: ``create_call`` makes a call ``active``; ``end_call`` sets ``completed``, ``disconnected``
or ``failed``. A call id that is active or completed cannot be created again (CallExistsError). A call that
ended ``disconnected`` or ``failed`` may be re-opened with the same parameters: a client reconnecting after
a dropped line or a server fault continues the same call, keeping the turns and alerts already stored.
Turns and alerts can only be added to an active call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, get_args

from server.search import index as search_index
from server.storage.database import DatabaseError, Row, Transaction
from server.storage.tables import TableStore

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 4  # 2: calls.agent; 3: calls.frontend and the frontends table; 4: calls.score, practices
MAX_LIST_LIMIT = 1000

CallStatus = Literal["active", "completed", "disconnected", "failed"]
EndStatus = Literal["completed", "disconnected", "failed"]
_END_STATUSES: tuple[str, ...] = get_args(EndStatus)
_REOPENABLE = ("disconnected", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id     TEXT PRIMARY KEY,
    roles       TEXT NOT NULL,          -- JSON array, one role per channel
    language    TEXT,
    encoding    TEXT NOT NULL,
    sample_rate INTEGER NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'completed', 'disconnected', 'failed')),
    created_at  TEXT NOT NULL,          -- UTC ISO 8601
    ended_at    TEXT,                   -- UTC ISO 8601, NULL while active
    agent       TEXT,                   -- the agent user on the call, NULL if any agent may watch it
    frontend    TEXT,                   -- the server process streaming it while active (frontends.id)
    score       REAL,                   -- its QA scorecard once ended and scored (server.stats), else NULL
    practices   TEXT                    -- ' apology timeline ': good practices heard (NULL until scored)
);
CREATE INDEX IF NOT EXISTS calls_created ON calls (created_at);
CREATE TABLE IF NOT EXISTS turns (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id   TEXT NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    speaker   TEXT NOT NULL,
    text      TEXT NOT NULL,
    start_sec REAL NOT NULL,
    end_sec   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_call_start ON turns (call_id, start_sec);
CREATE TABLE IF NOT EXISTS alerts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id      TEXT NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    turn_id      INTEGER REFERENCES turns (id) ON DELETE SET NULL,
    category     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    speaker      TEXT NOT NULL,
    text         TEXT NOT NULL,
    start_sec    REAL NOT NULL,
    end_sec      REAL NOT NULL,
    score        REAL NOT NULL,
    suggestions  TEXT NOT NULL,         -- JSON array of strings, order kept
    pack_version INTEGER NOT NULL,
    title        TEXT NOT NULL DEFAULT '',  -- the category in plain words, as shown to the agent
    span_start   INTEGER NOT NULL DEFAULT 0,  -- characters of text that fired the category
    span_end     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_call_start ON alerts (call_id, start_sec);
CREATE TABLE IF NOT EXISTS frontends (
    id         TEXT PRIMARY KEY,        -- one per server process, new at each start
    host       TEXT NOT NULL,
    started_at TEXT NOT NULL,           -- UTC ISO 8601
    seen_at    TEXT NOT NULL            -- UTC ISO 8601, renewed every few seconds while it runs
);
"""

_LATE_INDEXES = (  # for trends (server.stats) and the scorer of ended calls (server.stats.scoring)
    "CREATE INDEX IF NOT EXISTS calls_agent_created ON calls (agent, created_at)",
    "CREATE INDEX IF NOT EXISTS calls_unscored ON calls (status, score)",
)


class StoreError(DatabaseError):
    """The store refused an operation or could not complete it; the message names the call."""


class UnknownCallError(StoreError):
    """A call id that is not in the store."""


class CallExistsError(StoreError):
    """A call id that is already in use (active, or ended in a way that cannot be resumed)."""


class NoRoomError(StoreError):
    """A call not started: `active` calls were streaming on the servers sharing the database, as many
    as the room it was given."""

    def __init__(self, call_id: str, active: int) -> None:
        super().__init__(f"call {call_id!r} not started: {active} calls are active")
        self.active = active


class CallStateError(StoreError):
    """An operation that does not fit the call's state, e.g. a turn added after the call ended."""


@dataclass(frozen=True)
class CallRecord:
    """One call; ``roles[i]`` is the speaker on channel i. Timestamps are UTC ISO 8601 strings."""

    call_id: str
    roles: tuple[str, ...]
    language: str | None
    encoding: str
    sample_rate: int
    status: CallStatus
    created_at: str
    ended_at: str | None
    agent: str | None = None
    frontend: str | None = None  # the server process streaming it while active
    score: float | None = None  # its QA scorecard score once ended and scored (server.stats.scoring)
    practices: tuple[str, ...] | None = None  # good-practice categories heard; None until scored


@dataclass(frozen=True)
class TurnRecord:
    """One final turn of speech; `start`/`end` in seconds of call audio."""

    id: int
    call_id: str
    speaker: str
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class AlertRecord:
    """One alert raised on a turn, as it was sent to the client (suggestions in the pack's order)."""

    id: int
    call_id: str
    turn_id: int | None
    category: str
    kind: str
    speaker: str
    text: str
    start: float
    end: float
    score: float
    suggestions: tuple[str, ...]
    pack_version: int
    title: str = ""
    span: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class CallImport:
    """A finished call with its turns and alerts, loaded in bulk (:meth:`Store.import_calls`). The ids
    of `turns` are ignored (new ones are given); an alert's `turn_id` is its turn's position in `turns`."""

    call: CallRecord
    turns: Sequence[TurnRecord]
    alerts: Sequence[AlertRecord] = ()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store(TableStore):
    """Calls, turns and alerts at a database location (a path, ``sqlite:///…`` or ``postgresql://…``);
    safe to share between threads; close() when done."""

    name = "calls"
    schema = _SCHEMA
    schema_version = SCHEMA_VERSION
    migrations = {
        1: ("ALTER TABLE calls ADD COLUMN agent TEXT",),  # from before calls had an agent
        2: ("ALTER TABLE calls ADD COLUMN frontend TEXT",),  # from before servers held leases
        3: (  # from before calls were scored (server.stats): scored again by the server's scorer
            "ALTER TABLE calls ADD COLUMN score REAL",
            "ALTER TABLE calls ADD COLUMN practices TEXT",
        ),
    }
    error = StoreError

    def _init_schema(self) -> None:
        super()._init_schema()
        with self._write() as tx:  # on columns that migrations add, so made once the tables are current
            for statement in _LATE_INDEXES:
                tx.execute(statement)

    def __init__(self, location: str | Path) -> None:
        super().__init__(location)
        try:  # the search index of the turns (server.search), filled once for a database from before it
            with self._db.write(search_index.LOCK) as tx:
                search_index.prepare(tx, self.dialect, "live", search_index.live_backfill)
        except BaseException:
            self.close()
            raise

    @classmethod
    def version_table(cls) -> str:
        return "schema_version"  # the name it had when this was the only store with a version

    @staticmethod
    def _active_call(conn: Transaction, call_id: str, what: str) -> None:
        """Raise unless `call_id` exists and is active; `what` names the refused operation."""
        row = conn.execute("SELECT status FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        if row is None:
            raise UnknownCallError(f"cannot {what}: unknown call id {call_id!r}")
        if row["status"] != "active":
            raise CallStateError(f"cannot {what}: call {call_id!r} has ended ({row['status']})")

    # -- calls ---------------------------------------------------------------------------------------

    def create_call(
        self,
        call_id: str,
        roles: Sequence[str],
        language: str | None,
        encoding: str,
        sample_rate: int,
        agent: str | None = None,
        frontend: str | None = None,
        *,
        room: int | None = None,
    ) -> CallRecord:
        """Start a call, or resume one that ended ``disconnected``/``failed`` with the same parameters.
        `agent` names the agent user on the call (only their sidebar, reviewers and admins see it);
        `frontend` the server process streaming it (:meth:`renew_lease`); `room`: start it only while
        fewer calls than that are active on every server sharing the database, counted and started in
        one transaction that every such admission takes in turn, so that two servers admitting a call at
        the same instant cannot both take the last place.

        Raises CallExistsError for a call id that is active or completed, or that is resumed with other
        parameters; NoRoomError when there is no room; StoreError for empty roles.
        """
        roles = tuple(roles)
        if not call_id or not roles or not all(isinstance(role, str) and role for role in roles):
            raise StoreError(f"cannot create call {call_id!r}: needs a call id and one role per channel")
        roles_json = json.dumps(list(roles), ensure_ascii=False)
        with self._write(call_id, *(["admission"] if room is not None else [])) as conn:
            row = conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
            if room is not None and (row is None or row["status"] != "active"):
                active = conn.execute("SELECT COUNT(*) FROM calls WHERE status = 'active'").fetchone()[0]
                if active >= room:
                    raise NoRoomError(call_id, int(active))
            if row is None:
                conn.execute(
                    "INSERT INTO calls (call_id, roles, language, encoding, sample_rate, status, created_at,"
                    " agent, frontend) VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?)",
                    (call_id, roles_json, language, encoding, int(sample_rate), _now(), agent, frontend),
                )
                logger.debug("call %s created", call_id)
            else:
                existing = _call(row)
                if existing.status not in _REOPENABLE:
                    raise CallExistsError(f"call id {call_id!r} is already in use ({existing.status})")
                wanted = (roles, language, encoding, int(sample_rate), agent)
                had = (existing.roles, existing.language, existing.encoding, existing.sample_rate)
                if wanted != (*had, existing.agent):
                    raise CallExistsError(
                        f"call {call_id!r} ended {existing.status} and can only be resumed with the same "
                        "roles, language, encoding, sample rate and agent"
                    )
                conn.execute(  # its score is of the call so far: scored again when it ends
                    "UPDATE calls SET status = 'active', ended_at = NULL, frontend = ?, score = NULL,"
                    " practices = NULL WHERE call_id = ?",
                    (frontend, call_id),
                )
                logger.info("call %s resumed after ending %s", call_id, existing.status)
            return _call(conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone())

    def end_call(self, call_id: str, status: EndStatus) -> CallRecord:
        """Mark a call ended with `status`. Ending an ended call changes nothing (the first end wins), so
        cleanup paths may call this unconditionally. Raises UnknownCallError, StoreError for a bad status."""
        if status not in _END_STATUSES:
            raise StoreError(f"cannot end call {call_id!r}: status must be one of {', '.join(_END_STATUSES)}")
        with self._write(call_id) as conn:
            row = conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
            if row is None:
                raise UnknownCallError(f"cannot end call: unknown call id {call_id!r}")
            if row["status"] != "active":
                logger.debug("call %s already ended %s; not marking it %s", call_id, row["status"], status)
                return _call(row)
            conn.execute(
                "UPDATE calls SET status = ?, ended_at = ? WHERE call_id = ?", (status, _now(), call_id)
            )
            logger.debug("call %s ended %s", call_id, status)
            return _call(conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone())

    def get_call(self, call_id: str) -> CallRecord | None:
        """The call with this id, or None."""
        rows = self._read("SELECT * FROM calls WHERE call_id = ?", (call_id,))
        return _call(rows[0]) if rows else None

    def list_calls(
        self, limit: int = 50, offset: int = 0, *, agent: str | None = None, active: bool = False
    ) -> list[CallRecord]:
        """Calls, newest first, `limit` (1-1000) at a time from `offset`; with `agent`, only that agent's
        calls and calls that name no agent; with `active`, only calls streaming now."""
        if not 1 <= limit <= MAX_LIST_LIMIT or offset < 0:
            raise StoreError(f"list_calls: limit must be 1-{MAX_LIST_LIMIT} and offset >= 0")
        where = ["1 = 1"]
        params: list[object] = []
        if agent is not None:
            where.append("(agent IS NULL OR agent = ?)")
            params.append(agent)
        if active:
            where.append("status = 'active'")
        rows = self._read(
            f"SELECT * FROM calls WHERE {' AND '.join(where)} ORDER BY created_at DESC, rowid DESC "
            "LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_call(row) for row in rows]

    def count_active(self) -> int:
        """Calls streaming now, on every server sharing this database."""
        return int(self._read("SELECT COUNT(*) FROM calls WHERE status = 'active'")[0][0])

    # -- scorecards (server.stats.scoring) --------------------------------------------------------------

    def unscored_calls(self, limit: int = 20) -> list[str]:
        """Ids of calls that ended (completed or disconnected) and have no scorecard yet, oldest first."""
        rows = self._read(
            "SELECT call_id FROM calls WHERE status IN ('completed', 'disconnected') AND score IS NULL"
            " ORDER BY ended_at, call_id LIMIT ?",
            (limit,),
        )
        return [row["call_id"] for row in rows]

    def set_scorecard(self, call_id: str, score: float, practices: Sequence[str]) -> bool:
        """Record the scorecard of an ended call: its `score` (0-1) and the good-practice categories heard.
        False (nothing written) when the call is active again (resumed since it was read) or unknown."""
        text = " " + " ".join(sorted(set(practices))) + " "
        with self._write(call_id) as conn:
            cursor = conn.execute(
                "UPDATE calls SET score = ?, practices = ? WHERE call_id = ? AND status != 'active'",
                (float(score), text, call_id),
            )
            return cursor.rowcount > 0

    # -- server leases -------------------------------------------------------------------------------

    def renew_lease(self, frontend: str, host: str) -> None:
        """Server `frontend` is alive: its calls are its own for a while longer."""
        now = _now()
        with self._write("frontends") as conn:
            conn.execute(
                "INSERT INTO frontends (id, host, started_at, seen_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                (frontend, host, now, now),
            )

    def release_lease(self, frontend: str) -> None:
        """Server `frontend` stops (its calls were ended first)."""
        with self._write("frontends") as conn:
            conn.execute("DELETE FROM frontends WHERE id = ?", (frontend,))

    def end_orphaned_calls(self, stale_after: float) -> list[str]:
        """Calls left ``active`` by servers that died (no lease renewed for `stale_after` seconds) become
        ``disconnected``: resumable, and no longer counted as in progress. Returns their ids. (Calls that
        name no server, written before servers kept leases or by a tool, are left as they are.)"""
        cutoff = (datetime.now(UTC) - timedelta(seconds=stale_after)).isoformat(timespec="milliseconds")
        with self._write("frontends") as conn:
            conn.execute("DELETE FROM frontends WHERE seen_at < ?", (cutoff,))
            rows = conn.execute(
                "SELECT call_id FROM calls WHERE status = 'active' AND frontend IS NOT NULL"
                " AND frontend NOT IN (SELECT id FROM frontends)"
            ).fetchall()
            orphans = [row["call_id"] for row in rows]
            for call_id in orphans:
                conn.execute(
                    "UPDATE calls SET status = 'disconnected', ended_at = ? WHERE call_id = ? "
                    "AND status = 'active'",
                    (_now(), call_id),
                )
        if orphans:
            logger.warning(
                "%d calls of servers that stopped answering marked disconnected: %s",
                len(orphans),
                ", ".join(orphans),
            )
        return orphans

    # -- turns and alerts ----------------------------------------------------------------------------

    def add_turn(self, call_id: str, speaker: str, text: str, start: float, end: float) -> int:
        """Store a final turn of an active call; returns its id (for add_alert)."""
        _check_times(call_id, start, end)
        with self._write(call_id) as conn:
            self._active_call(conn, call_id, "add turn")
            turn_id = conn.insert(
                "INSERT INTO turns (call_id, speaker, text, start_sec, end_sec) VALUES (?, ?, ?, ?, ?)",
                (call_id, speaker, text, float(start), float(end)),
            )
            search_index.add_live_turn(conn, self.dialect, turn_id, call_id, speaker, text, start, end)
            return turn_id

    def add_alert(
        self,
        call_id: str,
        turn_id: int | None,
        category: str,
        kind: str,
        speaker: str,
        text: str,
        start: float,
        end: float,
        score: float,
        suggestions: Sequence[str],
        pack_version: int,
        *,
        title: str = "",
        span: tuple[int, int] = (0, 0),
    ) -> int:
        """Store an alert of an active call; `turn_id` (if given) must be a turn of the same call."""
        _check_times(call_id, start, end)
        if isinstance(suggestions, str) or not all(isinstance(item, str) for item in suggestions):
            raise StoreError(f"cannot add alert to call {call_id!r}: suggestions must be a list of strings")
        with self._write(call_id) as conn:
            self._active_call(conn, call_id, "add alert")
            if turn_id is not None:
                row = conn.execute("SELECT call_id FROM turns WHERE id = ?", (turn_id,)).fetchone()
                if row is None or row["call_id"] != call_id:
                    raise StoreError(f"cannot add alert: turn {turn_id} is not a turn of call {call_id!r}")
                search_index.add_live_category(conn, call_id, turn_id, category)
            return conn.insert(
                "INSERT INTO alerts (call_id, turn_id, category, kind, speaker, text, start_sec, end_sec,"
                " score, suggestions, pack_version, title, span_start, span_end)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    turn_id,
                    category,
                    kind,
                    speaker,
                    text,
                    float(start),
                    float(end),
                    float(score),
                    json.dumps(list(suggestions), ensure_ascii=False),
                    int(pack_version),
                    title,
                    int(span[0]),
                    int(span[1]),
                ),
            )

    def import_calls(self, calls: Sequence[CallImport]) -> int:
        """Store ended calls with their turns and alerts in one transaction (synthetic data for benches,
        calls from another system), indexed for search as :meth:`add_turn` does; returns the turns added.
        Raises CallExistsError for a call id already stored (nothing is stored then)."""
        added = 0
        with self._write() as conn:
            for item in calls:
                added += self._import_call(conn, item)
        return added

    def _import_call(self, conn: Transaction, item: CallImport) -> int:
        c = item.call
        if conn.execute("SELECT 1 FROM calls WHERE call_id = ?", (c.call_id,)).fetchone():
            raise CallExistsError(f"call id {c.call_id!r} is already in use")
        conn.execute(
            "INSERT INTO calls (call_id, roles, language, encoding, sample_rate, status, created_at,"
            " ended_at, agent, score, practices) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                c.call_id,
                json.dumps(list(c.roles)),
                c.language,
                c.encoding,
                c.sample_rate,
                c.status,
                c.created_at,
                c.ended_at,
                c.agent,
                c.score,  # the scorecard, when the import has it (else the server's scorer scores it)
                None if c.practices is None else " " + " ".join(sorted(set(c.practices))) + " ",
            ),
        )
        ids = []
        for t in item.turns:
            _check_times(c.call_id, t.start, t.end)
            ids.append(
                conn.insert(
                    "INSERT INTO turns (call_id, speaker, text, start_sec, end_sec) VALUES (?, ?, ?, ?, ?)",
                    (c.call_id, t.speaker, t.text, float(t.start), float(t.end)),
                )
            )
        categories: dict[int, set[str]] = {}
        for a in item.alerts:
            turn_id = ids[a.turn_id] if a.turn_id is not None else None
            if a.turn_id is not None:
                categories.setdefault(a.turn_id, set()).add(a.category)
            conn.insert(
                "INSERT INTO alerts (call_id, turn_id, category, kind, speaker, text, start_sec, end_sec,"
                " score, suggestions, pack_version, title, span_start, span_end)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    c.call_id,
                    turn_id,
                    a.category,
                    a.kind,
                    a.speaker,
                    a.text,
                    float(a.start),
                    float(a.end),
                    float(a.score),
                    json.dumps(list(a.suggestions), ensure_ascii=False),
                    a.pack_version,
                    a.title,
                    a.span[0],
                    a.span[1],
                ),
            )
        indexed = [
            search_index.IndexedTurn(
                "live",
                c.call_id,
                turn_id,
                t.speaker,
                c.agent,
                tuple(sorted(categories.get(i, ()))),
                c.created_at,
                t.start,
                t.end,
                t.text,
            )
            for i, (turn_id, t) in enumerate(zip(ids, item.turns, strict=True))
        ]
        return search_index.add_turns(conn, self.dialect, indexed)

    def list_turns(self, call_id: str) -> list[TurnRecord]:
        """The call's turns by start time (then by insertion); empty for an unknown call."""
        rows = self._read("SELECT * FROM turns WHERE call_id = ? ORDER BY start_sec, id", (call_id,))
        return [
            TurnRecord(
                id=row["id"],
                call_id=row["call_id"],
                speaker=row["speaker"],
                text=row["text"],
                start=row["start_sec"],
                end=row["end_sec"],
            )
            for row in rows
        ]

    def list_alerts(self, call_id: str) -> list[AlertRecord]:
        """The call's alerts by start time (then by insertion); empty for an unknown call."""
        rows = self._read("SELECT * FROM alerts WHERE call_id = ? ORDER BY start_sec, id", (call_id,))
        return [
            AlertRecord(
                id=row["id"],
                call_id=row["call_id"],
                turn_id=row["turn_id"],
                category=row["category"],
                kind=row["kind"],
                speaker=row["speaker"],
                text=row["text"],
                start=row["start_sec"],
                end=row["end_sec"],
                score=row["score"],
                suggestions=tuple(json.loads(row["suggestions"])),
                pack_version=row["pack_version"],
                title=row["title"],
                span=(row["span_start"], row["span_end"]),
            )
            for row in rows
        ]


def _call(row: Row) -> CallRecord:
    return CallRecord(
        call_id=row["call_id"],
        roles=tuple(json.loads(row["roles"])),
        language=row["language"],
        encoding=row["encoding"],
        sample_rate=row["sample_rate"],
        status=row["status"],
        created_at=row["created_at"],
        ended_at=row["ended_at"],
        agent=row["agent"],
        frontend=row["frontend"],
        score=row["score"],
        practices=None if row["practices"] is None else tuple(row["practices"].split()),
    )


def _check_times(call_id: str, start: float, end: float) -> None:
    if not 0 <= start <= end:
        raise StoreError(f"call {call_id!r}: need 0 <= start <= end, got start={start}, end={end}")
