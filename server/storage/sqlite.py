"""One SQLite file shared by the server's stores: the one-box default, needing no database server.

Why SQLite: on-premises installs need no database server, and one file is easy to back up. Each store
(calls, audits, packs, users) keeps its own tables and connection in the same file. WAL mode lets readers
and one writer work at once, across threads and processes; every write is one explicit ``BEGIN IMMEDIATE``
transaction, so a busy file makes a writer wait (up to the busy timeout) instead of failing half-way, and
a process killed mid-call keeps everything committed before the kill. ``BEGIN IMMEDIATE`` takes the file's
one write lock, so writes never overlap whatever their lock name (see :meth:`Database.write`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from server.storage.database import Cursor, Database, DatabaseError, Transaction

__all__ = ["DatabaseError", "SQLiteDatabase"]

logger = logging.getLogger(__name__)


class _SQLiteTransaction(Transaction):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self._conn.execute(sql, tuple(params))

    def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        return int(self._conn.execute(sql, tuple(params)).lastrowid)

    def table_exists(self, name: str) -> bool:
        found = self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return found.fetchone() is not None


class SQLiteDatabase(Database):
    """A thread-safe connection to the SQLite file at `path` (its folder is made if missing)."""

    dialect = "sqlite"

    def __init__(self, path: Path, *, error: type[DatabaseError], busy_timeout: float = 30.0) -> None:
        super().__init__(str(path), error)
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
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
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise error(f"cannot open {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise self.error(f"{self.path} is closed")
        return self._conn

    @contextmanager
    def write(self, lock: str = "", *also: str) -> Iterator[Transaction]:
        """One ``BEGIN IMMEDIATE`` transaction holding this connection's lock throughout (`lock` and `also`
        are not needed: the file has one writer at a time)."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self.error(f"{self.path}: cannot start a write: {exc}") from exc
            try:
                yield _SQLiteTransaction(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self.error(f"{self.path}: write failed: {exc}") from exc
                raise

    def read(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._connection().execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise self.error(f"{self.path}: read failed: {exc}") from exc
