"""The search index: one row per stored turn, live and audited, written by the stores that own the turns.

Every turn a store keeps gets a row in ``search_turns`` in the same transaction that stores the turn (the
calls store's :meth:`~server.live.store.Store.add_turn`) or the report (the audit store's
:meth:`~server.audits.store.AuditStore.save_report`), so the index never drifts from what it indexes. A
row holds what search filters on and shows: source (``live`` or ``audited``), call id, the turn's place
(``turn_ref``: the live turn's id, the audited report's turn index), speaker, the agent named on the call,
the categories raised on the turn (live alerts; every detection of an audited report, practice included),
the call's date, the turn's times and text, and ``stems``: the turn's words stemmed
(:mod:`server.search.stemming`), in order, separated by spaces.

Full text runs over ``stems`` on each database's own engine:

- SQLite: an FTS5 table with ``search_turns`` as its external content (``search_fts``), rows added and
  removed by the same transactions;
- PostgreSQL: ``tsv``, a stored column generated as ``to_tsvector('simple', stems)``, under a GIN index.

Why stems made in Python and PostgreSQL's ``simple`` configuration rather than ``to_tsvector('russian',
text)``: the same query must give the same hits on both databases, and only one stemmer can guarantee
that. PostgreSQL's ``russian`` configuration also drops stop words («не», «это», «мне»), so «это не ко
мне» could not be told from «это ко мне», and it stems English turns as Russian. With the words stemmed
once, both engines only split on spaces and compare tokens.

Tables are created by whichever store opens first (:func:`ensure_tables`, idempotent); a store whose turns
were stored before the index existed fills it once when it is opened (:func:`backfill_needed`, marked per
source in ``search_backfill`` with :data:`INDEX_VERSION`, so a change to the stemming rebuilds it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from server.search.stemming import stem_line
from server.storage.database import Dialect, Transaction

logger = logging.getLogger(__name__)

Source = Literal["live", "audited"]
SOURCES: tuple[str, ...] = ("live", "audited")
INDEX_VERSION = 1  # bump when the stemming changes: every source is indexed again on open
LOCK = "search/index"  # the write lock under which tables are created and sources back-filled

_TABLE = """
CREATE TABLE IF NOT EXISTS search_turns (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    source     TEXT NOT NULL,                -- live | audited
    call_id    TEXT NOT NULL,                -- calls.call_id or audited_calls.id
    turn_ref   INTEGER NOT NULL,             -- live: turns.id; audited: the report's turn index
    speaker    TEXT NOT NULL,
    agent      TEXT,                         -- the agent user named on the call
    categories TEXT NOT NULL DEFAULT ' ',    -- ' cat1 cat2 ' raised on the turn, for filtering
    call_date  TEXT NOT NULL,                -- the call's created_at, UTC ISO 8601
    start_sec  REAL NOT NULL,
    end_sec    REAL NOT NULL,
    text       TEXT NOT NULL,
    stems      TEXT NOT NULL{extra}
)"""
_PG_TSV = ",\n    tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', stems)) STORED"
_COMMON = (
    "CREATE UNIQUE INDEX IF NOT EXISTS search_turns_turn ON search_turns (source, call_id, turn_ref)",
    "CREATE INDEX IF NOT EXISTS search_turns_call ON search_turns (source, call_id, start_sec)",
    "CREATE INDEX IF NOT EXISTS search_turns_date ON search_turns (call_date)",
    "CREATE INDEX IF NOT EXISTS search_turns_agent ON search_turns (agent)",
    "CREATE TABLE IF NOT EXISTS search_backfill (source TEXT PRIMARY KEY, version INTEGER NOT NULL,"
    " done_at TEXT NOT NULL)",
)
_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(stems, content='search_turns',"
    " content_rowid='id', tokenize='unicode61 remove_diacritics 0')"
)
_PG_GIN = "CREATE INDEX IF NOT EXISTS search_turns_tsv ON search_turns USING GIN (tsv)"
_INSERT = (
    "INSERT INTO search_turns (source, call_id, turn_ref, speaker, agent, categories, call_date,"
    " start_sec, end_sec, text, stems) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class IndexedTurn:
    """One turn as the index keeps it; `start`/`end` in seconds of the call's audio."""

    source: Source
    call_id: str
    turn_ref: int
    speaker: str
    agent: str | None
    categories: tuple[str, ...]
    call_date: str
    start: float
    end: float
    text: str


