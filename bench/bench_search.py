"""Search speed over synthetic stored calls: p50/p95/max per kind of query, through the query interface
and (``--http``) through ``GET /v1/search`` of a real ``callbuffer serve``.

    python bench/bench_search.py                       # 10 000 calls in /tmp/callbuffer-bench-search.db
    python bench/bench_search.py --postgres postgresql://user@127.0.0.1:5432/db
    python bench/bench_search.py --http                # also 100 queries through a served API

The calls come from :func:`synthetic_calls.generate` (reused when the database already holds them). Each
query is parsed and searched as the API does (20 hits, their context and highlighting included); the
queries mix common and rare words, inflected forms, phrases, filters and later pages, drawn from a fixed
seed. Target: p95 <= 100 ms on SQLite.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from served import percentile, time_served  # noqa: E402
from synthetic_calls import agent_names, generate  # noqa: E402

from server.search.query import parse_query  # noqa: E402
from server.search.store import CallSearch, SearchFilters, open_search, parse_when  # noqa: E402

COMMON = [
    "здравствуйте",
    "не",
    "интернет",
    "заказ",
    "договор",
    "пожалуйста",
    "спасибо",
    "the",
    "bill",
    "проверю",
]
RARE = ["безобразие", "бухгалтерия", "программисты", "компенсация", "склад", "refund", "manager", "сдохла"]
INFLECTED = ["занимаюсь", "руководителя", "менеджером", "починят", "виноваты", "жалобу", "подождите"]
PHRASES = ['"не ко мне"', '"позовите руководителя"', '"не работает"', '"когда починят"', '"it\'s not my"']
CATEGORIES = ["not_my_job", "blame_shifting", "escalation_request", "customer_complaint", "asks_when"]


@dataclass(frozen=True)
class Case:
    kind: str
    q: str
    filters: dict[str, str]
    offset: int = 0


def cases(count: int, since: str, until: str, seed: int = 1) -> list[Case]:
    """`count` queries of every kind, the same for a seed."""
    rng = random.Random(seed)
    agents = agent_names()
    made: list[Case] = []
    kinds: list[tuple[str, Callable[[], Case]]] = [
        ("common word", lambda: Case("common word", rng.choice(COMMON), {})),
        ("rare word", lambda: Case("rare word", rng.choice(RARE), {})),
        ("inflected", lambda: Case("inflected", rng.choice(INFLECTED), {})),
        ("phrase", lambda: Case("phrase", rng.choice(PHRASES), {})),
        ("two words", lambda: Case("two words", f"{rng.choice(COMMON)} {rng.choice(INFLECTED)}", {})),
        (
            "filtered",
            lambda: Case("filtered", rng.choice(COMMON + INFLECTED), _filters(rng, agents, since, until)),
        ),
        ("page 5", lambda: Case("page 5", rng.choice(COMMON), {}, offset=80)),
    ]
    while len(made) < count:
        made.append(rng.choice(kinds)[1]())
    return made


def _filters(rng: random.Random, agents: list[str], since: str, until: str) -> dict[str, str]:
    options = {
        "speaker": lambda: rng.choice(["agent", "customer"]),
        "agent": lambda: rng.choice(agents),
        "category": lambda: rng.choice(CATEGORIES),
        "source": lambda: rng.choice(["live", "audited"]),
        "since": lambda: since[:10],
        "until": lambda: until[:10],
    }
    chosen = rng.sample(sorted(options), rng.randint(1, 3))
    return {name: options[name]() for name in chosen}


def run_direct(search: CallSearch, work: list[Case]) -> dict[str, list[float]]:
    """Milliseconds per case, by kind, through the query interface."""
    times: dict[str, list[float]] = {}
    for case in work:
        started = time.perf_counter()
        f = case.filters
        filters = SearchFilters(
            speaker=f.get("speaker"),
            agent=f.get("agent"),
            category=f.get("category"),
            source=f.get("source"),
            since=parse_when(f["since"]) if "since" in f else None,
            until=parse_when(f["until"], end=True) if "until" in f else None,
        )
        search.search(parse_query(case.q), filters, 20, case.offset)
        times.setdefault(case.kind, []).append((time.perf_counter() - started) * 1000)
    return times


def run_http(url: str, token: str, work: list[Case]) -> dict[str, list[float]]:
    import httpx

    times: dict[str, list[float]] = {}
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for case in work:
            started = time.perf_counter()
            response = client.get(
                f"{url}/v1/search", params={"q": case.q, **case.filters, "offset": case.offset}
            )
            response.raise_for_status()
            times.setdefault(case.kind, []).append((time.perf_counter() - started) * 1000)
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    print(f"{'queries':<14}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    everything = [t for ts in times.values() for t in ts]
    for kind, ts in [*sorted(times.items()), ("all", everything)]:
        print(f"{kind:<14}{len(ts):>5}{percentile(ts, 50):>9.1f}{percentile(ts, 95):>9.1f}{max(ts):>9.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "callbuffer-bench-search.db")
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--postgres", help="also on this PostgreSQL database (postgresql://…)")
    parser.add_argument(
        "--http", action="store_true", help="also 100 queries through a served GET /v1/search"
    )
    args = parser.parse_args()
    locations: list[tuple[str, str | Path]] = [("SQLite", args.db)]
    if args.postgres:
        locations.append(("PostgreSQL", args.postgres))
    for name, location in locations:
        summary = generate(location, args.calls, args.seed)
        state = "reused" if summary.reused else f"generated in {summary.seconds:.1f} s"
        with open_search(location) as search:
            turns = search._read("SELECT COUNT(*) FROM search_turns")[0][0]
            print(f"{name}: {turns} indexed turns of {args.calls} calls ({state})")
            work = cases(args.queries, summary.since, summary.until)
            run_direct(search, work[:20])  # warm the caches
            report(
                f"{name}, query interface ({args.queries} queries, 20 hits each):", run_direct(search, work)
            )
    if args.http:
        work = cases(100, summary.since, summary.until, seed=2)
        times = time_served(args.db, run_http, work, warm=10)
        report("SQLite, GET /v1/search through a served API (100 queries):", times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
