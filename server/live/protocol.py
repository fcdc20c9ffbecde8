"""The live-call WebSocket protocol as typed messages.

A client opens ``ws://HOST:PORT/v1/calls/{call_id}/stream``, sends one ``start`` text frame, then binary
audio frames, then a ``stop`` text frame. The server answers on the same socket (and mirrors to
``/v1/calls/{call_id}/events``) with ``transcript``, ``alert``, ``error``, ``overload`` and ``end`` events.

This module only parses and serialises; it knows nothing about FastAPI, so the same definitions serve the
server, test clients and the UI. Control frames are validated strictly (no type coercion, no unknown
fields) so that a client's typo fails at once with the field's name instead of silently taking a default.
"""

from __future__ import annotations

import json
import logging
import re
from enum import IntEnum
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from server.access.store import USER_NAME_PATTERN

if TYPE_CHECKING:
    from models.streaming import TranscriptEvent

logger = logging.getLogger(__name__)

MAX_CONTROL_FRAME_BYTES = 4096  # a start message is ~150 bytes; anything near this is not a control frame
MAX_CALL_ID_LENGTH = 64

Encoding = Literal["pcm16", "mulaw"]
SampleRate = Literal[8000, 16000]
Channels = Literal[1, 2]
Role = Literal["agent", "customer", "unknown"]
Language = Literal["ru", "en"]
AgentName = Annotated[str, StringConstraints(pattern=USER_NAME_PATTERN)]
AlertKind = Literal["forbidden", "trigger"]

_CALL_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CONTROL_TYPES = ("start", "stop")
# C0 controls other than tab/newline/CR, and the replacement character left by a lossy decode.
_BINARY_HINT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]")


class ProtocolError(ValueError):
    """A frame or call id that breaks the protocol; the message is safe to send back to the client."""


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (RFC 6455 section 7.4.1)."""

    NORMAL = 1000
    BAD_DATA = 1003
    POLICY = 1008
    SERVER_ERROR = 1011


def validate_call_id(call_id: str) -> str:
    """Return `call_id` if it is 1-64 characters of ``[A-Za-z0-9._-]``, else raise ProtocolError.

    Call ids end up in URLs, log lines and file names, so ``.`` and ``..`` (path components with a
    meaning of their own) are refused as well.
    """
    if not isinstance(call_id, str) or _CALL_ID.fullmatch(call_id) is None:
        shown = call_id[:80] if isinstance(call_id, str) else type(call_id).__name__
        raise ProtocolError(
            f"invalid call id {shown!r}: "
            f"use 1-{MAX_CALL_ID_LENGTH} characters of A-Z, a-z, 0-9, '.', '_', '-'"
        )
    if call_id in (".", ".."):
        raise ProtocolError(f"invalid call id {call_id!r}: '.' and '..' are reserved")
    return call_id


class _Control(BaseModel):
    """Base of client control messages: strict types, unknown fields refused, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class StartMessage(_Control):
    """Opens a call: how the binary audio frames that follow are encoded and who is on each channel.

    ``roles[i]`` names the speaker on channel ``i``; a role may repeat only if it is ``unknown``.
    ``language`` pins recognition to one language; ``None`` lets the recogniser detect it.
    ``agent`` names the agent user on the call: then only that agent's sidebar (and reviewers) see it.
    """

    type: Literal["start"] = "start"
    encoding: Encoding
    sample_rate: SampleRate
    channels: Channels
    roles: list[Role]
    language: Language | None = None
    agent: AgentName | None = None

    @field_validator("sample_rate", "channels", mode="before")
    @classmethod
    def _exact_int(cls, value: Any, info: ValidationInfo) -> Any:
        # Literal[1, 2] compares by equality, so JSON true or 1.0 would pass as 1; the protocol says integer.
        if type(value) is not int:
            expected = "8000 or 16000" if info.field_name == "sample_rate" else "1 or 2"
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value

    @model_validator(mode="after")
    def _roles_match_channels(self) -> StartMessage:
        if len(self.roles) != self.channels:
            raise PydanticCustomError(
                "roles_mismatch",
                "field 'roles' has {n_roles} role(s) but 'channels' is {channels}: give one role per channel",
                {"n_roles": len(self.roles), "channels": self.channels},
            )
        named = [role for role in self.roles if role != "unknown"]
        if len(named) != len(set(named)):
            raise PydanticCustomError(
                "roles_duplicate",
                "field 'roles' repeats a role ({roles}): only 'unknown' may appear more than once",
                {"roles": ", ".join(self.roles)},
            )
        return self

    def to_json(self) -> str:
        """The message as a compact JSON text frame (what a client sends); ``agent`` only when named."""
        return self.model_dump_json(exclude={"agent"} if self.agent is None else None)


class StopMessage(_Control):
    """Ends the audio of a call; the server flushes pending turns, sends ``end`` and closes normally."""

    type: Literal["stop"] = "stop"

    def to_json(self) -> str:
        """The message as a compact JSON text frame (what a client sends)."""
        return self.model_dump_json()


ControlMessage = StartMessage | StopMessage


