"""The live stream's protocol errors against a real uvicorn server with real WebSocket clients.

Each test says what a client got wrong; the server must answer with an ``error`` event naming the problem
and either go on with the call (bad frames mid-call) or close with 1003 (nothing to go on with), and must
never lose what the call already had.
"""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from tests.conftest import silence, socket_events

START = {
    "type": "start",
    "encoding": "pcm16",
    "sample_rate": 8000,
    "channels": 2,
    "roles": ["agent", "customer"],
}


def test_binary_before_start_is_refused_with_1003(live_server):
    """Audio sent before any start message."""
    with connect(
        f"{live_server.ws}/v1/calls/early-audio/stream", additional_headers=live_server.headers("telephony")
    ) as ws:
        ws.send(silence(0.02))
        events, code = socket_events(ws)
    assert code == 1003
    assert events[0]["type"] == "error" and "start" in events[0]["message"]
    assert live_server.engine.store.get_call("early-audio") is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"encoding": "opus"}, ["encoding", "opus"]),
        ({"sample_rate": 44100}, ["sample_rate", "8000"]),
        ({"roles": ["agent"]}, ["roles", "channels"]),
    ],
)
def test_invalid_start_is_refused_with_1003_naming_the_field(live_server, change, words):
    """A start message with an unknown encoding, an unsupported rate, or roles not matching channels."""
    with connect(
        f"{live_server.ws}/v1/calls/bad-start/stream", additional_headers=live_server.headers("telephony")
    ) as ws:
        ws.send(json.dumps({**START, **change}))
        events, code = socket_events(ws)
    assert code == 1003
    assert all(word in events[0]["message"] for word in words), events[0]


def test_start_that_is_not_json_is_refused(live_server):
    with connect(
        f"{live_server.ws}/v1/calls/not-json/stream", additional_headers=live_server.headers("telephony")
    ) as ws:
        ws.send("{type: start")
        events, code = socket_events(ws)
    assert code == 1003 and "JSON" in events[0]["message"]


def test_bad_frames_mid_call_are_answered_and_the_call_goes_on(live_server):
    """An odd-length pcm16 frame, an oversize frame, bad JSON and a second start, all mid-call: each gets
    an error event, and the call still ends normally with ``end`` and is stored completed."""
    with connect(
        f"{live_server.ws}/v1/calls/bad-frames/stream",
        max_size=None,
        additional_headers=live_server.headers("telephony"),
    ) as ws:
        ws.send(json.dumps(START))
        ws.send(silence(0.1))
        ws.send(b"\x00\x01\x02")  # odd length
        ws.send(b"\x00" * (70 * 1024))  # over the 64 KiB frame limit
        ws.send("{not json")
        ws.send(json.dumps(START))  # a second start
        ws.send(silence(0.1))
        ws.send(json.dumps({"type": "stop"}))
        events, code = socket_events(ws)
    errors = [e["message"] for e in events if e["type"] == "error"]
    assert len(errors) == 4, errors
    assert any("odd" in m or "multiple" in m or "whole" in m for m in errors), errors
    assert any("exceeds" in m for m in errors), errors
    assert any("JSON" in m for m in errors), errors
    assert any("second 'start'" in m for m in errors), errors
    assert events[-1] == {"type": "end"} and code == 1000
    assert live_server.engine.store.get_call("bad-frames").status == "completed"


def test_invalid_call_id_is_refused(live_server):
    with connect(
        f"{live_server.ws}/v1/calls/bad%20id%21/stream", additional_headers=live_server.headers("telephony")
    ) as ws:
        events, code = socket_events(ws)
    assert code == 1008 and "call id" in events[0]["message"]


def test_a_completed_call_id_cannot_be_streamed_again(live_server):
    """The same call id after it completed: refused with 1008, the stored call untouched."""
    for attempt in range(2):
        with connect(
            f"{live_server.ws}/v1/calls/once/stream", additional_headers=live_server.headers("telephony")
        ) as ws:
            ws.send(json.dumps(START))
            ws.send(silence(0.2))
            ws.send(json.dumps({"type": "stop"}))
            events, code = socket_events(ws)
        if attempt == 0:
            assert events[-1] == {"type": "end"}
    assert code == 1008 and "already in use" in events[0]["message"]
    assert live_server.engine.store.get_call("once").status == "completed"


def test_health_and_call_list(live_server):

    with connect(
        f"{live_server.ws}/v1/calls/listed/stream", additional_headers=live_server.headers("telephony")
    ) as ws:
        ws.send(json.dumps(START))
        ws.send(silence(0.1))
        health = live_server.http("admin").get(f"{live_server.url}/healthz").json()
        active = (
            live_server.http("admin").get(f"{live_server.url}/v1/calls", params={"active": 1}).json()["calls"]
        )
        ws.send(json.dumps({"type": "stop"}))
        socket_events(ws)
    assert health["status"] == "ok" and health["live_calls"] == 1
    assert [c["call_id"] for c in active] == ["listed"]
    call = live_server.http("admin").get(f"{live_server.url}/v1/calls/listed").json()
    assert call["status"] == "completed" and call["roles"] == ["agent", "customer"]
    assert live_server.http("admin").get(f"{live_server.url}/v1/calls/nope").status_code == 404


def test_server_shutdown_keeps_live_calls_as_disconnected(live_server):
    """The server stops while a call streams: the call is kept, marked disconnected (resumable)."""
    with connect(
        f"{live_server.ws}/v1/calls/at-shutdown/stream", additional_headers=live_server.headers("telephony")
    ) as ws:
        ws.send(json.dumps(START))
        ws.send(silence(0.2))
        live_server.stop()
        socket_events(ws)
    assert live_server.engine.store.get_call("at-shutdown").status == "disconnected"
