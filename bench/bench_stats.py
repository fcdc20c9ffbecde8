"""Trend queries over synthetic stored calls: each kind of trend timed through the query interface
(:class:`server.stats.aggregate.StatsReader`) and, with ``--http``, through ``GET /v1/stats`` of a real
``callbuffer serve``; prints p50/p95 in ms. The goal: p95 <= 300 ms over 10 000 calls.

    python bench/bench_stats.py                          # 10 000 calls in a temporary SQLite file
    python bench/bench_stats.py --http                   # also through a served API
    python bench/bench_stats.py --postgres postgresql://user@127.0.0.1:5432/db

The calls come from bench/synthetic_calls.py (the same seed reuses a database already filled).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from served import percentile, time_served  # noqa: E402
from synthetic_calls import generate  # noqa: E402

from models.packs import load_pack  # noqa: E402
from server.stats.aggregate import StatsReader  # noqa: E402
from server.stats.query import Taxonomy, parse_query  # noqa: E402

KINDS = [  # name: (metric, group)
    ("alerts by category", "alerts", "category"),
    ("alerts by agent", "alerts", "agent"),
    ("alerts by team", "alerts", "team"),
    ("alerts by day", "alerts", "day"),
    ("alerts by week", "alerts", "week"),
    ("pass share by week", "pass", "week"),
    ("pass share by agent", "pass", "agent"),
    ("practices by agent", "practices", "agent"),
]


@dataclass(frozen=True)
class Case:
    kind: str
    params: dict[str, str]


def cases(count: int, agents: list[str], since: str, until: str, seed: int = 1) -> list[Case]:
    """`count` trend requests, the kinds in turn, a third unfiltered and the rest with a random filter
    (a date range, an agent, a category, a source)."""
    rng = random.Random(seed)
    pack = load_pack()
    alerts = [c.id for c in pack.categories if c.kind.value != "practice"]
    work = []
    for i in range(count):
        kind, metric, group = KINDS[i % len(KINDS)]
        params = {"metric": metric, "group": group}
        pick = rng.randrange(3)
        if pick == 1:
            params["since"], params["until"] = sorted(rng.sample(_days(since, until), 2))
        elif pick == 2:
            choice = rng.choice(["agent", "category", "source"])
            if choice == "agent":
                params["agent"] = rng.choice(agents)
            elif choice == "category" and metric == "alerts":
                params["category"] = rng.choice(alerts)
            else:
                params["source"] = rng.choice(["live", "audited"])
        work.append(Case(kind, params))
    return work


def _days(since: str, until: str) -> list[str]:
    from datetime import date, timedelta

    first, last = date.fromisoformat(since[:10]), date.fromisoformat(until[:10])
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def run_direct(reader: StatsReader, work: list[Case]) -> dict[str, list[float]]:
    taxonomy = Taxonomy.of(load_pack())
    times: dict[str, list[float]] = defaultdict(list)
    for case in work:
        started = time.perf_counter()
        reader.compute(parse_query(taxonomy, **case.params), taxonomy)
        times[case.kind].append((time.perf_counter() - started) * 1000)
    return times


def run_http(url: str, token: str, work: list[Case]) -> dict[str, list[float]]:
    import httpx

    times: dict[str, list[float]] = defaultdict(list)
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for case in work:
            started = time.perf_counter()
            response = client.get(f"{url}/v1/stats", params=case.params)
            times[case.kind].append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"GET /v1/stats {case.params}: {response.status_code} {response.text}")
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    print(title)
    every = [t for values in times.values() for t in values]
    for kind, _, _ in KINDS:
        values = times.get(kind, [])
        if values:
            _line(kind, values)
    _line("all", every)


def _line(name: str, values: list[float]) -> None:
    p50, p95 = percentile(values, 50), percentile(values, 95)
    print(f"  {name:<22} n={len(values):<4} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "callbuffer-bench-stats.db")
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=240)
    parser.add_argument("--postgres", help="also on this PostgreSQL database (postgresql://…)")
    parser.add_argument(
        "--http", action="store_true", help="also 120 requests through a served GET /v1/stats"
    )
    args = parser.parse_args()
    locations: list[tuple[str, str | Path]] = [("SQLite", args.db)]
    if args.postgres:
        locations.append(("PostgreSQL", args.postgres))
    for name, location in locations:
        summary = generate(location, args.calls, args.seed)
        state = "reused" if summary.reused else f"generated in {summary.seconds:.1f} s"
        reader = StatsReader(location)
        try:
            sizes = ", ".join(f"{n} {what}" for what, n in reader.sizes().items())
            print(f"{name}: {sizes} ({state})")
            work = cases(args.queries, reader.agents(), summary.since, summary.until)
            run_direct(reader, work[:16])  # warm the caches
            report(f"{name}, query interface ({args.queries} trends):", run_direct(reader, work))
        finally:
            reader.close()
    if args.http:
        work = cases(120, summary.agents, summary.since, summary.until, seed=2)
        # the server's scorer of ended live calls waits an hour, so it does not share the CPU
        times = time_served(args.db, run_http, work, warm=16, CALLBUFFER_SCORE_EVERY="3600")
        report("SQLite, GET /v1/stats through a served API (120 trends):", times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