def parse_control(text: str) -> StartMessage | StopMessage:
    """Parse one client text frame into a StartMessage or StopMessage.

    Raises ProtocolError with a message naming the problem: an oversize frame, text that is not JSON (or
    looks like binary audio sent as text), a non-object, a missing or unknown ``type``, or the first
    invalid field with its allowed values.
    """
    # Every character is at least one UTF-8 byte, so a long text is refused without encoding it.
    if (
        len(text) > MAX_CONTROL_FRAME_BYTES
        or len(text.encode("utf-8", "surrogatepass")) > MAX_CONTROL_FRAME_BYTES
    ):
        raise ProtocolError(f"control frame too large: the limit is {MAX_CONTROL_FRAME_BYTES} bytes")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if _BINARY_HINT.search(text):
            raise ProtocolError(
                "control frame is not JSON text (it looks like binary data): send audio as binary frames"
            ) from None
        raise ProtocolError(f"control frame is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:  # 4 KiB of "[" nests deeper than the json module's recursion allows
        raise ProtocolError("control frame is not a control message: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"control frame must be a JSON object, got {_json_type(data)}")
    if "type" not in data:
        raise ProtocolError("control message has no 'type' field: expected 'start' or 'stop'")
    kind = data["type"]
    if not isinstance(kind, str) or kind not in _CONTROL_TYPES:
        raise ProtocolError(f"unknown message type {_shown(kind)}: expected 'start' or 'stop'")
    model: type[StartMessage | StopMessage] = StartMessage if kind == "start" else StopMessage
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(f"invalid {kind} message: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    """The first validation error of a control message as one sentence naming the field."""
    error = exc.errors(include_url=False)[0]
    loc = error["loc"]
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    kind = error["type"]
    got = _shown(error.get("input"))
    if not loc:  # a model-level check, already phrased with the field names
        return error["msg"]
    if kind == "missing":
        return f"field '{field}' is required"
    if kind == "extra_forbidden":
        return f"unknown field '{field}'"
    if field == "language":
        return f"field 'language' must be 'ru', 'en' or null, got {got}"
    if kind == "literal_error":
        return f"field '{field}' must be {error['ctx']['expected']}, got {got}"
    if kind.startswith("list_"):
        return f"field '{field}' must be a list of roles ('agent', 'customer', 'unknown'), got {got}"
    return f"field '{field}': {error['msg']}, got {got}"


def _shown(value: Any) -> str:
    """A value as JSON, cut short, for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


class _Event(BaseModel):
    """Base of server events: immutable, unknown fields refused, serialised with ``to_json()``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> str:
        """The event as a compact JSON text frame, keys in protocol order."""
        return self.model_dump_json()


class TranscriptMessage(_Event):
    """A turn's text so far (``final=False``) or once its speaker has stopped (``final=True``)."""

    type: Literal["transcript"] = "transcript"
    speaker: Role
    text: str
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    final: bool

    @model_validator(mode="after")
    def _ordered(self) -> TranscriptMessage:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self

    @classmethod
    def from_event(cls, event: TranscriptEvent) -> TranscriptMessage:
        """Wrap a recogniser's TranscriptEvent (models.streaming) for the wire."""
        return cls(
            speaker=event.speaker, text=event.text, start=event.start, end=event.end, final=event.final
        )


class AlertMessage(_Event):
    """A pack category detected in a final turn: a forbidden phrase by the agent or a customer trigger.

    ``span`` is the ``[start, end)`` character range of ``text`` that fired the category; ``score`` is in
    [0, 1]; ``pack_version`` says which phrase pack produced it so stale alerts can be told apart.
    """

    type: Literal["alert"] = "alert"
    kind: AlertKind
    category: str
    title: str
    speaker: Role
    text: str
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    score: float = Field(ge=0, le=1)
    suggestions: list[str] = Field(default_factory=list)
    span: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]
    pack_version: int = Field(ge=0)

    @model_validator(mode="after")
    def _valid_ranges(self) -> AlertMessage:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        if self.span[1] < self.span[0]:
            raise ValueError(f"span {list(self.span)} ends before it starts")
        return self


class ErrorMessage(_Event):
    """Something went wrong with the call; usually followed by a close with a CloseCode."""

    type: Literal["error"] = "error"
    message: str


class OverloadMessage(_Event):
    """The server is behind: ``queued`` turns wait for recognition or classification."""

    type: Literal["overload"] = "overload"
    message: str
    queued: int = Field(ge=0)


class EndMessage(_Event):
    """The last event of a call: every turn and alert has been sent."""

    type: Literal["end"] = "end"


ServerEvent = Annotated[
    TranscriptMessage | AlertMessage | ErrorMessage | OverloadMessage | EndMessage,
    Field(discriminator="type"),
]


@cache
def _event_adapter() -> TypeAdapter[Any]:
    return TypeAdapter(ServerEvent)


def parse_event(text: str) -> TranscriptMessage | AlertMessage | ErrorMessage | OverloadMessage | EndMessage:
    """Parse one server event frame (for clients and tests); raises ProtocolError if it is not one."""
    try:
        return _event_adapter().validate_json(text)
    except ValidationError as exc:
        raise ProtocolError(f"invalid server event: {exc.errors(include_url=False)[0]['msg']}") from None
