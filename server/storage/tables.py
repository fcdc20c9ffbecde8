"""The base of the server's stores: a store's tables in a database, created and migrated the same way on
SQLite and PostgreSQL.

A store declares its current tables (`schema`, ``CREATE … IF NOT EXISTS`` statements separated by ``;``),
its `schema_version`, and `migrations`: for each older version, the statements that bring it to the next.
Its version is kept in a one-row table of its own (`version_table`). Opening a store, in one transaction:

1. refuses a database whose version is newer than this callbuffer's (a newer server wrote it);
2. creates the tables that are missing (a new database gets the current ones);
3. records the version: the current one for new tables, 1 for tables made before their version was kept;
4. runs the migrations from the recorded version up to the current one.

A migration that adds a column must also create any index on it (step 2 runs before the migrations, on
tables of the old shape). Two servers opening the same PostgreSQL database at once take turns.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self

from server.storage.database import Database, DatabaseError, Transaction, open_database

logger = logging.getLogger(__name__)

_FIRST_TABLE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)


class TableStore:
    """A store's tables at `location` (a path, ``sqlite:///…`` or ``postgresql://…``); thread-safe;
    ``close()`` when done (or use it as a context manager)."""

    name: ClassVar[str] = "store"  # names the store's write locks and, by default, its version table
    schema: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1
    migrations: ClassVar[Mapping[int, Sequence[str]]] = {}  # from version n: the statements to n + 1
    error: ClassVar[type[DatabaseError]] = DatabaseError

    def __init__(self, location: str | Path) -> None:
        self._db: Database = open_database(location, error=self.error)
        try:
            self._init_schema()
        except BaseException:
            self._db.close()
            raise

    @property
    def location(self) -> str:
        """The database's path or URL (without its password), for messages."""
        return self._db.location

    @property
    def dialect(self) -> str:
        return self._db.dialect

    @classmethod
    def version_table(cls) -> str:
        return f"{cls.name}_schema_version"

    def _init_schema(self) -> None:
        statements = [s for s in self.schema.split(";") if s.strip()]
        first = _FIRST_TABLE.search(self.schema)
        table = self.version_table()
        with self._write() as tx:
            new = first is not None and not tx.table_exists(first.group(1))
            tx.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER NOT NULL)")
            found = tx.execute(f"SELECT MAX(version) FROM {table}").fetchone()[0]
            if found is not None and found > self.schema_version:
                raise self.error(
                    f"the {self.name} tables of {self.location} have schema version {found}; this "
                    f"callbuffer supports up to {self.schema_version}"
                )
            for statement in statements:
                tx.execute(statement)
            if found is None:
                found = self.schema_version if new else 1
                tx.execute(f"INSERT INTO {table} (version) VALUES (?)", (found,))
            for version in range(found, self.schema_version):
                for statement in self.migrations[version]:
                    tx.execute(statement)
                logger.info("%s tables of %s migrated to version %d", self.name, self.location, version + 1)
            if found != self.schema_version:
                tx.execute(f"UPDATE {table} SET version = ?", (self.schema_version,))

    def close(self) -> None:
        """Close the connection; committed data is kept. Safe to call twice."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _write(self, key: str = "", *also: str) -> Iterator[Transaction]:
        """One write transaction; writes of this store with the same `key` (e.g. a call id; empty: the
        whole store) never overlap, on any server sharing the database; `also`: more keys it holds."""
        with self._db.write(*(f"{self.name}/{k}" for k in (key, *also))) as tx:
            yield tx

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """The rows of one query; each row by column name or position."""
        return self._db.read(sql, params)
