"""The live calls of one server: opening and ending call sessions, and replaying a call to a late listener.

Every way audio can arrive (the callbuffer protocol, Twilio, FreeSWITCH) opens its call here, so they all
share one engine, one event hub and one limit on concurrent calls.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from server.live.engine import LiveEngine
from server.live.hub import EventHub
from server.live.protocol import AlertMessage, EndMessage, StartMessage, TranscriptMessage
from server.live.session import CallSession, CallState
from server.live.store import CallRecord

logger = logging.getLogger(__name__)


class TooManyCallsError(RuntimeError):
    """The server already carries its configured maximum of live calls."""


class CallBusyError(RuntimeError):
    """The call id is streaming on another connection right now."""


class CallRegistry:
    """Live call sessions by id, the hub their events go through, and the threads their audio runs on."""

    def __init__(self, engine: LiveEngine) -> None:
        self.engine = engine
        self.hub = EventHub()
        self._sessions: dict[str, CallSession] = {}
        self._opening: set[str] = set()  # ids reserved while their store records are written
        # Each call's recogniser blocks on its worker thread while its final turn waits for the shared
        # pool, so there is a thread per live call (plus a few for store reads), not one per core.
        self._executor = ThreadPoolExecutor(
            max_workers=engine.settings.max_calls + 4, thread_name_prefix="call"
        )

    async def open(self, call_id: str, start: StartMessage) -> CallSession:
        """Start (or resume after a disconnect) the call; raises TooManyCallsError, CallBusyError, or the
        store's CallExistsError for an id that is in use or finished."""
        if call_id in self._sessions or call_id in self._opening:
            raise CallBusyError(f"call {call_id!r} is already streaming on another connection")
        if len(self._sessions) + len(self._opening) >= self.engine.settings.max_calls:
            raise TooManyCallsError(
                f"the server carries its maximum of {self.engine.settings.max_calls} live calls"
            )
        store = self.engine.store
        self._opening.add(call_id)
        try:
            await self._run(
                store.create_call,
                call_id,
                start.roles,
                start.language,
                start.encoding,
                start.sample_rate,
                start.agent,
            )
            history = await self._run(self.replay, call_id, False)
        finally:
            self._opening.discard(call_id)
        offset = _resume_offset(history)
        self.hub.open(call_id, history, agent=start.agent)
        session = CallSession(
            call_id, start, self.engine, self._emitter(call_id), self._executor, time_offset=offset
        )
        self._sessions[call_id] = session
        logger.info(
            "call %s started (%s, %d Hz, %s)", call_id, start.encoding, start.sample_rate, start.roles
        )
        return session

    async def close(self, session: CallSession, *, normal: bool) -> None:
        """End the session: ``normal`` after stop (completed, ``end`` sent), else a disconnect."""
        try:
            if session.state is CallState.STREAMING:
                await (session.stop() if normal else session.disconnect())
        finally:
            self._sessions.pop(session.call_id, None)
            if normal:
                self.hub.close(session.call_id, None)
            logger.info("call %s %s", session.call_id, session.state)

    async def fail(self, session: CallSession) -> None:
        """A server fault in the call: mark it failed (resumable), keep what was stored."""
        self._sessions.pop(session.call_id, None)
        await session.fail()
        logger.info("call %s failed", session.call_id)

    async def shutdown(self) -> None:
        """Server stopping: every live call is disconnected (kept, resumable)."""
        for session in list(self._sessions.values()):
            await self.close(session, normal=False)
        self._executor.shutdown(wait=True)

    def live_ids(self) -> list[str]:
        return list(self._sessions)

    def replay(self, call_id: str, with_end: bool) -> list[str]:
        """The stored call as events: each final turn followed by its alerts, then ``end`` if asked and the
        call completed. Runs on a worker thread (it reads the store)."""
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
        for turn in store.list_turns(call_id):
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

        return emit

    async def _run(self, fn, *args):  # noqa: ANN001, ANN202 - a store call on a worker thread
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


def _resume_offset(history: list[str]) -> float:
    """Where a resumed call's clock continues: a second after the last stored turn (0 for a new call)."""
    from server.live.protocol import parse_event

    ends = [event.end for event in map(parse_event, history) if isinstance(event, TranscriptMessage)]
    return round(max(ends) + 1.0, 2) if ends else 0.0
