"""Whole calls through the real server: TTS speech at 8 kHz telephone band, real Whisper, real classifier.

The calls come from ``bench/data/calls/*.yaml`` (built by :mod:`audio.synth`), where every turn says which
alerts it should raise (``expect``). A turn "raised" an alert when an alert of that category arrives whose
time overlaps the turn's speech.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from audio.synth import SynthCall
from server.live.protocol import StartMessage
from server.live.simulate import pcm16_frames, stream_call

RU_START = StartMessage(
    encoding="pcm16", sample_rate=8000, channels=2, roles=["agent", "customer"], language="ru"
)
EN_START = RU_START.model_copy(update={"language": "en"})


def stream(server, call_id: str, call: SynthCall, start: StartMessage = RU_START, frames=None):
    """Stream the call as fast as the server takes it; returns (events, close code)."""
    frames = list(pcm16_frames(call.samples, call.sample_rate)) if frames is None else frames
    result = asyncio.run(
        stream_call(server.ws, call_id, start, frames, realtime=False, token=server.token("telephony"))
    )
    return [r.event for r in result.events], result.close_code


def test_russian_call_gives_the_expected_alerts_and_stores_them(live_server, ru_call, alert_problems):
    """The whole Russian call: each expected alert arrives, clean turns raise none, everything is stored."""
    events, code = stream(live_server, "ru-1", ru_call)
    assert code == 1000 and events[-1] == {"type": "end"}
    assert alert_problems(ru_call, events) == []
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    assert {e["speaker"] for e in finals} == {"agent", "customer"}
    assert all(e["text"].strip() for e in finals)
    store = live_server.engine.store
    assert store.get_call("ru-1").status == "completed"
    assert [t.text for t in store.list_turns("ru-1")] == [
        e["text"] for e in sorted(finals, key=lambda e: e["start"])
    ]
    stored = store.list_alerts("ru-1")
    alerts = [e for e in events if e["type"] == "alert"]
    assert sorted((a.category, a.start) for a in stored) == sorted(
        (a["category"], a["start"]) for a in alerts
    )
    alert = alerts[0]
    assert alert["suggestions"] and all(isinstance(s, str) and s for s in alert["suggestions"])
    assert 0 <= alert["span"][0] < alert["span"][1] <= len(alert["text"])
    assert alert["title"] and alert["pack_version"] >= 1


def test_english_call_gives_the_expected_alerts(live_server, en_call, alert_problems):
    events, code = stream(live_server, "en-1", en_call, EN_START)
    assert code == 1000
    assert alert_problems(en_call, events) == []


def test_long_turns_in_pieces_are_still_one_turn_each(piece_server, ru_call, alert_problems):
    """With ``min_piece`` the long agent turns are transcribed piece by piece while they are spoken; each
    still arrives as one final turn with all its sentences, the expected alerts come, and the store holds
    exactly what was sent."""
    events, code = stream(piece_server, "ru-pieces", ru_call)
    assert code == 1000 and events[-1] == {"type": "end"}
    assert alert_problems(ru_call, events) == []
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    longest = max(finals, key=lambda e: e["end"] - e["start"])
    assert longest["speaker"] == "agent" and longest["end"] - longest["start"] > 12
    assert "жаль" in longest["text"].lower() and "работает" in longest["text"].lower()
    agent = [e for e in finals if e["speaker"] == "agent"]
    assert [e for e in agent if e["start"] < longest["end"] and e["end"] > longest["start"]] == [longest]
    stored = piece_server.engine.store.list_turns("ru-pieces")
    assert [t.text for t in stored] == [e["text"] for e in sorted(finals, key=lambda e: e["start"])]


def test_two_sidebars_and_a_late_one_see_the_same_call(live_server, ru_call, listen):
    """Two sidebars join before the call starts; a third joins after it ended and is replayed it."""
    first, second = listen(live_server, "side-1"), listen(live_server, "side-1")
    events, _ = stream(live_server, "side-1", ru_call)
    lasting = [e for e in events if e["type"] == "alert" or (e["type"] == "transcript" and e["final"])]
    for sidebar in (first, second):
        seen = sidebar.wait()
        assert seen[-1] == {"type": "end"}
        assert [e for e in seen if e in lasting] == lasting
    late = listen(live_server, "side-1").wait()
    assert late[-1] == {"type": "end"}
    assert sorted(map(json.dumps, late[:-1])) == sorted(map(json.dumps, lasting))


def test_disconnect_mid_call_keeps_everything_and_the_call_can_resume(live_server, ru_call):
    """The client vanishes (no stop, no close frame) in the middle of the 4th turn: the call is stored
    'disconnected' with its finished turns, the turn in progress flushed, and its alerts. Reconnecting with
    the same id continues the call after what was stored."""
    frames = list(pcm16_frames(ru_call.samples, ru_call.sample_rate))
    cut_turn = ru_call.turns[3]
    cut = int((cut_turn.start + cut_turn.duration / 2) / 0.02)
    with (
        contextlib.suppress(ConnectionClosed),
        connect(
            f"{live_server.ws}/v1/calls/drop-1/stream", additional_headers=live_server.headers("telephony")
        ) as ws,
    ):
        ws.send(RU_START.to_json())
        for frame in frames[:cut]:
            ws.send(frame)
        ws.socket.close()  # the line drops: TCP gone, no close handshake
    store = live_server.engine.store
    for _ in range(600):
        call = store.get_call("drop-1")
        if call.status != "active":
            break
        threading.Event().wait(0.1)
    assert call.status == "disconnected"
    turns = store.list_turns("drop-1")
    assert len(turns) >= 4 and turns[-1].end > cut_turn.start  # the cut turn was kept
    categories = {a.category for a in store.list_alerts("drop-1")}
    assert {"not_my_job", "customer_complaint"} <= categories

    events, code = stream(live_server, "drop-1", ru_call, frames=frames[cut:])
    assert code == 1000
    assert store.get_call("drop-1").status == "completed"
    resumed = [e for e in events if e["type"] == "transcript" and e["final"]]
    assert min(e["start"] for e in resumed) > turns[-1].end  # times continue, they do not restart at 0
    assert len(store.list_turns("drop-1")) == len(turns) + len(resumed)


def test_simulate_command_prints_the_call(live_server, ru_call, tmp_path):
    """`callbuffer simulate FILE.wav --fast` against the running server prints turns and alerts."""
    import subprocess

    wav = ru_call.write_wav(tmp_path / "call.wav")
    done = subprocess.run(
        [
            "callbuffer",
            "simulate",
            str(wav),
            "--fast",
            "--language",
            "ru",
            "--url",
            live_server.ws,
            "--call-id",
            "sim-1",
            "--token",
            live_server.token("telephony"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "ALERT forbidden not_my_job" in done.stdout
    assert "end of call" in done.stdout
    assert live_server.engine.store.get_call("sim-1").status == "completed"


def test_simulate_reports_an_unreachable_server(tmp_path, ru_call):
    import subprocess

    wav = ru_call.write_wav(tmp_path / "call.wav")
    done = subprocess.run(
        ["callbuffer", "simulate", str(wav), "--url", "ws://127.0.0.1:9"], capture_output=True, text=True
    )
    assert done.returncode == 1 and "cannot reach the server" in done.stderr


def test_simulate_mic_fails_clearly_without_an_audio_device():
    """This machine has no sound card (or no PortAudio): --mic must say so, not crash."""
    import subprocess

    from audio.microphone import MicrophoneError, default_input_device

    try:
        device = default_input_device()
    except MicrophoneError:
        device = None
    if device is not None:
        pytest.skip(f"this machine has an input device ({device})")
    done = subprocess.run(["callbuffer", "simulate", "--mic"], capture_output=True, text=True)
    assert done.returncode == 1 and "no audio input" in done.stderr
    assert "Traceback" not in done.stderr
