"""What ``/healthz`` and ``/metrics`` show: calls, capacity, queued turns, each worker's load, latency.

``/metrics`` is the Prometheus text format (version 0.0.4): gauges and counters named ``callbuffer_*``,
latency as a summary with 0.5/0.95/0.99 quantiles over the last turns (:mod:`server.live.metrics`).
Both run their work on a thread: on a cluster, worker loads are asked of the speech workers.
"""

from __future__ import annotations

from typing import Any

from server.live.calls import CallRegistry
from server.live.metrics import LatencySummary


def health(registry: CallRegistry) -> dict[str, Any]:
    """Liveness and load as JSON: this server's calls, the calls counted against capacity, the queue."""
    engine = registry.engine
    stats = engine.pool.stats()
    capacity = engine.capacity
    return {
        "status": "ok",
        "frontend": registry.lease.id,
        "live_calls": len(registry.live_ids()),
        "calls_in_progress": registry.in_progress(),
        "capacity": capacity.calls,
        "capacity_source": capacity.source,
        "workers": stats.workers,
        "models_here": engine.models_here,
        "queued_turns": stats.queued_finals,
        "transcribing": stats.running,
        "turns_retried": engine.pool.retried,
        "overloaded": engine.pool.overloaded,
        "alert_latency_p95": engine.metrics.alert_latency().p95,
    }


def prometheus(registry: CallRegistry) -> str:
    """The server's figures in Prometheus text format."""
    engine = registry.engine
    stats = engine.pool.stats()
    counts = engine.metrics.counts()
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP callbuffer_{name} {help_text}")
        lines.append(f"# TYPE callbuffer_{name} {kind}")
        lines.extend(f"callbuffer_{name}{labels} {_number(value)}" for labels, value in samples)

    metric("live_calls", "gauge", "Calls streaming into this server.", [("", len(registry.live_ids()))])
    metric(
        "calls_in_progress",
        "gauge",
        "Calls counted against the capacity (every server's when they share speech workers).",
        [("", registry.in_progress())],
    )
    if engine.capacity.calls is not None:
        metric("capacity_calls", "gauge", "Calls admitted at once.", [("", engine.capacity.calls)])
    metric(
        "calls_total",
        "counter",
        "Calls offered to this server, by what admission did with them.",
        [
            (f'{{admission="{what}"}}', counts.get(what, 0))
            for what in ("admitted", "admitted_without_previews", "refused")
        ],
    )
    metric(
        "queued_turns",
        "gauge",
        "Turns waiting for transcription, by kind.",
        [
            ('{kind="final"}', stats.queued_finals),
            ('{kind="guess"}', stats.queued_guesses),
            ('{kind="preview"}', stats.queued_partials),
        ],
    )
    metric("transcribing", "gauge", "Turns being transcribed now.", [("", stats.running)])
    metric(
        "turns_retried_total",
        "counter",
        "Turns sent to another worker after theirs died mid-turn.",
        [("", engine.pool.retried)],
    )
    metric(
        "overloaded",
        "gauge",
        "1 while more finals wait than the queue capacity.",
        [("", engine.pool.overloaded)],
    )
    loads = engine.pool.loads()
    metric(
        "worker_turns_total",
        "counter",
        "Turns each transcription worker has transcribed.",
        [(f'{{worker="{w.name}"}}', w.turns) for w in loads],
    )
    metric(
        "worker_busy_seconds_total",
        "counter",
        "Seconds each transcription worker has spent transcribing.",
        [(f'{{worker="{w.name}"}}', w.busy_seconds) for w in loads],
    )
    metric(
        "worker_reference_turn_seconds",
        "gauge",
        "Each worker's time for the reference turn (its speed; capacity is measured from it).",
        [(f'{{worker="{w.name}"}}', w.turn_seconds) for w in loads if w.turn_seconds is not None],
    )
    metric("turns_total", "counter", "Final turns sent to sidebars.", [("", counts.get("turns", 0))])
    metric("alerts_total", "counter", "Alerts sent to sidebars.", [("", counts.get("alerts", 0))])
    _summary(
        lines,
        "turn_latency_seconds",
        "From the end of a turn's speech to its transcript.",
        engine.metrics.turn_latency(),
    )
    _summary(
        lines,
        "alert_latency_seconds",
        "From the end of a turn's speech to its alerts.",
        engine.metrics.alert_latency(),
    )
    return "\n".join(lines) + "\n"


def _summary(lines: list[str], name: str, help_text: str, summary: LatencySummary) -> None:
    lines.append(f"# HELP callbuffer_{name} {help_text} Quantiles over the last turns.")
    lines.append(f"# TYPE callbuffer_{name} summary")
    for quantile, value in (("0.5", summary.p50), ("0.95", summary.p95), ("0.99", summary.p99)):
        if value is not None:
            lines.append(f'callbuffer_{name}{{quantile="{quantile}"}} {_number(value)}')
    lines.append(f"callbuffer_{name}_count {summary.count}")


def _number(value: float | bool) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))
