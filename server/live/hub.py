"""Fan-out of a call's events to any number of listeners (the streaming client and the agents' sidebars).

Each listener gets its own bounded queue, so a slow or stalled sidebar never holds up the call or the
other sidebars: when its queue is full it is cut off (``overflowed``) and its socket is closed; the page
reconnects and is replayed the call so far. Finished turns and alerts of a live call are kept so that a
sidebar that joins late, or reconnects, starts with the whole call, not just what comes next.

Runs on the event loop only; worker threads hand events over with ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

LISTENER_QUEUE = 2000  # events; a 1-hour call has a few hundred turns and alerts


@dataclass(eq=False)
class Listener:
    """One socket's view of a call: events to send, in order; None marks the end of the call."""

    call_id: str
    owner: str | None = None  # the agent user listening, None for roles that may watch any call
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(LISTENER_QUEUE))
    overflowed: bool = False
    refused: str | None = None  # why the listener was cut off (its socket is closed 1008 with this)

    def offer(self, event: str | None) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            logger.warning(
                "listener of call %s fell %d events behind; cutting it off", self.call_id, LISTENER_QUEUE
            )
            while not self.queue.empty():  # make room for the end marker so the sender wakes up
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    def refuse(self, reason: str) -> None:
        """Cut the listener off: it gets an ``error`` event with `reason`, then its socket closes 1008."""
        self.refused = reason
        self.offer(json.dumps({"type": "error", "message": reason}, ensure_ascii=False))
        self.offer(None)


class EventHub:
    """Per call: the listeners and the replayable history (final transcripts and alerts)."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._history: dict[str, list[str]] = {}

    def subscribe(
        self, call_id: str, backlog: list[str] | None = None, *, owner: str | None = None
    ) -> Listener:
        """A new listener, first given `backlog` (e.g. a finished call from the store) or the live
        call's history, then everything published after. `owner`: the agent user behind it."""
        listener = Listener(call_id, owner)
        for event in backlog if backlog is not None else self._history.get(call_id, []):
            listener.offer(event)
        self._listeners[call_id].add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        listeners = self._listeners.get(listener.call_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[listener.call_id]

    def open(self, call_id: str, history: list[str], *, agent: str | None = None) -> None:
        """A call goes live; `history` holds what a resumed call already said. A call with an `agent`
        belongs to that agent: another agent's sidebar that joined before it started is cut off."""
        self._history[call_id] = list(history)
        if agent is not None:
            for listener in list(self._listeners.get(call_id, ())):
                if listener.owner is not None and listener.owner != agent:
                    logger.info(
                        "call %s belongs to %s; closing the sidebar of %s", call_id, agent, listener.owner
                    )
                    listener.refuse(f"call {call_id!r} belongs to another agent")

    def is_live(self, call_id: str) -> bool:
        return call_id in self._history

    def history(self, call_id: str) -> list[str]:
        """The live call's replay history so far (what a listener joining now is given first)."""
        return list(self._history.get(call_id, ()))

    def publish(self, call_id: str, event: str, *, keep: bool) -> None:
        """Send `event` to every listener of the call; `keep` adds it to the replay history."""
        if keep and call_id in self._history:
            self._history[call_id].append(event)
        for listener in list(self._listeners.get(call_id, ())):
            listener.offer(event)

    def close(self, call_id: str, last_event: str | None) -> None:
        """The call is over: send `last_event` (if any), then the end marker, and forget its history."""
        self._history.pop(call_id, None)
        for listener in list(self._listeners.get(call_id, ())):
            if last_event is not None:
                listener.offer(last_event)
            listener.offer(None)

    def listener_count(self, call_id: str) -> int:
        return len(self._listeners.get(call_id, ()))
