"""A whole server with CALLBUFFER_DATABASE_URL=postgresql://…: a real call streamed in is stored in
PostgreSQL and read back by a second server's stores (another front-end on the same database), users made
with `callbuffer users` against the same URL work on the server, and packs are seeded there."""

from __future__ import annotations

import asyncio
import os
import subprocess

import httpx

from server.live.protocol import StartMessage
from server.live.simulate import pcm16_frames, stream_call
from server.live.store import Store

START = StartMessage(
    encoding="pcm16", sample_rate=8000, channels=2, roles=["agent", "customer"], language="ru"
)


def test_a_call_on_one_server_is_read_on_another(postgres_live_server, ru_call):
    server = postgres_live_server
    assert server.settings.database_url and server.engine.store.dialect == "postgresql"
    frames = list(pcm16_frames(ru_call.samples, ru_call.sample_rate))
    result = asyncio.run(
        stream_call(server.ws, "pg-call", START, frames, realtime=False, token=server.token("telephony"))
    )
    events = [r.event for r in result.events]
    assert result.close_code == 1000 and events[-1] == {"type": "end"}
    finals = sorted((e for e in events if e["type"] == "transcript" and e["final"]), key=lambda e: e["start"])
    alerts = [e for e in events if e["type"] == "alert"]
    assert finals and alerts

    with Store(server.settings.database_url) as other:  # the second front-end's store
        call = other.get_call("pg-call")
        assert call.status == "completed" and call.roles == ("agent", "customer")
        assert [t.text for t in other.list_turns("pg-call")] == [e["text"] for e in finals]
        assert sorted((a.category, a.start, a.score) for a in other.list_alerts("pg-call")) == sorted(
            (a["category"], a["start"], a["score"]) for a in alerts
        )
    shown = server.http("reviewer").get(f"{server.url}/v1/calls/pg-call").json()
    assert [t["text"] for t in shown["turns"]] == [e["text"] for e in finals]


def test_users_cli_and_packs_use_the_same_database(postgres_live_server, tmp_path):
    server = postgres_live_server
    env = {
        **os.environ,
        "CALLBUFFER_DATABASE_URL": server.settings.database_url,
        "CALLBUFFER_DATA_DIR": str(tmp_path / "not-used"),
    }
    added = subprocess.run(
        ["callbuffer", "users", "add", "vera", "--role", "trainer", "--no-password"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    packs = httpx.get(f"{server.url}/v1/packs", headers={"Authorization": f"Bearer {added.stdout.strip()}"})
    assert packs.status_code == 200 and packs.json()["active"]["version"] == 1
    assert not (tmp_path / "not-used" / "callbuffer.db").exists()

    env["CALLBUFFER_DATABASE_URL"] = server.settings.database_url.replace(
        server.settings.database_url.split("@")[0].split(":")[-1], "wrong-password"
    )
    refused = subprocess.run(
        ["callbuffer", "users", "list"], capture_output=True, text=True, env=env, timeout=60
    )
    assert refused.returncode == 1 and "password authentication failed" in refused.stderr
    assert "Traceback" not in refused.stderr and "wrong-password" not in refused.stderr