def category_field(categories: Iterable[str]) -> str:
    """``' a b '``: the categories as the ``categories`` column keeps them (LIKE '% a %' finds one)."""
    return " " + "".join(f"{c} " for c in sorted(set(categories)))


def ensure_tables(tx: Transaction, dialect: Dialect) -> None:
    """Create the index's tables if they are missing (any store may be first; safe to repeat)."""
    tx.execute(_TABLE.format(extra=_PG_TSV if dialect == "postgresql" else ""))
    for statement in _COMMON:
        tx.execute(statement)
    tx.execute(_SQLITE_FTS if dialect == "sqlite" else _PG_GIN)


def add_turns(tx: Transaction, dialect: Dialect, turns: Iterable[IndexedTurn], *, fts: bool = True) -> int:
    """Index `turns` in the caller's transaction; returns how many. With ``fts=False`` (SQLite bulk
    loads) the FTS table is left for :func:`rebuild_fts`."""
    count = 0
    for turn in turns:
        row = (
            turn.source,
            turn.call_id,
            int(turn.turn_ref),
            turn.speaker,
            turn.agent,
            category_field(turn.categories),
            turn.call_date,
            float(turn.start),
            float(turn.end),
            turn.text,
            stem_line(turn.text),
        )
        row_id = tx.insert(_INSERT, row)
        if dialect == "sqlite" and fts:
            tx.execute("INSERT INTO search_fts (rowid, stems) VALUES (?, ?)", (row_id, row[-1]))
        count += 1
    return count


def rebuild_fts(tx: Transaction, dialect: Dialect) -> None:
    """SQLite: rebuild the FTS table from ``search_turns`` (after a bulk load); PostgreSQL: nothing."""
    if dialect == "sqlite":
        tx.execute("INSERT INTO search_fts (search_fts) VALUES ('rebuild')")


def add_live_turn(
    tx: Transaction,
    dialect: Dialect,
    turn_id: int,
    call_id: str,
    speaker: str,
    text: str,
    start: float,
    end: float,
) -> None:
    """Index a live turn just stored, with its call's agent and date (read in the same transaction)."""
    row = tx.execute("SELECT agent, created_at FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    turn = IndexedTurn(
        "live", call_id, turn_id, speaker, row["agent"], (), row["created_at"], start, end, text
    )
    add_turns(tx, dialect, [turn])


def add_live_category(tx: Transaction, call_id: str, turn_id: int, category: str) -> None:
    """A live alert of `category` was raised on turn `turn_id`: the turn is found under it too."""
    tx.execute(
        "UPDATE search_turns SET categories = categories || ? WHERE source = 'live' AND call_id = ?"
        " AND turn_ref = ? AND categories NOT LIKE ?",
        (f"{category} ", call_id, int(turn_id), f"% {category} %"),
    )


def remove_call(tx: Transaction, dialect: Dialect, source: Source, call_id: str) -> None:
    """Drop a call's rows (an audited call audited again is indexed anew)."""
    if dialect == "sqlite":
        tx.execute(
            "INSERT INTO search_fts (search_fts, rowid, stems) SELECT 'delete', id, stems FROM search_turns"
            " WHERE source = ? AND call_id = ?",
            (source, call_id),
        )
    tx.execute("DELETE FROM search_turns WHERE source = ? AND call_id = ?", (source, call_id))


