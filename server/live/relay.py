"""Sidebars and pack publications across front-ends that share one PostgreSQL database.

Each ``callbuffer serve`` process (a front-end) has its own event hub, so a sidebar sees the calls streamed
into its own front-end only. With ``CALLBUFFER_DATABASE_URL=postgresql://…`` this relay joins them: every
front-end tells the others, on the channel ``callbuffer_events``, when one of its calls opens, each event
the call sends to its sidebars, when it ends, and when a trainer publishes a pack version; the others
replay it into their own hubs and classifiers, so a sidebar on any front-end follows any call, and every
front-end judges turns with the newly published pack without a restart.

Why PostgreSQL LISTEN/NOTIFY and not Ray: the front-ends already share the database, so nothing new has
to run (Ray is only there when speech workers are, and a front-end without ``--ray`` has no cluster);
NOTIFY is transactional (a notification goes out when its transaction commits, after the events the call
stored) and a sender's notifications arrive in the order it sent them, which is the order a call's
events must keep. The transport is :class:`server.storage.pg_notify.NotifyChannel`: a sender thread and a
listener thread on connections of their own, so a call's audio thread and the event loop never wait on
the network; messages too long for a NOTIFY (8000 bytes: a long transcript) go through a table.

A message (:class:`RelayMessage`, JSON) carries the sending front-end (``origin``, random per process),
its ``kind`` and the call. On receiving one from another front-end:

- ``open``: the hub opens the call with its history replayed from the store (read on the listener
  thread, before the messages after it), so a sidebar that joins here later gets the call so far;
  sidebars already waiting here get what they have not been given yet;
- ``event``: the hub publishes it (an event already replayed from the store is not sent twice);
- ``close``: after ``stop``, the hub sends its sidebars the end; after a disconnect (or a fault) nothing
  changes here, as in :meth:`CallRegistry.close`: the call stays resumable and its sidebars wait;
- ``pack``: a worker thread builds that stored version's classifier and swaps it in
  (:meth:`PackService.adopt`), never on the event loop.

Everything for the hub is handed to the event loop with ``call_soon_threadsafe``, in arrival order.
NOTIFY keeps nothing for a listener that is away: when the listening connection drops, the channel
connects again (with growing pauses) and the relay re-reads from the store each call it was relaying
(events it missed are published, a call that ended meanwhile is ended) and the active pack. A call that
opened elsewhere while this front-end was away is not opened in its hub: its sidebars get the store's
replay when they join, and its events from then on.

On SQLite (one server) there is no relay: :func:`start_relay` returns None and no thread starts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from models.packs import PackError
from server.config import Settings
from server.live.calls import CallRegistry
from server.live.protocol import EndMessage
from server.packs.service import PackService
from server.storage.database import DatabaseError, parse_location

if TYPE_CHECKING:
    from server.storage.pg_notify import NotifyChannel

logger = logging.getLogger(__name__)

CHANNEL = "callbuffer_events"
_END = EndMessage().to_json()


class RelayMessage(BaseModel):
    """One message between front-ends; which fields matter depends on `kind`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin: str  # the sending front-end
    kind: Literal["open", "event", "close", "pack"]
    call_id: str = ""
    event: str = ""  # event: the event's JSON, as the call's own sidebars got it
    keep: bool = False  # event: part of the call's replay (final transcripts, alerts)
    agent: str | None = None  # open: the agent the call belongs to
    seen: int = 0  # open: stored events the call had when it (re)opened, its origin's hub history
    normal: bool = True  # close: after stop (else a disconnect or a fault)
    pack: str = ""  # pack: name
    version: int = 0  # pack: version


@dataclass
class _RelayedCall:
    """A call streaming on another front-end whose events this hub carries."""

    seen: set[str] = field(default_factory=set)  # kept events already in the hub: not published twice
    ended: bool = False  # its ``end`` event went out


