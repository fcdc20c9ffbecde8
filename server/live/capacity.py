"""How many live calls the transcription workers hold at the latency goal, and admitting calls by it.

Capacity is measured, not guessed: ``bench/bench_capacity.py`` streams more and more real-time stereo calls
at one worker pinned to one core and finds the most it holds with alerts at p95 <= LATENCY_GOAL_S; that
figure, with the same core's time for the reference turn (:mod:`models.speed`), is recorded below. Every
worker times the reference turn when it starts, and holds ``CALLS_PER_CORE * REFERENCE_TURN_S / its time``
calls: a worker twice as fast holds twice as many. A Ray speech worker, whose core no front-end shares,
holds ``CALLS_PER_WORKER_CORE`` at the reference speed instead. The cluster holds the sum over its workers.

Admission: a call is admitted while the calls in progress (on this front-end when it has its own workers;
on every front-end of the cluster when they share speech workers) are fewer than the capacity. Otherwise it
is refused (:class:`server.live.calls.AtCapacityError`: an ``error`` event, close code 1008, "try again"),
or, with ``CALLBUFFER_OVER_CAPACITY=no_previews``, admitted without partial previews: its finals still go
first, the previews that keep an overloaded pool busy are not made for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

LATENCY_GOAL_S = 1.5  # p95 seconds from the end of a turn's speech to its alerts on the sidebar

# Measured by `python bench/bench_capacity.py --workers 1,2` on the reference machine (AMD EPYC, 2 cores,
# AVX-512 VNNI, 2026-12-05): the whole 2-core box (two Whisper threads, the front-end's endpointing,
# classifier and sockets on the same cores) held 6 real-time stereo calls at alert p95 <= 1.5 s (0.98 s;
# 7 calls: 1.70 s), so 3 calls per core, front-end included; one Whisper thread with a core to spare for
# the front-end held 6 as well (1.41 s; 7: 1.85 s). Its time for the reference turn: 0.24-0.27 s under
# that load, 0.20 s idle.
CALLS_PER_CORE = 3.0
REFERENCE_TURN_S = 0.25
# Measured by `python bench/bench_capacity.py --ray --workers 1,2` on the same machine (2026-12-06): a
# Ray speech worker pinned to a core of its own, the front-end elsewhere, held 8 calls (p95 1.31 s; 9:
# 2.40 s); two such workers held 12 (1.42 s; 13: 2.69 s) with the front-end and the Ray head on their
# cores. So 6 calls per speech worker core whose front-end is not on it.
CALLS_PER_WORKER_CORE = 6.0

CapacitySource = Literal["measured", "configured", "off"]


@dataclass(frozen=True)
class Capacity:
    """Live calls admitted at once; ``calls`` None: no limit but ``max_calls`` (capacity off)."""

    calls: int | None
    source: CapacitySource
    turn_seconds: tuple[float, ...] = ()  # each worker's reference-turn time, when measured

    @classmethod
    def measured(cls, turn_seconds: Sequence[float], per_core: float = CALLS_PER_CORE) -> Capacity:
        """The capacity of workers with these reference-turn times (at least one call); `per_core`: calls a
        worker at the reference speed holds (CALLS_PER_WORKER_CORE for the cluster's speech workers)."""
        if not turn_seconds:
            raise ValueError("no worker speed to measure capacity from")
        held = sum(calls_per_worker(seconds, per_core) for seconds in turn_seconds)
        return cls(max(1, math.floor(held + 1e-9)), "measured", tuple(turn_seconds))

    @classmethod
    def configured(cls, calls: int) -> Capacity:
        return cls(calls, "configured")

    @classmethod
    def off(cls) -> Capacity:
        return cls(None, "off")

    def describe(self) -> str:
        if self.calls is None:
            return "capacity not limited"
        if self.source == "configured":
            return f"capacity {self.calls} calls (configured)"
        speeds = ", ".join(f"{s:.2f}" for s in self.turn_seconds)
        workers = len(self.turn_seconds)
        return f"capacity {self.calls} calls (measured: {workers} workers, reference turn {speeds} s)"


def calls_per_worker(turn_seconds: float, per_core: float = CALLS_PER_CORE) -> float:
    """Calls one worker holds at the latency goal, from its reference-turn time."""
    if turn_seconds <= 0:
        raise ValueError(f"a reference turn cannot take {turn_seconds} s")
    return per_core * REFERENCE_TURN_S / turn_seconds


def refusal(in_progress: int, capacity: Capacity) -> str:
    """The message a refused call gets (documented in the README's protocol section)."""
    return (
        f"at capacity: {in_progress} calls in progress and the transcription workers hold {capacity.calls} "
        f"at the latency goal (alerts within {LATENCY_GOAL_S:g} s); try again in a moment or add a worker"
    )
