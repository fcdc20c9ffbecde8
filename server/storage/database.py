"""What the stores need from a database, and where a database is: one interface, two backends.

The stores write their SQL once, in the SQLite dialect (``?`` placeholders, ``INTEGER PRIMARY KEY
AUTOINCREMENT``, a table's implicit ``rowid`` as its insertion order). :mod:`server.storage.sqlite` runs it
as written; :mod:`server.storage.postgres` translates the few differences the stores actually use.

A location is a path (an SQLite file), ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (the
usual database-URL spelling: three slashes, then the path), or ``postgresql://`` / ``postgres://`` (a
libpq connection URI, e.g. ``postgresql://callbuffer:secret@db.example:5432/callbuffer``).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]

_POSTGRES_SCHEMES = ("postgresql", "postgres")
_URL_FORMS = "sqlite:///PATH (sqlite:////ABSOLUTE/PATH) or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


class DatabaseError(RuntimeError):
    """The database could not be opened or a statement failed; subclasses name the store."""


class Row(Protocol):
    """A result row: by column name (``row["status"]``) or by position (``row[0]``)."""

    def __getitem__(self, key: int | str, /) -> Any: ...


class Cursor(Protocol):
    """The result of one statement inside a transaction."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...  # a Row, or None when there is none

    def fetchall(self) -> list[Any]: ...  # Rows


class Transaction(ABC):
    """One write transaction: every statement of it commits together, or none does."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        """Run one statement (SQLite dialect, ``?`` placeholders)."""

    @abstractmethod
    def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one INSERT into a table whose key is an autoincrement ``id``; returns the new row's id."""

    @abstractmethod
    def table_exists(self, name: str) -> bool:
        """Whether the table exists (used to tell a new database from one made before versioning)."""


class Database(ABC):
    """A thread-safe connection to one database; `location` names it in messages (never a password).

    Errors are raised as `error`, the opening store's own subclass of DatabaseError, so a caller catches
    one type per store whatever the backend.
    """

    dialect: Dialect

    def __init__(self, location: str, error: type[DatabaseError]) -> None:
        self.location = location
        self.error = error

    @abstractmethod
    def write(self, lock: str, *also: str) -> AbstractContextManager[Transaction]:
        """One write transaction, committed on exit and rolled back on an exception.

        Writes holding the same `lock` name never overlap, in this process or any other using the same
        database, so a write may read, check and then change without another slipping in between. A write
        may hold several (`also`), e.g. a call's own and one that every call's admission takes."""

    @abstractmethod
    def read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """The rows (see Row) of one query, outside any write transaction."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection; committed data is kept. Safe to call twice."""


def parse_location(location: str | Path) -> tuple[Dialect, str | Path]:
    """(dialect, target): an SQLite file's path or a PostgreSQL URL. Raises ValueError for an unknown URL."""
    if isinstance(location, Path):
        return "sqlite", location
    scheme, sep, rest = location.partition("://")
    if not sep:
        return "sqlite", Path(location)
    scheme = scheme.lower()
    if scheme in _POSTGRES_SCHEMES:
        return "postgresql", location
    if scheme == "sqlite":
        path = rest.removeprefix("/")
        if not rest.startswith("/") or not path or path == ":memory:":
            raise ValueError(f"{location!r} names no SQLite file; use {_URL_FORMS}")
        return "sqlite", Path(path)
    raise ValueError(f"unsupported database URL {redact(location)!r}; use {_URL_FORMS}")


def check_url(url: str) -> str:
    """`url` stripped, if it is a database URL callbuffer can open; else a ValueError that says why.

    For settings: a bare path is refused (say ``sqlite:///``), and a PostgreSQL URL must be well formed
    and psycopg installed, so a mistake stops the server at start-up rather than at its first write."""
    url = url.strip()
    if "://" not in url:
        raise ValueError(f"{redact(url)!r} is not a database URL; use {_URL_FORMS}")
    dialect, _ = parse_location(url)
    if dialect == "postgresql":
        try:
            from server.storage.postgres import check_conninfo
        except ImportError:
            raise ValueError(_NO_PSYCOPG) from None
        check_conninfo(url)
    return url


def open_database(location: str | Path, *, error: type[DatabaseError] = DatabaseError) -> Database:
    """Connect to the database at `location` (see the module docstring); failures raise `error`."""
    try:
        dialect, target = parse_location(location)
    except ValueError as exc:
        raise error(str(exc)) from None
    if dialect == "sqlite":
        from server.storage.sqlite import SQLiteDatabase

        return SQLiteDatabase(Path(target), error=error)
    try:
        from server.storage.postgres import PostgresDatabase
    except ImportError:
        raise error(f"cannot open {redact(str(target))}: {_NO_PSYCOPG}") from None
    return PostgresDatabase(str(target), error=error)


_NO_PSYCOPG = "PostgreSQL needs the psycopg package: pip install 'callbuffer[postgres]'"


def redact(url: str) -> str:
    """`url` with any password replaced by ``***``, for messages and logs."""
    url = re.sub(r"^([a-zA-Z][\w+.-]*://[^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
