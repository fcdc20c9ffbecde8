"""Twilio Media Streams and FreeSWITCH mod_audio_fork driving the real server with the Russian test call,
in the message formats the vendors document. The alerts must reach a sidebar and the store as a native
stream's do."""

from __future__ import annotations

import base64
import contextlib
import json
import time

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from audio.codecs import mulaw_encode

CALL_SID = "CA" + "5" * 32
STREAM_SID = "MZ" + "6" * 32


def _pcm(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1, 1) * 32767).round().astype(np.int16)


def _stored_alerts(server, call_id: str) -> list[dict]:
    return [
        {"category": a.category, "speaker": a.speaker, "start": a.start, "end": a.end}
        for a in server.engine.store.list_alerts(call_id)
    ]


def _final_status(server, call_id: str, timeout: float = 60) -> str:
    """The call's status once it is no longer active (the server finishes after the socket closed)."""
    deadline = time.monotonic() + timeout
    while (
        status := server.engine.store.get_call(call_id).status
    ) == "active" and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def twilio_messages(call, token: str) -> list[str]:
    """The call as Twilio sends it: connected, start, 20 ms media per track (base64 mu-law), a mark, stop.
    Twilio cannot send headers or a query string, so the integration's token is a custom parameter."""
    agent, customer = (mulaw_encode(_pcm(channel)) for channel in call.samples)
    messages = [
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "AC" + "0" * 32,
                "streamSid": STREAM_SID,
                "callSid": CALL_SID,
                "tracks": ["inbound", "outbound"],
                "customParameters": {"language": "ru", "token": token, "agent": "anna"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": STREAM_SID,
        },
    ]
    sequence = 2
    for chunk, at in enumerate(range(0, len(agent), 160)):
        for track, audio in (("inbound", customer), ("outbound", agent)):
            media = {
                "track": track,
                "chunk": str(chunk + 1),
                "timestamp": str(chunk * 20),
                "payload": base64.b64encode(audio[at : at + 160]).decode(),
            }
            messages.append(
                {"event": "media", "sequenceNumber": str(sequence), "media": media, "streamSid": STREAM_SID}
            )
            sequence += 1
    messages.append(
        {"event": "mark", "sequenceNumber": str(sequence), "streamSid": STREAM_SID, "mark": {"name": "x"}}
    )
    messages.append(
        {
            "event": "stop",
            "sequenceNumber": str(sequence + 1),
            "streamSid": STREAM_SID,
            "stop": {"accountSid": "AC" + "0" * 32, "callSid": CALL_SID},
        }
    )
    return [json.dumps(m) for m in messages]


def test_twilio_media_stream_call(live_server, ru_call, alert_problems, listen):
    """A full Twilio stream: inbound = customer, outbound = agent; the sidebar gets the expected alerts,
    the call is stored completed under its callSid."""
    sidebar = listen(live_server, CALL_SID)
    with connect(f"{live_server.ws}/v1/twilio") as ws:
        for message in twilio_messages(ru_call, live_server.token("telephony")):
            ws.send(message)
        with contextlib.suppress(ConnectionClosed):
            ws.recv(timeout=300)  # the server sends nothing back to Twilio; it closes after the last turn
    events = sidebar.wait()
    assert events[-1] == {"type": "end"}
    assert alert_problems(ru_call, events) == []
    call = live_server.engine.store.get_call(CALL_SID)
    assert call.status == "completed" and call.roles == ("agent", "customer") and call.encoding == "mulaw"
    assert call.agent == "anna"
    assert len(_stored_alerts(live_server, CALL_SID)) == len([e for e in events if e["type"] == "alert"])


def test_twilio_garbage_is_refused_with_1003(live_server):
    """A media payload that is not base64, after a valid start: the stream is closed 1003, and the call
    that had started is kept (disconnected, resumable)."""
    with connect(f"{live_server.ws}/v1/twilio", additional_headers=live_server.headers("telephony")) as ws:
        ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        ws.send(
            json.dumps(
                {
                    "event": "start",
                    "start": {
                        "callSid": "CAbad",
                        "tracks": ["inbound"],
                        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
                    },
                }
            )
        )
        ws.send(
            json.dumps({"event": "media", "media": {"track": "inbound", "timestamp": "0", "payload": "***"}})
        )
        with contextlib.suppress(ConnectionClosed):
            ws.recv(timeout=30)
    assert ws.close_code == 1003
    assert _final_status(live_server, "CAbad") == "disconnected"


def test_freeswitch_audio_fork_call(live_server, ru_call, alert_problems, listen):
    """mod_audio_fork: a metadata text frame, then 16-bit stereo PCM with the caller (customer) on the left;
    hanging up (closing the socket) ends the call normally."""
    sidebar = listen(live_server, "fs-uuid-1")
    stereo = _pcm(ru_call.samples[::-1])  # caller left, agent right
    pcm = np.ascontiguousarray(stereo.T).tobytes()
    token = live_server.token("telephony")
    with connect(f"{live_server.ws}/v1/freeswitch?sample_rate=8000&access_token={token}") as ws:
        ws.send(json.dumps({"uuid": "fs-uuid-1", "language": "ru"}))
        step = 320 * 2  # 20 ms of 8 kHz stereo 16-bit
        for at in range(0, len(pcm), step):
            ws.send(pcm[at : at + step])
    events = sidebar.wait()
    assert events[-1] == {"type": "end"}
    assert alert_problems(ru_call, events) == []
    call = live_server.engine.store.get_call("fs-uuid-1")
    assert call.status == "completed" and call.roles == ("customer", "agent")


def test_freeswitch_without_a_call_id_is_refused(live_server):
    with connect(
        f"{live_server.ws}/v1/freeswitch", additional_headers=live_server.headers("telephony")
    ) as ws:
        ws.send("just some text")
        with contextlib.suppress(ConnectionClosed):
            ws.recv(timeout=30)
    assert ws.close_code == 1003 and "call id" in ws.close_reason
