"""One SQLite file shared by the server's stores: the connection handling they all need, in one place.

Why SQLite: on-premises installs need no database server, and one file is easy to back up. Each store
(calls, audits, packs) keeps its own tables and connection in the same file. WAL mode lets readers and one
writer work at once, across threads and processes; every write is one explicit ``BEGIN IMMEDIATE``
transaction, so a busy file makes a writer wait (up to the busy timeout) instead of failing half-way, and
a process killed mid-call keeps everything committed before the kill.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Self

logger = logging.getLogger(__name__)


class DatabaseError(RuntimeError):
    """The database could not be opened or a statement failed; subclasses name the store."""


class SQLiteFile:
    """A thread-safe connection to the SQLite file at `path`, its tables created from `schema`."""

    schema: str = ""
    error: type[DatabaseError] = DatabaseError

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: no implicit transactions; each write is one explicit transaction.
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA foreign_keys = ON")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                logger.warning("SQLite file %s is in %s mode, not WAL", self.path, mode)
            # In WAL mode NORMAL keeps every commit across a process crash; a power cut may lose the last few.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._init_schema()
        except sqlite3.Error as exc:
            self.close()
            raise self.error(f"cannot open {self.path}: {exc}") from exc

    def _init_schema(self) -> None:
        """Create the missing tables of `schema`."""
        with self._write() as conn:
            for statement in self.schema.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def close(self) -> None:
        """Close the connection; committed data is already on disk. Safe to call twice."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise self.error(f"{self.path} is closed")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed on exit (rolled back on error), holding the lock throughout."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self.error(f"{self.path}: cannot start a write: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self.error(f"{self.path}: write failed: {exc}") from exc
                raise

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._connection().execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise self.error(f"{self.path}: read failed: {exc}") from exc
