"""The calls' store on SQLite and PostgreSQL (tests taking `store_location` run on both): several
connections and threads; and, on real SQLite files, WAL, versions and a writer killed mid-call."""

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from server.live.store import (
    SCHEMA_VERSION,
    AlertRecord,
    CallExistsError,
    CallRecord,
    CallStateError,
    NoRoomError,
    Store,
    StoreError,
    TurnRecord,
    UnknownCallError,
)


@pytest.fixture
def store(store_location: str | Path):
    with Store(store_location) as opened:
        yield opened


def open_call(store: Store, call_id: str = "call-1") -> CallRecord:
    return store.create_call(call_id, ["agent", "customer"], "ru", "pcm16", 8000)


def test_creates_parent_dir_schema_and_wal(tmp_path: Path):
    path = tmp_path / "a" / "b" / "calls.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    Store(path).close()  # re-opening neither fails nor records the version twice
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1


def test_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "calls.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        Store(path)


def test_a_version_1_file_gains_the_agent_column(tmp_path: Path):
    """A store written before calls named their agent opens, keeps its calls, and takes agents."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the version 1 tables (turns and alerts unchanged since)
        conn.executescript(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);"
            "INSERT INTO schema_version VALUES (1);"
            "CREATE TABLE calls (call_id TEXT PRIMARY KEY, roles TEXT NOT NULL, language TEXT,"
            " encoding TEXT NOT NULL, sample_rate INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'active',"
            " created_at TEXT NOT NULL, ended_at TEXT);"
            "INSERT INTO calls VALUES ('old-1', '[\"agent\"]', 'ru', 'pcm16', 8000, 'completed',"
            " '2026-01-01', NULL);"
        )
    with Store(path) as store:
        assert store.get_call("old-1").agent is None
        assert store.create_call("new-1", ["agent"], None, "pcm16", 8000, agent="anna").agent == "anna"


def test_round_trip_of_a_call(store: Store):
    created = open_call(store)
    assert created.status == "active" and created.ended_at is None
    assert created.roles == ("agent", "customer") and created.language == "ru"
    assert (created.encoding, created.sample_rate) == ("pcm16", 8000)
    created_at = datetime.fromisoformat(created.created_at)
    assert created_at.utcoffset() == timedelta(0)

    t1 = store.add_turn("call-1", "agent", "Здравствуйте, чем могу помочь? 😊", 0.5, 2.0)
    t2 = store.add_turn("call-1", "customer", "Mне нужна помощь с «картой»", 2.5, 4.0)
    a1 = store.add_alert(
        "call-1",
        t2,
        "card_problem",
        "trigger",
        "customer",
        "Mне нужна помощь с «картой»",
        2.5,
        4.0,
        0.91,
        ["Уточните номер карты", "Предложите перевыпуск", ""],
        7,
    )
    assert t1 != t2

    assert store.list_turns("call-1") == [
        TurnRecord(t1, "call-1", "agent", "Здравствуйте, чем могу помочь? 😊", 0.5, 2.0),
        TurnRecord(t2, "call-1", "customer", "Mне нужна помощь с «картой»", 2.5, 4.0),
    ]
    assert store.list_alerts("call-1") == [
        AlertRecord(
            a1,
            "call-1",
            t2,
            "card_problem",
            "trigger",
            "customer",
            "Mне нужна помощь с «картой»",
            2.5,
            4.0,
            0.91,
            ("Уточните номер карты", "Предложите перевыпуск", ""),
            7,
        )
    ]
    ended = store.end_call("call-1", "completed")
    assert ended.status == "completed"
    assert datetime.fromisoformat(ended.ended_at) >= created_at
    assert store.get_call("call-1") == ended
    assert store.get_call("nope") is None
    assert store.list_turns("nope") == [] and store.list_alerts("nope") == []


def test_records_are_frozen(store: Store):
    record = open_call(store)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = "failed"  # type: ignore[misc]


def test_alert_without_turn_and_empty_suggestions(store: Store):
    open_call(store)
    alert_id = store.add_alert("call-1", None, "rude", "forbidden", "agent", "x", 1.0, 2.0, 0.5, [], 1)
    [alert] = store.list_alerts("call-1")
    assert (alert.id, alert.turn_id, alert.suggestions) == (alert_id, None, ())


def test_turns_and_alerts_ordered_by_start(store: Store):
    open_call(store)
    for start in (5.0, 1.0, 3.0, 1.0):
        turn = store.add_turn("call-1", "agent", f"at {start}", start, start + 0.5)
        store.add_alert(
            "call-1", turn, "c", "forbidden", "agent", f"at {start}", start, start + 0.5, 0.5, [], 1
        )
    turns = store.list_turns("call-1")
    assert [t.start for t in turns] == [1.0, 1.0, 3.0, 5.0]
    assert turns[0].id < turns[1].id  # equal starts keep insertion order
    assert [a.start for a in store.list_alerts("call-1")] == [1.0, 1.0, 3.0, 5.0]


def test_turns_of_other_calls_are_separate(store: Store):
    open_call(store, "a")
    open_call(store, "b")
    store.add_turn("a", "agent", "in a", 0, 1)
    store.add_turn("b", "agent", "in b", 0, 1)
    assert [t.text for t in store.list_turns("a")] == ["in a"]


@pytest.mark.parametrize("status", ["completed", "disconnected", "failed"])
def test_end_call_statuses(store: Store, status: str):
    open_call(store)
    assert store.end_call("call-1", status).status == status
    # The first end wins: a cleanup path ending it again changes nothing.
    again = store.end_call("call-1", "failed" if status != "failed" else "completed")
    assert again.status == status and again == store.get_call("call-1")


def test_end_call_errors(store: Store):
    with pytest.raises(UnknownCallError, match="unknown call id 'ghost'"):
        store.end_call("ghost", "completed")
    open_call(store)
    with pytest.raises(StoreError, match="status must be one of completed, disconnected, failed"):
        store.end_call("call-1", "done")  # type: ignore[arg-type]
    assert store.get_call("call-1").status == "active"


def test_unknown_call_in_add_turn_and_alert(store: Store):
    with pytest.raises(UnknownCallError, match="cannot add turn: unknown call id 'ghost-7'"):
        store.add_turn("ghost-7", "agent", "x", 0, 1)
    with pytest.raises(UnknownCallError, match="cannot add alert: unknown call id 'ghost-7'"):
        store.add_alert("ghost-7", None, "c", "forbidden", "agent", "x", 0, 1, 0.5, [], 1)


def test_writes_after_end_are_refused(store: Store):
    open_call(store)
    turn = store.add_turn("call-1", "agent", "x", 0, 1)
    store.end_call("call-1", "completed")
    with pytest.raises(CallStateError, match=r"call 'call-1' has ended \(completed\)"):
        store.add_turn("call-1", "agent", "late", 1, 2)
    with pytest.raises(CallStateError):
        store.add_alert("call-1", turn, "c", "forbidden", "agent", "x", 0, 1, 0.5, [], 1)


def test_bad_values_are_refused(store: Store):
    open_call(store, "a")
    other_turn = store.add_turn("a", "agent", "x", 0, 1)
    open_call(store, "b")
    with pytest.raises(StoreError, match="start <= end"):
        store.add_turn("b", "agent", "x", 2, 1)
    with pytest.raises(StoreError, match="start <= end"):
        store.add_turn("b", "agent", "x", float("nan"), 1)
    with pytest.raises(StoreError, match=f"turn {other_turn} is not a turn of call 'b'"):
        store.add_alert("b", other_turn, "c", "forbidden", "agent", "x", 0, 1, 0.5, [], 1)
    with pytest.raises(StoreError, match="suggestions must be a list of strings"):
        store.add_alert("b", None, "c", "forbidden", "agent", "x", 0, 1, 0.5, "one", 1)
    with pytest.raises(StoreError, match="one role per channel"):
        store.create_call("c", [], None, "pcm16", 8000)
    assert store.list_turns("b") == [] and store.list_alerts("b") == []


def test_reopen_refusal_and_resume(store: Store):
    open_call(store)
    with pytest.raises(CallExistsError, match=r"call id 'call-1' is already in use \(active\)"):
        open_call(store)
    store.add_turn("call-1", "agent", "before the drop", 0, 1)
    store.end_call("call-1", "disconnected")
    with pytest.raises(CallExistsError, match="only be resumed with the same"):
        store.create_call("call-1", ["agent", "customer"], "en", "pcm16", 8000)
    resumed = open_call(store)  # a reconnect after a dropped line continues the call
    assert resumed.status == "active" and resumed.ended_at is None
    store.add_turn("call-1", "agent", "after the drop", 1, 2)
    assert [t.text for t in store.list_turns("call-1")] == ["before the drop", "after the drop"]
    store.end_call("call-1", "completed")
    with pytest.raises(CallExistsError, match=r"already in use \(completed\)"):
        open_call(store)


def test_list_calls_newest_first_with_paging(store: Store):
    for i in range(5):
        open_call(store, f"c{i}")
    assert [c.call_id for c in store.list_calls()] == ["c4", "c3", "c2", "c1", "c0"]
    assert [c.call_id for c in store.list_calls(limit=2, offset=1)] == ["c3", "c2"]
    assert store.list_calls(limit=10, offset=5) == []
    with pytest.raises(StoreError, match="limit must be"):
        store.list_calls(limit=0)


def test_list_calls_for_an_agent_pages_over_their_calls_only(store: Store):
    """An agent's page is filled with calls they may see (theirs and unnamed ones), not cut after paging."""
    for i in range(6):
        store.create_call(f"a{i}", ["agent"], "ru", "pcm16", 8000, agent="anna" if i % 2 else "oleg")
    store.create_call("open", ["agent"], "ru", "pcm16", 8000)
    store.end_call("a5", "completed")
    assert [c.call_id for c in store.list_calls(limit=3, agent="anna")] == ["open", "a5", "a3"]
    assert [c.call_id for c in store.list_calls(limit=3, offset=3, agent="anna")] == ["a1"]
    assert [c.call_id for c in store.list_calls(agent="anna", active=True)] == ["open", "a3", "a1"]
    assert len(store.list_calls()) == 7


