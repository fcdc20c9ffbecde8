"""Servers' leases on their calls: the calls of a server that stopped renewing become disconnected.

Real stores on both databases (SQLite file, throw-away PostgreSQL); the dead server is simulated by a
lease that is taken once and never renewed, as a killed process leaves it.
"""

from __future__ import annotations

import time

import pytest

from server.live.leases import Lease
from server.live.store import Store

ROLES = ("agent", "customer")


def _call(store: Store, call_id: str, frontend: str | None) -> None:
    store.create_call(call_id, ROLES, "ru", "pcm16", 8000, None, frontend)


def test_calls_of_a_server_that_stopped_renewing_are_disconnected_and_resumable(store_location):
    """Server "dead" took a lease and a call, then stopped renewing; server "alive" renews; a call that
    names no server (a tool wrote it) is nobody's to end."""
    with Store(store_location) as store:
        store.renew_lease("dead", "host-a")
        _call(store, "of-dead", "dead")
        time.sleep(0.3)
        store.renew_lease("alive", "host-b")
        _call(store, "of-alive", "alive")
        _call(store, "of-nobody", None)
        assert store.count_active() == 3

        assert store.end_orphaned_calls(stale_after=0.2) == ["of-dead"]

        assert store.get_call("of-dead").status == "disconnected"
        assert {store.get_call(c).status for c in ("of-alive", "of-nobody")} == {"active"}
        assert store.count_active() == 2
        assert store.end_orphaned_calls(stale_after=0.2) == []  # once is enough
        _call(store, "of-dead", "alive")  # the client reconnects to another server: resumed
        resumed = store.get_call("of-dead")
        assert (resumed.status, resumed.frontend) == ("active", "alive")


def test_a_running_lease_ends_a_killed_servers_calls_and_gives_itself_back(store_location):
    """Two leases renewing every 0.1 s: one is stopped without giving its lease back (a kill), the
    other ends its call within a second; stopping normally removes a lease at once."""
    with Store(store_location) as store:
        killed = Lease(store, every=0.1, stale_after=0.5)
        killed.start()
        _call(store, "left-behind", killed.id)
        killed._stopped.set()  # the process dies: no more renewals, and no goodbye
        killed._thread.join()
        survivor = Lease(store, every=0.1, stale_after=0.5)
        survivor.start()
        _call(store, "kept", survivor.id)
        deadline = time.monotonic() + 10
        while store.get_call("left-behind").status == "active" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.get_call("left-behind").status == "disconnected"
        assert store.get_call("kept").status == "active"
        store.end_call("kept", "completed")
        survivor.stop()
        rows = store._read("SELECT id FROM frontends")
        assert [r["id"] for r in rows] == []


def test_a_lease_must_be_renewed_more_often_than_it_goes_stale(tmp_path):
    with Store(tmp_path / "cb.db") as store, pytest.raises(ValueError, match="shorter than"):
        Lease(store, every=5, stale_after=5)
