"""The live calls of one server: opening and ending call sessions, and replaying a call to a late listener.

Every way audio can arrive (the callbuffer protocol, Twilio, FreeSWITCH) opens its call here, so they all
share one engine, one event hub and one limit on concurrent calls.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Protocol

from server.live.capacity import refusal
from server.live.engine import LiveEngine
from server.live.hub import EventHub
from server.live.leases import Lease
from server.live.protocol import AlertMessage, EndMessage, StartMessage, TranscriptMessage
from server.live.session import CallSession, CallState
from server.live.store import CallRecord, NoRoomError

logger = logging.getLogger(__name__)


class TooManyCallsError(RuntimeError):
    """The server already carries its configured maximum of live calls."""


class AtCapacityError(TooManyCallsError):
    """The transcription workers already carry the calls they hold at the latency goal
    (:mod:`server.live.capacity`); the message says so and asks to try again."""


class CallBusyError(RuntimeError):
    """The call id is streaming on another connection right now."""


class CallRelay(Protocol):
    """Tells the other front-ends on the same database about this one's calls (server.live.relay).
    Each method only queues a message: it never waits on the network."""

    def opened(self, call_id: str, agent: str | None, seen: int) -> None:
        """The call went live here, its `seen` stored events replayed into this hub."""

    def published(self, call_id: str, event: str, keep: bool) -> None:
        """An event of the call went to this hub's listeners (`keep`: into its replay history)."""

    def closed(self, call_id: str, normal: bool) -> None:
        """The call ended here: ``normal`` after stop, else a disconnect or a fault (resumable)."""


