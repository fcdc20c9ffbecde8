"""The deployment of issue 19 in one test: two front-ends on one PostgreSQL database, their turns
transcribed by speech workers on a local Ray cluster, a call streamed into each, each call's sidebar on the
*other* front-end, and a speech node killed while both workers are busy. Every final turn and alert of
both calls reaches the other front-end's sidebar, and the store holds each turn once.

Everything is real: a throw-away PostgreSQL, a Ray cluster of separate raylet and worker processes on
127.0.0.1, two uvicorn servers each with its own stores, hub, relay and connection to the workers, turns
transcribed by the speech workers and judged by the classification workers of the cluster (the front-ends
hold no model), TTS calls over WebSockets.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest

from server.config import Settings
from server.live.protocol import StartMessage
from server.live.simulate import pcm16_frames, stream_call
from tests.conftest import wait_for

RU = StartMessage(encoding="pcm16", sample_rate=8000, channels=2, roles=["agent", "customer"], language="ru")
EN = RU.model_copy(update={"language": "en"})


@pytest.fixture
def cluster_front_ends(
    speech_cluster, shared_models, cache_dir: Path, tmp_path: Path, postgres_url, monkeypatch
):
    """Front-ends A and B (PostgreSQL, ``ray=`` the cluster), with two live speech workers and turns judged
    on the cluster."""
    from server.cluster.actors import join_cluster
    from server.live.engine import cluster_classifier, cluster_pool
    from tests.conftest import _serve

    join_cluster(speech_cluster.address)
    speech_cluster.ensure_speech_nodes(2)  # an earlier test may have killed one
    wait_for(lambda: len(set(_nodes())) == 2, 180, "two speech workers")
    _, _, endpoint = shared_models
    settings = Settings(ray=speech_cluster.address, cache_dir=cache_dir)
    classifier = cluster_classifier(settings)
    pools = [cluster_pool(settings), cluster_pool(settings)]
    front_end = {"database_url": postgres_url, "ray": speech_cluster.address}
    servers = []
    try:
        a = _serve((pools[0], classifier, endpoint), cache_dir, tmp_path / "a", **front_end)
        servers.append(a)
        monkeypatch.setitem(_serve.__globals__, "_add_users", lambda database: a.users)
        servers.append(_serve((pools[1], classifier, endpoint), cache_dir, tmp_path / "b", **front_end))
        yield servers[0], servers[1], pools
    finally:
        for server in servers:
            server.stop()
            server.engine.store.close()
        for pool in pools:
            pool.close()


def test_two_front_ends_share_workers_and_sidebars_and_lose_nothing_when_a_worker_dies(
    speech_cluster, cluster_front_ends, ru_call, en_call, listen, alert_problems
):
    """Tried: the Russian call streamed into A and the English one into B at once, as fast as they are
    taken; A's call watched from B and B's from A; once both speech workers are busy, one's node is killed
    (no goodbye). Both calls end normally; each sidebar on the other front-end gets every final turn and
    the expected alerts, then ``end``; each call's turns are stored once, as its sidebar saw them."""
    a, b, pools = cluster_front_ends
    for server in (a, b):
        assert httpx.get(f"{server.url}/healthz").json()["models_here"] == []  # Whisper, encoder: cluster
    calls = {"ru-two": (a, b, ru_call, RU), "en-two": (b, a, en_call, EN)}
    sidebars = {call_id: listen(other, call_id) for call_id, (_, other, _, _) in calls.items()}
    victim = sorted(_nodes())[0]
    results: dict[str, object] = {}

    def stream(call_id: str) -> None:
        server, _, call, start = calls[call_id]
        frames = list(pcm16_frames(call.samples, call.sample_rate))
        token = server.token("telephony")
        results[call_id] = asyncio.run(
            stream_call(server.ws, call_id, start, frames, realtime=False, token=token)
        )

    def kill_when_busy() -> None:
        wait_for(lambda: sum(p.stats().running for p in pools) >= 2, 180, "both workers to be busy")
        speech_cluster.kill_node(victim)

    threads = [threading.Thread(target=stream, args=(c,), daemon=True) for c in calls]
    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    killer.join(30)
    assert not killer.is_alive(), "the node was never killed"
    for call_id, (server, other, call, _) in calls.items():
        assert results[call_id].close_code == 1000, call_id
        events = sidebars[call_id].wait()
        assert events[-1] == {"type": "end"}, call_id
        assert alert_problems(call, events) == [], call_id
        finals = [e for e in events if e["type"] == "transcript" and e["final"]]
        turns = server.engine.store.list_turns(call_id)
        assert [t.text for t in turns] == [e["text"] for e in sorted(finals, key=lambda e: e["start"])], (
            call_id
        )
        assert len({(t.speaker, t.start) for t in turns}) == len(turns) == len(finals), call_id
        alerts = [e for e in events if e["type"] == "alert"]
        assert len(server.engine.store.list_alerts(call_id)) == len(alerts), call_id
        assert other.engine.store.get_call(call_id).status == "completed"  # one database
    speech_cluster.ensure_speech_nodes(2)  # leave the cluster as the fixture made it


def _nodes() -> list[str]:
    """The nodes the speech workers run on now."""
    from server.cluster.speech_pool import ClusterTranscription

    remote = ClusterTranscription("bundled", 6.0)
    try:
        return [w["node"] for w in remote.where()]
    finally:
        remote.close()
