"""Fixtures for the server's stores: the same tests on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a store opens its tables: a new SQLite file, then a new database on the session's
    PostgreSQL (``postgres_server`` in tests/conftest.py). A test that takes it runs once on each."""
    if request.param == "sqlite":
        return tmp_path / "nested" / "dir" / "callbuffer.db"
    return request.getfixturevalue("postgres_url")