def test_second_store_on_the_same_database_sees_the_data(store_location: str | Path):
    with Store(store_location) as writer, Store(store_location) as reader:
        open_call(writer)
        writer.add_turn("call-1", "customer", "первая реплика", 0, 1)
        assert reader.get_call("call-1").status == "active"
        assert [t.text for t in reader.list_turns("call-1")] == ["первая реплика"]
        reader.add_turn("call-1", "agent", "from the other store", 1, 2)  # and it can write too
        assert len(writer.list_turns("call-1")) == 2


def test_concurrent_writes_from_8_threads(store_location: str | Path):
    path = store_location
    shared = Store(path)
    shared.create_call("shared", ["agent"], None, "pcm16", 16000)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)
    per_thread = 40

    def work(n: int) -> None:
        # Half the threads share one Store, half open their own: both paths must not lose rows or lock up.
        own = Store(path) if n % 2 else None
        store = own or shared
        try:
            barrier.wait()
            call_id = f"call-{n}"
            store.create_call(call_id, ["agent"], None, "mulaw", 8000)
            for i in range(per_thread):
                turn = store.add_turn(call_id, "agent", f"turn {i}", i, i + 1)
                store.add_alert(
                    call_id, turn, "c", "forbidden", "agent", f"turn {i}", i, i + 1, 0.5, ["s"], 1
                )
                store.add_turn("shared", "customer", f"{n}/{i}", i, i + 1)
            store.end_call(call_id, "completed")
        except BaseException as exc:  # collected and re-raised on the main thread
            errors.append(exc)
        finally:
            if own is not None:
                own.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Store(path) as check:
        calls = check.list_calls(limit=100)
        assert sorted(c.call_id for c in calls) == [f"call-{n}" for n in range(8)] + ["shared"]
        assert sum(c.status == "completed" for c in calls) == 8
        shared_turns = {t.text for t in check.list_turns("shared")}
        assert shared_turns == {f"{n}/{i}" for n in range(8) for i in range(per_thread)}
        for n in range(8):
            assert len(check.list_turns(f"call-{n}")) == per_thread
            assert len(check.list_alerts(f"call-{n}")) == per_thread
    shared.close()


