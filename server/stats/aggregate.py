"""The trends' numbers, counted in SQL over both kinds of call in the server's shared database:

- live calls (:mod:`server.live.store`): every call that is no longer active, its alerts, and once it
  ended its scorecard score and practices (:mod:`server.stats.scoring`);
- audited recordings (:mod:`server.audits.store`): every finished audit, its flags except those a reviewer
  dismissed, its scorecard score and the practices its report found.

A call's agent is ``calls.agent`` / ``audited_calls.agent``; their team is ``users.team`` (an agent with
no user record or no team is in :data:`~server.stats.query.NO_TEAM`). Each trend takes two queries at
most (calls per group, alerts per group and category), written once for SQLite and PostgreSQL; days are
counted in SQL and folded into weeks here, and periods without calls are filled in so a plot over time
has every day or week on its axis.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from server.stats.query import NO_AGENT, NO_TEAM, UNITS, StatsQuery, Taxonomy
from server.storage.database import DatabaseError, open_database

logger = logging.getLogger(__name__)

MAX_FILLED_PERIODS = 1100  # a longer range shows only the days or weeks that have calls
MAX_LISTED_CALLS = 500


class StatsStoreError(DatabaseError):
    """The trends could not be read from the database."""


@dataclass(frozen=True)
class StatsRow:
    """One number of a trend: `value` (see the result's unit) made of `count` over `calls`.

    `key` is the group (a category, agent, team, day or a week's Monday); `series` the practice for
    ``practices`` grouped by anything but category, else None. `value` is None when `calls` is 0."""

    key: str
    series: str | None
    calls: int
    count: int
    value: float | None


@dataclass(frozen=True)
class StatsResult:
    query: StatsQuery
    unit: str
    rows: tuple[StatsRow, ...]
    total: StatsRow


@dataclass(frozen=True)
class CallAlert:
    category: str
    kind: str
    speaker: str
    text: str
    start: float


@dataclass(frozen=True)
class AlertedCall:
    """A call that raised alerts (live) or has flags not dismissed (audited), with them, in time order."""

    source: str  # live | audited
    id: str
    agent: str | None
    created_at: str
    score: float | None
    alerts: tuple[CallAlert, ...] = field(default_factory=tuple)


@dataclass
class _Counts:
    calls: int = 0
    scored: int = 0
    passed: int = 0
    practiced: int = 0  # scored calls with any practice
    practices: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)

    def add(self, other: _Counts) -> None:
        self.calls += other.calls
        self.scored += other.scored
        self.passed += other.passed
        self.practiced += other.practiced
        for name, n in other.practices.items():
            self.practices[name] = self.practices.get(name, 0) + n
        for name, n in other.alerts.items():
            self.alerts[name] = self.alerts.get(name, 0) + n


_SOURCES = {  # source: (calls table, its id column, which calls count, alert rows of a call)
    "live": ("calls", "call_id", "c.status != 'active'", "alerts al WHERE al.call_id = c.call_id"),
    "audited": (
        "audited_calls",
        "id",
        "c.status = 'done'",
        "flags al WHERE al.call_id = c.id AND al.status != 'dismissed'",
    ),
}
_KEYS = {
    "agent": "COALESCE(c.agent, '')",
    "team": "COALESCE(u.team, '')",
    "day": "SUBSTR(c.created_at, 1, 10)",
    "week": "SUBSTR(c.created_at, 1, 10)",
    "category": "''",
}


class StatsReader:
    """Reads trends from the database at `location` (the stores' tables must exist: open the live,
    audit and user stores first, as the server does). A call passes its scorecard at `pass_score`."""

    def __init__(self, location: str | Path, pass_score: float = 1.0) -> None:
        self._db = open_database(location, error=StatsStoreError)
        self.pass_score = pass_score

    def close(self) -> None:
        self._db.close()

    # -- trends ---------------------------------------------------------------------------------------

    def compute(self, query: StatsQuery, taxonomy: Taxonomy) -> StatsResult:
        """The trend `query` asks for; categories not in `taxonomy` (an older pack's) are kept as found."""
        practices = (
            (query.category,) if query.metric == "practices" and query.category else taxonomy.practices
        )
        groups = self._call_counts(query, practices)
        if query.metric == "alerts":
            for key, category, n in self._alert_counts(query):
                groups.setdefault(key, _Counts()).alerts[category] = n
        if query.group == "week":
            groups = _by_week(groups)
        if query.group in ("day", "week"):
            groups = _filled(groups, query)
        total = _Counts()
        for counts in groups.values():
            total.add(counts)
        rows = _rows(query, taxonomy, practices, groups, total)
        return StatsResult(query, UNITS[query.metric], tuple(rows), _total_row(query, total))

    def _call_counts(self, query: StatsQuery, practices: Sequence[str]) -> dict[str, _Counts]:
        columns = [
            "COUNT(*)",
            "COUNT(score)",
            "SUM(CASE WHEN score >= ? THEN 1 ELSE 0 END)",
            "SUM(CASE WHEN TRIM(practices) != '' THEN 1 ELSE 0 END)",
            *("SUM(CASE WHEN practices LIKE ? THEN 1 ELSE 0 END)" for _ in practices),
        ]
        parts, params = [], [self.pass_score, *(f"% {p} %" for p in practices)]
        for source in _sources(query):
            table, _, counted, _ = _SOURCES[source]
            where, where_params = _filters(query, counted)
            parts.append(
                f"SELECT {_KEYS[query.group]} AS k, c.score AS score, c.practices AS practices"
                f" FROM {table} c{_users_join(query)} WHERE {where}"
            )
            params += where_params
        sql = f"SELECT k, {', '.join(columns)} FROM ({' UNION ALL '.join(parts)}) x GROUP BY k"
        groups = {}
        for row in self._db.read(sql, params):
            groups[row[0]] = _Counts(
                calls=int(row[1]),
                scored=int(row[2]),
                passed=int(row[3] or 0),
                practiced=int(row[4] or 0),
                practices={p: int(row[5 + i] or 0) for i, p in enumerate(practices)},
            )
        return groups

    def _alert_counts(self, query: StatsQuery) -> list[tuple[str, str, int]]:
        parts, params = [], []
        for source in _sources(query):
            table, id_column, counted, _ = _SOURCES[source]
            alerts = "alerts" if source == "live" else "flags"
            where, where_params = _filters(query, counted)
            if source == "audited":
                where += " AND al.status != 'dismissed'"
            if query.category:
                where += " AND al.category = ?"
                where_params.append(query.category)
            parts.append(
                f"SELECT {_KEYS[query.group]} AS k, al.category AS category FROM {alerts} al"
                f" JOIN {table} c ON c.{id_column} = al.call_id{_users_join(query)} WHERE {where}"
            )
            params += where_params
        sql = f"SELECT k, category, COUNT(*) FROM ({' UNION ALL '.join(parts)}) x GROUP BY k, category"
        return [(row[0], row[1], int(row[2])) for row in self._db.read(sql, params)]

    # -- calls that raised alerts -----------------------------------------------------------------------

    def alerted_calls(self, query: StatsQuery, limit: int = 50) -> list[AlertedCall]:
        """The newest calls (up to `limit`) the filters keep that raised alerts (of `query.category`, if
        set), each with its alerts; the metric and group of `query` do not matter here."""
        limit = max(1, min(limit, MAX_LISTED_CALLS))
        found: list[AlertedCall] = []
        for source in _sources(query):
            table, id_column, counted, alert_rows = _SOURCES[source]
            where, params = _filters(query, counted)
            exists = f"SELECT 1 FROM {alert_rows}"
            if query.category:
                exists += " AND al.category = ?"
                params.append(query.category)
            rows = self._db.read(
                f"SELECT c.{id_column} AS id, c.agent AS agent, c.created_at AS created_at, c.score AS score"
                f" FROM {table} c{_users_join(query)} WHERE {where} AND EXISTS ({exists})"
                f" ORDER BY c.created_at DESC, c.{id_column} LIMIT ?",
                (*params, limit),
            )
            alerts = self._alerts_of(source, [row["id"] for row in rows], query.category)
            found += [
                AlertedCall(source, r["id"], r["agent"], r["created_at"], r["score"], alerts.get(r["id"], ()))
                for r in rows
            ]
        found.sort(key=lambda call: (call.created_at, call.id), reverse=True)
        return found[:limit]

    def _alerts_of(
        self, source: str, ids: list[str], category: str | None
    ) -> dict[str, tuple[CallAlert, ...]]:
        if not ids:
            return {}
        table = "alerts" if source == "live" else "flags"
        where = f"call_id IN ({', '.join('?' for _ in ids)})"
        params: list[object] = list(ids)
        if source == "audited":
            where += " AND status != 'dismissed'"
        if category:
            where += " AND category = ?"
            params.append(category)
        rows = self._db.read(
            f"SELECT call_id, category, kind, speaker, text, start_sec FROM {table} WHERE {where}"
            " ORDER BY call_id, start_sec, id",
            params,
        )
        alerts: dict[str, list[CallAlert]] = defaultdict(list)
        for r in rows:
            alerts[r["call_id"]].append(
                CallAlert(r["category"], r["kind"], r["speaker"], r["text"], r["start_sec"])
            )
        return {call_id: tuple(items) for call_id, items in alerts.items()}

    # -- who and what there is to filter by -------------------------------------------------------------

    def agents(self) -> list[str]:
        """Every agent a filter may name: agent users, and agents named on calls (who may have no user)."""
        rows = self._db.read(
            "SELECT name FROM users WHERE role = 'agent'"
            " UNION SELECT agent FROM calls WHERE agent IS NOT NULL"
            " UNION SELECT agent FROM audited_calls WHERE agent IS NOT NULL"
        )
        return sorted(row[0] for row in rows)

    def teams(self) -> list[str]:
        return sorted(
            row[0] for row in self._db.read("SELECT DISTINCT team FROM users WHERE team IS NOT NULL")
        )

    def known_agent(self, name: str) -> bool:
        if name == NO_AGENT:
            return True
        for table, column in (("users", "name"), ("calls", "agent"), ("audited_calls", "agent")):
            if self._db.read(f"SELECT 1 FROM {table} WHERE {column} = ? LIMIT 1", (name,)):
                return True
        return False

    def known_team(self, team: str) -> bool:
        return team == NO_TEAM or bool(self._db.read("SELECT 1 FROM users WHERE team = ? LIMIT 1", (team,)))

    def sizes(self) -> dict[str, int]:
        """How much there is to count (for benchmarks and logs)."""
        counts = {
            "live calls": "SELECT COUNT(*) FROM calls",
            "scored live calls": "SELECT COUNT(*) FROM calls WHERE score IS NOT NULL",
            "live alerts": "SELECT COUNT(*) FROM alerts",
            "audited calls": "SELECT COUNT(*) FROM audited_calls",
            "flags": "SELECT COUNT(*) FROM flags",
        }
        return {what: int(self._db.read(sql)[0][0]) for what, sql in counts.items()}

    def team_of(self, agent: str) -> str | None:
        rows = self._db.read("SELECT team FROM users WHERE name = ?", (agent,))
        return rows[0]["team"] if rows else None


def _sources(query: StatsQuery) -> tuple[str, ...]:
    return ("live", "audited") if query.source == "all" else (query.source,)


def _users_join(query: StatsQuery) -> str:
    """The users table is joined only when the team is asked for (grouped or filtered by)."""
    return " LEFT JOIN users u ON u.name = c.agent" if query.group == "team" or query.team else ""


def _filters(query: StatsQuery, counted: str) -> tuple[str, list[object]]:
    """The WHERE clause (on calls aliased ``c``, users ``u``) of the query's filters, and its params."""
    where, params = [counted], []
    if query.since is not None:
        where.append("c.created_at >= ?")
        params.append(query.since.isoformat())
    if query.until_exclusive is not None:
        where.append("c.created_at < ?")
        params.append(query.until_exclusive.isoformat())
    if query.agent == NO_AGENT:
        where.append("c.agent IS NULL")
    elif query.agent is not None:
        where.append("c.agent = ?")
        params.append(query.agent)
    if query.team == NO_TEAM:
        where.append("u.team IS NULL")
    elif query.team is not None:
        where.append("u.team = ?")
        params.append(query.team)
    return " AND ".join(where), params


def _by_week(days: dict[str, _Counts]) -> dict[str, _Counts]:
    weeks: dict[str, _Counts] = {}
    for day, counts in days.items():
        weeks.setdefault(_monday(date.fromisoformat(day)).isoformat(), _Counts()).add(counts)
    return weeks


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _filled(groups: dict[str, _Counts], query: StatsQuery) -> dict[str, _Counts]:
    """Every day or week from `since` (else the first with calls) to `until` (else the last), empty ones
    included, unless that is more than MAX_FILLED_PERIODS."""
    known = sorted(groups)
    first = query.since or (date.fromisoformat(known[0]) if known else None)
    last = query.until or (date.fromisoformat(known[-1]) if known else None)
    if first is None or last is None:
        return groups
    step = timedelta(days=7 if query.group == "week" else 1)
    if query.group == "week":
        first, last = _monday(first), _monday(last)
    if (last - first) / step > MAX_FILLED_PERIODS:
        return groups
    filled, day = {}, first
    while day <= last:
        filled[day.isoformat()] = groups.get(day.isoformat(), _Counts())
        day += step
    return filled


def _rows(
    query: StatsQuery,
    taxonomy: Taxonomy,
    practices: Sequence[str],
    groups: dict[str, _Counts],
    total: _Counts,
) -> list[StatsRow]:
    keys = _ordered_keys(query, groups)
    if query.metric == "alerts":
        if query.group == "category":
            wanted = [query.category] if query.category else _with_extra(taxonomy.alerts, total.alerts)
            return [_row(c, None, total.calls, total.alerts.get(c, 0)) for c in wanted]
        return [_row(_label(query, k), None, groups[k].calls, sum(groups[k].alerts.values())) for k in keys]
    if query.metric == "pass":
        return [_row(_label(query, k), None, groups[k].scored, groups[k].passed) for k in keys]
    if query.group == "category":
        return [_row(p, None, total.scored, total.practices.get(p, 0)) for p in practices]
    return [
        _row(_label(query, k), p, groups[k].scored, groups[k].practices.get(p, 0))
        for k in keys
        for p in practices
    ]


def _total_row(query: StatsQuery, total: _Counts) -> StatsRow:
    if query.metric == "alerts":
        return _row("total", None, total.calls, sum(total.alerts.values()))
    if query.metric == "pass":
        return _row("total", None, total.scored, total.passed)
    practiced = total.practices.get(query.category, 0) if query.category else total.practiced
    return _row("total", None, total.scored, practiced)


def _row(key: str, series: str | None, calls: int, count: int) -> StatsRow:
    return StatsRow(key, series, calls, count, round(100.0 * count / calls, 2) if calls else None)


def _ordered_keys(query: StatsQuery, groups: dict[str, _Counts]) -> list[str]:
    if query.group in ("day", "week"):
        return sorted(groups)
    return sorted(groups, key=lambda k: (k == "", k))  # "no agent" / "no team" last


def _label(query: StatsQuery, key: str) -> str:
    if key:
        return key
    return NO_TEAM if query.group == "team" else NO_AGENT


def _with_extra(known: Iterable[str], found: dict[str, int]) -> list[str]:
    known = list(known)
    return known + sorted(c for c in found if c not in known)
