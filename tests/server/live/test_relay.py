"""Several front-ends on one PostgreSQL database (server.live.relay): a call streamed into front-end A is
followed by sidebars on front-end B, a pack published on A judges B's turns, a message too long for a
NOTIFY still arrives, and a relay whose listening connection is killed catches up and goes on.

Everything is real: two uvicorn servers (each with its own stores, registry, hub and relay; the Whisper
pool and the classifier loaded once for the session are shared, as in the other server tests) on a
throw-away PostgreSQL, TTS calls streamed over WebSockets, sidebars on real sockets.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import psycopg
import pytest

from server.live.protocol import EndMessage, StartMessage, TranscriptMessage
from server.live.simulate import pcm16_frames, stream_call
from tests.conftest import wait_for

START = StartMessage(
    encoding="pcm16", sample_rate=8000, channels=2, roles=["agent", "customer"], language="ru"
)
END = {"type": "end"}
EXTRA = "Это вообще не моя забота, разбирайтесь сами."


@pytest.fixture
def front_ends(shared_models, cache_dir: Path, tmp_path: Path, postgres_url: str, monkeypatch):
    """Front-ends A and B on one new PostgreSQL database, each with its own stores, hub and relay.

    B is started by the same helper as A; its users are A's (they are in the shared database already,
    so the helper's step that adds them is pointed at A's)."""
    from tests.conftest import _serve

    a = _serve(shared_models, cache_dir, tmp_path / "a", database_url=postgres_url)
    monkeypatch.setitem(_serve.__globals__, "_add_users", lambda database: a.users)
    try:
        b = _serve(shared_models, cache_dir, tmp_path / "b", database_url=postgres_url)
    except BaseException:
        a.stop()
        a.engine.store.close()
        raise
    yield a, b
    for server in (a, b):
        server.stop()
        server.engine.store.close()


def _stream(server, call_id: str, frames: list[bytes], out: dict) -> threading.Thread:
    """Stream `frames` into `server` as fast as it takes them, on a thread; `out["result"]` at the end."""

    def run() -> None:
        out["result"] = asyncio.run(
            stream_call(server.ws, call_id, START, frames, realtime=False, token=server.token("telephony"))
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _lasting(events: list[dict]) -> list[dict]:
    """What a sidebar keeps: final transcripts and alerts, in order."""
    return [e for e in events if e["type"] == "alert" or (e["type"] == "transcript" and e["final"])]


def _outline(events: list[dict]) -> list[tuple]:
    """The lasting events in short, for a failure's message."""
    return [(e["type"], e["speaker"], e["start"], e.get("category")) for e in _lasting(events)]


def _finals(events: list[dict]) -> int:
    return sum(1 for e in events if e["type"] == "transcript" and e["final"])


def _sidebars(server, call_id: str, count: int) -> None:
    """Wait until `count` sidebars are subscribed to the call on `server` (a socket is connected a moment
    before the server has subscribed it)."""
    hub = server.app.state.calls.hub
    wait_for(
        lambda: server.on_loop(hub.listener_count, call_id) >= count, 30, f"{count} sidebars", every=0.05
    )


def test_sidebars_on_another_front_end_follow_a_call(front_ends, ru_call, listen):
    """Tried: A's own sidebar and one on B join before the Russian call is streamed into A; a second
    sidebar joins B after B's first has had a final turn. B's early sidebar gets exactly what A's got
    (previews too), the late one every final turn and alert in order (the start replayed from the store),
    and both then ``end``."""
    a, b = front_ends
    own, early = listen(a, "relay-1"), listen(b, "relay-1")
    _sidebars(a, "relay-1", 1)
    _sidebars(b, "relay-1", 1)
    out: dict = {}
    streaming = _stream(a, "relay-1", list(pcm16_frames(ru_call.samples, ru_call.sample_rate)), out)
    wait_for(lambda: _finals(early.events) >= 1, 300, "B's sidebar to get a final turn", every=0.05)
    assert END not in early.events  # the next sidebar joins mid-call
    late = listen(b, "relay-1")
    streaming.join(600)
    assert out["result"].close_code == 1000
    seen_on_a = own.wait()
    lasting = _lasting(seen_on_a)
    assert seen_on_a[-1] == END and len(lasting) > 5 and any(e["type"] == "alert" for e in lasting)
    assert early.wait() == seen_on_a
    seen_late = late.wait()
    assert seen_late[-1] == END
    assert _lasting(seen_late) == lasting, (_outline(seen_late), _outline(seen_on_a))
    assert b.app.state.relay is not None and a.app.state.relay.origin != b.app.state.relay.origin


