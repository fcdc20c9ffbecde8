"""Telephony adapters on the same engine: Twilio Media Streams and FreeSWITCH ``mod_audio_fork``.

Each adapter turns the vendor's messages into the callbuffer protocol (a ``start``, audio frames, a stop)
and drives a call session exactly like ``/v1/calls/{id}/stream`` does. Events go to the call's sidebars
(``/v1/calls/{id}/events``); nothing is sent back on the vendor's socket, which expects only its own
messages.

Twilio (https://www.twilio.com/docs/voice/media-streams/websocket-messages): JSON text frames
``connected``, ``start`` (``start.callSid``, ``start.tracks``, ``start.mediaFormat``,
``start.customParameters``),
``media`` (``media.track`` inbound|outbound, ``media.timestamp`` in ms, base64 ``media.payload`` of
8 kHz mu-law), ``mark``, ``dtmf``, ``stop``. ``inbound`` is what the caller says (the customer),
``outbound`` what Twilio plays to them (the agent); with both tracks the call is stereo, agent left.

FreeSWITCH ``mod_audio_fork`` (``uuid_audio_fork <uuid> start <url> stereo 8k <metadata>``): the first
text frame is the metadata string, then binary frames of 16-bit little-endian PCM, stereo with the
caller (customer) on the left; the socket closes when the call hangs up, which ends the call normally.
Call id, sample rate, channels and language come from the metadata JSON when it has them
(``call_id``/``uuid``, ``sample_rate``, ``channels``, ``language``), else from the URL's query string.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError

from audio.codecs import FrameError
from server.access.auth import authorize_socket, credential_of
from server.live.api import STREAMERS, registry_of
from server.live.calls import CallBusyError, TooManyCallsError
from server.live.protocol import CloseCode, ProtocolError, StartMessage, validate_call_id
from server.live.session import CallSession
from server.live.store import CallExistsError

logger = logging.getLogger(__name__)

router = APIRouter()

MULAW_SILENCE = 0xFF
TWILIO_RATE = 8000
MAX_TRACK_SKEW_S = 1.0  # a track this far behind the other is padded with silence, not waited for


class TelephonyError(ValueError):
    """A vendor message that does not follow the vendor's documented format."""


# -- Twilio ---------------------------------------------------------------------------------------------


@dataclass
class TwilioStart:
    call_id: str
    start: StartMessage
    tracks: tuple[str, ...]
    token: str | None = None  # customParameters.token: Twilio cannot send headers or a query string


@dataclass
class TwilioAligner:
    """Lines up Twilio's inbound and outbound mu-law tracks by timestamp into interleaved stereo frames.

    Channel 0 is the agent (outbound), channel 1 the customer (inbound). A gap in a track (Twilio skips
    silence on some setups) is filled with mu-law silence; a track that stops arriving is padded once
    the other is more than MAX_TRACK_SKEW_S ahead, so one side never stalls the call.
    """

    tracks: tuple[str, ...]
    _audio: dict[str, bytearray] = field(default_factory=dict)
    _emitted: int = 0  # samples per channel already sent

    def __post_init__(self) -> None:
        self._audio = {track: bytearray() for track in self.tracks}

    def add(self, track: str, timestamp_ms: int, payload: bytes) -> bytes:
        """Take one media chunk; returns the interleaved frames that are now complete (maybe empty)."""
        if track not in self._audio:
            raise TelephonyError(
                f"media for track {track!r}, but the stream started with {list(self.tracks)}"
            )
        buffer = self._audio[track]
        position = timestamp_ms * TWILIO_RATE // 1000 - self._emitted
        if position > len(buffer):
            buffer.extend(bytes([MULAW_SILENCE]) * (position - len(buffer)))
        buffer.extend(payload)
        return self._ready(flush=False)

    def flush(self) -> bytes:
        return self._ready(flush=True)

    def _ready(self, *, flush: bool) -> bytes:
        lengths = [len(b) for b in self._audio.values()]
        ready = max(lengths) if flush else min(lengths)
        if not flush and max(lengths) - ready > MAX_TRACK_SKEW_S * TWILIO_RATE:
            ready = max(lengths) - int(MAX_TRACK_SKEW_S * TWILIO_RATE)
        if ready <= 0:
            return b""
        channels = []
        for track in self._channel_order():
            buffer = self._audio[track]
            chunk = bytes(buffer[:ready]).ljust(ready, bytes([MULAW_SILENCE]))
            del buffer[:ready]
            channels.append(chunk)
        self._emitted += ready
        if len(channels) == 1:
            return channels[0]
        out = bytearray(2 * ready)
        out[0::2], out[1::2] = channels
        return bytes(out)

    def _channel_order(self) -> list[str]:
        return [t for t in ("outbound", "inbound") if t in self._audio]