class EventRelay:
    """The relay of one front-end (see the module docstring); :func:`start_relay` makes and starts it."""

    def __init__(
        self, url: str, registry: CallRegistry, packs: PackService, loop: asyncio.AbstractEventLoop
    ) -> None:
        from server.storage.pg_notify import NotifyChannel  # psycopg is needed only on PostgreSQL

        self._registry = registry
        self._packs = packs
        self._loop = loop
        self._channel = NotifyChannel(
            url, CHANNEL, on_message=self._received, on_reconnect=self._reconnected, name="callbuffer-relay"
        )
        self.origin = self._channel.sender_id
        self._lock = threading.Lock()  # _relayed: changed on the loop, listed on the listener thread
        self._relayed: dict[str, _RelayedCall] = {}
        self._pack_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-pack")

    @property
    def channel(self) -> NotifyChannel:
        """The PostgreSQL channel underneath (its listener's server pid, its reconnections)."""
        return self._channel

    def start(self) -> None:
        """Connect and listen (blocking; raises ChannelError), then announce this front-end's calls and
        pack publications, and catch up with a publication made since the pack was loaded."""
        self._channel.start()
        self._registry.relay = self
        self._packs.on_publish = self.pack_published
        self._in_pack_worker(self._packs.activate_stored)

    def stop(self) -> None:
        """Send what is queued (the ends of the calls the server just disconnected), stop listening."""
        self._registry.relay = None
        self._packs.on_publish = None
        self._channel.stop()
        self._pack_worker.shutdown(wait=True, cancel_futures=True)
        logger.info("relay %s stopped", self.origin[:8])

    # -- out: this front-end's calls and publications -----------------------------------------------------

    def opened(self, call_id: str, agent: str | None, seen: int) -> None:
        with self._lock:
            self._relayed.pop(call_id, None)  # it streams here now (resumed on this front-end)
        self._send(RelayMessage(origin=self.origin, kind="open", call_id=call_id, agent=agent, seen=seen))

    def published(self, call_id: str, event: str, keep: bool) -> None:
        self._send(RelayMessage(origin=self.origin, kind="event", call_id=call_id, event=event, keep=keep))

    def closed(self, call_id: str, normal: bool) -> None:
        self._send(RelayMessage(origin=self.origin, kind="close", call_id=call_id, normal=normal))

    def pack_published(self, name: str, version: int) -> None:
        self._send(RelayMessage(origin=self.origin, kind="pack", pack=name, version=version))

    def _send(self, message: RelayMessage) -> None:
        self._channel.send(message.model_dump_json())

    # -- in: on the listener thread -----------------------------------------------------------------------

    def _received(self, text: str) -> None:
        try:
            message = RelayMessage.model_validate_json(text)
        except ValidationError as exc:
            logger.warning("ignoring a malformed relay message (%s): %.120r", exc.errors()[0]["msg"], text)
            return
        if message.origin == self.origin:
            return
        if message.kind == "open":
            history = self._stored(message.call_id)
            self._on_loop(self._open, message, [] if history is None else history[0])
        elif message.kind == "event":
            self._on_loop(self._event, message)
        elif message.kind == "close":
            self._on_loop(self._close, message)
        else:
            self._in_pack_worker(self._adopt, message.pack, message.version)

    def _reconnected(self) -> None:
        """Back after a lost connection: what the relayed calls stored meanwhile, and the active pack."""
        with self._lock:
            call_ids = list(self._relayed)
        for call_id in call_ids:
            stored = self._stored(call_id)
            if stored is not None:
                self._on_loop(self._resync, call_id, *stored)
        logger.info("relay %s back: %d relayed calls re-read from the store", self.origin[:8], len(call_ids))
        self._in_pack_worker(self._packs.activate_stored)

    def _stored(self, call_id: str) -> tuple[list[str], str | None] | None:
        """The call's stored events and status; None (logged) if the store cannot be read now."""
        try:
            record = self._registry.call_record(call_id)
            return self._registry.replay(call_id, False, as_sent=True), (record.status if record else None)
        except DatabaseError as exc:
            logger.warning("call %s: cannot read it from the store for this hub's sidebars: %s", call_id, exc)
            return None

    def _on_loop(self, fn: Callable[..., None], *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the server is stopping, there are no sidebars left
            logger.debug("event loop closed; a relayed %s is dropped", getattr(fn, "__name__", fn))

    def _in_pack_worker(self, fn: Callable[..., object], *args: object) -> None:
        try:
            self._pack_worker.submit(fn, *args).add_done_callback(_log_failure)
        except RuntimeError:  # shut down: the server is stopping
            logger.debug("relay stopped; pack work %s skipped", getattr(fn, "__name__", fn))

    def _adopt(self, name: str, version: int) -> None:
        try:
            self._packs.adopt(name, version)
        except (DatabaseError, PackError) as exc:
            logger.error("cannot use pack %s v%d published on another front-end: %s", name, version, exc)

    # -- in: on the event loop ----------------------------------------------------------------------------

    def _streaming_here(self, call_id: str) -> bool:
        if call_id in self._registry.live_ids():
            logger.warning("call %s streams on this front-end; ignoring another's news of it", call_id)
            return True
        return False

    def _open(self, message: RelayMessage, history: list[str]) -> None:
        call_id, hub = message.call_id, self._registry.hub
        if self._streaming_here(call_id):
            return
        # Sidebars already here were given the hub's history (a call resumed after a disconnect), or the
        # store's replay when they joined, which held what the call had when it (re)opened: `seen` events.
        given = set(hub.history(call_id) if hub.is_live(call_id) else history[: message.seen])
        hub.open(call_id, [e for e in history if e in given], agent=message.agent)
        for event in history:
            if event not in given:
                hub.publish(call_id, event, keep=True)
        with self._lock:
            self._relayed[call_id] = _RelayedCall(set(history))
        logger.info("call %s streams on another front-end; relayed to sidebars here", call_id)

    def _event(self, message: RelayMessage) -> None:
        call_id = message.call_id
        if self._streaming_here(call_id):
            return
        with self._lock:
            relayed = self._relayed.get(call_id)
        if relayed is not None:
            if message.keep:
                if message.event in relayed.seen:
                    return  # already replayed from the store
                relayed.seen.add(message.event)
            relayed.ended = relayed.ended or message.event == _END
        self._registry.hub.publish(call_id, message.event, keep=message.keep)

    def _close(self, message: RelayMessage) -> None:
        if self._streaming_here(message.call_id):
            return
        with self._lock:
            self._relayed.pop(message.call_id, None)
        if message.normal:
            self._registry.hub.close(message.call_id, None)

    def _resync(self, call_id: str, history: list[str], status: str | None) -> None:
        with self._lock:
            relayed = self._relayed.get(call_id)
        if relayed is None or self._streaming_here(call_id):
            return
        hub = self._registry.hub
        missed = [e for e in history if e not in relayed.seen]
        relayed.seen.update(missed)
        for event in missed:
            hub.publish(call_id, event, keep=True)
        if missed:
            logger.info("call %s: %d events missed while away, replayed from the store", call_id, len(missed))
        if status == "active":
            return
        with self._lock:
            self._relayed.pop(call_id, None)
        if status == "completed":
            if not relayed.ended:
                hub.publish(call_id, _END, keep=False)
            hub.close(call_id, None)


def _log_failure(future: Future[object]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        logger.error("relay pack work failed", exc_info=exc)


async def start_relay(settings: Settings, registry: CallRegistry, packs: PackService) -> EventRelay | None:
    """The started relay when the store is PostgreSQL (several front-ends may share it); None on SQLite."""
    dialect, target = parse_location(settings.database)
    if dialect != "postgresql":
        return None
    relay = EventRelay(str(target), registry, packs, asyncio.get_running_loop())
    await asyncio.to_thread(relay.start)
    logger.info("relay %s: sidebars and pack publications shared with other front-ends", relay.origin[:8])
    return relay
