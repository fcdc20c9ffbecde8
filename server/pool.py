"""One speech model shared by every live call: a bounded, fair queue of transcription jobs.

Whisper is the expensive step, and a 2-core machine can run about two turns at a time. Every call's turns
go into this pool; worker threads (one per core by default) take them round-robin across calls, so one call
that talks a lot cannot starve the others. Final turns always go before partial ones, and partials are
declined when finals are waiting or when taking one would leave no worker free for a final: a partial is a
preview, a final is what the agent is prompted on and what is stored.

The pool never drops a final turn. When more finals wait than ``capacity``, :attr:`overloaded` turns true
and the server tells the calls so (an ``overload`` event) instead of silently falling behind.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from models.transcriber import Segment

logger = logging.getLogger(__name__)

TranscribeJob = Callable[[np.ndarray, str | None], list[Segment]]


class PoolClosedError(RuntimeError):
    """The pool was shut down; no more jobs are taken."""


@dataclass
class _Job:
    call_id: str
    samples: np.ndarray
    language: str | None
    final: bool
    future: Future[list[Segment]] = field(default_factory=Future)


@dataclass(frozen=True)
class PoolStats:
    """A snapshot for logs, health checks and benchmarks."""

    workers: int
    capacity: int
    queued_finals: int
    queued_partials: int
    running: int
    done: int


class TranscriptionPool:
    """Runs ``transcribe(samples, language)`` for all calls on ``workers`` threads, fairly and bounded."""

    def __init__(self, transcribe: TranscribeJob, *, workers: int, capacity: int) -> None:
        if workers < 1 or capacity < 1:
            raise ValueError(f"workers and capacity must be >= 1, got {workers} and {capacity}")
        self.workers = workers
        self.capacity = capacity
        self._transcribe = transcribe
        self._cond = threading.Condition()
        self._finals: OrderedDict[str, deque[_Job]] = OrderedDict()  # call id -> its waiting finals
        self._partials: OrderedDict[str, _Job] = OrderedDict()  # call id -> its newest waiting partial
        self._running = 0
        self._running_partials = 0
        self._done = 0
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"transcribe-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # -- submitting ---------------------------------------------------------------------------------------

    def submit(self, call_id: str, samples: np.ndarray, language: str | None) -> Future[list[Segment]]:
        """Queue a final turn; it is always run, in round-robin order across calls."""
        job = _Job(call_id, samples, language, final=True)
        with self._cond:
            self._check_open()
            self._finals.setdefault(call_id, deque()).append(job)
            self._cond.notify()
        return job.future

    def submit_partial(
        self, call_id: str, samples: np.ndarray, language: str | None
    ) -> Future[list[Segment]] | None:
        """Queue a partial turn if there is room for it now, else None (the caller skips this preview).

        Room means no final waiting and, counting what runs and waits, a worker left over for the next
        final (with two workers: the pool is idle). Under load previews stop and finals keep their pace.
        A newer partial of the same call replaces one still waiting (its future gets an empty result).
        """
        with self._cond:
            self._check_open()
            busy = self._running + len(self._partials)
            if self._queued_finals() or busy >= max(1, self.workers - 1):
                return None
            job = _Job(call_id, samples, language, final=False)
            stale = self._partials.pop(call_id, None)
            if stale is not None:
                stale.future.set_result([])
            self._partials[call_id] = job
            self._cond.notify()
        return job.future

    @property
    def overloaded(self) -> bool:
        """More final turns wait than the pool's capacity."""
        with self._cond:
            return self._queued_finals() > self.capacity

    def queued(self) -> int:
        """Final turns waiting for a worker."""
        with self._cond:
            return self._queued_finals()

    def stats(self) -> PoolStats:
        with self._cond:
            return PoolStats(
                self.workers,
                self.capacity,
                self._queued_finals(),
                len(self._partials),
                self._running,
                self._done,
            )

    def close(self) -> None:
        """Stop taking jobs, fail the waiting ones, and let running ones finish."""
        with self._cond:
            self._closed = True
            waiting = [job for jobs in self._finals.values() for job in jobs] + list(self._partials.values())
            self._finals.clear()
            self._partials.clear()
            self._cond.notify_all()
        for job in waiting:
            job.future.set_exception(PoolClosedError("the transcription pool was shut down"))
        for thread in self._threads:
            thread.join(timeout=30)

    # -- working ------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise PoolClosedError("the transcription pool is shut down")

    def _queued_finals(self) -> int:
        return sum(len(jobs) for jobs in self._finals.values())

    def _next_job(self) -> _Job | None:
        """The next call's oldest final (round-robin), else the oldest partial; None once closed."""
        with self._cond:
            while not self._closed:
                if self._finals:
                    call_id, jobs = next(iter(self._finals.items()))
                    job = jobs.popleft()
                    del self._finals[call_id]
                    if jobs:  # the call goes to the back of the line
                        self._finals[call_id] = jobs
                    self._running += 1
                    return job
                if self._partials:
                    _, job = self._partials.popitem(last=False)
                    self._running += 1
                    self._running_partials += 1
                    return job
                self._cond.wait()
            return None

    def _work(self) -> None:
        while (job := self._next_job()) is not None:
            try:
                if job.future.set_running_or_notify_cancel():
                    job.future.set_result(self._transcribe(job.samples, job.language))
            except Exception as exc:  # noqa: BLE001 - handed to the waiting call, which reports it
                logger.exception("transcription failed for call %s", job.call_id)
                job.future.set_exception(exc)
            finally:
                with self._cond:
                    self._running -= 1
                    self._done += 1
                    if not job.final:
                        self._running_partials -= 1