def twilio_start(message: dict[str, Any]) -> TwilioStart:
    """The callbuffer start for a Twilio ``start`` message; raises TelephonyError naming the field."""
    start = message.get("start")
    if not isinstance(start, dict):
        raise TelephonyError("Twilio 'start' message has no 'start' object")
    params = start.get("customParameters") or {}
    call_id = params.get("call_id") or start.get("callSid") or message.get("streamSid")
    if not isinstance(call_id, str):
        raise TelephonyError("Twilio 'start' message has no start.callSid")
    media_format = start.get("mediaFormat") or {}
    encoding = media_format.get("encoding", "audio/x-mulaw")
    rate = media_format.get("sampleRate", TWILIO_RATE)
    if encoding != "audio/x-mulaw" or rate != TWILIO_RATE:
        raise TelephonyError(f"Twilio media format {encoding} at {rate} Hz: only audio/x-mulaw 8000 is known")
    tracks = start.get("tracks") or ["inbound"]
    if not set(tracks) <= {"inbound", "outbound"} or not tracks:
        raise TelephonyError(f"Twilio start.tracks {tracks!r}: expected 'inbound' and/or 'outbound'")
    roles = [{"outbound": "agent", "inbound": "customer"}[t] for t in ("outbound", "inbound") if t in tracks]
    language = params.get("language") or None
    try:
        protocol_start = StartMessage(
            encoding="mulaw",
            sample_rate=TWILIO_RATE,
            channels=len(roles),
            roles=roles,
            language=language,
            agent=params.get("agent") or None,
        )
    except ValidationError as exc:
        raise TelephonyError(f"Twilio customParameters: {exc.errors()[0]['msg']}") from None
    token = params.get("token")
    return TwilioStart(
        validate_call_id(call_id), protocol_start, tuple(tracks), token if isinstance(token, str) else None
    )


@router.websocket("/v1/twilio")
async def twilio(ws: WebSocket) -> None:
    """Twilio Media Streams (``<Stream url="wss://HOST/v1/twilio">``)."""
    await ws.accept()
    session: CallSession | None = None
    aligner: TwilioAligner | None = None
    normal = False
    registry = registry_of(ws)
    # a token in a header or the URL is checked now; else customParameters.token, with the start
    checked = credential_of(ws) is not None
    if checked and await authorize_socket(ws, STREAMERS) is None:
        return
    try:
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            message = _json_object(frame.get("text"))
            event = message.get("event")
            if event == "start" and session is None:
                started = twilio_start(message)
                if not checked and await authorize_socket(ws, STREAMERS, started.token) is None:
                    return
                session = await registry.open(started.call_id, started.start)
                aligner = TwilioAligner(started.tracks)
            elif event == "media" and session is not None and aligner is not None:
                if ready := _twilio_media(message, aligner):
                    session.feed(ready)
            elif event == "stop":
                if session is not None and aligner is not None and (rest := aligner.flush()):
                    session.feed(rest)
                normal = True
                break
            elif event not in ("connected", "mark", "dtmf", "start", "media"):
                logger.info("twilio: ignoring unknown event %r", event)
    except (TelephonyError, ProtocolError, FrameError) as exc:
        logger.warning("twilio stream refused: %s", exc)
        await ws.close(CloseCode.BAD_DATA, reason=str(exc)[:120])
    except (CallExistsError, CallBusyError, TooManyCallsError) as exc:
        logger.warning("twilio stream refused: %s", exc)
        await ws.close(CloseCode.POLICY, reason=str(exc)[:120])
    finally:
        if session is not None:
            await registry.close(session, normal=normal)


