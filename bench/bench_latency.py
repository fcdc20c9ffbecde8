"""Live-assist latency: from a turn's last audio frame, sent at real-time pace, to its alert at a sidebar.

What it measures (the issue's definition): for N concurrent stereo calls streamed to a real server at
real-time pace, the time from sending the 20 ms frame that holds a turn's last speech sample to the
arrival of that turn's ``alert`` event on a sidebar socket (``/v1/calls/{id}/events``). Target on the
2-core machine: p50 <= 1.0 s and p95 <= 1.5 s, for 1 call and for 8 concurrent calls. The same figure is
printed for each final ``transcript`` event, since an alert goes out right after its turn's final.

How:

- The calls are ``bench/data/calls/{ru,en}-complaint.yaml``, spoken by ``audio.synth.build_call`` (8 kHz
  stereo telephone band, agent left, customer right); every turn's speech start/end and expected alert
  categories are known exactly. Calls alternate ru/en and start at seeded random times in the first 2 s
  (``--stagger``). Since every ru call (and every en call) follows the same script, a 2 s stagger makes
  their turns end within 2 s of each other: finals reach the shared Whisper pool in bursts, a harder load
  than independent calls give. ``--stagger 30`` spreads them.
- Per call, a sidebar connects first; then a streaming client sends ``start`` (pcm16, 8000 Hz, 2 channels,
  roles [agent, customer], the call's language) and 20 ms pcm16 frames, frame i at t0 + i * 0.02 s on the
  monotonic clock (not sleep-after-send), then ``stop``. The send time of every frame is recorded.
- Each alert (and final transcript) is matched to the script turns of its speaker whose speech overlaps its
  [start, end]; when it covers several (two turns merged by the endpointer), the latest turn end counts.
  Latency = arrival at the sidebar - send time of the frame containing that turn end. Expected categories
  that never came are misses; an alert whose category no overlapping turn expected is a false alert.
- By default the server runs in this process (``LiveEngine.start`` + ``create_app`` under uvicorn on a
  free port, on a background thread, a fresh store in a temp dir); ``--url`` measures a running
  ``callbuffer serve`` instead (``--workers`` etc. then do nothing: set them on that server). In-process,
  the bench also times the server's steps (transcription jobs, the wait of finals for the shared pool,
  classification) so the table says where time goes. Note that in-process the bench's clients share the
  server's interpreter (GIL); ``--url`` keeps them apart. Each N also reports the CPU the whole machine
  and this process used (/proc/stat): on a shared 2-core machine, "everything else" well above zero means
  other work competed with the server and the figures are pessimistic.

Server settings come from the environment (``CALLBUFFER_WORKERS``, ``CALLBUFFER_ENDPOINT_SILENCE``,
``CALLBUFFER_PARTIAL_EVERY``, ``CALLBUFFER_WHISPER_WINDOW``, ``CALLBUFFER_WHISPER_BATCH``,
``CALLBUFFER_QUEUE_CAPACITY``, ``CALLBUFFER_EARLY_AFTER``, ``CALLBUFFER_MIN_PIECE``) or the flags of the
same names. The floor of the latency is the endpoint silence (0.5 s by default): a turn is only known to be
over after that much silence; early transcription (``early_after``) hides Whisper's time inside that
silence when the pool is idle, and long turns transcribed in pieces (``min_piece``) leave only their last
sentence for the end.

    python bench/bench_latency.py [--calls 1,8] [--repeat 1] [--seed 0] [--stagger 2] [--json rows.json]
                                  [--url http://127.0.0.1:8000 --token ADMIN_TOKEN] [--workers 2]
                                  [--endpoint-silence 0.5]
                                  [--partial-every 1.0] [--whisper-window 6] [--whisper-batch 1]
                                  [--queue-capacity 8]
                                  [--early-after 0.2] [--min-piece 3]

It prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import socket
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from audio.synth import PlacedTurn, SynthCall, build_call, load_script
from server.live.protocol import StartMessage, StopMessage
from server.live.simulate import FRAME_SECONDS, pcm16_frames

CALLS_DIR = Path(__file__).resolve().parent / "data" / "calls"
LANGUAGES = ("ru", "en")
STAGGER_S = 2.0  # calls start at random times within this many seconds
SETTLE_S = 0.3  # time for the sidebars to subscribe before the first call starts
REFUSAL_WAIT_S = 0.3  # a refused call hears so within this long of its start
TARGET_P50, TARGET_P95 = 1.0, 1.5


# -- the calls ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestCall:
    """A synthetic call ready to stream: its script turns, language and 20 ms pcm16 frames."""

    lang: str
    call: SynthCall
    frames: list[bytes]

    def start_message(self) -> StartMessage:
        return StartMessage(
            encoding="pcm16",
            sample_rate=self.call.sample_rate,
            channels=2,
            roles=["agent", "customer"],
            language=self.lang,  # type: ignore[arg-type]
        )

    def frame_of(self, seconds: float) -> int:
        """Index of the frame holding the sample at `seconds` of call audio."""
        last_sample = max(0, int(np.ceil(seconds * self.call.sample_rate)) - 1)
        return min(len(self.frames) - 1, last_sample // int(self.call.sample_rate * FRAME_SECONDS))


def build_test_calls() -> dict[str, TestCall]:
    """The Russian and English complaint calls, spoken and laid out once."""
    calls = {}
    for lang in LANGUAGES:
        call = build_call(load_script(CALLS_DIR / f"{lang}-complaint.yaml"))
        calls[lang] = TestCall(lang, call, list(pcm16_frames(call.samples, call.sample_rate)))
    return calls


# -- the server -----------------------------------------------------------------------------------------


@dataclass
class ServerTimings:
    """What the in-process server spent, per job (seconds): Whisper runs, finals' waits, classification."""

    # per Whisper run (one turn, or a batch of finals): (turns, audio seconds, compute seconds)
    transcribe: list[tuple[int, float, float]] = field(default_factory=list)
    final_wait: list[tuple[float, float]] = field(default_factory=list)  # (audio seconds, queue+compute)
    judge: list[float] = field(default_factory=list)
    early_hits: int = 0  # finals whose text was started before the endpointer declared them
    pool: Any = None  # the engine's TranscriptionPool (its counts of jobs run, by kind)
    pool_before: Any = None  # its stats when the figures were last cleared
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.transcribe.clear()
            self.final_wait.clear()
            self.judge.clear()
            self.early_hits = 0
            self.pool_before = self.pool.stats() if self.pool is not None else None

    def pool_jobs(self) -> str:
        """Jobs the pool ran since the last clear, by kind, and guesses it never ran."""
        if self.pool is None or self.pool_before is None:
            return ""
        now, before = self.pool.stats(), self.pool_before
        ran = {kind: n - before.ran.get(kind, 0) for kind, n in now.ran.items()}
        dropped = now.guesses_dropped - before.guesses_dropped
        return (
            f"{ran.get('final', 0)} finals (a guess that was still waiting when its turn ended runs as one), "
            f"{ran.get('guess', 0)} guesses run ahead of their turn's end, {dropped} dropped before they "
            f"ran, {ran.get('preview', 0)} previews"
        )


