"""server.live.pool: the shared transcription pool's order, fairness, preview policy, overload and shutdown.

The transcribe function here is a real function that blocks on events the test controls, so the order in
which the pool runs jobs is observed exactly (no sleeps, no timing assertions).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
import pytest

from models.transcriber import Segment
from server.live.pool import PoolClosedError, TranscriptionPool


class Gate:
    """A transcribe function that records the job order and runs a job only when the test opens it."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.lock = threading.Lock()

    def __call__(self, samples: np.ndarray, language: str | None) -> list[Segment]:
        with self.lock:
            self.order.append(language or "")
        self.started.release()
        assert self.release.acquire(timeout=10), "the test never released the job"
        return [Segment(0.0, 1.0, language or "", -0.1, 0.0)]

    def batch(
        self, samples: list[np.ndarray], languages: list[str | None], on_done: Callable[..., None]
    ) -> list[list[Segment]]:
        """The batched form: one gated job that records its turns as one entry, e.g. "a1+b0"."""
        self(_audio(), "+".join(lang or "" for lang in languages))
        return [[Segment(0.0, 1.0, lang or "", -0.1, 0.0)] for lang in languages]

    def run(self, n: int) -> None:
        for _ in range(n):
            self.release.release()


def _audio() -> np.ndarray:
    return np.zeros(1600, np.float32)


def _wait(futures: list[Future]) -> None:
    for f in futures:
        f.result(timeout=10)


def test_round_robin_across_calls_so_a_busy_call_cannot_starve_others():
    """Call A queues 4 turns before call B queues 1: B's turn runs second, not fifth."""
    gate = Gate()
    pool = TranscriptionPool(gate, workers=1, capacity=100)
    try:
        first = pool.submit("a", _audio(), "a0")
        assert gate.started.acquire(timeout=10)  # the worker is busy with a0
        futures = [pool.submit("a", _audio(), f"a{i}") for i in range(1, 4)]
        futures.append(pool.submit("b", _audio(), "b0"))
        gate.run(5)
        _wait([first, *futures])
        assert gate.order == ["a0", "a1", "b0", "a2", "a3"]
    finally:
        pool.close()


def test_finals_go_before_partials_and_partials_are_declined_when_finals_wait():
    gate = Gate()
    pool = TranscriptionPool(gate, workers=1, capacity=100)
    try:
        busy = pool.submit("a", _audio(), "final-1")
        assert gate.started.acquire(timeout=10)
        waiting = pool.submit("b", _audio(), "final-2")
        assert pool.submit_partial("c", _audio(), "partial") is None  # a final waits: no preview now
        gate.run(2)
        _wait([busy, waiting])
        preview = pool.submit_partial("c", _audio(), "partial")
        assert preview is not None
        gate.run(1)
        assert preview.result(timeout=10)[0].text == "partial"
        assert gate.order == ["final-1", "final-2", "partial"]
    finally:
        pool.close()


def test_guesses_wait_for_finals_a_promoted_guess_is_a_final_and_a_cancelled_one_never_runs():
    """While the worker is busy: call a queues two guesses (the second one promoted: its turn ended),
    call b a guess the test cancels (its speaker went on), call c a final. The final and the promoted
    guess run first, in call order; the other guess of a after them; b's never, and it leaves the line
    at once. A guess is not a waiting final: it makes no overload."""
    gate = Gate()
    pool = TranscriptionPool(gate, workers=1, capacity=1)
    try:
        busy = pool.submit("z", _audio(), "final-z")
        assert gate.started.acquire(timeout=10)
        a1 = pool.submit("a", _audio(), "guess-a1", guess=True)
        a2 = pool.submit("a", _audio(), "guess-a2", guess=True)
        b1 = pool.submit("b", _audio(), "guess-b1", guess=True)
        assert pool.queued() == 0 and pool.stats().queued_guesses == 3 and not pool.overloaded
        c1 = pool.submit("c", _audio(), "final-c1")
        pool.promote(a2)
        assert b1.cancel()
        stats = pool.stats()
        assert pool.queued() == 2 and stats.queued_guesses == 1 and stats.guesses_dropped == 1
        gate.run(4)
        _wait([busy, c1, a2, a1])
        assert gate.order == ["final-z", "final-c1", "guess-a2", "guess-a1"]
        assert pool.stats().ran == {"final": 3, "guess": 1}
    finally:
        pool.close()


def test_promoting_a_guess_that_already_ran_changes_nothing():
    gate = Gate()
    pool = TranscriptionPool(gate, workers=1, capacity=4)
    try:
        guess = pool.submit("a", _audio(), "guess", guess=True)
        assert gate.started.acquire(timeout=10)
        pool.promote(guess)  # it runs already: nothing to move
        assert pool.queued() == 0
        gate.run(1)
        assert guess.result(timeout=10)[0].text == "guess"
        assert pool.stats().ran == {"guess": 1}
    finally:
        pool.close()


def test_a_worker_is_always_left_for_finals():
    """With 2 workers only one preview runs at a time; a final submitted then starts at once."""
    gate = Gate()
    pool = TranscriptionPool(gate, workers=2, capacity=100)
    try:
        preview = pool.submit_partial("a", _audio(), "partial-a")
        assert preview is not None and gate.started.acquire(timeout=10)
        assert pool.submit_partial("b", _audio(), "partial-b") is None
        final = pool.submit("b", _audio(), "final-b")
        assert gate.started.acquire(timeout=10)  # runs beside the preview, not after it
        gate.run(2)
        _wait([preview, final])
    finally:
        pool.close()


