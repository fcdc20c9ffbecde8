"""The live-call WebSocket protocol: control frames parsed strictly, events serialised exactly."""

import json

import pytest

from server.live.protocol import (
    MAX_CONTROL_FRAME_BYTES,
    AlertMessage,
    CloseCode,
    EndMessage,
    ErrorMessage,
    OverloadMessage,
    ProtocolError,
    StartMessage,
    StopMessage,
    TranscriptMessage,
    parse_control,
    parse_event,
    validate_call_id,
)


def start(**fields) -> str:
    message = {"type": "start", "encoding": "pcm16", "sample_rate": 8000, "channels": 1, "roles": ["agent"]}
    message.update(fields)
    return json.dumps({k: v for k, v in message.items() if v is not ...})


@pytest.mark.parametrize("encoding", ["pcm16", "mulaw"])
@pytest.mark.parametrize("sample_rate", [8000, 16000])
@pytest.mark.parametrize("language", ["ru", "en", None, ...])
def test_every_valid_mono_start(encoding, sample_rate, language):
    parsed = parse_control(start(encoding=encoding, sample_rate=sample_rate, language=language))
    assert isinstance(parsed, StartMessage)
    assert (parsed.encoding, parsed.sample_rate, parsed.channels) == (encoding, sample_rate, 1)
    assert parsed.language == (None if language is ... else language)


@pytest.mark.parametrize(
    "roles",
    [
        ["agent", "customer"],
        ["customer", "agent"],
        ["agent", "unknown"],
        ["unknown", "customer"],
        ["unknown", "unknown"],
    ],
)
def test_valid_stereo_roles(roles):
    parsed = parse_control(start(channels=2, roles=roles))
    assert parsed.roles == roles and parsed.channels == 2


@pytest.mark.parametrize("role", ["agent", "customer", "unknown"])
def test_valid_mono_roles(role):
    assert parse_control(start(roles=[role])).roles == [role]


def test_stop_and_round_trip():
    assert parse_control('{"type":"stop"}') == StopMessage()
    assert json.loads(StopMessage().to_json()) == {"type": "stop"}
    message = parse_control(start(channels=2, roles=["agent", "customer"], language="ru"))
    assert json.loads(message.to_json()) == {
        "type": "start",
        "encoding": "pcm16",
        "sample_rate": 8000,
        "channels": 2,
        "roles": ["agent", "customer"],
        "language": "ru",
    }
    assert parse_control(message.to_json()) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "\x00\x7f\x1a\x03RIFF\x10\x00\x00\x00WAVEfmt \ufffd\ufffd",
            "control frame is not JSON text (it looks like binary data): send audio as binary frames",
        ),
        ('{"type": "start", ', "control frame is not valid JSON: Expecting property name"),
        ("", "control frame is not valid JSON: Expecting value at position 0"),
        ("[" * 4000, "control frame is not a control message: JSON nested too deeply"),
        ("[1, 2]", "control frame must be a JSON object, got an array"),
        ('"start"', "control frame must be a JSON object, got a string"),
        ("null", "control frame must be a JSON object, got null"),
        ('{"encoding": "pcm16"}', "control message has no 'type' field: expected 'start' or 'stop'"),
        ('{"type": "pause"}', "unknown message type \"pause\": expected 'start' or 'stop'"),
        ('{"type": 1}', "unknown message type 1: expected 'start' or 'stop'"),
        (
            start(encoding="opus"),
            "invalid start message: field 'encoding' must be 'pcm16' or 'mulaw', got \"opus\"",
        ),
        (start(encoding=...), "invalid start message: field 'encoding' is required"),
        (
            start(sample_rate=44100),
            "invalid start message: field 'sample_rate' must be 8000 or 16000, got 44100",
        ),
        (
            start(sample_rate="8000"),
            "invalid start message: field 'sample_rate' must be 8000 or 16000, got \"8000\"",
        ),
        (
            start(sample_rate=8000.0),
            "invalid start message: field 'sample_rate' must be 8000 or 16000, got 8000.0",
        ),
        (start(channels=3), "invalid start message: field 'channels' must be 1 or 2, got 3"),
        (start(channels=True), "invalid start message: field 'channels' must be 1 or 2, got true"),
        (
            start(channels=2, roles=["agent"]),
            "invalid start message: field 'roles' has 1 role(s) but 'channels' is 2: "
            "give one role per channel",
        ),
        (
            start(roles=["agent", "customer"]),
            "invalid start message: field 'roles' has 2 role(s) but 'channels' is 1: "
            "give one role per channel",
        ),
        (
            start(channels=2, roles=["agent", "agent"]),
            "invalid start message: field 'roles' repeats a role (agent, agent): "
            "only 'unknown' may appear more than once",
        ),
        (
            start(channels=2, roles=["agent", "boss"]),
            "invalid start message: field 'roles[1]' must be 'agent', 'customer' or 'unknown', got \"boss\"",
        ),
        (
            start(roles="agent"),
            "invalid start message: field 'roles' must be a list of roles ('agent', 'customer', 'unknown'), "
            'got "agent"',
        ),
        (
            start(language="de"),
            "invalid start message: field 'language' must be 'ru', 'en' or null, got \"de\"",
        ),
        (start(lang="ru"), "invalid start message: unknown field 'lang'"),
        ('{"type": "stop", "reason": "done"}', "invalid stop message: unknown field 'reason'"),
    ],
)
def test_control_errors_name_the_problem(text, message):
    with pytest.raises(ProtocolError) as caught:
        parse_control(text)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)


