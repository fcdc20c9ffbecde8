"""Admission by capacity, and what /healthz and /metrics show: a real server, real Whisper, real sockets.

Capacity is set to one call here (``CALLBUFFER_CAPACITY=1``) so that a second call is beyond it; how the
measured capacity comes about is tested on the real pool below.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from websockets.sync.client import connect

from server.config import Settings
from server.live.capacity import CALLS_PER_CORE, CALLS_PER_WORKER_CORE, REFERENCE_TURN_S, Capacity
from server.live.engine import measure_capacity
from server.live.protocol import StartMessage
from server.live.simulate import pcm16_frames, stream_call
from tests.conftest import silence, socket_events

START = {
    "type": "start",
    "encoding": "pcm16",
    "sample_rate": 8000,
    "channels": 2,
    "roles": ["agent", "customer"],
}
RU_START = StartMessage(
    encoding="pcm16", sample_rate=8000, channels=2, roles=["agent", "customer"], language="ru"
)


@pytest.fixture
def one_call_server(request, shared_models, cache_dir, tmp_path):
    """A server that holds one call at the latency goal; `over_capacity` from the test's parameter."""
    from tests.conftest import _serve

    over = getattr(request, "param", "refuse")
    server = _serve(shared_models, cache_dir, tmp_path / "data", capacity=1, over_capacity=over)
    yield server
    server.stop()
    server.engine.store.close()


