"""Capacity: how many real-time stereo calls the transcription workers hold with alerts at p95 <= 1.5 s.

For each worker count of ``--workers`` (in process: that many Whisper threads of one core each; with
``--ray``: a local Ray cluster of that many one-core speech worker nodes, the front-end holding no model),
streams 1, 2, 3… concurrent calls at real-time pace (``bench_latency``'s calls, sidebars and latency
definition; calls start within ``--stagger`` s) until the alert p95 passes the goal, with the cores this
process used meanwhile (``cores``: the front-end with the bench's callers and sidebars), and prints the
most calls held. With one in-process worker it also times the reference turn
(:mod:`models.speed`) on one core, so the two figures that ``server/live/capacity.py`` records
(``CALLS_PER_CORE``, ``REFERENCE_TURN_S``) come from the same run.

    python bench/bench_capacity.py                       # one worker in process: calls per core
    python bench/bench_capacity.py --ray --workers 1,2   # scaling over Ray speech workers
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_latency as latency  # noqa: E402

from server.live.capacity import LATENCY_GOAL_S  # noqa: E402


def reference_turn_seconds() -> float:
    """The reference turn's time on one Whisper thread, as a live worker runs it."""
    from models.speed import time_reference_turn
    from models.transcriber import Transcriber
    from models.whisper_model import load_whisper
    from server.config import Settings

    settings = Settings()
    model = load_whisper(settings.whisper_model, cpu_threads=1, num_workers=1, cache_dir=settings.cache_dir)
    transcriber = Transcriber(model, window=settings.whisper_window)
    return time_reference_turn(lambda samples, lang: transcriber.transcribe(samples, language=lang), runs=5)


def _cpu_seconds() -> float:
    """CPU time of this process so far: the front-end and the bench's callers and sidebars (with ``--ray``,
    not the workers; in process, the workers too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def held(
    workers: int, ray: bool, stagger: float, first: int, most: int, tests: dict
) -> tuple[int, list[str]]:
    """The most calls `workers` held at the goal, and the table line of each N tried."""
    args = latency.parse_args(["--stagger", str(stagger), "--capacity", "off"])
    overrides = {"capacity": "off"} if ray else {"capacity": "off", "workers": workers}
    lines, best = [], first - 1  # fewer than `first` calls are taken as held (--from)
    with (
        latency.local_ray(workers if ray else None) as address,
        latency.in_process_server(
            overrides | ({"ray": address} if address else {}), latency.ServerTimings()
        ) as (
            url,
            _settings,
            token,
        ),
    ):
        for n in range(first, most + 1):
            args.calls = [n]
            began, cpu = time.monotonic(), _cpu_seconds()
            summaries, _ = latency.measure(url, tests, args, None, token)
            here = (_cpu_seconds() - cpu) / (time.monotonic() - began)
            summary = summaries[0]
            _, p95, _ = latency.percentiles(summary.alert_latency)
            ok = p95 <= LATENCY_GOAL_S  # misses are printed: they are the recogniser's, not the load's
            figures = f"{p95:6.2f} {summary.alerts:>6} {len(summary.misses):>4} {summary.overloads:>4}"
            figures += f" {here:>6.2f}"
            lines.append(f"{workers:>7} {n:>5} {figures} {'held' if ok else 'NOT held'}")
            print(lines[-1], flush=True)
            if not ok:
                break
            best = n
    return best, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1", help="comma-separated worker counts (default 1)")
    parser.add_argument("--ray", action="store_true", help="speech workers on a local Ray cluster")
    parser.add_argument("--stagger", type=float, default=30.0, help="calls start within this many s")
    parser.add_argument("--from", dest="first", type=int, default=1, help="start at this many calls")
    parser.add_argument("--most", type=int, default=12, help="stop trying at this many calls")
    args = parser.parse_args(argv)
    latency.configure_logging(False)
    print(latency.cpu_line())
    tests = latency.build_test_calls()
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    if not args.ray and 1 in counts:
        print(f"reference turn on one core: {reference_turn_seconds():.3f} s")
    print(f"{'workers':>7} {'calls':>5} {'p95':>6} {'alerts':>6} {'miss':>4} {'ovl':>4} {'cores':>6}")
    results = {}
    for workers in counts:
        results[workers], _ = held(workers, args.ray, args.stagger, args.first, args.most, tests)
    where = "Ray speech workers" if args.ray else "in-process workers"
    print(f"calls held at alert p95 <= {LATENCY_GOAL_S} s ({where}, one core each):")
    for workers, calls in results.items():
        scale = f", {calls / results[counts[0]]:.2f}x {counts[0]} worker(s)" if results[counts[0]] else ""
        print(f"  {workers} worker(s): {calls} calls ({calls / workers:.1f} per worker{scale})")
    print(latency.cpu_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