def test_oversize_frame_is_refused_before_parsing():
    padded = start(language=None)[:-1] + ', "pad": "' + "x" * MAX_CONTROL_FRAME_BYTES + '"}'
    with pytest.raises(ProtocolError, match=r"^control frame too large: the limit is 4096 bytes$"):
        parse_control(padded)
    # The limit is in UTF-8 bytes: 2,000 Cyrillic letters are 4,000 bytes, over the limit with the rest.
    cyrillic = '{"type": "stop", "pad": "' + "я" * 2040 + '"}'
    assert len(cyrillic) < MAX_CONTROL_FRAME_BYTES
    with pytest.raises(ProtocolError, match="control frame too large"):
        parse_control(cyrillic)


def test_close_codes():
    assert [int(code) for code in CloseCode] == [1000, 1003, 1008, 1011]
    assert (CloseCode.NORMAL, CloseCode.BAD_DATA, CloseCode.POLICY, CloseCode.SERVER_ERROR) == (
        1000,
        1003,
        1008,
        1011,
    )


@pytest.mark.parametrize("call_id", ["a", "call-42", "2026.11.23_agent-7", "A" * 64, "..x", "_"])
def test_valid_call_ids(call_id):
    assert validate_call_id(call_id) == call_id


@pytest.mark.parametrize("call_id", ["", "A" * 65, "a b", "a/b", "звонок", "a\n", "id?x=1", ".", ".."])
def test_invalid_call_ids(call_id):
    with pytest.raises(ProtocolError, match="invalid call id"):
        validate_call_id(call_id)


def test_transcript_event_shape():
    event = TranscriptMessage(speaker="customer", text="Здравствуйте", start=1.5, end=2.25, final=False)
    assert json.loads(event.to_json()) == {
        "type": "transcript",
        "speaker": "customer",
        "text": "Здравствуйте",
        "start": 1.5,
        "end": 2.25,
        "final": False,
    }
    assert list(json.loads(event.to_json())) == ["type", "speaker", "text", "start", "end", "final"]


def test_transcript_from_recogniser_event():
    from models.streaming import TranscriptEvent

    event = TranscriptEvent(speaker="agent", text="hello", start=0.0, end=1.0, final=True)
    assert TranscriptMessage.from_event(event) == TranscriptMessage(
        speaker="agent", text="hello", start=0.0, end=1.0, final=True
    )


def test_alert_event_shape():
    event = AlertMessage(
        kind="forbidden",
        category="rude",
        title="Грубость",
        speaker="agent",
        text="это не мои проблемы",
        start=10.0,
        end=12.5,
        score=0.87,
        suggestions=["Давайте я помогу разобраться", "Сейчас проверю"],
        span=(4, 19),
        pack_version=3,
    )
    data = json.loads(event.to_json())
    assert data == {
        "type": "alert",
        "kind": "forbidden",
        "category": "rude",
        "title": "Грубость",
        "speaker": "agent",
        "text": "это не мои проблемы",
        "start": 10.0,
        "end": 12.5,
        "score": 0.87,
        "suggestions": ["Давайте я помогу разобраться", "Сейчас проверю"],
        "span": [4, 19],
        "pack_version": 3,
    }
    assert list(data) == [
        "type",
        "kind",
        "category",
        "title",
        "speaker",
        "text",
        "start",
        "end",
        "score",
        "suggestions",
        "span",
        "pack_version",
    ]
    assert parse_event(event.to_json()) == event


def test_small_event_shapes():
    assert json.loads(ErrorMessage(message="bad audio").to_json()) == {
        "type": "error",
        "message": "bad audio",
    }
    assert json.loads(OverloadMessage(message="behind", queued=7).to_json()) == {
        "type": "overload",
        "message": "behind",
        "queued": 7,
    }
    assert json.loads(EndMessage().to_json()) == {"type": "end"}
    for event in (ErrorMessage(message="x"), OverloadMessage(message="y", queued=0), EndMessage()):
        assert parse_event(event.to_json()) == event


def test_events_refuse_impossible_values():
    with pytest.raises(ValueError, match="before start"):
        TranscriptMessage(speaker="agent", text="x", start=2.0, end=1.0, final=True)
    with pytest.raises(ValueError):
        OverloadMessage(message="x", queued=-1)
    with pytest.raises(ValueError):
        AlertMessage(
            kind="practice",
            category="c",
            title="t",
            speaker="agent",
            text="x",
            start=0,
            end=1,
            score=0.5,
            span=(0, 1),
            pack_version=1,
        )
    with pytest.raises(ProtocolError, match="invalid server event"):
        parse_event('{"type": "start"}')
