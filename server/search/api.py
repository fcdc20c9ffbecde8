"""``GET /v1/search``: every stored turn, live and audited, for reviewers, trainers and admins.

Every way a request can be wrong is a 422 whose message says what: an empty or over-long query, one with
no words, a speaker or source that does not exist, an agent no user has and no call names, a category the
active (or default) pack does not have, a date that is not a date, a range the wrong way round, a limit
out of 1-100. Each hit says where to open it: ``open`` is the review page's address for the call at
that moment.
"""

from __future__ import annotations

import asyncio
import logging
import re
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request

from server.access.auth import require
from server.access.store import USER_NAME_PATTERN, AuthStore, Role, UnknownUserError
from server.search.query import QueryError, parse_query
from server.search.store import MAX_LIMIT, CallSearch, ContextTurn, SearchFilters, SearchHit, parse_when

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["search"])
SEARCHERS = require(Role.REVIEWER, Role.TRAINER)


@lru_cache(maxsize=1)
def _default_categories() -> frozenset[str]:
    from models.packs import load_pack

    return frozenset(load_pack().ids)


def known_categories(request: Request) -> frozenset[str]:
    """The categories a filter may name: the active pack's and the default pack's."""
    active = request.app.state.calls.engine.classifier.pack
    return frozenset(active.ids) | _default_categories()


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(422, message)


async def _check_agent(request: Request, search: CallSearch, agent: str) -> None:
    if not re.match(USER_NAME_PATTERN, agent):
        raise _unprocessable(
            f"agent must be a user name (letters, digits and . _ @ -, up to 64); got {agent!r}"
        )
    auth: AuthStore = request.app.state.auth
    try:
        await asyncio.to_thread(auth.get_user, agent)
        return
    except UnknownUserError:
        pass  # not a user (any more): still searchable if some call names it
    if not await asyncio.to_thread(search.knows_agent, agent):
        raise _unprocessable(f"unknown agent {agent!r}: no user has that name and no stored call names it")


def _filters(
    request: Request,
    speaker: str | None,
    agent: str | None,
    category: str | None,
    since: str | None,
    until: str | None,
    source: str | None,
) -> SearchFilters:
    if category is not None and category not in known_categories(request):
        raise _unprocessable(f"unknown category {category!r}; the pack's categories are listed at /v1/packs")
    return SearchFilters(
        speaker=speaker,
        agent=agent,
        category=category,
        since=parse_when(since) if since else None,
        until=parse_when(until, end=True) if until else None,
        source=source,
    )


def _context_json(turn: ContextTurn | None) -> dict[str, Any] | None:
    if turn is None:
        return None
    return {"speaker": turn.speaker, "text": turn.text, "start": turn.start, "end": turn.end}


def open_url(hit: SearchHit) -> str:
    """Where the review page shows the hit: the call, the turn, the moment (seconds)."""
    key = "call" if hit.source == "audited" else "live"
    return "/review?" + urlencode({key: hit.call_id, "turn": hit.turn_ref, "t": f"{hit.start:g}"})


def hit_json(hit: SearchHit) -> dict[str, Any]:
    return {
        "call_id": hit.call_id,
        "source": hit.source,
        "turn": hit.turn_ref,
        "agent": hit.agent,
        "speaker": hit.speaker,
        "start": hit.start,
        "end": hit.end,
        "text": hit.text,
        "segments": [{"text": s.text, "match": s.match} for s in hit.segments],
        "categories": list(hit.categories),
        "call_date": hit.call_date,
        "before": _context_json(hit.before),
        "after": _context_json(hit.after),
        "has_recording": hit.has_recording,
        "open": open_url(hit),
    }


@router.get("/search", dependencies=[SEARCHERS])
async def search(
    request: Request,
    q: Annotated[str, Query(description='words (any inflection, all must match) and "quoted phrases"')],
    speaker: Annotated[str | None, Query(description="agent | customer | unknown")] = None,
    agent: Annotated[str | None, Query(description="the agent user named on the call")] = None,
    category: Annotated[
        str | None, Query(description="an alert or practice category raised on the turn")
    ] = None,
    since: Annotated[str | None, Query(description="calls on or after this date (YYYY-MM-DD or ISO)")] = None,
    until: Annotated[str | None, Query(description="calls up to this date (a date: that whole day)")] = None,
    source: Annotated[str | None, Query(description="live | audited")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> dict[str, Any]:
    """Turns of every stored call matching `q`, newest call first, each with the turns around it, the
    matched words marked (``segments``), and the address that opens the call at that moment."""
    engine: CallSearch = request.app.state.search
    try:
        query = parse_query(q)
        filters = _filters(
            request, speaker or None, agent or None, category or None, since, until, source or None
        )
    except QueryError as exc:
        raise _unprocessable(str(exc)) from None
    if filters.agent is not None:
        await _check_agent(request, engine, filters.agent)
    page = await asyncio.to_thread(engine.search, query, filters, limit, offset)
    return {
        "query": q.strip(),
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "hits": [hit_json(h) for h in page.hits],
    }
