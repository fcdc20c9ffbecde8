"""A server's lease on its live calls, so that the calls of a server that dies are not left ``active``.

Every server process (front-end) has an id and renews its lease in the store every HEARTBEAT_S seconds;
each renewal also ends the calls of servers whose lease is older than STALE_AFTER_S (killed, machine
gone, network cut) as ``disconnected``: they are resumable as after any dropped line, and no longer count
against the cluster's capacity. A server that stops normally disconnects its calls and gives its lease
back. With one server on SQLite it does the same for the calls of its own previous, killed run.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid

from server.live.store import Store
from server.storage.database import DatabaseError

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
STALE_AFTER_S = 20.0


class Lease:
    """This server's lease: ``id`` goes on every call it opens; ``start()`` and ``stop()`` it."""

    def __init__(
        self, store: Store, *, every: float = HEARTBEAT_S, stale_after: float = STALE_AFTER_S
    ) -> None:
        if not 0 < every < stale_after:
            raise ValueError(f"renew every {every} s must be shorter than stale after {stale_after} s")
        self.host = socket.gethostname()
        self.id = f"{self.host}-{uuid.uuid4().hex[:12]}"
        self._store = store
        self._every = every
        self._stale_after = stale_after
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="lease", daemon=True)

    def start(self) -> None:
        """Take the lease (ending the calls of servers that died) and keep renewing it."""
        self.renew()
        self._thread.start()

    def renew(self) -> list[str]:
        """Renew now; returns the calls of dead servers this renewal ended."""
        self._store.renew_lease(self.id, self.host)
        return self._store.end_orphaned_calls(self._stale_after)

    def stop(self) -> None:
        """Stop renewing and give the lease back (the server's calls have been ended)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._every + 5)
        try:
            self._store.release_lease(self.id)
        except DatabaseError as exc:  # the database is gone too: the lease runs out by itself
            logger.warning("could not give back lease %s: %s", self.id, exc)

    def _keep(self) -> None:
        while not self._stopped.wait(self._every):
            try:
                self.renew()
            except DatabaseError as exc:  # keep trying: the database may come back
                logger.error("could not renew lease %s: %s", self.id, exc)
