"""A message channel between processes on one PostgreSQL database: NOTIFY out, LISTEN in.

Each :class:`NotifyChannel` keeps two connections of its own (autocommit), apart from the stores':

- a *sender* thread takes messages from a queue, in order, and sends each with ``pg_notify``; whoever
  calls :meth:`NotifyChannel.send` (the event loop, a call's audio thread) only appends to the queue and
  never waits on the network. A lost connection is opened again and the message retried, so none is lost
  or reordered while the database is reachable;
- a *listener* thread LISTENs and hands every message of another sender to ``on_message``, in the order
  the database delivered them (a sender's notifications arrive in the order it committed them). It waits
  for notifications with a timeout, so it notices :meth:`NotifyChannel.stop` within ``POLL_S``. When its
  connection drops it connects again with growing pauses (``BACKOFF_S``), logging each attempt, and then
  calls ``on_reconnect``: NOTIFY keeps nothing for a listener that was away, so the owner must re-read
  from the store whatever it may have missed.

A NOTIFY payload must be shorter than 8000 bytes. A longer message is written to the ``relay_messages``
table and its row id notified in the same transaction (so the row is there when the notification
arrives); listeners read it from there. Rows are deleted after ``KEEP_LARGE`` (listeners read them within
moments).

Payloads are ``SENDER:m:TEXT`` (the message itself) or ``SENDER:r:ID`` (a row of ``relay_messages``);
``SENDER`` is the channel's random id, so a process skips its own messages without reading them.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from server.storage.database import DatabaseError, redact
from server.storage.postgres import CONNECT_TIMEOUT

logger = logging.getLogger(__name__)

NOTIFY_LIMIT = 8000  # bytes: PostgreSQL refuses a payload of this length or longer
TABLE = "relay_messages"
KEEP_LARGE = "1 hour"  # how long a large message's row is kept for listeners to read
CLEAN_EVERY = 100  # large messages between deletions of old rows
POLL_S = 0.5  # the listener's longest wait before it checks whether it should stop
BACKOFF_S = (0.2, 10.0)  # first and longest pause between connection attempts
_CREATE = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""
_STOP = object()


class ChannelError(DatabaseError):
    """The channel could not open its connections (at start-up), or a message cannot be sent at all."""


class NotifyChannel:
    """Send text messages to, and receive them from, every other channel on `channel` of one database.

    ``on_message(text)`` and ``on_reconnect()`` run on the listener thread, one at a time, in order; they
    may block briefly (the next notifications wait in the connection meanwhile).
    """

    def __init__(
        self,
        url: str,
        channel: str,
        *,
        on_message: Callable[[str], None],
        on_reconnect: Callable[[], None],
        name: str = "callbuffer-relay",
    ) -> None:
        self.sender_id = uuid.uuid4().hex
        self.channel = channel
        self._url = url
        self._location = redact(url)
        self._name = name
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        self._queue: queue.SimpleQueue[str | object] = queue.SimpleQueue()
        self._stopping = threading.Event()  # the listener stops; the sender sends what is queued, then stops
        self._abandon = threading.Event()  # the sender gives up on what it could not send in time
        self._send_conn: psycopg.Connection[Any] | None = None
        self._listen_conn: psycopg.Connection[Any] | None = None
        self._large_sent = 0
        self.reconnects = 0  # times the listener connected again after losing its connection
        self._sender = threading.Thread(target=self._send_loop, name=f"{name}-send", daemon=True)
        self._listener = threading.Thread(target=self._listen_loop, name=f"{name}-listen", daemon=True)

    # -- life ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect both ends, create the large-message table if needed, LISTEN, and start the threads.
        Raises ChannelError if the database cannot be reached (blocking: call it off the event loop)."""
        try:
            self._send_conn = self._connect("send")
            with self._send_conn.transaction():  # two servers starting together must not both create it
                self._send_conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TABLE,))
                self._send_conn.execute(_CREATE)
            self._listen_conn = self._listen()
        except psycopg.Error as exc:
            self._close_connections()
            raise ChannelError(f"cannot open the event channel on {self._location}: {_message(exc)}") from exc
        self._sender.start()
        self._listener.start()
        logger.info("listening on %s of %s", self.channel, self._location)

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (for up to `timeout` seconds), stop both threads, close the connections."""
        self._stopping.set()
        self._queue.put(_STOP)
        for thread in (self._sender, self._listener):
            if thread.is_alive():
                thread.join(timeout)
        if self._sender.is_alive():
            self._abandon.set()
            self._sender.join(BACKOFF_S[1] + CONNECT_TIMEOUT)
        self._close_connections()

    @property
    def listener_pid(self) -> int | None:
        """The server process id of the listening connection (for monitoring; None while reconnecting)."""
        conn = self._listen_conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    # -- sending ------------------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        """Queue `text` for every other listener on the channel; returns at once."""
        if self._stopping.is_set():
            logger.warning("the channel is stopping; a message of %d characters is not sent", len(text))
            return
        self._queue.put(text)

    def _send_loop(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            assert isinstance(item, str)
            self._deliver(item)
        logger.debug("sender of %s stopped", self.channel)

    def _deliver(self, text: str) -> None:
        """Send one message, connecting again (with pauses) until it is sent or the channel gives up."""
        pause = BACKOFF_S[0]
        while True:
            try:
                if self._send_conn is None or self._send_conn.closed or self._send_conn.broken:
                    self._send_conn = self._connect("send")
                self._notify(self._send_conn, text)
                return
            except psycopg.Error as exc:
                logger.warning(
                    "cannot send on %s of %s (%s); trying again in %.1f s",
                    self.channel,
                    self._location,
                    _message(exc),
                    pause,
                )
                self._drop_send_connection()
            if self._abandon.wait(pause):
                logger.error("the channel stopped; a message of %d characters was not sent", len(text))
                return
            pause = min(pause * 2, BACKOFF_S[1])

    def _notify(self, conn: psycopg.Connection[Any], text: str) -> None:
        inline = f"{self.sender_id}:m:{text}"
        if len(inline.encode()) < NOTIFY_LIMIT:
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, inline))
            return
        with conn.transaction():  # the notification is delivered at commit, when the row is visible
            row = conn.execute(f"INSERT INTO {TABLE} (payload) VALUES (%s) RETURNING id", (text,)).fetchone()
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, f"{self.sender_id}:r:{row[0]}"))
        logger.debug("sent a message of %d characters through %s row %d", len(text), TABLE, row[0])
        self._large_sent += 1
        if self._large_sent % CLEAN_EVERY == 1:
            conn.execute(f"DELETE FROM {TABLE} WHERE created_at < now() - interval '{KEEP_LARGE}'")

    def _drop_send_connection(self) -> None:
        if self._send_conn is not None:
            self._send_conn.close()
        self._send_conn = None

    # -- listening ----------------------------------------------------------------------------------------

    def _listen(self) -> psycopg.Connection[Any]:
        conn = self._connect("listen")
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error:
            conn.close()
            raise
        return conn

    def _listen_loop(self) -> None:
        pause = BACKOFF_S[0]
        while not self._stopping.is_set():
            conn = self._listen_conn
            try:
                if conn is None:
                    conn = self._listen_conn = self._listen()
                    self.reconnects += 1
                    logger.warning("listening on %s of %s again", self.channel, self._location)
                    pause = BACKOFF_S[0]
                    self._callback(self._on_reconnect)
                # returns as soon as a packet of notifications arrives (all of it), or after POLL_S
                for notify in list(conn.notifies(timeout=POLL_S, stop_after=1)):
                    self._received(conn, notify.payload)
            except psycopg.Error as exc:
                logger.warning(
                    "%s %s on %s (%s); connecting again in %.1f s",
                    "cannot listen" if conn is None else "lost the connection listening",
                    self.channel,
                    self._location,
                    _message(exc),
                    pause,
                )
                if self._listen_conn is not None:
                    self._listen_conn.close()
                self._listen_conn = None
                if self._stopping.wait(pause):
                    break
                pause = min(pause * 2, BACKOFF_S[1])
        logger.debug("listener of %s stopped", self.channel)

    def _received(self, conn: psycopg.Connection[Any], payload: str) -> None:
        sender, _, rest = payload.partition(":")
        form, _, body = rest.partition(":")
        if sender == self.sender_id:
            return
        if form == "m":
            self._callback(self._on_message, body)
        elif form == "r" and body.isdigit():
            row = conn.execute(f"SELECT payload FROM {TABLE} WHERE id = %s", (int(body),)).fetchone()
            if row is None:
                logger.error("large message %s on %s is gone from %s; it is lost", body, self.channel, TABLE)
                return
            self._callback(self._on_message, row[0])
        else:
            logger.warning("ignoring a malformed notification on %s: %.80r", self.channel, payload)

    def _callback(self, fn: Callable[..., None], *args: str) -> None:
        """Run the owner's handler; a fault in it is logged and the channel goes on with the next one."""
        try:
            fn(*args)
        except Exception:  # the owner's bug must not stop every later message: logged with its traceback
            logger.exception("handler of a %s message failed", self.channel)

    # -- connections --------------------------------------------------------------------------------------

    def _connect(self, role: str) -> psycopg.Connection[Any]:
        given = conninfo_to_dict(self._url)
        extra: dict[str, Any] = {"application_name": f"{self._name}-{role}"}
        if "connect_timeout" not in given:
            extra["connect_timeout"] = CONNECT_TIMEOUT
        return psycopg.connect(self._url, autocommit=True, **extra)

    def _close_connections(self) -> None:
        for conn in (self._send_conn, self._listen_conn):
            if conn is not None:
                conn.close()
        self._send_conn = self._listen_conn = None


def _message(exc: psycopg.Error) -> str:
    """psycopg's message on one line."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
