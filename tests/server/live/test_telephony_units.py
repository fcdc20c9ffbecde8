"""server.live.telephony's pure parts: Twilio track alignment and start parsing, mod_audio_fork metadata."""

from __future__ import annotations

import pytest

from server.live.protocol import ProtocolError
from server.live.telephony import MULAW_SILENCE, TelephonyError, TwilioAligner, fork_start, twilio_start

S = MULAW_SILENCE


def _twilio(**start) -> dict:
    base = {
        "accountSid": "AC" + "0" * 32,
        "callSid": "CA" + "1" * 32,
        "streamSid": "MZ" + "2" * 32,
        "tracks": ["inbound", "outbound"],
        "customParameters": {},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    return {
        "event": "start",
        "sequenceNumber": "1",
        "start": {**base, **start},
        "streamSid": base["streamSid"],
    }


def test_both_tracks_become_stereo_agent_left():
    aligner = TwilioAligner(("inbound", "outbound"))
    assert aligner.add("inbound", 0, b"\x01\x02") == b""  # waits for the other track
    assert aligner.add("outbound", 0, b"\x0a\x0b\x0c") == b"\x0a\x01\x0b\x02"
    assert aligner.flush() == bytes([0x0C, S])


def test_a_gap_in_a_track_is_filled_with_silence_by_timestamp():
    aligner = TwilioAligner(("inbound",))
    assert aligner.add("inbound", 0, b"\x01" * 8) == b"\x01" * 8
    # 1 ms = 8 samples at 8 kHz: a chunk stamped 3 ms lands after 16 samples of silence
    assert aligner.add("inbound", 3, b"\x02" * 8) == bytes([S]) * 16 + b"\x02" * 8


def test_a_silent_track_does_not_stall_the_call():
    aligner = TwilioAligner(("inbound", "outbound"))
    out = b"".join(aligner.add("inbound", i * 20, b"\x01" * 160) for i in range(60))  # 1.2 s, no outbound
    assert len(out) >= 2 * 1600  # everything older than 1 s was released, outbound padded with silence
    assert set(out[0::2]) == {S} and set(out[1::2]) == {1}


def test_unknown_track_is_refused():
    with pytest.raises(TelephonyError, match="track"):
        TwilioAligner(("inbound",)).add("outbound", 0, b"\x00")


def test_twilio_start_maps_tracks_to_roles_and_reads_custom_parameters():
    started = twilio_start(_twilio(customParameters={"language": "ru", "token": "cb_t", "agent": "oleg"}))
    assert started.call_id == "CA" + "1" * 32 and started.token == "cb_t" and started.start.agent == "oleg"
    assert started.start.roles == ["agent", "customer"] and started.start.channels == 2
    assert started.start.encoding == "mulaw" and started.start.language == "ru"
    mono = twilio_start(_twilio(tracks=["inbound"], customParameters={"call_id": "desk-7"}))
    assert mono.call_id == "desk-7" and mono.start.roles == ["customer"]


@pytest.mark.parametrize(
    ("start", "words"),
    [
        ({"mediaFormat": {"encoding": "audio/l16", "sampleRate": 16000}}, "mulaw"),
        ({"tracks": ["sideways"]}, "tracks"),
        ({"customParameters": {"language": "de"}}, "customParameters"),
    ],
)
def test_twilio_start_refuses_what_it_cannot_handle(start, words):
    with pytest.raises(TelephonyError, match=words):
        twilio_start(_twilio(**start))


def test_twilio_start_refuses_a_bad_call_id():
    with pytest.raises(ProtocolError):
        twilio_start(_twilio(customParameters={"call_id": "../etc"}))


def test_fork_metadata_and_query():
    forked = fork_start(
        '{"uuid": "abc-1", "language": "en", "token": "cb_x", "agent": "anna"}', {"sample_rate": "16000"}
    )
    start = forked.start
    assert forked.call_id == "abc-1" and start.sample_rate == 16000 and start.language == "en"
    assert start.roles == ["customer", "agent"] and start.encoding == "pcm16"
    assert forked.token == "cb_x" and start.agent == "anna"
    forked = fork_start("free text metadata", {"call_id": "q-2", "channels": "1"})
    assert forked.call_id == "q-2" and forked.start.channels == 1 and forked.token is None


@pytest.mark.parametrize(
    ("metadata", "query", "words"),
    [
        ("{}", {}, "call id"),
        ('{"uuid": "x", "sample_rate": "fast"}', {}, "numbers"),
        ('{"uuid": "x", "sample_rate": 44100}', {}, "sample_rate"),
    ],
)
def test_fork_start_errors(metadata, query, words):
    with pytest.raises(TelephonyError, match=words):
        fork_start(metadata, query)
