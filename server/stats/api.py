"""Trend routes: ``GET /v1/stats`` (JSON, or CSV with ``format=csv``), ``GET /v1/stats.csv``, the calls
that raised alerts ``GET /v1/stats/calls``, and what the filters may name ``GET /v1/stats/options``.

Reviewers, trainers and admins see every call. An agent sees only their own: without ``agent`` the
numbers are theirs, naming another agent (or a team) is 403, and the server applies this whatever page
asked. Parameters that are wrong (an unknown metric, group, category, agent or team; a date that is not
YYYY-MM-DD; ``until`` before ``since``) are 422 with a message naming the parameter.
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import asdict, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from server.access.auth import require
from server.access.store import Principal, Role
from server.stats.aggregate import AlertedCall, StatsReader, StatsResult
from server.stats.query import NO_AGENT, NO_TEAM, StatsError, StatsQuery, Taxonomy, parse_query

router = APIRouter(prefix="/v1/stats", tags=["stats"])
Viewer = Annotated[Principal, require(Role.AGENT, Role.REVIEWER, Role.TRAINER)]


def _reader(request: Request) -> StatsReader:
    return request.app.state.stats


def taxonomy_of(request: Request) -> Taxonomy:
    """The categories of the active pack."""
    return Taxonomy.of(request.app.state.calls.engine.classifier.pack)


class StatsParams:
    """The query parameters every trend route shares."""

    def __init__(
        self,
        metric: Annotated[str, Query(description="alerts | pass | practices")] = "alerts",
        group: Annotated[str, Query(description="category | agent | team | day | week")] = "category",
        since: Annotated[str | None, Query(description="first date, YYYY-MM-DD (UTC)")] = None,
        until: Annotated[str | None, Query(description="last date, YYYY-MM-DD, included")] = None,
        agent: Annotated[str | None, Query(description=f"an agent's user name, or '{NO_AGENT}'")] = None,
        team: Annotated[str | None, Query(description=f"a team, or '{NO_TEAM}'")] = None,
        category: Annotated[str | None, Query(description="an alert or practice category id")] = None,
        source: Annotated[str, Query(description="all | live | audited")] = "all",
    ) -> None:
        self.values = {
            "metric": metric,
            "group": group,
            "since": since,
            "until": until,
            "agent": agent,
            "team": team,
            "category": category,
            "source": source,
        }


Params = Annotated[StatsParams, Depends()]


async def checked_query(request: Request, principal: Principal, params: StatsParams) -> StatsQuery:
    """The request's StatsQuery, limited to the principal's own calls when they are an agent."""
    try:
        query = parse_query(taxonomy_of(request), **params.values)
    except StatsError as exc:
        raise HTTPException(422, str(exc)) from None
    if principal.role is Role.AGENT:
        if query.agent not in (None, principal.name):
            raise HTTPException(403, "an agent sees only their own numbers and calls")
        if query.team is not None:
            raise HTTPException(403, "an agent sees only their own numbers, not a team's")
        return replace(query, agent=principal.name)
    reader = _reader(request)
    if query.agent is not None and not await asyncio.to_thread(reader.known_agent, query.agent):
        raise HTTPException(422, f"unknown agent {query.agent!r}: no user or call has that agent")
    if query.team is not None and not await asyncio.to_thread(reader.known_team, query.team):
        raise HTTPException(422, f"unknown team {query.team!r}: no user is in that team")
    return query


@router.get("")
async def stats(
    request: Request,
    principal: Viewer,
    params: Params,
    format: Annotated[str, Query(pattern="^(json|csv)$", description="json | csv")] = "json",
) -> Any:
    """One trend: `metric` per `group` over the calls the filters keep (see the README's Trends)."""
    query = await checked_query(request, principal, params)
    result = await asyncio.to_thread(_reader(request).compute, query, taxonomy_of(request))
    return _csv_response(result) if format == "csv" else result_json(result)


@router.get(".csv", include_in_schema=True)
async def stats_csv(request: Request, principal: Viewer, params: Params) -> Response:
    """The same numbers as ``GET /v1/stats``, as CSV."""
    query = await checked_query(request, principal, params)
    return _csv_response(await asyncio.to_thread(_reader(request).compute, query, taxonomy_of(request)))


@router.get("/calls")
async def alerted_calls(
    request: Request,
    principal: Viewer,
    params: Params,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The newest calls that raised alerts, with their alerts (an agent: their own only)."""
    query = await checked_query(request, principal, params)
    calls = await asyncio.to_thread(_reader(request).alerted_calls, query, limit)
    return {"agent": query.agent, "calls": [_call_json(call) for call in calls]}


@router.get("/options")
async def options(request: Request, principal: Viewer) -> dict[str, Any]:
    """What the filters may name: agents and teams (an agent: only themselves), the categories."""
    reader, taxonomy = _reader(request), taxonomy_of(request)
    if principal.role is Role.AGENT:
        team = await asyncio.to_thread(reader.team_of, principal.name)
        agents, teams = [principal.name], [team] if team else []
    else:
        agents = await asyncio.to_thread(reader.agents)
        teams = await asyncio.to_thread(reader.teams)
    return {
        "me": {"name": principal.name, "role": principal.role.value},
        "agents": agents,
        "teams": teams,
        "alerts": [
            {"id": c, "title": taxonomy.titles.get(c, c), "kind": taxonomy.kinds[c]} for c in taxonomy.alerts
        ],
        "practices": [{"id": c, "title": taxonomy.titles.get(c, c)} for c in taxonomy.practices],
        "no_agent": NO_AGENT,
        "no_team": NO_TEAM,
    }


def result_json(result: StatsResult) -> dict[str, Any]:
    query = result.query
    return {
        "metric": query.metric,
        "group": query.group,
        "unit": result.unit,
        "filters": {
            "since": query.since and query.since.isoformat(),
            "until": query.until and query.until.isoformat(),
            "agent": query.agent,
            "team": query.team,
            "category": query.category,
            "source": query.source,
        },
        "rows": [asdict(row) for row in result.rows],
        "total": asdict(result.total),
    }


def result_csv(result: StatsResult) -> str:
    """The rows as CSV: the group's name, the practice (when there are several), calls, count, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    series = any(row.series is not None for row in result.rows)
    writer.writerow([result.query.group, *(["practice"] if series else []), "calls", "count", "value"])
    for row in result.rows:
        value = "" if row.value is None else f"{row.value:.2f}"
        writer.writerow([row.key, *([row.series] if series else []), row.calls, row.count, value])
    return out.getvalue()


def _csv_response(result: StatsResult) -> Response:
    name = f"callbuffer-{result.query.metric}-by-{result.query.group}.csv"
    return Response(
        result_csv(result),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _call_json(call: AlertedCall) -> dict[str, Any]:
    return asdict(call)