def _twilio_media(message: dict[str, Any], aligner: TwilioAligner) -> bytes:
    media = message.get("media")
    if not isinstance(media, dict):
        raise TelephonyError("Twilio 'media' message has no 'media' object")
    try:
        payload = base64.b64decode(media.get("payload", ""), validate=True)
        timestamp = int(media.get("timestamp", 0))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise TelephonyError(f"Twilio media payload/timestamp unreadable: {exc}") from None
    return aligner.add(media.get("track", "inbound"), timestamp, payload)


def _json_object(text: str | None) -> dict[str, Any]:
    if text is None:
        raise TelephonyError("expected a JSON text frame, got binary")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TelephonyError(f"not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise TelephonyError("expected a JSON object")
    return value


# -- FreeSWITCH mod_audio_fork ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ForkStart:
    call_id: str
    start: StartMessage
    token: str | None  # metadata 'token' (a header or ?access_token= in the URL also work)


def fork_start(metadata: str, query: dict[str, str]) -> ForkStart:
    """Call id, start and token of a mod_audio_fork connection from its metadata frame and URL query."""
    try:
        meta = json.loads(metadata) if metadata.strip() else {}
    except json.JSONDecodeError:
        meta = {}  # metadata is free text in mod_audio_fork; only JSON is read
    if not isinstance(meta, dict):
        meta = {}
    merged = {**query, **{k: v for k, v in meta.items() if v is not None}}
    call_id = merged.get("call_id") or merged.get("uuid")
    if not call_id:
        raise TelephonyError("mod_audio_fork: no call id (metadata 'call_id' or 'uuid', or ?call_id=)")
    try:
        rate = int(merged.get("sample_rate", 8000))
        channels = int(merged.get("channels", 2))
    except (TypeError, ValueError):
        raise TelephonyError("mod_audio_fork: sample_rate and channels must be numbers") from None
    roles = ["customer", "agent"] if channels == 2 else [merged.get("role", "unknown")]
    try:
        start = StartMessage(
            encoding="pcm16",
            sample_rate=rate,
            channels=channels,
            roles=roles,
            language=merged.get("language") or None,
            agent=merged.get("agent") or None,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        raise TelephonyError(f"mod_audio_fork: {'.'.join(map(str, error['loc']))}: {error['msg']}") from None
    token = meta.get("token")
    return ForkStart(validate_call_id(str(call_id)), start, token if isinstance(token, str) else None)


@router.websocket("/v1/freeswitch")
async def freeswitch(ws: WebSocket) -> None:
    """FreeSWITCH ``mod_audio_fork``: metadata text frame, then L16 PCM; hang-up (close) ends the call."""
    await ws.accept()
    registry = registry_of(ws)
    session: CallSession | None = None
    try:
        first = await ws.receive()
        if first["type"] == "websocket.disconnect":
            return
        if first.get("text") is None:
            raise TelephonyError("mod_audio_fork: the first frame must be the metadata text")
        forked = fork_start(first["text"], dict(ws.query_params))
        call_id = forked.call_id
        if await authorize_socket(ws, STREAMERS, forked.token) is None:
            return
        session = await registry.open(call_id, forked.start)
        while (frame := await ws.receive())["type"] != "websocket.disconnect":
            if frame.get("bytes") is not None:
                try:
                    session.feed(frame["bytes"])
                except FrameError as exc:  # one bad frame is skipped; the call goes on
                    logger.warning("mod_audio_fork call %s: %s", call_id, exc)
    except (TelephonyError, ProtocolError, CallExistsError, CallBusyError, TooManyCallsError) as exc:
        logger.warning("mod_audio_fork stream refused: %s", exc)
        await ws.close(
            CloseCode.BAD_DATA if isinstance(exc, (TelephonyError, ProtocolError)) else CloseCode.POLICY,
            reason=str(exc)[:120],
        )
    finally:
        if session is not None:
            await registry.close(session, normal=True)  # FreeSWITCH closes the socket at hang-up