def report_turns(
    call_id: str, agent: str | None, call_date: str, report: dict[str, object]
) -> list[IndexedTurn]:
    """The turns of an audit report as index rows, each with the categories detected on it."""
    found: dict[int, set[str]] = {}
    for detection in _dicts(report.get("detections")):
        if isinstance(detection.get("turn"), int) and isinstance(detection.get("category"), str):
            found.setdefault(detection["turn"], set()).add(detection["category"])
    turns = []
    for position, turn in enumerate(_dicts(report.get("turns"))):
        index = turn["index"] if isinstance(turn.get("index"), int) else position
        turns.append(
            IndexedTurn(
                source="audited",
                call_id=call_id,
                turn_ref=index,
                speaker=str(turn.get("speaker") or "unknown"),
                agent=agent,
                categories=tuple(sorted(found.get(index, ()))),
                call_date=call_date,
                start=float(turn.get("start") or 0.0),
                end=float(turn.get("end") or 0.0),
                text=str(turn.get("text") or ""),
            )
        )
    return turns


def _dicts(items: object) -> list[dict]:
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def prepare(
    tx: Transaction, dialect: Dialect, source: Source, stored: Callable[[Transaction], list[IndexedTurn]]
) -> None:
    """What a store does when it opens, under :data:`LOCK`: make the tables, and index `source`'s turns
    stored before the index existed (`stored` lists them) unless that was done."""
    ensure_tables(tx, dialect)
    if backfill_needed(tx, source):
        count = add_turns(tx, dialect, stored(tx), fts=False)
        mark_backfilled(tx, dialect, source, count)


def backfill_needed(tx: Transaction, source: Source) -> bool:
    """Whether `source`'s stored turns still have to be indexed (a database from before the index, or
    indexed with other stemming: its rows are dropped here so the caller indexes them anew)."""
    row = tx.execute("SELECT version FROM search_backfill WHERE source = ?", (source,)).fetchone()
    if row is not None and row["version"] == INDEX_VERSION:
        return False
    if row is not None:
        tx.execute("DELETE FROM search_turns WHERE source = ?", (source,))
    return True


def mark_backfilled(tx: Transaction, dialect: Dialect, source: Source, count: int) -> None:
    """Record that `source` is indexed (rebuilding SQLite's FTS table from the rows)."""
    rebuild_fts(tx, dialect)
    tx.execute("DELETE FROM search_backfill WHERE source = ?", (source,))
    tx.execute(
        "INSERT INTO search_backfill (source, version, done_at) VALUES (?, ?, ?)",
        (source, INDEX_VERSION, datetime.now(UTC).isoformat(timespec="milliseconds")),
    )
    logger.info("search index: %d stored %s turns indexed", count, source)


def live_backfill(tx: Transaction) -> list[IndexedTurn]:
    """Every stored live turn, with its call's agent and date and the categories alerted on it."""
    alerted: dict[int, set[str]] = {}
    for row in tx.execute("SELECT turn_id, category FROM alerts WHERE turn_id IS NOT NULL").fetchall():
        alerted.setdefault(row["turn_id"], set()).add(row["category"])
    rows = tx.execute(
        "SELECT t.id, t.call_id, t.speaker, t.text, t.start_sec, t.end_sec, c.agent, c.created_at"
        " FROM turns t JOIN calls c ON c.call_id = t.call_id ORDER BY t.id"
    ).fetchall()
    return [
        IndexedTurn(
            "live",
            r["call_id"],
            r["id"],
            r["speaker"],
            r["agent"],
            tuple(sorted(alerted.get(r["id"], ()))),
            r["created_at"],
            r["start_sec"],
            r["end_sec"],
            r["text"],
        )
        for r in rows
    ]


def audited_backfill(tx: Transaction) -> list[IndexedTurn]:
    """Every turn of every finished audit report."""
    rows = tx.execute(
        "SELECT id, agent, created_at, report FROM audited_calls WHERE status = 'done' AND report IS NOT NULL"
        " ORDER BY rowid"
    ).fetchall()
    turns: list[IndexedTurn] = []
    for r in rows:
        turns.extend(report_turns(r["id"], r["agent"], r["created_at"], json.loads(r["report"])))
    return turns