def _wait_for_no_calls(server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while server.http("admin").get(f"{server.url}/healthz").json()["live_calls"]:
        assert time.monotonic() < deadline, "the ended call is still live"
        time.sleep(0.05)


def _metric(text: str, name: str) -> float:
    """One sample's value from Prometheus text (`name` with its labels, exactly)."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics:\n{text}"
    return float(match.group(1))


def test_a_call_beyond_capacity_is_refused_with_the_documented_message(one_call_server):
    """One call streams; a second is offered: error event naming the capacity, close 1008, nothing
    stored. Once the first ends, the same call id is admitted."""
    server = one_call_server
    headers = server.headers("telephony")
    with connect(f"{server.ws}/v1/calls/first/stream", additional_headers=headers) as first:
        first.send(json.dumps(START))
        first.send(silence(0.2))
        with connect(f"{server.ws}/v1/calls/second/stream", additional_headers=headers) as second:
            second.send(json.dumps(START))
            refused, code = socket_events(second)
        health = server.http("admin").get(f"{server.url}/healthz").json()
        first.send(json.dumps({"type": "stop"}))
        assert socket_events(first)[0][-1] == {"type": "end"}
    assert code == 1008
    assert refused[0]["type"] == "error"
    assert refused[0]["message"].startswith(
        "at capacity: 1 calls in progress and the transcription workers hold 1"
    )
    assert server.engine.store.get_call("second") is None
    assert (health["capacity"], health["capacity_source"], health["calls_in_progress"]) == (
        1,
        "configured",
        1,
    )

    _wait_for_no_calls(server)
    with connect(f"{server.ws}/v1/calls/second/stream", additional_headers=headers) as again:
        again.send(json.dumps(START))
        again.send(silence(0.2))
        again.send(json.dumps({"type": "stop"}))
        assert socket_events(again)[0][-1] == {"type": "end"}
    metrics = server.http("admin").get(f"{server.url}/metrics").text
    assert _metric(metrics, 'callbuffer_calls_total{admission="refused"}') == 1
    assert _metric(metrics, 'callbuffer_calls_total{admission="admitted"}') == 2
    assert _metric(metrics, "callbuffer_capacity_calls") == 1


@pytest.mark.parametrize("one_call_server", ["no_previews"], indirect=True)
def test_a_call_beyond_capacity_can_be_admitted_without_previews(one_call_server, ru_call):
    """With CALLBUFFER_OVER_CAPACITY=no_previews the second call is told so, gets its final turns and
    alerts, and no partial transcript; the same audio on a call within capacity does get previews."""
    server = one_call_server
    frames = list(pcm16_frames(ru_call.samples[:, : 8000 * 20], ru_call.sample_rate))

    def streamed(call_id: str) -> list[dict]:
        result = asyncio.run(
            stream_call(server.ws, call_id, RU_START, frames, realtime=True, token=server.token("telephony"))
        )
        assert result.close_code == 1000
        return [r.event for r in result.events]

    with connect(
        f"{server.ws}/v1/calls/holding/stream", additional_headers=server.headers("telephony")
    ) as hold:
        hold.send(json.dumps(START))
        hold.send(silence(0.2))
        beyond = streamed("beyond")
        hold.send(json.dumps({"type": "stop"}))
        socket_events(hold)
    # the held call has sent `end`; it counts until its session is closed a moment later
    _wait_for_no_calls(server)
    within = streamed("within")

    notices = [e for e in beyond if e["type"] == "overload"]
    assert notices and "no partial transcripts" in notices[0]["message"], beyond[:3]
    finals = [e for e in beyond if e["type"] == "transcript" and e["final"]]
    assert finals and [e for e in beyond if e["type"] == "alert"]
    assert [e for e in beyond if e["type"] == "transcript" and not e["final"]] == []
    assert [e for e in within if e["type"] == "transcript" and not e["final"]]  # previews where admitted
    assert not any(e["type"] == "overload" for e in within)
    metrics = server.http("admin").get(f"{server.url}/metrics").text
    assert _metric(metrics, 'callbuffer_calls_total{admission="admitted_without_previews"}') == 1


def test_metrics_show_latency_and_each_workers_load_after_a_call(live_server, ru_call):
    """A real call with alerts through a server without a capacity limit: /metrics has the alert latency
    quantiles, a load line per transcription thread, and counts that match what the call received."""
    frames = list(pcm16_frames(ru_call.samples, ru_call.sample_rate))
    result = asyncio.run(
        stream_call(
            live_server.ws, "measured", RU_START, frames, realtime=False, token=live_server.token("telephony")
        )
    )
    events = [r.event for r in result.events]
    alerts = [e for e in events if e["type"] == "alert"]
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    response = live_server.http("admin").get(f"{live_server.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _metric(text, "callbuffer_turns_total") >= len(finals) > 0
    assert _metric(text, "callbuffer_alerts_total") >= len(alerts) > 0
    assert (
        0
        < _metric(text, 'callbuffer_alert_latency_seconds{quantile="0.5"}')
        <= _metric(text, 'callbuffer_alert_latency_seconds{quantile="0.95"}')
    )
    workers = re.findall(r'^callbuffer_worker_turns_total\{worker="([^"]+)"\} (\d+)$', text, re.MULTILINE)
    assert len(workers) == live_server.engine.pool.workers
    assert sum(int(n) for _, n in workers) >= len(finals)
    assert "callbuffer_capacity_calls" not in text  # capacity off: no limit to show
    health = live_server.http("admin").get(f"{live_server.url}/healthz").json()
    assert health["capacity"] is None and health["alert_latency_p95"] > 0


def test_capacity_is_measured_on_the_real_pool(shared_models):
    """Each worker's time for the reference turn, and the calls that follow from it."""
    pool = shared_models[0]
    capacity = measure_capacity(Settings(capacity="auto"), pool)
    assert capacity.source == "measured" and len(capacity.turn_seconds) == pool.workers
    assert all(0.01 < s < 30 for s in capacity.turn_seconds)
    expected = sum(CALLS_PER_CORE * REFERENCE_TURN_S / s for s in capacity.turn_seconds)
    assert capacity.calls == max(1, int(expected + 1e-9))
    assert {w.turn_seconds for w in pool.loads()} == {capacity.turn_seconds[0]}
    assert measure_capacity(Settings(capacity=3), pool) == Capacity.configured(3)
    assert measure_capacity(Settings(capacity="off"), pool).calls is None
    # speech workers of a cluster share no core with a front-end: more calls each at the same speed
    on_cluster = measure_capacity(Settings(capacity="auto", ray="127.0.0.1:6379"), pool)
    expected = sum(CALLS_PER_WORKER_CORE * REFERENCE_TURN_S / s for s in on_cluster.turn_seconds)
    assert on_cluster.calls == max(1, int(expected + 1e-9))


def test_capacity_arithmetic():
    """A worker twice as fast as the reference holds twice its calls; the cluster holds the sum; a
    cluster's speech worker holds its own figure per core."""
    assert Capacity.measured([REFERENCE_TURN_S]).calls == int(CALLS_PER_CORE)
    assert Capacity.measured([REFERENCE_TURN_S / 2, REFERENCE_TURN_S / 2]).calls == int(4 * CALLS_PER_CORE)
    assert Capacity.measured([REFERENCE_TURN_S * 100]).calls == 1  # never below one call
    two_workers = Capacity.measured([REFERENCE_TURN_S] * 2, CALLS_PER_WORKER_CORE)
    assert two_workers.calls == int(2 * CALLS_PER_WORKER_CORE)
    with pytest.raises(ValueError):
        Capacity.measured([])
