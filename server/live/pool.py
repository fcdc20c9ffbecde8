"""One speech model shared by every live call: a bounded, fair queue of transcription jobs.

Whisper is the expensive step, and a 2-core machine can run about two turns at a time. Every call's turns
go into this pool; worker threads (one per core by default) take them round-robin across calls, so one call
that talks a lot cannot starve the others. Final turns always go before partial ones, and partials are
declined when finals are waiting or when taking one would leave no worker free for a final: a partial is a
preview, a final is what the agent is prompted on and what is stored.

Between the two sit guesses: turns that have just gone quiet and are transcribed ahead of their end, so
their text is ready when the endpointer declares them. Many are wasted (in the 8-call latency bench about
half: the speaker pauses mid-turn and goes on), so a guess never goes before a finished turn: it waits
until no final does, and a guess still waiting when its turn is declared finished is promoted to a final
(:meth:`promote`). A guess the speaker outran is cancelled and leaves the line without running.

With ``max_batch`` above 1, a worker that finds several finals waiting takes up to that many (still
round-robin across calls) and transcribes them in one batch, each turn handed back as soon as it is
decided. Whisper decodes four turns in about 1.6x the time of one, but they are encoded together first;
in the 8-call latency bench on a 2-core AVX2 machine that came out even, so the server's default is 1.

The pool never drops a final turn. When more finals wait than ``capacity``, :attr:`overloaded` turns true
and the server tells the calls so (an ``overload`` event) instead of silently falling behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from models.speed import time_reference_turn
from models.transcriber import Segment

logger = logging.getLogger(__name__)

TranscribeJob = Callable[[np.ndarray, str | None], list[Segment]]
# (turns' samples, their languages, on_done(index, segments) called as each turn is decided) -> each
# turn's segments, in order
TranscribeBatch = Callable[
    [list[np.ndarray], list[str | None], Callable[[int, list[Segment]], None]], list[list[Segment]]
]


class PoolClosedError(RuntimeError):
    """The pool was shut down; no more jobs are taken."""


class JobKind(StrEnum):
    """How much a transcription job matters, highest first; the pool runs them in this order."""

    FINAL = "final"  # a finished turn: always run
    GUESS = "guess"  # a turn that has probably finished, transcribed ahead of its end
    PREVIEW = "preview"  # a partial transcript of a turn still being spoken


@dataclass(eq=False)  # a job is itself: comparing fields would compare the audio arrays
class _Job:
    call_id: str
    samples: np.ndarray
    language: str | None
    kind: JobKind
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
    queued_guesses: int = 0
    ran: dict[str, int] = field(default_factory=dict)  # jobs a worker took (to run), by JobKind
    guesses_dropped: int = 0  # guesses cancelled before they ran


@dataclass(frozen=True)
class WorkerLoad:
    """What one transcription worker (a pool thread, or a speech worker on the cluster) has done."""

    name: str
    turns: int  # jobs transcribed (a batch counts each turn)
    busy_seconds: float  # time spent transcribing
    turn_seconds: float | None = None  # its time for the reference turn (models/speed.py), if measured


class TranscriptionPool:
    """Runs ``transcribe(samples, language)`` for all calls on ``workers`` threads, fairly and bounded.

    ``transcribe_batch`` with ``max_batch`` > 1 lets a worker take several waiting finals at once."""

    def __init__(
        self,
        transcribe: TranscribeJob,
        *,
        workers: int,
        capacity: int,
        transcribe_batch: TranscribeBatch | None = None,
        max_batch: int = 1,
        set_prompts: Callable[[Mapping[str, str]], None] | None = None,
        on_close: Callable[[], None] | None = None,
        worker_loads: Callable[[], list[WorkerLoad]] | None = None,
        retried: Callable[[], int] | None = None,
    ) -> None:
        """``worker_loads``: each worker's load and speed, where the workers are not this pool's threads
        (speech workers on a cluster); by default the pool reports its threads and measures their speed on
        the reference turn itself. ``retried``: how many turns were sent again after their worker died
        (a cluster's; none in process)."""
        if workers < 1 or capacity < 1 or max_batch < 1:
            raise ValueError(
                f"workers, capacity and max_batch must be >= 1, got {workers}, {capacity} and {max_batch}"
            )
        if max_batch > 1 and transcribe_batch is None:
            raise ValueError("max_batch > 1 needs a transcribe_batch function")
        self.workers = workers
        self.capacity = capacity
        self.max_batch = max_batch
        self._transcribe = transcribe
        self._transcribe_batch = transcribe_batch
        self._set_prompts = set_prompts
        self._on_close = on_close  # releases what the transcribe function holds (a cluster's connection)
        self._worker_loads = worker_loads
        self._retried = retried
        self._busy: Counter[str] = Counter()  # seconds transcribing, by thread name
        self._turns: Counter[str] = Counter()  # jobs transcribed, by thread name
        self._turn_seconds: float | None = None  # the reference turn's time on one thread, once measured
        self.prompts: dict[str, str] = {}  # what the recogniser reads before each turn, by language
        self._cond = threading.Condition()
        self._finals: OrderedDict[str, deque[_Job]] = OrderedDict()  # call id -> its waiting finals
        self._guesses: OrderedDict[str, deque[_Job]] = OrderedDict()  # call id -> its waiting guesses
        self._partials: OrderedDict[str, _Job] = OrderedDict()  # call id -> its newest waiting partial
        self._running = 0
        self._done = 0
        self._ran: Counter[str] = Counter()
        self._dropped = 0
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"transcribe-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # -- submitting ---------------------------------------------------------------------------------------

    def submit(
        self, call_id: str, samples: np.ndarray, language: str | None, *, guess: bool = False
    ) -> Future[list[Segment]]:
        """Queue a final turn; it is always run, in round-robin order across calls.

        ``guess``: the turn has probably (not surely) finished; it runs only when no final waits, unless
        :meth:`promote` makes it a final, and it does not count towards :attr:`overloaded`."""
        job = _Job(call_id, samples, language, JobKind.GUESS if guess else JobKind.FINAL)
        with self._cond:
            self._check_open()
            queue = self._guesses if guess else self._finals
            queue.setdefault(call_id, deque()).append(job)
            self._cond.notify()
        if guess:
            job.future.add_done_callback(self._forget)
        return job.future

    def promote(self, future: Future[list[Segment]]) -> None:
        """The guess behind `future` turned out to be a finished turn: if it still waits, it now waits as a
        final (at the back of its call's finals). Nothing happens to a guess already running or done."""
        with self._cond:
            job = self._unqueue_guess(future)
            if job is not None:
                job.kind = JobKind.FINAL
                self._finals.setdefault(job.call_id, deque()).append(job)
                self._cond.notify()

    def _forget(self, future: Future[list[Segment]]) -> None:
        """A guess that was cancelled (its speaker went on) leaves the line at once: it holds up nothing."""
        if not future.cancelled():
            return
        with self._cond:
            if self._unqueue_guess(future) is not None:
                self._dropped += 1

    def _unqueue_guess(self, future: Future[list[Segment]]) -> _Job | None:
        """Take the waiting guess behind `future` out of the line (None when it does not wait); under the
        lock."""
        for call_id, jobs in self._guesses.items():
            job = next((j for j in jobs if j.future is future), None)
            if job is not None:
                jobs.remove(job)
                if not jobs:
                    del self._guesses[call_id]
                return job
        return None

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
            busy = self._running + len(self._partials) + self._queued(self._guesses)
            if self._queued_finals() or busy >= max(1, self.workers - 1):
                return None
            job = _Job(call_id, samples, language, JobKind.PREVIEW)
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

    def use_prompts(self, prompts: Mapping[str, str]) -> None:
        """The text the recogniser reads before each turn, by language (:mod:`models.decoder_prompt`),
        from the next job on; nothing when the pool's transcriber takes none."""
        if self._set_prompts is not None:
            self._set_prompts(prompts)
            self.prompts = dict(prompts)

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
                self._queued(self._guesses),
                dict(self._ran),
                self._dropped,
            )

    @property
    def retried(self) -> int:
        """Turns sent again to another worker after theirs died (0 in process)."""
        return self._retried() if self._retried is not None else 0

    def loads(self) -> list[WorkerLoad]:
        """Each worker's turns, busy time and reference-turn speed (for admission and ``/metrics``)."""
        if self._worker_loads is not None:
            return self._worker_loads()
        with self._cond:
            return [
                WorkerLoad(t.name, self._turns[t.name], round(self._busy[t.name], 3), self._turn_seconds)
                for t in self._threads
            ]

    def measure_speed(self) -> list[float]:
        """Each worker's seconds for the reference turn (:mod:`models.speed`): the cluster's own figures,
        or, in process, one thread's time measured now (its threads share a model and have a core each)."""
        if self._worker_loads is not None:
            return [w.turn_seconds for w in self._worker_loads() if w.turn_seconds is not None]
        seconds = time_reference_turn(self._transcribe)
        with self._cond:
            self._turn_seconds = seconds
        return [seconds] * self.workers

    def close(self) -> None:
        """Stop taking jobs, fail the waiting ones, and let running ones finish."""
        with self._cond:
            self._closed = True
            queues = (self._finals, self._guesses)
            waiting = [job for queue in queues for jobs in queue.values() for job in jobs]
            waiting += self._partials.values()
            self._finals.clear()
            self._guesses.clear()
            self._partials.clear()
            self._cond.notify_all()
        for job in waiting:
            job.future.set_exception(PoolClosedError("the transcription pool was shut down"))
        for thread in self._threads:
            thread.join(timeout=30)
        if self._on_close is not None:
            self._on_close()

    # -- working ------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise PoolClosedError("the transcription pool is shut down")

    def _queued_finals(self) -> int:
        return self._queued(self._finals)

    @staticmethod
    def _queued(queue: OrderedDict[str, deque[_Job]]) -> int:
        return sum(len(jobs) for jobs in queue.values())

    def _next_jobs(self) -> list[_Job]:
        """Up to ``max_batch`` finals, taken round-robin across calls (each call's oldest first, then it
        goes to the back of the line), else the next guess alone (taken the same way), else the oldest
        partial alone; [] once closed."""
        with self._cond:
            while not self._closed:
                if self._finals:
                    taken = min(self.max_batch, self._queued_finals())
                    jobs = [self._pop(self._finals) for _ in range(taken)]
                elif self._guesses:
                    jobs = [self._pop(self._guesses)]
                elif self._partials:
                    jobs = [self._partials.popitem(last=False)[1]]
                else:
                    self._cond.wait()
                    continue
                self._running += len(jobs)
                self._ran.update(job.kind.value for job in jobs)
                return jobs
            return []

    @staticmethod
    def _pop(queue: OrderedDict[str, deque[_Job]]) -> _Job:
        """The oldest job of the call at the front of the line; that call goes to the back."""
        call_id, jobs = next(iter(queue.items()))
        job = jobs.popleft()
        del queue[call_id]
        if jobs:
            queue[call_id] = jobs
        return job

    def _work(self) -> None:
        name = threading.current_thread().name
        while jobs := self._next_jobs():
            started = time.perf_counter()
            try:
                self._run(jobs)
            finally:
                with self._cond:
                    self._running -= len(jobs)
                    self._done += len(jobs)
                    self._busy[name] += time.perf_counter() - started
                    self._turns[name] += len(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        """Transcribe `jobs` (one, or a batch of finals) and settle their futures, each as soon as its
        turn is decided (a turn that decodes at once does not wait for one of its batch that Whisper
        decodes again hotter); a failure goes to every job of the batch still unsettled."""
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not live:
            return

        def settle(index: int, segments: list[Segment]) -> None:
            if not live[index].future.done():
                live[index].future.set_result(segments)

        try:
            if len(live) == 1:
                settle(0, self._transcribe(live[0].samples, live[0].language))
            else:
                assert self._transcribe_batch is not None  # max_batch > 1 requires it
                results = self._transcribe_batch(
                    [j.samples for j in live], [j.language for j in live], settle
                )
                for index, result in enumerate(results):
                    settle(index, result)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting calls, which report it
            logger.exception("transcription failed for call(s) %s", ", ".join({j.call_id for j in live}))
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
