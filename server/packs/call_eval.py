"""Labelled calls through the product's two engines, scored turn by turn (:mod:`models.call_eval`).

A labelled call is a call script (:func:`audio.synth.load_call_script`): its turns with the alert
categories each must raise, who speaks them in which voice, and the line (μ-law or PCM, line noise). It
is spoken into an 8 kHz stereo telephone call (agent left, customer right) and then heard by:

- **the audit path** (:func:`audit_calls`): the recording written as a WAV in the script's encoding and
  audited by :class:`models.audit.Auditor` exactly as ``callbuffer audit`` and the review page do (in
  this process, or on an audit worker of the cluster);
- **the live engine** (:func:`live_calls`): the call streamed in 20 ms frames of the script's encoding, at
  real-time pace or faster, into the server's own :class:`~server.live.calls.CallRegistry` and
  :class:`~server.live.session.CallSession` in this process, as a phone system's call arrives over the
  WebSocket; its final transcripts and alerts are read off the call's event hub, as a sidebar reads them.

Both give the turns heard and the alerts raised, which :func:`models.call_eval.score_call` lines up with
what was said.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from audio.codecs import mulaw_encode
from audio.synth import CallScript, MissingToolError, SynthCall, SynthError, load_call_script
from models.audit import AuditOptions
from models.call_eval import CallResult, CallSetReport, HeardTurn, SaidTurn, score_call
from models.packs import Kind, PhrasePack
from server.audits.jobs import ReportFn
from server.live.calls import CallRegistry
from server.live.engine import LiveEngine
from server.live.protocol import StartMessage

logger = logging.getLogger(__name__)

FRAME_SECONDS = 0.02
SCRIPT_SUFFIXES = (".yaml", ".yml", ".json")
Progress = Callable[[str], None]


class CallEvalError(ValueError):
    """Labelled calls that cannot be read or spoken: the message names the file and the field."""


class SpeechUnavailableError(CallEvalError):
    """The text-to-speech tools a script needs (festival and its voices, espeak-ng, sox) are missing here."""


@dataclass(frozen=True)
class LabelledCall:
    """A call script spoken: stereo float samples (agent, customer), how the line carries them, and the
    turns said with their labels and exact times."""

    name: str
    split: str | None
    language: str | None
    encoding: str
    sample_rate: int
    samples: np.ndarray
    said: tuple[SaidTurn, ...]

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / self.sample_rate

    def frames(self) -> list[bytes]:
        """The call as the phone system sends it: interleaved 20 ms frames, pcm16 or μ-law."""
        pcm = (np.clip(self.samples.T, -1.0, 1.0) * 32767).round().astype("<i2")
        step = int(self.sample_rate * FRAME_SECONDS)
        chunks = [pcm[at : at + step] for at in range(0, pcm.shape[0], step)]
        if self.encoding == "mulaw":
            return [mulaw_encode(c.astype(np.int16)) for c in chunks]
        return [c.tobytes() for c in chunks]


def script_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The call scripts named: files as given, folders searched (recursively) for YAML and JSON files;
    :class:`CallEvalError` for a path that does not exist or a folder that holds none."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in SCRIPT_SUFFIXES and p.is_file())
            if not inside:
                raise CallEvalError(f"{path}: no call scripts (*.yaml, *.yml, *.json) in this folder")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise CallEvalError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def load_scripts(paths: Iterable[str | os.PathLike[str]]) -> list[CallScript]:
    """Every script read and checked before anything is spoken, so a malformed one stops the run at once
    with its file and field (:class:`CallEvalError`)."""
    scripts = []
    for path in script_files(paths):
        try:
            scripts.append(load_call_script(path))
        except SynthError as exc:
            raise CallEvalError(str(exc)) from exc
    return scripts


def check_labels(script: CallScript, pack: PhrasePack) -> None:
    """Every category a script expects or allows is an alert category of `pack`, on the side that says
    it; :class:`CallEvalError` names the file, the turn and the field otherwise."""
    sides = {c.id: c.speaker.value for c in pack.categories if c.kind.is_alert}
    for i, turn in enumerate(script.turns):
        for field_name in ("expect", "also_ok"):
            for category in getattr(turn, field_name):
                where = f"{script.source or script.name}: turns: item {i}: {field_name}"
                if category not in sides:
                    raise CallEvalError(
                        f"{where}: {category!r} is no alert category of pack {pack.name} v{pack.version}"
                    )
                if sides[category] != turn.speaker:
                    raise CallEvalError(f"{where}: {category!r} is raised on {sides[category]} turns only")


def speak_call(script: CallScript) -> LabelledCall:
    """The script spoken into an 8 kHz stereo telephone-band call (:meth:`CallScript.build`)."""
    try:
        call = script.build()
    except MissingToolError as exc:
        raise SpeechUnavailableError(f"{script.name}: cannot speak the call here: {exc}") from exc
    except SynthError as exc:
        raise CallEvalError(f"{script.name}: cannot speak the call: {exc}") from exc
    languages = {t.lang for t in script.turns}
    said = tuple(SaidTurn(t.speaker, t.text, t.start, t.end, t.expect, t.also_ok) for t in call.turns)
    language = languages.pop() if len(languages) == 1 else None
    return LabelledCall(
        script.name, script.split, language, script.encoding, call.sample_rate, call.samples, said
    )


def load_uploaded_script(filename: str, data: bytes) -> CallScript:
    """A script a trainer uploaded: read as a file of that name, so errors name it as they know it."""
    name = Path(filename or "call.yaml").name
    if Path(name).suffix.lower() not in SCRIPT_SUFFIXES:
        raise CallEvalError(f"{name}: a call script is a .yaml, .yml or .json file")
    with tempfile.TemporaryDirectory(prefix="callbuffer-script-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            script = load_call_script(path)
        except SynthError as exc:
            raise CallEvalError(str(exc).replace(f"{tmp}{os.sep}", "")) from exc
    return replace(script, source=name)


# -- the audit path -----------------------------------------------------------------------------------


def audit_calls(
    calls: Iterable[LabelledCall], audit: ReportFn, *, progress: Progress | None = None
) -> CallSetReport:
    """Each call written as a WAV in its encoding and audited as a recording; scored turn by turn."""
    results = []
    with tempfile.TemporaryDirectory(prefix="callbuffer-eval-") as tmp:
        for call in calls:
            started = time.perf_counter()
            path = _write_wav(call, Path(tmp) / f"{call.name}.wav")
            report = audit(path, AuditOptions(language=call.language, mask=False))
            alerts: dict[int, list[str]] = {}
            for d in report["detections"]:
                if d["kind"] != Kind.PRACTICE.value:
                    alerts.setdefault(d["turn"], []).append(d["category"])
            heard = [
                HeardTurn(t["speaker"], t["text"], t["start"], t["end"], tuple(alerts.get(t["index"], ())))
                for t in report["turns"]
            ]
            results.append(score_call(call.name, call.said, heard, split=call.split))
            _tell(progress, results[-1], time.perf_counter() - started)
    return CallSetReport("audit", tuple(results))


def _write_wav(call: LabelledCall, path: Path) -> Path:
    return SynthCall(call.samples, call.sample_rate).write_wav(path, call.encoding)  # type: ignore[arg-type]


# -- the live engine -----------------------------------------------------------------------------------


async def live_calls(
    calls: Sequence[LabelledCall],
    engine: LiveEngine,
    *,
    speed: float = 1.0,
    concurrent: int = 1,
    progress: Progress | None = None,
) -> CallSetReport:
    """Stream the calls into the live engine, ``concurrent`` at a time, each at ``speed`` times real time
    (0: as fast as the engine takes them), and score what a sidebar received."""
    registry = CallRegistry(engine)
    gate = asyncio.Semaphore(max(1, concurrent))

    async def one(call: LabelledCall) -> CallResult:
        async with gate:
            started = time.perf_counter()
            heard = await _stream(registry, call, speed)
            result = score_call(call.name, call.said, heard, split=call.split)
            _tell(progress, result, time.perf_counter() - started)
            return result

    try:
        results = await asyncio.gather(*(one(call) for call in calls))
    finally:
        await registry.shutdown()
    return CallSetReport("live", tuple(results))


async def _stream(registry: CallRegistry, call: LabelledCall, speed: float) -> list[HeardTurn]:
    """One call through a session, its frames paced from the monotonic clock; the final transcripts and
    alerts its listener received."""
    call_id = f"eval-{call.name}-{time.time_ns() % 10**9}"[:64]
    start = StartMessage(
        encoding=call.encoding,  # type: ignore[arg-type]
        sample_rate=call.sample_rate,  # type: ignore[arg-type]
        channels=2,
        roles=["agent", "customer"],
        language=call.language,  # type: ignore[arg-type]
    )
    session = await registry.open(call_id, start)
    listener = registry.hub.subscribe(call_id)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        for i, frame in enumerate(call.frames()):
            if speed > 0:
                await asyncio.sleep(max(0.0, t0 + i * FRAME_SECONDS / speed - loop.time()))
            elif i % 50 == 0:
                await asyncio.sleep(0)
            session.feed(frame)
    finally:
        await registry.close(session, normal=True)
    events = []
    while (event := await listener.queue.get()) is not None:
        events.append(json.loads(event))
    registry.hub.unsubscribe(listener)
    return heard_turns(events)


def heard_turns(events: Iterable[dict]) -> list[HeardTurn]:
    """Final transcripts with the alerts that followed each (matched by speaker and times)."""
    turns: dict[tuple[str, float, float], HeardTurn] = {}
    for event in events:
        key = (str(event.get("speaker")), event.get("start"), event.get("end"))
        if event.get("type") == "transcript" and event.get("final"):
            turns[key] = HeardTurn(key[0], event["text"], event["start"], event["end"])
        elif event.get("type") == "alert" and key in turns:
            turn = turns[key]
            turns[key] = HeardTurn(
                turn.speaker, turn.text, turn.start, turn.end, (*turn.alerts, event["category"])
            )
    return sorted(turns.values(), key=lambda t: t.start)


def _tell(progress: Progress | None, result: CallResult, seconds: float) -> None:
    message = (
        f"{result.name}: {result.hits}/{result.expected} alerts, {result.false_alarms} false, "
        f"{result.repeated_finals} repeated finals ({seconds:.1f} s)"
    )
    logger.info(message)
    if progress is not None:
        progress(message)
