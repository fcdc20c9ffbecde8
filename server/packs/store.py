"""Phrase packs with versions, in the server's database: what trainers edit, and which version live calls
and audits use.

Every save makes a new immutable version (1, 2, 3… per pack name), so any two versions can be compared
and any earlier one published again (a roll-back is a publish). Exactly one version of one pack is active.
A version is stored as the canonical YAML of :func:`models.packs.dump_pack` with its version number
written in, so an export imports back to the identical pack.

On first use the store is seeded with the default pack as version 1, active (in one transaction, so
servers starting together on one PostgreSQL database seed it once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from models.packs import PhrasePack, dump_pack, load_pack, parse_pack
from server.storage.database import DatabaseError
from server.storage.tables import TableStore

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pack_versions (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    yaml       TEXT NOT NULL,
    note       TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS active_pack (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    published_at TEXT NOT NULL,
    FOREIGN KEY (name, version) REFERENCES pack_versions (name, version)
);
"""


_SEEDED = "seeded with the bundled default pack"


class PackStoreError(DatabaseError):
    """A pack operation that cannot be done; UnknownPackError when the pack or version does not exist."""


class UnknownPackError(PackStoreError):
    pass


class PackExistsError(PackStoreError):
    pass


@dataclass(frozen=True)
class PackVersion:
    name: str
    version: int
    note: str
    created_at: str
    active: bool


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class PackStore(TableStore):
    """Versions of phrase packs in the server's database (thread-safe)."""

    name = "packs"
    schema = _SCHEMA
    error = PackStoreError

    def __init__(self, location: str | Path, *, seed: PhrasePack | None = None) -> None:
        super().__init__(location)
        try:
            if self.active() is None:
                self._seed(seed or load_pack())
        except BaseException:
            self.close()
            raise

    def _seed(self, pack: PhrasePack) -> None:
        """Store `pack` as version 1 and publish it, unless another process has published a pack by now.
        (A store whose versions of `pack`'s name were saved but never published gets its latest one.)"""
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM active_pack WHERE id = 1").fetchone() is not None:
                return
            now = _now()
            version = conn.execute(
                "SELECT MAX(version) FROM pack_versions WHERE name = ?", (pack.name,)
            ).fetchone()[0]
            if version is None:
                version = 1
                yaml = dump_pack(pack.model_copy(update={"version": 1}))
                conn.execute(
                    "INSERT INTO pack_versions (name, version, yaml, note, created_at)"
                    " VALUES (?, 1, ?, ?, ?)",
                    (pack.name, yaml, _SEEDED, now),
                )
            conn.execute(
                "INSERT INTO active_pack (id, name, version, published_at) VALUES (1, ?, ?, ?)",
                (pack.name, version, now),
            )
        logger.info("pack store seeded: %s v%d is active", pack.name, version)

    # -- versions -----------------------------------------------------------------------------------------

    def save(self, pack: PhrasePack, *, note: str = "", new: bool = False) -> PhrasePack:
        """Store `pack` as the next version of its name (version 1 of a new pack with ``new=True``, which
        refuses a name in use); returns the pack as stored, its version number set."""
        with self._write() as conn:
            latest = conn.execute(
                "SELECT MAX(version) FROM pack_versions WHERE name = ?", (pack.name,)
            ).fetchone()[0]
            if new and latest is not None:
                raise PackExistsError(f"a pack named {pack.name!r} already exists; save a new version of it")
            if not new and latest is None:
                raise UnknownPackError(f"unknown pack {pack.name!r}; create it first")
            stored = pack.model_copy(update={"version": (latest or 0) + 1})
            conn.execute(
                "INSERT INTO pack_versions (name, version, yaml, note, created_at) VALUES (?, ?, ?, ?, ?)",
                (stored.name, stored.version, dump_pack(stored), note, _now()),
            )
        logger.info("pack %s v%d saved", stored.name, stored.version)
        return stored

    def get(self, name: str, version: int | None = None) -> PhrasePack:
        """A stored version (the latest when `version` is None)."""
        return parse_pack(self.yaml(name, version), source=f"{name} v{version or 'latest'}")

    def yaml(self, name: str, version: int | None = None) -> str:
        """The stored YAML of a version, exactly as exported."""
        if version is None:
            rows = self._read(
                "SELECT yaml FROM pack_versions WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
            )
        else:
            rows = self._read(
                "SELECT yaml FROM pack_versions WHERE name = ? AND version = ?", (name, version)
            )
        if not rows:
            raise UnknownPackError(f"unknown pack {name!r}" + (f" version {version}" if version else ""))
        return rows[0]["yaml"]

    def versions(self, name: str | None = None) -> list[PackVersion]:
        """All versions (of one pack), newest first per pack."""
        active = self.active()
        sql = "SELECT name, version, note, created_at FROM pack_versions"
        rows = self._read(
            sql + (" WHERE name = ?" if name else "") + " ORDER BY name, version DESC",
            (name,) if name else (),
        )
        if name and not rows:
            raise UnknownPackError(f"unknown pack {name!r}")
        return [
            PackVersion(
                r["name"], r["version"], r["note"], r["created_at"], (r["name"], r["version"]) == active
            )
            for r in rows
        ]

    def clone(self, name: str, version: int | None, new_name: str) -> PhrasePack:
        """A new pack `new_name` (version 1) with the content of `name` at `version`."""
        source = self.get(name, version)
        return self.save(
            source.model_copy(update={"name": new_name}),
            note=f"cloned from {name} v{source.version}",
            new=True,
        )

    # -- the active version -------------------------------------------------------------------------------

    def active(self) -> tuple[str, int] | None:
        rows = self._read("SELECT name, version FROM active_pack WHERE id = 1")
        return (rows[0]["name"], rows[0]["version"]) if rows else None

    def publish(self, name: str, version: int) -> None:
        """Make a stored version the active one (also how a roll-back is done)."""
        with self._write() as conn:
            found = conn.execute(
                "SELECT 1 FROM pack_versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            if found is None:
                raise UnknownPackError(f"unknown pack {name!r} version {version}")
            conn.execute(
                "INSERT INTO active_pack (id, name, version, published_at) VALUES (1, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version,"
                " published_at = excluded.published_at",
                (name, version, _now()),
            )
        logger.info("pack %s v%d is now active", name, version)
