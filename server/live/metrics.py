"""Live figures of a server for ``/healthz`` and ``/metrics``: alert latency, admissions, worker load.

Latency is counted per final turn, from the end of its speech to its transcript and alerts being handed
to the sidebars: the time from the endpointer's decision to the send, plus the endpoint silence the
endpointer waited before deciding (a turn is declared after that much quiet, in real time). The last
LATENCY_WINDOW turns are kept for the percentiles; counts are totals since start.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

LATENCY_WINDOW = 2000  # turns


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles (seconds) over the recent window; None before any turn."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None


class LiveMetrics:
    """Counters and recent latencies, updated by call sessions and the registry from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turn_latency: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._alert_latency: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._counts: Counter[str] = Counter()

    def turn_sent(self, seconds: float, alerts: int) -> None:
        """A final turn reached the sidebars `seconds` after its speech ended, with `alerts` alerts."""
        with self._lock:
            self._turn_latency.append(seconds)
            if alerts:
                self._alert_latency.append(seconds)
            self._counts["turns"] += 1
            self._counts["alerts"] += alerts

    def count(self, what: str) -> None:
        """One more of `what` (``admitted``, ``refused``, ``admitted_without_previews``)."""
        with self._lock:
            self._counts[what] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def turn_latency(self) -> LatencySummary:
        with self._lock:
            return _summary(self._turn_latency)

    def alert_latency(self) -> LatencySummary:
        with self._lock:
            return _summary(self._alert_latency)


def _summary(values: deque[float]) -> LatencySummary:
    if not values:
        return LatencySummary(0, None, None, None)
    p50, p95, p99 = (round(float(v), 3) for v in np.percentile(np.array(values), [50, 95, 99]))
    return LatencySummary(len(values), p50, p95, p99)
