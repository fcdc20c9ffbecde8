"""Searching the index: one interface (:class:`CallSearch`), one implementation per database.

:func:`open_search` gives the implementation for a location: :class:`SQLiteCallSearch` matches with FTS5,
:class:`PostgresCallSearch` with a tsquery over the generated ``tsv`` column. Both receive only stems (see
:mod:`server.search.index` for why the stems are made in Python), filter and order the same way (newest
call first, then the call's turns in order), and share everything else: counting, the turns before and
after each hit, highlighting, and whether an audited call's recording is still stored.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from server.search import index
from server.search.query import QueryError, SearchQuery, Segment, highlight
from server.storage.database import DatabaseError, parse_location
from server.storage.tables import TableStore

logger = logging.getLogger(__name__)

SPEAKERS: tuple[str, ...] = ("agent", "customer", "unknown")
MAX_LIMIT = 100
_ORDER = " ORDER BY s.call_date DESC, s.call_id, s.start_sec, s.turn_ref"


class SearchError(DatabaseError):
    """The index could not be read."""


@dataclass(frozen=True)
class SearchFilters:
    """Optional filters; `since`/`until` are UTC ISO 8601 bounds of the call's date (until excluded)."""

    speaker: str | None = None
    agent: str | None = None
    category: str | None = None
    since: str | None = None
    until: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if self.speaker is not None and self.speaker not in SPEAKERS:
            raise QueryError(f"speaker must be one of {', '.join(SPEAKERS)}; got {self.speaker!r}")
        if self.source is not None and self.source not in index.SOURCES:
            raise QueryError(f"source must be one of {', '.join(index.SOURCES)}; got {self.source!r}")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise QueryError(
                f"the date range is the wrong way round: until {self.until} is not after since {self.since}"
            )


def parse_when(value: str, *, end: bool = False) -> str:
    """A date (``2025-03-01``) or date-time (with an offset, else UTC) as a UTC ISO bound comparable with
    stored call dates; a bare date as an `end` bound means the end of that day. QueryError if malformed."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)
        else:
            moment = datetime.fromisoformat(text)
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except ValueError:
        raise QueryError(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date-time") from None
    return moment.isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ContextTurn:
    """A turn next to a hit, for context."""

    speaker: str
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class SearchHit:
    """One turn that matched: where it is (call, source, time), who said it, its text in segments."""

    call_id: str
    source: str
    turn_ref: int  # live: the turn's id; audited: its index in the report
    agent: str | None
    speaker: str
    start: float
    end: float
    text: str
    segments: tuple[Segment, ...]
    categories: tuple[str, ...]
    call_date: str
    before: ContextTurn | None
    after: ContextTurn | None
    has_recording: bool


@dataclass(frozen=True)
class SearchPage:
    """A page of hits, newest call first, and how many turns matched in all."""

    query: SearchQuery
    hits: tuple[SearchHit, ...]
    total: int
    limit: int
    offset: int


class CallSearch(TableStore):
    """Search over the index at a location; thread-safe; ``close()`` when done. Use :func:`open_search`."""

    name = "search"
    error = SearchError

    def __init__(self, location: str | Path) -> None:
        super().__init__(location)
        try:
            with self._db.write(index.LOCK) as tx:
                index.ensure_tables(tx, self.dialect)
        except BaseException:
            self.close()
            raise

    _column = "s.{}"  # how a filter names a column (see SQLiteCallSearch)

    @abstractmethod
    def _match(self, query: SearchQuery) -> tuple[str, list[Any]]:
        """The FROM and the full-text WHERE clause (table ``s`` = search_turns) and their parameters."""

    def search(
        self, query: SearchQuery, filters: SearchFilters | None = None, limit: int = 20, offset: int = 0
    ) -> SearchPage:
        """The turns matching `query` and `filters`, `limit` (1-100) from `offset`, with context."""
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            raise QueryError(f"limit must be 1-{MAX_LIMIT} and offset 0 or more")
        sql, params = self._match(query)
        where, more = _filters(filters or SearchFilters(), self._column)
        sql += where
        total = int(self._read(f"SELECT COUNT(*) {sql}", (*params, *more))[0][0])
        rows = self._read(f"SELECT s.* {sql}{_ORDER} LIMIT ? OFFSET ?", (*params, *more, limit, offset))
        neighbours = self._neighbours(rows)
        recorded = self._recorded({r["call_id"] for r in rows if r["source"] == "audited"})
        hits = tuple(_hit(r, query, neighbours, recorded) for r in rows)
        return SearchPage(query, hits, total, limit, offset)

    def knows_agent(self, agent: str) -> bool:
        """Whether any indexed call names `agent`."""
        return bool(self._read("SELECT 1 FROM search_turns WHERE agent = ? LIMIT 1", (agent,)))

    def _neighbours(self, rows: Sequence[Any]) -> dict[tuple[str, str], list[Any]]:
        """Every indexed turn of the hits' calls, by (source, call id), in order."""
        calls: dict[str, set[str]] = {}
        for row in rows:
            calls.setdefault(row["source"], set()).add(row["call_id"])
        found: dict[tuple[str, str], list[Any]] = {}
        for source, ids in calls.items():
            marks = ", ".join("?" * len(ids))
            for row in self._read(
                "SELECT source, call_id, turn_ref, speaker, text, start_sec, end_sec FROM search_turns"
                f" WHERE source = ? AND call_id IN ({marks}) ORDER BY call_id, start_sec, turn_ref",
                (source, *sorted(ids)),
            ):
                found.setdefault((row["source"], row["call_id"]), []).append(row)
        return found

    def _recorded(self, call_ids: set[str]) -> set[str]:
        """The audited calls among `call_ids` whose recording is still on disk."""
        if not call_ids:
            return set()
        marks = ", ".join("?" * len(call_ids))
        rows = self._read(f"SELECT id, audio_path FROM audited_calls WHERE id IN ({marks})", sorted(call_ids))
        return {r["id"] for r in rows if Path(r["audio_path"]).is_file()}


