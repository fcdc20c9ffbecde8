"""Fault tolerance: a speech worker killed mid-call, again and again; are turns lost or stored twice?

A local Ray cluster (a head with no speech cores, two one-core speech nodes: separate raylets and worker
processes, as on separate machines) and a front-end in this process with ``CALLBUFFER_RAY`` pointing at it.
The Russian complaint call of ``bench_latency`` is streamed once undisturbed (the baseline: which final
turns the endpointer makes of it, and how long the call takes), then ``--repeats`` times with one speech
node killed at a random moment of the call, the first one when both workers are transcribing, and a
fresh node added back. A kill that sends a turn to the other worker had a turn in flight on the killed one
(``turns_retried`` of ``/healthz``). Each repeat's stored turns are compared
with the baseline by speaker and start time: a baseline turn with no stored turn is lost; two stored turns
at one start are a duplicate. Frames go out as fast as the server takes them (``--realtime`` for real-time
pace), so each kill lands with turns queued and in flight.

    python bench/bench_failover.py --repeats 20
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_latency as latency  # noqa: E402

from server.live.simulate import stream_call  # noqa: E402
from server.live.store import Store  # noqa: E402

START_MATCH_S = 0.05  # stored turns within this of a baseline turn's start are that turn


def speech_nodes(cluster) -> list:  # noqa: ANN001 - ray.cluster_utils.Cluster
    return list(cluster.worker_nodes)


def kill_mid_call(
    cluster,  # noqa: ANN001 - ray.cluster_utils.Cluster
    url: str,
    delay: float,
    call_over: threading.Event,
    killed: list[float],
) -> None:
    """After `delay` s, at the first moment every speech worker is transcribing a turn while the call is
    still streaming (the front-end sends a turn only to an idle worker, so then each has one in flight),
    kill a speech node (raylet and worker process, no goodbye); no kill if the call ends first. A fresh
    node is added back by the main thread after the call (Ray starts nodes from the main thread only)."""
    if call_over.wait(delay):
        return
    while not call_over.is_set():
        if latency.health(url).get("transcribing", 0) >= len(speech_nodes(cluster)):
            killed.append(time.monotonic())
            cluster.remove_node(random.choice(speech_nodes(cluster)), allow_graceful=False)
            return
        time.sleep(0.01)


def restore(cluster) -> None:  # noqa: ANN001
    """Back to two speech nodes, and wait until both workers answer again."""
    while len(speech_nodes(cluster)) < 2:
        latency.add_speech_node(cluster)
    cluster.wait_for_nodes()
    from server.cluster.speech_pool import ClusterTranscription

    workers = ClusterTranscription("bundled", 6.0, workers=2)  # the same named workers the server uses
    deadline = time.monotonic() + 180
    while len(workers.where()) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    workers.close()


def stored_turns(database: str | Path, call_id: str) -> list[tuple[str, float, str]]:
    with Store(database) as store:
        return [(t.speaker, t.start, t.text) for t in store.list_turns(call_id)]


def compare(baseline: list[tuple[str, float, str]], got: list[tuple[str, float, str]]) -> tuple[int, int]:
    """(lost, duplicated) turns of `got` against `baseline`."""
    lost = sum(
        1
        for speaker, start, _ in baseline
        if not any(s == speaker and abs(t - start) <= START_MATCH_S for s, t, _ in got)
    )
    starts = [(s, round(t / START_MATCH_S)) for s, t, _ in got]
    return lost, len(starts) - len(set(starts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--realtime", action="store_true", help="stream at real-time pace")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    random.seed(args.seed)
    latency.configure_logging(False)
    print(latency.cpu_line())
    test = latency.build_test_calls()["ru"]
    print(f"call: {test.call.duration:.1f} s, {len(test.call.turns)} script turns")
    overrides: dict[str, object] = {"capacity": "off"}
    with (
        latency.local_cluster(2) as cluster,
        latency.in_process_server(overrides | {"ray": cluster.address}, latency.ServerTimings()) as served,
    ):
        url, settings, token = served
        ws = "ws" + url[url.index(":") :]

        def stream(call_id: str) -> int | None:
            start = test.start_message()
            result = asyncio.run(
                stream_call(ws, call_id, start, test.frames, realtime=args.realtime, token=token)
            )
            return result.close_code

        began = time.monotonic()
        stream("baseline")
        took = time.monotonic() - began
        baseline = stored_turns(settings.database, "baseline")
        print(f"baseline: {len(baseline)} final turns in {took:.1f} s")
        lost_total = dup_total = mid_call = in_flight = 0
        for repeat in range(args.repeats):
            killed: list[float] = []
            call_over = threading.Event()
            delay = random.uniform(0.05, 0.8) * took  # a random moment of the call
            killer = threading.Thread(
                target=kill_mid_call, args=(cluster, url, delay, call_over, killed), daemon=True
            )
            retried = latency.health(url).get("turns_retried", 0)
            began = time.monotonic()
            killer.start()
            code = stream(f"kill-{repeat}")
            call_over.set()
            killer.join(120)
            retried = latency.health(url).get("turns_retried", 0) - retried
            restore(cluster)
            got = stored_turns(settings.database, f"kill-{repeat}")
            lost, duplicated = compare(baseline, got)
            lost_total += lost
            dup_total += duplicated
            mid_call += bool(killed)
            in_flight += bool(retried)
            at = f"{killed[0] - began:5.1f} s" if killed else "  never"
            print(
                f"repeat {repeat + 1:>2}: node killed at {at}, {retried} turns in flight on it sent again, "
                f"close {code}, {len(got)} turns stored, {lost} lost, {duplicated} duplicated",
                flush=True,
            )
    print(
        f"{args.repeats} repeats: {lost_total} turns lost, {dup_total} stored twice "
        f"({len(baseline)} turns each); {mid_call} kills mid-call, {in_flight} with a turn in flight "
        "on the killed worker"
    )
    print(latency.cpu_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
