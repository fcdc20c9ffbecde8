"""A real ``callbuffer serve`` on a SQLite file, for the benches that time its HTTP API.

The server runs as its own process (as operations would run it), a reviewer's token is issued through
the same store ``callbuffer users`` writes to, and the server is stopped when the block ends. Also the
timing and the percentile those benches print.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from server.access.store import AuthStore, Role, UserConflictError

T = TypeVar("T")  # a bench's unit of work (one query)


@dataclass(frozen=True)
class Served:
    """Where the server listens and a reviewer's bearer token for it."""

    url: str
    token: str


@contextlib.contextmanager
def serve_sqlite(db: Path, **env: str) -> Iterator[Served]:
    """Serve `db` on a free loopback port (``env``: extra ``CALLBUFFER_…`` settings) until the block ends."""
    with AuthStore(db) as auth:
        with contextlib.suppress(UserConflictError):  # made by an earlier run
            auth.add_user("bench-reviewer", Role.REVIEWER)
        token = auth.issue_token("bench-reviewer", "bench")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    settings = {"CALLBUFFER_DATABASE_URL": f"sqlite:///{db.resolve()}", "CALLBUFFER_DATA_DIR": str(data)}
    cli = shutil.which("callbuffer")
    command = [cli] if cli else [sys.executable, "-c", "from server.cli.main import main; main()"]
    log = (data / "serve.log").open("w")
    server = subprocess.Popen(
        [*command, "serve", "--port", str(port)],
        env={**os.environ, **settings, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, server, data / "serve.log")
        yield Served(url, token)
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def _wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit(f"callbuffer serve did not start; see {log}")
        time.sleep(0.5)


def time_served(
    db: Path, run: Callable[[str, str, list[T]], dict[str, list[float]]], work: list[T], warm: int, **env: str
) -> dict[str, list[float]]:
    """Serve the SQLite file `db` (with `env`), warm it with `run` on the first `warm` items of `work`, then
    return what `run` times over all of it through HTTP; the server is stopped after."""
    with serve_sqlite(db, **env) as served:
        run(served.url, served.token, work[:warm])
        return run(served.url, served.token, work)


def percentile(values: list[float], p: int) -> float:
    """The `p`-th percentile of `values` (inclusive method; the value itself when there is one)."""
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]
