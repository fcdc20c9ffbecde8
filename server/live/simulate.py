"""A client for the live protocol: stream a recording (or the microphone) to a server, collect its events.

Used by ``callbuffer simulate`` (try live assist without a phone system), by tests and by the latency
benchmark. It speaks only the documented protocol, exactly as a telephony integration would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from audio.decode import decode_file
from audio.resample import resample
from server.live.protocol import StartMessage, StopMessage

logger = logging.getLogger(__name__)

FRAME_SECONDS = 0.02  # 20 ms frames, as telephony sends them


class SimulateError(RuntimeError):
    """The recording cannot be streamed, or the server refused or dropped the call."""


@dataclass
class Recording:
    """A recording ready to stream: pcm16 interleaved frames and the start message describing them."""

    start: StartMessage
    frames: list[bytes]

    @property
    def seconds(self) -> float:
        return len(self.frames) * FRAME_SECONDS


@dataclass
class Received:
    """An event and when it arrived, in seconds since the first audio frame was sent."""

    at: float
    event: dict[str, object]


@dataclass
class SimulationResult:
    events: list[Received] = field(default_factory=list)
    close_code: int | None = None
    sent_at: list[float] = field(default_factory=list)  # when each frame was sent (same clock)


def load_recording(path: Path, roles: list[str] | None = None, language: str | None = None) -> Recording:
    """Decode `path` (any format PyAV reads; 1 or 2 channels) into 20 ms pcm16 frames at 8 or 16 kHz."""
    decoded = decode_file(path, sample_rate=None)
    samples, rate = decoded.samples, decoded.sample_rate
    if samples.shape[0] > 2:
        raise SimulateError(f"{path}: {samples.shape[0]} channels; the protocol takes 1 or 2")
    if rate not in (8000, 16000):
        samples = np.stack([resample(channel, rate, 16000) for channel in samples])
        rate = 16000
    roles = roles or (["agent", "customer"] if samples.shape[0] == 2 else ["unknown"])
    if len(roles) != samples.shape[0]:
        raise SimulateError(f"{path} has {samples.shape[0]} channel(s) but {len(roles)} role(s) were given")
    start = StartMessage(
        encoding="pcm16", sample_rate=rate, channels=samples.shape[0], roles=roles, language=language
    )
    return Recording(start, list(pcm16_frames(samples, rate)))


def pcm16_frames(samples: np.ndarray, rate: int, seconds: float = FRAME_SECONDS) -> Iterator[bytes]:
    """Interleaved little-endian 16-bit frames of `seconds` each from (channels, n) float samples."""
    pcm = (np.clip(samples.T, -1.0, 1.0) * 32767).round().astype("<i2")
    step = int(rate * seconds)
    for at in range(0, pcm.shape[0], step):
        yield pcm[at : at + step].tobytes()


async def stream_call(
    url: str,
    call_id: str,
    start: StartMessage,
    frames: Iterable[bytes],
    *,
    realtime: bool = True,
    on_event: Callable[[Received], None] | None = None,
    frame_seconds: float = FRAME_SECONDS,
    token: str | None = None,
) -> SimulationResult:
    """Open ``{url}/v1/calls/{call_id}/stream``, send start, frames and stop, and collect every event
    until the server closes. With `realtime`, frames go out on the wall clock (a frame every 20 ms).
    `token`: an API token of a telephony integration (or an admin), sent as a bearer header."""
    result = SimulationResult()
    address = f"{url.rstrip('/')}/v1/calls/{call_id}/stream"
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        async with connect(address, max_size=2**22, open_timeout=30, additional_headers=headers) as ws:
            await ws.send(start.to_json())
            t0 = time.monotonic()

            async def receive() -> None:
                try:
                    async for text in ws:
                        received = Received(round(time.monotonic() - t0, 3), json.loads(text))
                        result.events.append(received)
                        if on_event is not None:
                            on_event(received)
                except ConnectionClosed:
                    pass  # the close code is read below

            receiver = asyncio.create_task(receive())
            try:
                for index, frame in enumerate(frames):
                    if realtime:
                        await asyncio.sleep(max(0.0, t0 + index * frame_seconds - time.monotonic()))
                    if receiver.done():
                        break  # the server closed the call
                    await ws.send(frame)
                    result.sent_at.append(time.monotonic() - t0)
                if not receiver.done():
                    await ws.send(StopMessage().to_json())
            except ConnectionClosed:
                pass  # the server closed first; its events and close code tell why
            await receiver
            result.close_code = ws.close_code
    except OSError as exc:
        raise SimulateError(f"cannot reach the server at {address}: {exc}") from exc
    return result


def describe(received: Received) -> str:
    """One event as a line for a terminal."""
    event = received.event
    kind = event.get("type")
    stamp = f"[{received.at:7.2f}s]"
    if kind == "transcript":
        mark = "" if event.get("final") else " …"
        return f"{stamp} {event['speaker']:>8}: {event['text']}{mark}"
    if kind == "alert":
        lines = [
            f"{stamp} ALERT {event['kind']} {event['category']} ({event['title']}) score {event['score']}"
        ]
        lines += [f"{'':12}-> {phrase}" for phrase in event.get("suggestions", [])]
        return "\n".join(lines)
    if kind == "end":
        return f"{stamp} end of call"
    return f"{stamp} {kind}: {event.get('message', '')}"