def test_a_pack_published_on_one_front_end_judges_turns_on_the_other(front_ends, ru_call, listen):
    """Tried: a trainer saves a new version of the pack on A (REST) and publishes it there; B, told
    through the relay, swaps in that version's classifier without a restart. Then the first half of the
    Russian call is streamed into B: its alerts name the new version, and a sidebar on A (the other way
    round) sees every one of them."""
    a, b = front_ends
    trainer = a.http("trainer")
    pack = trainer.get(f"{a.url}/v1/packs/default/versions/1").json()
    for category in pack["categories"]:
        if category["id"] == "not_my_job":
            category["examples"]["ru"].append(EXTRA)
    draft = trainer.put(f"{a.url}/v1/packs/default", json=pack).json()["version"]
    published = trainer.post(f"{a.url}/v1/packs/default/versions/{draft}/publish", timeout=600)
    assert published.status_code == 200 and published.json()["active"]["version"] == draft
    assert a.engine.classifier.pack.version == draft
    wait_for(
        lambda: b.engine.classifier.pack.version == draft, 300, "B to use the published version", every=0.05
    )

    watching_on_a = listen(a, "relay-pack")
    _sidebars(a, "relay-pack", 1)
    frames = list(pcm16_frames(ru_call.samples, ru_call.sample_rate))
    out: dict = {}
    _stream(b, "relay-pack", frames[: len(frames) // 2], out).join(600)
    events = [r.event for r in out["result"].events]
    alerts = [e for e in events if e["type"] == "alert"]
    assert out["result"].close_code == 1000 and alerts
    assert {alert["pack_version"] for alert in alerts} == {draft}
    seen_on_a = watching_on_a.wait()
    assert seen_on_a[-1] == END and _lasting(seen_on_a) == _lasting(events)


def test_an_event_too_long_for_a_notify_arrives_in_order(front_ends, listen):
    """Tried: A's relay announces a call whose one final transcript is 6 000 characters of Russian (11 kB
    of JSON, past PostgreSQL's 8 000-byte NOTIFY limit), then a short one, then the end. B's sidebar gets
    the long one intact, then the short one, then ``end``; the long one went through the table."""
    a, b = front_ends
    sidebar = listen(b, "relay-big")
    _sidebars(b, "relay-big", 1)
    long_turn = TranscriptMessage(
        speaker="customer", text="очень длинная реплика " * 273, start=0.0, end=300.0, final=True
    ).to_json()
    short_turn = TranscriptMessage(
        speaker="agent", text="понимаю", start=301.0, end=302.0, final=True
    ).to_json()
    assert len(long_turn.encode()) > 11_000
    relay = a.app.state.relay
    relay.opened("relay-big", None, 0)
    relay.published("relay-big", long_turn, True)
    relay.published("relay-big", short_turn, True)
    relay.published("relay-big", EndMessage().to_json(), False)
    relay.closed("relay-big", True)
    assert sidebar.wait(60) == [json.loads(long_turn), json.loads(short_turn), END]
    with psycopg.connect(a.settings.database_url) as conn:
        stored = conn.execute("SELECT payload FROM relay_messages").fetchall()
    assert [json.loads(row[0])["event"] for row in stored] == [long_turn]


def test_a_relay_whose_connection_is_killed_catches_up_and_goes_on(
    front_ends, ru_call, listen, postgres_server
):
    """Tried: during a call streamed into A, once B's sidebar has a final turn, the database stops taking
    new connections and B's listening connection is killed (pg_terminate_backend), so B cannot listen
    while A's next turns go out; after four of them the database opens again. B's relay connects again,
    re-reads the call from the store, and its sidebar still gets every final turn and alert A's did, in
    order, each once, then the turns after the outage as they come, and ``end``."""
    a, b = front_ends
    own, watching = listen(a, "relay-kill"), listen(b, "relay-kill")
    _sidebars(a, "relay-kill", 1)
    _sidebars(b, "relay-kill", 1)
    out: dict = {}
    streaming = _stream(a, "relay-kill", list(pcm16_frames(ru_call.samples, ru_call.sample_rate)), out)
    wait_for(lambda: _finals(watching.events) >= 1, 300, "B's sidebar to get a final turn", every=0.05)
    channel = b.app.state.relay.channel
    database = a.settings.database_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.url_of("postgres"), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        try:
            killed = admin.execute("SELECT pg_terminate_backend(%s)", (channel.listener_pid,)).fetchone()
            assert killed[0]
            finals_at_kill = _finals(own.events)
            wait_for(
                lambda: _finals(own.events) >= finals_at_kill + 4, 300, "turns during the outage", every=0.05
            )
            assert channel.listener_pid is None  # still away: it cannot connect
        finally:
            admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
    assert END not in own.events  # turns are still to come after the outage
    streaming.join(600)
    assert out["result"].close_code == 1000
    seen_on_a = own.wait()
    seen_on_b = watching.wait()
    assert seen_on_b[-1] == END
    assert _lasting(seen_on_b) == _lasting(seen_on_a), (_outline(seen_on_b), _outline(seen_on_a))
    assert channel.reconnects == 1 and channel.listener_pid is not None


def test_no_relay_on_sqlite(live_server):
    """Tried: a server on the default SQLite store: it has no relay and no relay thread runs."""
    assert live_server.app.state.relay is None
    assert not [t.name for t in threading.enumerate() if t.name.startswith("callbuffer-relay")]