class CallRegistry:
    """Live call sessions by id, the hub their events go through, and the threads their audio runs on."""

    def __init__(self, engine: LiveEngine) -> None:
        self.engine = engine
        self.hub = EventHub()
        self.relay: CallRelay | None = None  # other front-ends' sidebars (PostgreSQL: server.live.relay)
        self._sessions: dict[str, CallSession] = {}
        self._opening: set[str] = set()  # ids reserved while their store records are written
        # Each call's recogniser blocks on its worker thread while its final turn waits for the shared
        # pool, so there is a thread per live call (plus a few for store reads), not one per core.
        self._executor = ThreadPoolExecutor(
            max_workers=engine.settings.max_calls + 4, thread_name_prefix="call"
        )
        # this server's claim on its calls: if it dies, another server (or its next run) ends them
        self.lease = Lease(engine.store)
        self.lease.start()

    async def open(self, call_id: str, start: StartMessage) -> CallSession:
        """Start (or resume after a disconnect) the call; raises TooManyCallsError, CallBusyError, or the
        store's CallExistsError for an id that is in use or finished."""
        if call_id in self._sessions or call_id in self._opening:
            raise CallBusyError(f"call {call_id!r} is already streaming on another connection")
        if len(self._sessions) + len(self._opening) >= self.engine.settings.max_calls:
            raise TooManyCallsError(
                f"the server carries its maximum of {self.engine.settings.max_calls} live calls"
            )
        self._opening.add(call_id)
        try:
            previews = await self._admit(call_id, start)
            history = await self._run(self.replay, call_id, False)
        finally:
            self._opening.discard(call_id)
        offset = _resume_offset(history)
        self.hub.open(call_id, history, agent=start.agent)
        if self.relay is not None:
            self.relay.opened(call_id, start.agent, len(history))
        session = CallSession(
            call_id,
            start,
            self.engine,
            self._emitter(call_id),
            self._executor,
            time_offset=offset,
            previews=previews,
        )
        self._sessions[call_id] = session
        logger.info(
            "call %s started (%s, %d Hz, %s)", call_id, start.encoding, start.sample_rate, start.roles
        )
        return session

    async def _admit(self, call_id: str, start: StartMessage) -> bool:
        """Record the call in the store if it is admitted within capacity (True: with previews); beyond
        it, refuse it with AtCapacityError, or admit it without previews (False) when the settings say so.

        With the cluster's speech workers every server's active calls count, and the store counts them
        and records the call in one transaction that admissions take in turn (two front-ends admitting at
        the same instant cannot both take the last place); else this server's own calls count."""
        capacity = self.engine.capacity
        create = partial(
            self.engine.store.create_call,
            call_id,
            start.roles,
            start.language,
            start.encoding,
            start.sample_rate,
            start.agent,
            self.lease.id,
        )
        if capacity.calls is None:
            await self._run(create)
            return True
        if self.engine.shares_workers:
            try:
                await self._run(partial(create, room=capacity.calls))
                previews = True
            except NoRoomError as exc:
                previews = self._beyond_capacity(call_id, exc.active)
                await self._run(create)
        else:
            # the calls opening here besides this one are not among the sessions yet
            in_progress = len(self._sessions) + len(self._opening) - 1
            previews = in_progress < capacity.calls or self._beyond_capacity(call_id, in_progress)
            await self._run(create)
        if previews:
            self.engine.metrics.count("admitted")
        return previews

    def _beyond_capacity(self, call_id: str, in_progress: int) -> bool:
        """A call offered with `in_progress` calls at capacity: AtCapacityError, or False (admitted
        without previews) when the settings say so."""
        capacity = self.engine.capacity
        metrics = self.engine.metrics
        if self.engine.settings.over_capacity == "refuse":
            metrics.count("refused")
            logger.warning(
                "call %s refused: %d calls in progress, capacity %d", call_id, in_progress, capacity.calls
            )
            raise AtCapacityError(refusal(in_progress, capacity))
        metrics.count("admitted_without_previews")
        logger.warning("call %s admitted beyond capacity (%d): no previews", call_id, capacity.calls)
        return False

    def in_progress(self) -> int:
        """Calls that count against the capacity now: when the speech workers are the cluster's, every
        server's active calls (from the store), else this server's own live calls. Reads the store: run
        it on a worker thread."""
        if self.engine.shares_workers:
            return self.engine.store.count_active()
        return len(self._sessions)

    async def close(self, session: CallSession, *, normal: bool) -> None:
        """End the session: ``normal`` after stop (completed, ``end`` sent), else a disconnect."""
        try:
            if session.state is CallState.STREAMING:
                await (session.stop() if normal else session.disconnect())
        finally:
            self._sessions.pop(session.call_id, None)
            if normal:
                self.hub.close(session.call_id, None)
            if self.relay is not None:
                self.relay.closed(session.call_id, normal)
            logger.info("call %s %s", session.call_id, session.state)

    async def fail(self, session: CallSession) -> None:
        """A server fault in the call: mark it failed (resumable), keep what was stored."""
        self._sessions.pop(session.call_id, None)
        await session.fail()
        if self.relay is not None:
            self.relay.closed(session.call_id, False)  # like a disconnect: resumable, sidebars stay
        logger.info("call %s failed", session.call_id)

    async def shutdown(self) -> None:
        """Server stopping: every live call is disconnected (kept, resumable)."""
        for session in list(self._sessions.values()):
            await self.close(session, normal=False)
        await asyncio.to_thread(self.lease.stop)
        self._executor.shutdown(wait=True)

    def live_ids(self) -> list[str]:
        return list(self._sessions)

    def replay(self, call_id: str, with_end: bool, *, as_sent: bool = False) -> list[str]:
        """The stored call as events: each final turn followed by its alerts, then ``end`` if asked and the
        call completed; turns by start time, or with `as_sent` in the order they were stored and sent (a
        long turn may end, and be sent, after a later one began). On a worker thread (it reads the store)."""
        store = self.engine.store
        alerts_by_turn: dict[int | None, list[AlertMessage]] = {}
        for a in store.list_alerts(call_id):
            alerts_by_turn.setdefault(a.turn_id, []).append(
                AlertMessage(
                    kind=a.kind,
                    category=a.category,
                    title=a.title or a.category,
                    speaker=a.speaker,
                    text=a.text,
                    start=a.start,
                    end=a.end,
                    score=a.score,
                    suggestions=list(a.suggestions),
                    span=a.span,
                    pack_version=a.pack_version,
                )
            )
        events: list[str] = []
        turns = store.list_turns(call_id)
        for turn in sorted(turns, key=lambda t: t.id) if as_sent else turns:
            events.append(
                TranscriptMessage(
                    speaker=turn.speaker, text=turn.text, start=turn.start, end=turn.end, final=True
                ).to_json()
            )
            events.extend(alert.to_json() for alert in alerts_by_turn.pop(turn.id, []))
        events.extend(alert.to_json() for alerts in alerts_by_turn.values() for alert in alerts)
        record = store.get_call(call_id)
        if with_end and record is not None and record.status == "completed":
            events.append(EndMessage().to_json())
        return events

    def call_record(self, call_id: str) -> CallRecord | None:
        return self.engine.store.get_call(call_id)

    def _emitter(self, call_id: str):  # noqa: ANN202 - an Emit for CallSession
        async def emit(event: str, keep: bool) -> None:
            self.hub.publish(call_id, event, keep=keep)
            if self.relay is not None:
                self.relay.published(call_id, event, keep)

        return emit

    async def _run(self, fn, *args):  # noqa: ANN001, ANN202 - a store call on a worker thread
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


def _resume_offset(history: list[str]) -> float:
    """Where a resumed call's clock continues: a second after the last stored turn (0 for a new call)."""
    from server.live.protocol import parse_event

    ends = [event.end for event in map(parse_event, history) if isinstance(event, TranscriptMessage)]
    return round(max(ends) + 1.0, 2) if ends else 0.0