class SQLiteCallSearch(CallSearch):
    """FTS5: each term a quoted string of stems (a phrase when it has several), all required.

    Filters name their columns as ``+s.col``, which keeps SQLite from walking a filter's index (all live
    turns, say) and asking FTS5 about each row, seconds on 130 000 turns; the full-text match drives."""

    _column = "+s.{}"

    def _match(self, query: SearchQuery) -> tuple[str, list[Any]]:
        expression = " ".join('"' + " ".join(run).replace('"', '""') + '"' for run in query.terms)
        return (
            "FROM search_fts JOIN search_turns s ON s.id = search_fts.rowid WHERE search_fts MATCH ?",
            [expression],
        )


class PostgresCallSearch(CallSearch):
    """tsquery built only by ``plainto_tsquery``/``phraseto_tsquery`` from stems: no syntax to escape."""

    def _match(self, query: SearchQuery) -> tuple[str, list[Any]]:
        parts, params = [], []
        if query.words:
            parts.append("plainto_tsquery('simple', ?)")
            params.append(" ".join(query.words))
        for phrase in query.phrases:
            parts.append("phraseto_tsquery('simple', ?)")
            params.append(" ".join(phrase))
        return f"FROM search_turns s WHERE s.tsv @@ ({' && '.join(parts)})", params


def open_search(location: str | Path) -> CallSearch:
    """The search of the database at `location`, for its kind of database."""
    try:
        dialect, _ = parse_location(location)
    except ValueError as exc:
        raise SearchError(str(exc)) from None
    return SQLiteCallSearch(location) if dialect == "sqlite" else PostgresCallSearch(location)


def _filters(filters: SearchFilters, column: str) -> tuple[str, list[Any]]:
    where, params = [], []
    for name, value in (("speaker", filters.speaker), ("agent", filters.agent), ("source", filters.source)):
        if value is not None:
            where.append(f"{column.format(name)} = ?")
            params.append(value)
    if filters.category is not None:
        where.append(f"{column.format('categories')} LIKE ?")
        params.append(f"% {filters.category} %")
    if filters.since is not None:
        where.append(f"{column.format('call_date')} >= ?")
        params.append(filters.since)
    if filters.until is not None:
        where.append(f"{column.format('call_date')} < ?")
        params.append(filters.until)
    return "".join(f" AND {w}" for w in where), params


def _context(row: Any) -> ContextTurn:
    return ContextTurn(row["speaker"], row["text"], row["start_sec"], row["end_sec"])


def _hit(
    row: Any, query: SearchQuery, neighbours: dict[tuple[str, str], list[Any]], recorded: set[str]
) -> SearchHit:
    turns = neighbours.get((row["source"], row["call_id"]), [])
    place = next((i for i, t in enumerate(turns) if t["turn_ref"] == row["turn_ref"]), None)
    before = _context(turns[place - 1]) if place is not None and place > 0 else None
    after = _context(turns[place + 1]) if place is not None and place + 1 < len(turns) else None
    return SearchHit(
        call_id=row["call_id"],
        source=row["source"],
        turn_ref=row["turn_ref"],
        agent=row["agent"],
        speaker=row["speaker"],
        start=row["start_sec"],
        end=row["end_sec"],
        text=row["text"],
        segments=tuple(highlight(row["text"], query)),
        categories=tuple(row["categories"].split()),
        call_date=row["call_date"],
        before=before,
        after=after,
        has_recording=row["call_id"] in recorded,
    )
