"""What a trend asks for, checked before any SQL runs: the metric, the grouping, and the filters.

Metrics (each a number per group, with the counts it is made of):

- ``alerts``: alerts per 100 calls. An alert is one raised on a live call (every one the agent saw) or a
  flag of an audited recording that a reviewer has not dismissed (a dismissed flag was a false alarm);
  ``category`` counts only that alert category.
- ``pass``: the share of scored calls, in %, whose QA scorecard passed (score >= ``scorecard_pass``,
  by default 1.0: no item failed). Audited calls are scored by their audit, live calls once they end.
- ``practices``: per good-practice category (apology, timeline, escalation offer…), the share of scored
  calls, in %, in which the agent was heard using it.

Groups: ``category`` (the alert or practice category; not for ``pass``), ``agent``, ``team``, ``day`` or
``week`` (UTC dates of the calls' start; a week is named by its Monday). Filters: ``since``/``until``
(dates, both included), ``agent``, ``team``, ``category``, ``source`` (``live``, ``audited`` or ``all``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, get_args

from models.packs import Kind, PhrasePack

Metric = Literal["alerts", "pass", "practices"]
Group = Literal["category", "agent", "team", "day", "week"]
Source = Literal["all", "live", "audited"]
METRICS: tuple[str, ...] = get_args(Metric)
GROUPS: tuple[str, ...] = get_args(Group)
SOURCES: tuple[str, ...] = get_args(Source)
NO_AGENT = "no agent"  # the group of calls that name no agent (names cannot contain spaces)
NO_TEAM = "no team"  # the group of agents without a team
UNITS = {
    "alerts": "alerts per 100 calls",
    "pass": "% of scored calls that passed the scorecard",
    "practices": "% of scored calls with the practice",
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class StatsError(ValueError):
    """A trend that cannot be computed as asked; the message says which parameter is wrong and why."""


@dataclass(frozen=True)
class Taxonomy:
    """The categories trends know, in the pack's order: alert categories (forbidden, trigger) and good
    practices, with their titles."""

    alerts: tuple[str, ...]
    practices: tuple[str, ...]
    titles: dict[str, str]
    kinds: dict[str, str]  # forbidden | trigger | practice

    @classmethod
    def of(cls, pack: PhrasePack) -> Taxonomy:
        return cls(
            alerts=tuple(pack.alert_ids),
            practices=tuple(pack.ids_of(Kind.PRACTICE)),
            titles={c.id: c.title.get("en") or c.title.get("ru") for c in pack.categories},
            kinds={c.id: c.kind.value for c in pack.categories},
        )


@dataclass(frozen=True)
class StatsQuery:
    """One trend: `metric` grouped by `group` over the calls the filters keep (``until`` included)."""

    metric: Metric = "alerts"
    group: Group = "category"
    since: date | None = None
    until: date | None = None
    agent: str | None = None
    team: str | None = None
    category: str | None = None
    source: Source = "all"

    @property
    def until_exclusive(self) -> date | None:
        return None if self.until is None else self.until + timedelta(days=1)


def parse_query(
    taxonomy: Taxonomy,
    *,
    metric: str = "alerts",
    group: str = "category",
    since: str | None = None,
    until: str | None = None,
    agent: str | None = None,
    team: str | None = None,
    category: str | None = None,
    source: str = "all",
) -> StatsQuery:
    """A checked StatsQuery from request parameters (empty strings count as absent); StatsError names
    the first wrong parameter. Whether `agent` and `team` exist is checked against the data later."""
    metric, group, source = (
        _one_of("metric", metric, METRICS),
        _one_of("group", group, GROUPS),
        _one_of("source", source, SOURCES),
    )
    start, end = _date("since", since), _date("until", until)
    if start is not None and end is not None and end < start:
        raise StatsError(f"until ({end}) is before since ({start}): the date range is the wrong way round")
    if metric == "pass" and group == "category":
        raise StatsError("metric=pass has no categories: group by agent, team, day or week")
    category = category or None
    if category is not None:
        _check_category(taxonomy, metric, category)
    return StatsQuery(metric, group, start, end, agent or None, team or None, category, source)  # type: ignore[arg-type]


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise StatsError(f"unknown {name} {value!r}: one of {', '.join(allowed)}")
    return value


def _date(name: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        if not _DATE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise StatsError(f"{name} must be a date as YYYY-MM-DD, got {value!r}") from None


def _check_category(taxonomy: Taxonomy, metric: str, category: str) -> None:
    if category not in taxonomy.alerts and category not in taxonomy.practices:
        raise StatsError(
            f"unknown category {category!r}: one of {', '.join(taxonomy.alerts + taxonomy.practices)}"
        )
    if metric == "alerts" and category not in taxonomy.alerts:
        raise StatsError(f"{category!r} is a good practice, not an alert: use metric=practices")
    if metric == "practices" and category not in taxonomy.practices:
        raise StatsError(f"{category!r} is an alert, not a good practice: use metric=alerts")
    if metric == "pass":
        raise StatsError("metric=pass does not filter by category (the scorecard is of the whole call)")