class _FinalWaitHandler(logging.Handler):
    """Reads the session's debug line 'call %s: %.2f s turn transcribed in %.2f s ...' (call id, audio
    seconds, seconds the final waited for its text; a fourth argument says if it was started early)."""

    def __init__(self, timings: ServerTimings) -> None:
        super().__init__(logging.DEBUG)
        self.timings = timings

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if "transcribed in" in str(record.msg) and isinstance(args, tuple) and len(args) in (3, 4):
            with self.timings.lock:
                self.timings.final_wait.append((float(args[1]), float(args[2])))
                if len(args) == 4 and args[3]:
                    self.timings.early_hits += 1


def _instrument(engine: Any, timings: ServerTimings) -> None:
    """Time the engine's transcription jobs and classifications (instrumentation only, same behaviour)."""
    pool = engine.pool
    timings.pool = pool

    def timed(run: Any, turns: Any, audio_seconds: Any) -> Any:
        def timed_run(*args: Any) -> Any:
            began = time.perf_counter()
            try:
                return run(*args)
            finally:
                with timings.lock:
                    timings.transcribe.append(
                        (turns(*args), audio_seconds(*args), time.perf_counter() - began)
                    )

        return timed_run

    pool._transcribe = timed(pool._transcribe, lambda samples, _: 1, lambda samples, _: samples.size / 16000)
    if pool._transcribe_batch is not None:
        pool._transcribe_batch = timed(
            pool._transcribe_batch,
            lambda batch, *_: len(batch),
            lambda batch, *_: sum(x.size for x in batch) / 16000,
        )
    judge = engine.judge

    def timed_judge(*args: Any) -> Any:
        began = time.perf_counter()
        try:
            return judge(*args)
        finally:
            with timings.lock:
                timings.judge.append(time.perf_counter() - began)

    engine.judge = timed_judge
    handler = _FinalWaitHandler(timings)
    session_logger = logging.getLogger("server.live.session")
    session_logger.addHandler(handler)
    session_logger.setLevel(logging.DEBUG)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_speech_node(cluster: Any) -> Any:
    """Add a one-core speech node to `cluster`, its raylet (and so every worker it starts) pinned to the
    core of this process's that the fewest speech nodes are on, as a one-core machine would be."""
    from ray._private import ray_constants

    from server.cluster.actors import worker_resources

    taken = [getattr(node, "bench_core", None) for node in cluster.worker_nodes]
    core = min(sorted(os.sched_getaffinity(0)), key=taken.count)  # the core fewest speech nodes are on
    node = cluster.add_node(num_cpus=1, resources=worker_resources(1))
    node.bench_core = core
    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    for pid in [raylet, *_descendants(raylet)]:
        with suppress(ProcessLookupError):  # a short-lived helper process already gone
            os.sched_setaffinity(pid, {core})
    return node


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


@contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    """A Ray cluster on this machine: a head with no speech cores and `workers` one-core speech nodes, each
    pinned to a core of its own while there are cores (``ray.cluster_utils.Cluster``; its nodes can be
    killed and added)."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(workers):
        add_speech_node(cluster)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@contextmanager
def local_ray(workers: int | None) -> Iterator[str | None]:
    """The address of a :func:`local_cluster` of `workers` speech nodes; None (and no cluster) when
    `workers` is not given."""
    if not workers:
        yield None
        return
    with local_cluster(workers) as cluster:
        yield cluster.address


@contextmanager
def in_process_server(overrides: dict[str, Any], timings: ServerTimings) -> Iterator[tuple[str, Any, str]]:
    """A real server (uvicorn, websockets-sansio) on a free port, on a background thread, with an admin
    user made in its fresh store: (url, settings, the admin's API token)."""
    import uvicorn

    from server.access.store import AuthStore, Role
    from server.app import create_app
    from server.config import Settings
    from server.live.engine import LiveEngine

    with tempfile.TemporaryDirectory(prefix="callbuffer-bench-") as data_dir:
        settings = Settings(data_dir=Path(data_dir), **overrides)
        with AuthStore(settings.database) as users:
            users.add_user("bench", Role.ADMIN)
            token = users.issue_token("bench", "bench_latency")
        engine = LiveEngine.start(settings)
        _instrument(engine, timings)
        port = _free_port()
        config = uvicorn.Config(
            create_app(settings, engine=engine),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws="websockets-sansio",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
        thread.start()
        try:
            _wait_started(server, thread)
            yield f"http://127.0.0.1:{port}", settings, token
        finally:
            server.should_exit = True
            thread.join(timeout=60)
            engine.close()


def _wait_started(server: Any, thread: threading.Thread, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)


@dataclass
class CpuMeter:
    """Machine-wide CPU busy time (/proc/stat) and this process's CPU time over an interval, in cores."""

    wall: float = field(default_factory=time.monotonic)
    process: float = field(default_factory=lambda: sum(os.times()[:2]))
    machine: tuple[float, float] | None = field(default_factory=lambda: _proc_stat())

    def usage(self) -> str:
        wall = time.monotonic() - self.wall
        own = (sum(os.times()[:2]) - self.process) / wall
        now = _proc_stat()
        if now is None or self.machine is None:
            return f"this process {own:.2f} cores"
        busy = (now[0] - self.machine[0]) / wall
        return f"machine busy {busy:.2f} cores, this process {own:.2f}, everything else {busy - own:.2f}"


def _proc_stat() -> tuple[float, float] | None:
    """(busy, idle) CPU seconds since boot over all cores, or None off Linux."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / tick, idle / tick


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url.rstrip('/')}/healthz", timeout=10) as response:
        return json.load(response)


# -- one call: a sidebar and a streaming client -----------------------------------------------------------


@dataclass
class CallRun:
    """What happened in one streamed call: frame send times and sidebar events with arrival times."""

    call_id: str
    test: TestCall
    sent_at: list[float] = field(default_factory=list)  # monotonic send time of each frame
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (arrival, event)
    max_send_lag: float = 0.0  # worst lateness of a frame against its schedule
    close_code: int | None = None
    refused: str | None = None  # the server's message when it refused the call (admission)


async def _read_sidebar(ws: ClientConnection, run: CallRun) -> None:
    try:
        async for text in ws:
            run.events.append((time.monotonic(), json.loads(text)))
    except ConnectionClosed:
        pass


async def _drain(ws: ClientConnection) -> None:
    """The stream socket echoes the call's events; read and drop them so the server never blocks."""
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


async def _send_frames(ws: ClientConnection, run: CallRun) -> None:
    """Frame i goes out at t0 + i * 20 ms on the monotonic clock, whatever the previous sends cost."""
    t0 = time.monotonic()
    for index, frame in enumerate(run.test.frames):
        due = t0 + index * FRAME_SECONDS
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await ws.send(frame)
        now = time.monotonic()
        run.sent_at.append(now)
        run.max_send_lag = max(run.max_send_lag, now - due)


async def _refusal(ws: ClientConnection) -> str | None:
    """The server's ``error`` message if it refuses the call just started (it answers ``start`` at once
    when it does); None once REFUSAL_WAIT_S pass without one (the call is admitted)."""
    try:
        first = json.loads(await asyncio.wait_for(ws.recv(), timeout=REFUSAL_WAIT_S))
    except TimeoutError:
        return None
    except ConnectionClosed as exc:
        return f"closed {exc.rcvd.code if exc.rcvd else '?'} before any event"
    return first.get("message", "") if first.get("type") == "error" else None


async def stream_one(ws_url: str, run: CallRun, start_delay: float, headers: dict[str, str]) -> CallRun:
    """Connect the sidebar, wait `start_delay`, stream the call in real time, collect the sidebar's events."""
    base = ws_url.rstrip("/")
    events_url, stream_url = (f"{base}/v1/calls/{run.call_id}/{what}" for what in ("events", "stream"))
    async with connect(events_url, open_timeout=30, additional_headers=headers) as sidebar:
        reader = asyncio.create_task(_read_sidebar(sidebar, run))
        await asyncio.sleep(SETTLE_S + start_delay)
        async with connect(stream_url, open_timeout=30, max_size=2**22, additional_headers=headers) as ws:
            await ws.send(run.test.start_message().to_json())
            refusal = await _refusal(ws)
            if refusal is not None:  # admission: the server carries all the calls it holds
                run.refused, run.close_code = refusal, ws.close_code
                reader.cancel()
                return run
            drain = asyncio.create_task(_drain(ws))
            await _send_frames(ws, run)
            await ws.send(StopMessage().to_json())
            await drain
            run.close_code = ws.close_code
        await asyncio.wait_for(reader, timeout=120)  # the server closes the sidebar after ``end``
    return run


async def run_calls(
    ws_url: str,
    tests: dict[str, TestCall],
    n: int,
    rng: random.Random,
    tag: str,
    stagger: float,
    headers: dict[str, str],
) -> list[CallRun]:
    """N concurrent calls, alternating ru and en, started at random times within the first `stagger` s."""
    runs = [CallRun(f"{tag}-{i}-{LANGUAGES[i % 2]}", tests[LANGUAGES[i % 2]]) for i in range(n)]
    delays = [0.0] if n == 1 else [rng.uniform(0.0, stagger) for _ in range(n)]
    streams = (stream_one(ws_url, r, d, headers) for r, d in zip(runs, delays, strict=True))
    return list(await asyncio.gather(*streams))


# -- matching events to turns -----------------------------------------------------------------------------


@dataclass
class Row:
    """One alert or final transcript as received, matched to the script turn it covers."""

    calls: int
    repeat: int
    call_id: str
    lang: str
    type: str  # alert | transcript
    speaker: str
    start: float
    end: float
    text: str
    category: str | None = None
    turn: int | None = None  # index of the latest overlapping script turn; None when none overlaps
    turn_end: float | None = None
    expected: bool | None = None  # alerts: did an overlapping turn expect this category
    latency: float | None = None


def overlapping(turns: list[PlacedTurn], speaker: str, start: float, end: float) -> list[int]:
    """Indexes of the turns of `speaker` whose speech overlaps [start, end] of call audio."""
    return [i for i, t in enumerate(turns) if t.speaker == speaker and start < t.end and end > t.start]


def event_row(run: CallRun, arrived: float, event: dict[str, Any], calls: int, repeat: int) -> Row:
    turns = run.test.call.turns
    row = Row(
        calls, repeat, run.call_id, run.test.lang, event["type"], event["speaker"], event["start"],
        event["end"], event["text"], event.get("category"),
    )  # fmt: skip
    hits = overlapping(turns, row.speaker, row.start, row.end)
    if row.type == "alert":
        row.expected = any(row.category in (*turns[i].expect, *turns[i].also_ok) for i in hits)
    if hits:
        latest = max(hits, key=lambda i: turns[i].end)
        row.turn, row.turn_end = latest, turns[latest].end
        frame = run.test.frame_of(turns[latest].end)
        if frame < len(run.sent_at):
            row.latency = round(arrived - run.sent_at[frame], 4)
    return row


def rows_of(run: CallRun, calls: int, repeat: int) -> list[Row]:
    """Rows for the call's alerts and final transcripts."""
    return [
        event_row(run, arrived, event, calls, repeat)
        for arrived, event in run.events
        if event.get("type") == "alert" or (event.get("type") == "transcript" and event.get("final"))
    ]


def misses_of(run: CallRun) -> list[str]:
    """Expected categories of each turn that no overlapping alert brought."""
    turns = run.test.call.turns
    if run.refused is not None:
        return []  # never admitted: nothing was expected of it
    alerts = [e for _, e in run.events if e.get("type") == "alert"]
    missed = []
    for index, turn in enumerate(turns):
        came = {
            a["category"] for a in alerts if index in overlapping(turns, a["speaker"], a["start"], a["end"])
        }
        missed += [f"{run.call_id} turn {index} {turn.speaker}: {c}" for c in sorted(set(turn.expect) - came)]
    return missed


def count_events(runs: list[CallRun], kind: str) -> int:
    return sum(1 for run in runs for _, e in run.events if e.get("type") == kind)


# -- figures -------------------------------------------------------------------------------------------


@dataclass
class Summary:
    """The figures of one N (over all repeats)."""

    calls: int
    alerts: int
    alert_latency: list[float]
    transcripts: int
    transcript_latency: list[float]
    misses: list[str]
    false_alerts: list[str]
    unmatched_transcripts: int
    overloads: int
    errors: int
    max_send_lag: float
    server: dict[str, str] = field(default_factory=dict)
    cpu: str = ""
    refused: list[str] = field(default_factory=list)  # the refusal of each call the server refused


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p95, max (NaN when empty)."""
    if not values:
        return float("nan"), float("nan"), float("nan")
    array = np.asarray(values)
    return float(np.percentile(array, 50)), float(np.percentile(array, 95)), float(array.max())


def summarize(calls: int, runs: list[CallRun], rows: list[Row]) -> Summary:
    alerts = [r for r in rows if r.type == "alert"]
    finals = [r for r in rows if r.type == "transcript"]
    return Summary(
        calls=calls,
        alerts=len(alerts),
        alert_latency=[r.latency for r in alerts if r.latency is not None],
        transcripts=len(finals),
        transcript_latency=[r.latency for r in finals if r.latency is not None],
        misses=[m for run in runs for m in misses_of(run)],
        false_alerts=[f"{r.call_id} {r.speaker} {r.category}: {r.text!r}" for r in alerts if not r.expected],
        unmatched_transcripts=sum(1 for r in finals if r.turn is None),
        overloads=count_events(runs, "overload"),
        errors=count_events(runs, "error"),
        max_send_lag=max((run.max_send_lag for run in runs), default=0.0),
        refused=[run.refused for run in runs if run.refused is not None],
    )


def server_figures(timings: ServerTimings) -> dict[str, str]:
    """Medians and p95s of the server's steps during one N (in-process only)."""
    with timings.lock:
        jobs, waits, judges = list(timings.transcribe), list(timings.final_wait), list(timings.judge)
        early = timings.early_hits
    if not jobs and not waits:
        return {}
    turns = sum(n for n, _, _ in jobs)
    batches = sum(n > 1 for n, _, _ in jobs)

    def spread(values: list[float]) -> str:
        p50, p95, top = percentiles(values)
        return f"p50 {p50:.2f} p95 {p95:.2f} max {top:.2f} s"

    return {
        "whisper jobs": f"{turns}: {len(waits)} finals, {turns - len(waits)} others (partial, early, unused)",
        "whisper jobs by kind": timings.pool_jobs(),
        "whisper runs": f"{len(jobs)}, {batches} batched ({turns / max(1, len(jobs)):.1f} turns on average)",
        "whisper compute per run": spread([c for _, _, c in jobs]),
        "final: audio length": spread([a for a, _ in waits]),
        "final: wait for its text (queue + whisper)": spread([w for _, w in waits]),
        "finals started early (speculative)": f"{early} of {len(waits)}",
        "classify per final": spread(judges),
    }


def _fmt(value: float) -> str:
    return "   -  " if np.isnan(value) else f"{value:6.2f}"


def table(summaries: list[Summary]) -> list[str]:
    """The figures as lines of text."""
    head = f"{'calls':>5} {'alerts':>6} {'p50':>6} {'p95':>6} {'max':>6} {'miss':>4} {'false':>5} | "
    head += f"{'finals':>6} {'p50':>6} {'p95':>6} {'max':>6} {'unm':>4} | {'ovl':>3} {'err':>3} {'lag':>5}"
    lines = [
        "latency (s): alert / final transcript at the sidebar after the turn's last frame was sent",
        head,
    ]
    for s in summaries:
        a50, a95, amax = percentiles(s.alert_latency)
        t50, t95, tmax = percentiles(s.transcript_latency)
        lines.append(
            f"{s.calls:>5} {s.alerts:>6} {_fmt(a50)} {_fmt(a95)} {_fmt(amax)} {len(s.misses):>4} "
            f"{len(s.false_alerts):>5} | {s.transcripts:>6} {_fmt(t50)} {_fmt(t95)} {_fmt(tmax)} "
            f"{s.unmatched_transcripts:>4} | {s.overloads:>3} {s.errors:>3} {s.max_send_lag:5.2f}"
        )
    lines.append(
        f"target: alert p50 <= {TARGET_P50} s, p95 <= {TARGET_P95} s. miss/false: expected alerts that did "
        "not come / alerts no overlapping turn expected; unm: finals overlapping no script turn; ovl: "
        "overload events; err: error events; lag: worst lateness of a frame send (s)"
    )
    for s in summaries:
        if s.refused:
            lines.append(
                f"  {s.calls} call(s) offered: {s.calls - len(s.refused)} admitted, {len(s.refused)} "
                f"refused: {s.refused[0]!r}"
            )
        lines += [f"  {s.calls} call(s) miss: {m}" for m in s.misses]
        lines += [f"  {s.calls} call(s) false: {f}" for f in s.false_alerts]
        if s.cpu:
            lines.append(f"  {s.calls} call(s) CPU during the runs: {s.cpu}")
        if s.server:
            lines.append(f"  {s.calls} call(s) server steps:")
            lines += [f"    {name}: {value}" for name, value in s.server.items()]
    return lines


# -- main -----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="1,8", help="comma-separated numbers of concurrent calls")
    parser.add_argument("--repeat", type=int, default=1, help="run the whole set this many times")
    parser.add_argument("--seed", type=int, default=0, help="seed of the call start times")
    parser.add_argument(
        "--stagger", type=float, default=STAGGER_S, help="calls start at random times within this many s"
    )
    parser.add_argument("--json", type=Path, help="write the raw per-event rows to this file")
    parser.add_argument("--url", help="measure a running server (http://host:port) instead of one in process")
    parser.add_argument(
        "--token",
        default=os.environ.get("CALLBUFFER_TOKEN"),
        help="with --url: an admin's API token (CALLBUFFER_TOKEN); it streams calls and watches them",
    )
    parser.add_argument("--workers", type=int, help="transcription threads (CALLBUFFER_WORKERS)")
    parser.add_argument(
        "--ray-workers",
        type=int,
        help="transcribe on a local Ray cluster of this many one-core speech worker nodes (CALLBUFFER_RAY)",
    )
    parser.add_argument("--endpoint-silence", type=float, help="seconds (CALLBUFFER_ENDPOINT_SILENCE)")
    parser.add_argument("--partial-every", type=float, help="seconds (CALLBUFFER_PARTIAL_EVERY)")
    parser.add_argument("--whisper-window", type=float, help="seconds (CALLBUFFER_WHISPER_WINDOW)")
    parser.add_argument("--whisper-batch", type=int, help="finals at once (CALLBUFFER_WHISPER_BATCH)")
    parser.add_argument("--queue-capacity", type=int, help="finals (CALLBUFFER_QUEUE_CAPACITY)")
    parser.add_argument("--early-after", type=float, help="seconds; 0 = off (CALLBUFFER_EARLY_AFTER)")
    parser.add_argument("--min-piece", type=float, help="seconds; 0 = off (CALLBUFFER_MIN_PIECE)")
    parser.add_argument(
        "--capacity",
        help="calls admitted at once (CALLBUFFER_CAPACITY): off (default here: measure the load offered), "
        "auto (measured on the workers) or a number",
    )
    parser.add_argument("--over-capacity", help="refuse | no_previews (CALLBUFFER_OVER_CAPACITY)")
    parser.add_argument("-v", "--verbose", action="store_true", help="server logs at INFO")
    args = parser.parse_args(argv)
    args.calls = [int(n) for n in str(args.calls).split(",") if n.strip()]
    return args


def overrides_of(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "workers",
        "endpoint_silence",
        "partial_every",
        "whisper_window",
        "whisper_batch",
        "queue_capacity",
        "early_after",
        "min_piece",
        "capacity",
        "over_capacity",
    )
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def measure(
    url: str,
    tests: dict[str, TestCall],
    args: argparse.Namespace,
    timings: ServerTimings | None,
    token: str,
) -> tuple[list[Summary], list[Row]]:
    """Every N of ``--calls``, ``--repeat`` times; one summary per N over its repeats."""
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(args.seed)
    ws_url = "ws" + url[url.index(":") :]
    session = uuid.uuid4().hex[:6]
    all_rows: list[Row] = []
    summaries = []
    for n in args.calls:
        runs: list[CallRun] = []
        rows: list[Row] = []
        if timings is not None:
            timings.clear()
        meter = CpuMeter()
        for repeat in range(args.repeat):
            tag = f"bench-{session}-n{n}-r{repeat}"
            done = asyncio.run(run_calls(ws_url, tests, n, rng, tag, args.stagger, headers))
            runs += done
            rows += [row for run in done for row in rows_of(run, n, repeat)]
        summary = summarize(n, runs, rows)
        summary.server = server_figures(timings) if timings is not None else {}
        summary.cpu = meter.usage()
        summaries.append(summary)
        all_rows += rows
    return summaries, all_rows


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:  # the session's debug lines are captured, not printed
        handler.setLevel(logging.INFO if verbose else logging.WARNING)


def describe_settings(settings: Any) -> str:
    """Every setting but paths and the listening address (the server's own defaults show too)."""
    skip = {"pack", "cache_dir", "data_dir", "host", "port"}
    return ", ".join(f"{k}={v}" for k, v in settings.model_dump().items() if k not in skip)


def cpu_line() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"CPUs: {os.cpu_count()} (usable {usable}); load average now {load}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.verbose)
    print(cpu_line())
    began = time.perf_counter()
    tests = build_test_calls()
    print(
        "calls: "
        + ", ".join(f"{t.lang} {t.call.duration:.1f} s, {len(t.call.turns)} turns" for t in tests.values())
        + f" (spoken in {time.perf_counter() - began:.1f} s)"
    )
    if args.url:
        if not args.token:
            print("--url needs --token (or CALLBUFFER_TOKEN): an admin's token from `callbuffer users add`")
            return 2
        if overrides_of(args):
            print("note: --url given: server settings flags are ignored; set them on that server")
        summaries, rows = measure(args.url, tests, args, None, args.token)
        final_health = health(args.url)
    else:
        timings = ServerTimings()
        loading = time.perf_counter()
        with (
            local_ray(args.ray_workers) as address,
            in_process_server(
                {"capacity": "off"} | overrides_of(args) | ({"ray": address} if address else {}), timings
            ) as (
                url,
                settings,
                token,
            ),
        ):
            ready = time.perf_counter() - loading
            print(f"in-process server ready in {ready:.1f} s: {describe_settings(settings)}")
            summaries, rows = measure(url, tests, args, timings, token)
            final_health = health(url)
    print(f"runs: calls {args.calls}, repeat {args.repeat}, seed {args.seed}, stagger {args.stagger} s")
    print("\n".join(table(summaries)))
    print(f"healthz at the end: {json.dumps(final_health)}")
    print(cpu_line())
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=1))
        print(f"{len(rows)} rows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
