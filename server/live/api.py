"""Live-call routes: the audio stream, the event feed for sidebars, and the call list.

The WebSocket handlers only move data: frames to the call session, events from the hub to the socket.
Problems with what a client sent become ``error`` events (the call goes on where it can) or a close with
a code from :class:`server.live.protocol.CloseCode`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from audio.codecs import FrameError
from server.access.auth import AuthError, authenticate, authorize_socket, refuse_socket, require
from server.access.store import Principal, Role
from server.live.calls import CallBusyError, CallRegistry, TooManyCallsError
from server.live.hub import Listener
from server.live.protocol import (
    CloseCode,
    ErrorMessage,
    ProtocolError,
    StartMessage,
    StopMessage,
    parse_control,
    validate_call_id,
)
from server.live.session import CallSession
from server.live.store import CallExistsError, CallRecord

logger = logging.getLogger(__name__)

router = APIRouter()
STREAMERS = (Role.TELEPHONY,)  # audio in: an integration's token (admins too)
WATCHERS = (Role.AGENT, Role.REVIEWER)  # events and call records out
WATCHERS_HTTP = require(*WATCHERS)
RECHECK_S = 30.0  # how often an open sidebar's credential is checked again


def registry_of(connection: WebSocket | Request) -> CallRegistry:
    return connection.app.state.calls


# -- the audio stream ---------------------------------------------------------------------------------


@router.websocket("/v1/calls/{call_id}/stream")
async def stream(ws: WebSocket, call_id: str) -> None:
    """``start`` text frame, binary audio frames, ``stop``; events come back on the same socket."""
    if await _accept(ws, call_id, STREAMERS) is None:
        return
    try:
        start = await _read_start(ws)
        session = await registry_of(ws).open(call_id, start)
    except (ProtocolError, CallExistsError, CallBusyError, TooManyCallsError) as exc:
        code = CloseCode.BAD_DATA if isinstance(exc, ProtocolError) else CloseCode.POLICY
        await refuse_socket(ws, str(exc), code)
        return
    except WebSocketDisconnect:
        return
    await _serve_stream(ws, session)


async def _read_start(ws: WebSocket) -> StartMessage:
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("text") is None:
        raise ProtocolError("the first frame must be a 'start' text frame; audio came before it")
    control = parse_control(message["text"])
    if not isinstance(control, StartMessage):
        raise ProtocolError("the first frame must be a 'start' text frame, got 'stop'")
    return control


async def _serve_stream(ws: WebSocket, session: CallSession) -> None:
    registry = registry_of(ws)
    listener = registry.hub.subscribe(session.call_id, backlog=[])
    sender = asyncio.create_task(send_events(ws, listener))
    normal = False
    code = CloseCode.NORMAL
    try:
        normal = await _receive_audio(ws, session, listener)
        await registry.close(session, normal=normal)
    except Exception:  # the boundary: log it, tell the client, close 1011; the call keeps what it had
        logger.exception("call %s failed", session.call_id)
        code = CloseCode.SERVER_ERROR
        listener.offer(ErrorMessage(message="internal server error; the call so far is kept").to_json())
        await registry.fail(session)
    finally:
        registry.hub.unsubscribe(listener)
        listener.offer(None)
        await sender
    if ws.client_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError):
            await ws.close(code)


async def _receive_audio(ws: WebSocket, session: CallSession, listener: Listener) -> bool:
    """Frames until ``stop`` (True) or the client goes away (False); bad frames are answered, not fatal."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            logger.info("call %s: client disconnected mid-call", session.call_id)
            return False
        try:
            if message.get("bytes") is not None:
                session.feed(message["bytes"])
                continue
            control = parse_control(message.get("text") or "")
            if isinstance(control, StopMessage):
                return True
            raise ProtocolError("the call has already started: a second 'start' is not allowed")
        except (FrameError, ProtocolError) as exc:
            listener.offer(ErrorMessage(message=str(exc)).to_json())


async def send_events(ws: WebSocket, listener: Listener) -> None:
    """Send the listener's events until its end marker; a socket that went away just stops it."""
    while (event := await listener.queue.get()) is not None:
        try:
            await ws.send_text(event)
        except (WebSocketDisconnect, RuntimeError, OSError):  # closed under us: nothing more to deliver
            return
    reason = listener.refused or (listener.overflowed and "too far behind; reconnect to be replayed")
    if reason and ws.client_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError):
            await ws.close(CloseCode.POLICY, reason=reason[:120])


async def _accept(ws: WebSocket, call_id: str, roles: tuple[Role, ...]) -> Principal | None:
    """Accept the socket and check who is on it; None (and closed with 1008) if the credential does not
    allow one of `roles` or the call id in the URL is not valid."""
    await ws.accept()
    principal = await authorize_socket(ws, roles)
    if principal is None:
        return None
    try:
        validate_call_id(call_id)
    except ProtocolError as exc:
        await refuse_socket(ws, str(exc))
        return None
    return principal