def test_unclosed_writer_then_fresh_reader(tmp_path: Path):
    path = tmp_path / "calls.db"
    writer = Store(path)  # deliberately never closed, like a process that died
    open_call(writer)
    turn = writer.add_turn("call-1", "agent", "ещё не закрыто", 0, 1)
    writer.add_alert("call-1", turn, "c", "forbidden", "agent", "ещё не закрыто", 0, 1, 0.6, ["a", "b"], 2)
    fresh = Store(path)
    assert fresh.get_call("call-1").status == "active"
    assert [t.text for t in fresh.list_turns("call-1")] == ["ещё не закрыто"]
    assert fresh.list_alerts("call-1")[0].suggestions == ("a", "b")
    fresh.close()


def test_writer_process_killed_mid_call(tmp_path: Path):
    path = tmp_path / "calls.db"
    script = textwrap.dedent(
        f"""
        import sys, time
        from server.live.store import Store
        store = Store({str(path)!r})
        store.create_call("killed", ["agent", "customer"], "ru", "pcm16", 16000)
        for i in range(20):
            turn = store.add_turn("killed", "customer", f"реплика {{i}}", i, i + 0.5)
            store.add_alert("killed", turn, "c", "trigger", "customer", "x", i, i + 0.5, 0.7, ["совет"], 4)
        print("written", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "written"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    with Store(path) as store:
        call = store.get_call("killed")
        assert call is not None and call.status == "active" and call.sample_rate == 16000
        assert [t.text for t in store.list_turns("killed")] == [f"реплика {i}" for i in range(20)]
        alerts = store.list_alerts("killed")
        assert len(alerts) == 20 and all(a.suggestions == ("совет",) for a in alerts)
        store.end_call("killed", "disconnected")  # the restarted server can settle the orphaned call


def test_closed_store_refuses_use(tmp_path: Path):
    store = Store(tmp_path / "calls.db")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.get_call("x")


def test_admission_by_room_never_overshoots_across_servers(store_location: str | Path):
    """Tried: eight calls offered at the same instant to eight servers (a connection each to one
    database), with room for three and one call already active: exactly two more start, the other six are
    refused with NoRoomError naming the active calls. A resume of a disconnected call takes a place like a
    new one."""
    servers = [Store(store_location) for _ in range(8)]
    try:
        a, b = servers[:2]
        a.create_call("already", ["agent"], "ru", "pcm16", 8000, room=3)
        barrier = threading.Barrier(len(servers))
        started, refused = [], []

        def offer(i: int) -> None:
            barrier.wait()
            try:
                servers[i].create_call(f"offered-{i}", ["agent"], "ru", "pcm16", 8000, room=3)
                started.append(i)
            except NoRoomError as exc:
                refused.append(exc.active)

        threads = [threading.Thread(target=offer, args=(i,)) for i in range(len(servers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(started) == 2 and refused == [3] * 6
        assert a.count_active() == 3
        first = f"offered-{started[0]}"
        b.end_call(first, "disconnected")
        a.create_call("offered-late", ["agent"], "ru", "pcm16", 8000, room=3)
        with pytest.raises(NoRoomError):
            b.create_call(first, ["agent"], "ru", "pcm16", 8000, room=3)  # the resume finds no room
        a.end_call("already", "completed")
        assert b.create_call(first, ["agent"], "ru", "pcm16", 8000, room=3).status == "active"
    finally:
        for server in servers:
            server.close()