def test_overload_is_reported_when_finals_exceed_capacity_but_none_are_dropped():
    gate = Gate()
    pool = TranscriptionPool(gate, workers=1, capacity=2)
    try:
        futures = [pool.submit("a", _audio(), "x0")]
        assert gate.started.acquire(timeout=10)
        futures += [pool.submit(f"c{i}", _audio(), f"x{i}") for i in range(1, 4)]
        assert pool.queued() == 3 and pool.overloaded
        gate.run(4)
        _wait(futures)
        assert not pool.overloaded and pool.stats().done == 4
    finally:
        pool.close()


def test_a_failing_transcription_reaches_the_caller_and_the_pool_goes_on():
    calls = []

    def flaky(samples: np.ndarray, language: str | None) -> list[Segment]:
        calls.append(language)
        if language == "bad":
            raise RuntimeError("decoder failed")
        return []

    pool = TranscriptionPool(flaky, workers=1, capacity=4)
    try:
        with pytest.raises(RuntimeError, match="decoder failed"):
            pool.submit("a", _audio(), "bad").result(timeout=10)
        assert pool.submit("a", _audio(), "good").result(timeout=10) == []
    finally:
        pool.close()


def test_close_fails_waiting_jobs_and_refuses_new_ones():
    gate = Gate()
    pool = TranscriptionPool(gate, workers=1, capacity=4)
    running = pool.submit("a", _audio(), "running")
    assert gate.started.acquire(timeout=10)
    waiting = pool.submit("a", _audio(), "waiting")
    closer = threading.Thread(target=pool.close)
    closer.start()
    with pytest.raises(PoolClosedError):
        waiting.result(timeout=10)
    gate.run(1)
    closer.join(timeout=10)
    assert running.result(timeout=10)[0].text == "running"
    with pytest.raises(PoolClosedError):
        pool.submit("a", _audio(), "late")


def test_waiting_finals_are_taken_in_batches_round_robin():
    """While the worker is busy, a, a, a, b and c queue finals: the next batch of 3 takes one of each call
    (a1, b0, c0), the last one the rest of a's; each turn gets its own result."""
    gate = Gate()
    pool = TranscriptionPool(gate, workers=1, capacity=100, transcribe_batch=gate.batch, max_batch=3)
    try:
        first = pool.submit("a", _audio(), "a0")
        assert gate.started.acquire(timeout=10)
        futures = [pool.submit("a", _audio(), f"a{i}") for i in (1, 2, 3)]
        futures += [pool.submit("b", _audio(), "b0"), pool.submit("c", _audio(), "c0")]
        gate.run(3)
        _wait([first, *futures])
        assert gate.order == ["a0", "a1+b0+c0", "a2+a3"]
        assert [f.result()[0].text for f in futures] == ["a1", "a2", "a3", "b0", "c0"]
        assert pool.stats().done == 6
    finally:
        pool.close()


def test_a_turn_of_a_batch_is_handed_back_as_soon_as_it_is_decided():
    """The batch decides b0 at once and is still decoding c0 (say, again hotter): b0's caller has its
    text before the batch ends."""
    gate = Gate()
    still_decoding = threading.Event()

    def slow_second(
        samples: list[np.ndarray], languages: list[str | None], on_done: Callable[..., None]
    ) -> list[list[Segment]]:
        on_done(0, [Segment(0.0, 1.0, "b0", -0.1, 0.0)])
        assert still_decoding.wait(timeout=10)
        return [[Segment(0.0, 1.0, "b0", -0.1, 0.0)], [Segment(0.0, 1.0, "c0", -0.1, 0.0)]]

    pool = TranscriptionPool(gate, workers=1, capacity=100, transcribe_batch=slow_second, max_batch=2)
    try:
        first = pool.submit("a", _audio(), "a0")
        assert gate.started.acquire(timeout=10)
        b0, c0 = pool.submit("b", _audio(), "b0"), pool.submit("c", _audio(), "c0")
        gate.run(1)
        assert b0.result(timeout=10)[0].text == "b0" and not c0.done()
        still_decoding.set()
        assert c0.result(timeout=10)[0].text == "c0" and first.result(timeout=10)[0].text == "a0"
    finally:
        pool.close()


def test_a_failed_batch_reaches_the_undecided_callers_and_a_cancelled_turn_is_left_out():
    batches: list[list[str | None]] = []
    gate = Gate()

    def failing(
        samples: list[np.ndarray], languages: list[str | None], on_done: Callable[..., None]
    ) -> list[list[Segment]]:
        batches.append(languages)
        on_done(0, [Segment(0.0, 1.0, "decided first", -0.1, 0.0)])
        raise RuntimeError("decoder failed")

    pool = TranscriptionPool(gate, workers=1, capacity=100, transcribe_batch=failing, max_batch=4)
    try:
        first = pool.submit("a", _audio(), "a0")
        assert gate.started.acquire(timeout=10)
        decided = pool.submit("b", _audio(), "b0")
        failed = pool.submit("c", _audio(), "c0")
        dropped = pool.submit("d", _audio(), "d0")
        assert dropped.cancel()  # e.g. an early guess the speaker outran
        gate.run(1)
        first.result(timeout=10)
        assert decided.result(timeout=10)[0].text == "decided first"  # settled before the failure
        with pytest.raises(RuntimeError, match="decoder failed"):
            failed.result(timeout=10)
        assert batches == [["b0", "c0"]]
        assert pool.submit("a", _audio(), "a1") is not None  # the pool goes on
        gate.run(1)
    finally:
        pool.close()


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        TranscriptionPool(lambda x, lang: [], workers=0, capacity=1)
    with pytest.raises(ValueError, match="transcribe_batch"):
        TranscriptionPool(lambda x, lang: [], workers=1, capacity=1, max_batch=2)