# -- sidebars -----------------------------------------------------------------------------------------


@router.websocket("/v1/calls/{call_id}/events")
async def events(ws: WebSocket, call_id: str) -> None:
    """The call's events for a sidebar: first the call so far, then live ones until ``end``.

    A sidebar may join before the call starts (it waits), during it, or after it (replay, then ``end``).
    """
    principal = await _accept(ws, call_id, WATCHERS)
    if principal is None:
        return
    registry = registry_of(ws)
    owner = principal.name if principal.role is Role.AGENT else None
    live = registry.hub.is_live(call_id)
    if live:
        listener = registry.hub.subscribe(call_id, owner=owner)
    else:
        backlog = await asyncio.to_thread(registry.replay, call_id, True)
        listener = registry.hub.subscribe(call_id, backlog=backlog, owner=owner)
    # Whose call it is is read only now that the listener is subscribed: a call that opens from here on
    # is checked by the hub (EventHub.open cuts another agent off), one that opened before is seen here.
    record = await asyncio.to_thread(registry.call_record, call_id)
    if record is not None and not may_watch(principal, record):
        registry.hub.unsubscribe(listener)  # nothing of it was sent: the sender has not started
        await refuse_socket(ws, f"call {call_id!r} belongs to another agent")
        return
    if not live and record is not None and record.status == "completed":
        listener.offer(None)
    sender = asyncio.create_task(send_events(ws, listener))
    receiver = asyncio.create_task(_until_disconnect(ws))
    recheck = asyncio.create_task(_recheck_credential(ws, listener))
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        registry.hub.unsubscribe(listener)
        for task in (receiver, sender, recheck):
            task.cancel()
    if ws.client_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError):
            await ws.close(CloseCode.NORMAL)


async def _recheck_credential(ws: WebSocket, listener: Listener) -> None:
    """A sidebar stays open for hours: every RECHECK_S its token or session is checked again, so a
    revoked user or an ended session stops receiving the call (error event, then close 1008)."""
    while True:
        await asyncio.sleep(RECHECK_S)
        try:
            await authenticate(ws, WATCHERS)
        except AuthError as exc:
            listener.refuse(str(exc))
            return


async def _until_disconnect(ws: WebSocket) -> None:
    """Sidebars only listen; whatever they send is ignored until they go away."""
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass


# -- REST ---------------------------------------------------------------------------------------------


def may_watch(principal: Principal, record: CallRecord) -> bool:
    """Agents see their own calls and calls with no agent named; reviewers and admins see every call."""
    return principal.role is not Role.AGENT or record.agent in (None, principal.name)


def _call_json(record: CallRecord) -> dict[str, Any]:
    return {
        "call_id": record.call_id,
        "status": record.status,
        "started_at": record.created_at,
        "ended_at": record.ended_at,
        "roles": list(record.roles),
        "language": record.language,
        "agent": record.agent,
    }


@router.get("/v1/calls")
async def list_calls(
    request: Request,
    principal: Annotated[Principal, WATCHERS_HTTP],
    active: Annotated[bool, Query(description="only calls streaming now")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, list[dict[str, Any]]]:
    """Calls, newest first (for an agent: their own and those with no agent named)."""
    store = registry_of(request).engine.store
    agent = principal.name if principal.role is Role.AGENT else None
    records = await asyncio.to_thread(
        functools.partial(store.list_calls, limit, offset, agent=agent, active=active)
    )
    return {"calls": [_call_json(r) for r in records]}


@router.get("/v1/calls/{call_id}")
async def get_call(
    request: Request, call_id: str, principal: Annotated[Principal, WATCHERS_HTTP]
) -> dict[str, Any]:
    """One call with its final turns and alerts."""
    try:
        validate_call_id(call_id)
    except ProtocolError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    store = registry_of(request).engine.store
    record = await asyncio.to_thread(store.get_call, call_id)
    if record is None:
        raise HTTPException(status_code=404, detail=f"unknown call id {call_id!r}")
    if not may_watch(principal, record):
        raise HTTPException(status_code=403, detail=f"call {call_id!r} belongs to another agent")
    turns = await asyncio.to_thread(store.list_turns, call_id)
    alerts = await asyncio.to_thread(store.list_alerts, call_id)
    return {
        **_call_json(record),
        "turns": [{"speaker": t.speaker, "text": t.text, "start": t.start, "end": t.end} for t in turns],
        "alerts": [
            {
                "kind": a.kind,
                "category": a.category,
                "title": a.title,
                "speaker": a.speaker,
                "text": a.text,
                "start": a.start,
                "end": a.end,
                "score": a.score,
                "suggestions": list(a.suggestions),
                "span": list(a.span),
                "pack_version": a.pack_version,
            }
            for a in alerts
        ],
    }
