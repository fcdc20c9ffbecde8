"""server.cluster: live turns transcribed by speech workers on a real local Ray cluster (separate raylet
and worker processes on 127.0.0.1); a worker killed mid-turn, or mid-call, loses no turn."""

from __future__ import annotations

import asyncio
import os
import threading

import numpy as np
import pytest
from rapidfuzz import fuzz

from audio.synth import speak
from server.cluster.actors import join_cluster
from server.cluster.speech_pool import ClusterTranscription
from server.config import Settings
from server.live.pool import TranscriptionPool
from server.live.protocol import StartMessage
from server.live.simulate import pcm16_frames, stream_call
from tests.conftest import wait_for

SAID = [
    "Позовите, пожалуйста, вашего руководителя.",
    "Когда уже почините мне интернет?",
    "Я этим не занимаюсь, звоните в другой отдел.",
    "Номер моего договора сорок два ноль семь.",
    "Спасибо, что сообщили нам о проблеме.",
    "Мне очень жаль, что так вышло, я сейчас всё проверю.",
]


def _text(segments) -> str:
    return " ".join(s.text.strip() for s in segments)


@pytest.fixture(scope="module")
def remote(speech_cluster):
    join_cluster(speech_cluster.address)
    remote = ClusterTranscription("bundled", 6.0)
    yield remote
    remote.close()


def test_a_turn_is_transcribed_by_a_worker_process_on_another_node(remote):
    assert remote.slots == 2  # one per callbuffer_speech core of the cluster
    heard = _text(remote.transcribe(speak(SAID[0], "ru"), "ru"))
    assert fuzz.ratio(heard.lower(), SAID[0].lower()) > 70, heard
    where = remote.where()
    assert len(where) == 2
    assert len({w["node"] for w in where}) == 2  # each worker on its own node
    assert os.getpid() not in {w["pid"] for w in where}  # not in this (front-end) process
    assert sum(w["turns"] for w in where) == 1


def test_a_worker_that_died_idle_does_not_hold_its_next_turn(speech_cluster, remote):
    """Tried: the node of one worker killed while no turn is on it, then turns one after another through
    a line of the same workers that would wait an hour for an answer. The turn that goes to the dead
    worker fails at once (its connection reset) or, when Ray holds it for an actor that cannot restart
    until a node joins, goes to the other worker once the dead one does not answer a status call; either
    way every turn is heard, and none waits for the line's timeout."""
    patient = ClusterTranscription("bundled", 6.0, timeout=3600.0)
    victim = sorted(w["node"] for w in remote.where())[0]
    try:
        speech_cluster.kill_node(victim)
        heard = [_text(patient.transcribe(speak(said, "ru"), "ru")) for said in SAID[:3]]
        assert all(fuzz.ratio(h.lower(), s.lower()) > 70 for h, s in zip(heard, SAID, strict=False)), heard
        assert patient.retried >= 1  # the dead worker's turn, sent again
    finally:
        patient.close()
        speech_cluster.ensure_speech_nodes(2)
    wait_for(lambda: len(remote.where()) == 2, 180, "the lost worker to restart on the new node")


def test_a_worker_killed_mid_turn_loses_no_turn_and_comes_back_on_a_new_node(speech_cluster, remote):
    """Eight long turns of two calls through the pool, twice: once as they are, then with the node of one
    worker killed (raylet and worker process, no goodbye) while both workers are busy. Every turn still
    comes back, heard as in the first pass; the lost one went to the other worker. A new node joins and
    the dead worker starts again on it."""
    turns = [np.concatenate([speak(SAID[(i + k) % len(SAID)], "ru") for k in range(3)]) for i in range(8)]
    nodes = {w["node"] for w in remote.where()}
    pool = TranscriptionPool(remote.transcribe, workers=remote.slots, capacity=16)
    try:
        expected = [
            _text(f.result(timeout=300))
            for f in [pool.submit(f"c{i % 2}", x, "ru") for i, x in enumerate(turns)]
        ]
        futures = [pool.submit(f"call-{i % 2}", x, "ru") for i, x in enumerate(turns)]
        wait_for(lambda: pool.stats().running == 2, 30, "both workers to be busy")
        victim = sorted(nodes)[0]
        speech_cluster.kill_node(victim)
        heard = [_text(f.result(timeout=300)) for f in futures]
    finally:
        pool.close()
    assert all(expected)
    assert heard == expected
    assert remote.retried >= 1  # the turn in flight on the killed node was sent again

    speech_cluster.add_speech_node()
    wait_for(lambda: len({w["node"] for w in remote.where()}) == 2, 120, "the lost worker to restart")
    assert victim not in {w["node"] for w in remote.where()}


def test_a_live_call_on_the_cluster_keeps_every_turn_when_a_worker_dies(
    speech_cluster, remote, shared_models, cache_dir, tmp_path, ru_call, alert_problems, listen
):
    """The Russian complaint call streamed to a server whose pool sends turns to the cluster; a speech
    node is killed once both workers are busy. The sidebar gets every expected alert, and the store holds
    each final turn once."""
    from server.live.engine import cluster_pool
    from tests.conftest import _serve

    victim = sorted(w["node"] for w in remote.where())[0]
    _, classifier, endpoint = shared_models
    pool = cluster_pool(Settings(ray=speech_cluster.address, cache_dir=cache_dir))
    server = _serve((pool, classifier, endpoint), cache_dir, tmp_path / "data")

    def kill_when_busy() -> None:
        wait_for(lambda: pool.stats().running == 2, 120, "both workers to be busy")
        speech_cluster.kill_node(victim)

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    try:
        sidebar = listen(server, "cluster-1")
        killer.start()
        start = StartMessage(
            encoding="pcm16", sample_rate=8000, channels=2, roles=["agent", "customer"], language="ru"
        )
        frames = list(pcm16_frames(ru_call.samples, ru_call.sample_rate))
        token = server.token("telephony")
        result = asyncio.run(stream_call(server.ws, "cluster-1", start, frames, realtime=False, token=token))
        events = sidebar.wait()
        killer.join(5)
        turns = server.engine.store.list_turns("cluster-1")
    finally:
        server.stop()
        server.engine.store.close()
        pool.close()
    assert not killer.is_alive()
    assert victim not in {w["node"] for w in remote.where()}  # the node is gone
    assert result.close_code == 1000 and events[-1] == {"type": "end"}
    assert alert_problems(ru_call, events) == []
    finals = sorted((e for e in events if e["type"] == "transcript" and e["final"]), key=lambda e: e["start"])
    assert [t.text for t in turns] == [e["text"] for e in finals]
    assert len({(t.speaker, t.start) for t in turns}) == len(turns) == len(finals)  # each stored once


def test_a_ray_address_is_checked_at_start_up():
    with pytest.raises(ValueError, match="not a Ray address"):
        Settings(ray="http://head:6379")
    assert Settings(ray="ray://head:10001").ray == "ray://head:10001"
    assert Settings(ray="auto").ray == "auto"
