"""The transcription pool's turns sent to speech workers on a Ray cluster.

The pool (:class:`server.live.pool.TranscriptionPool`) keeps deciding which turn goes next (finished
turns first, round-robin across calls, previews last); only ``transcribe(samples, language)`` changes:
in process it runs Whisper on a thread, here it hands the turn to an idle worker actor and waits. The pool
gets one thread per worker, so a worker never holds more than one of this front-end's turns.

A worker that dies mid-turn (its machine gone, its process killed) loses nothing: the turn goes to the
next idle worker, and Ray starts the dead one again where the cluster has room (``max_restarts=-1``).
Workers are named detached actors (``speech-0``, ``speech-1``… in the ``callbuffer`` namespace), so every
front-end on the cluster shares the same ones, however many front-ends there are.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from models.transcriber import Segment
from server.cluster.speech_worker import SpeechWorker
from server.live.pool import WorkerLoad

logger = logging.getLogger(__name__)

NAMESPACE = "callbuffer"
SPEECH_RESOURCE = "callbuffer_speech"  # one per core a machine gives to speech workers
STATUS_GROUP = "status"  # the workers' concurrency group for `where` (health, load, speed)


class ClusterError(RuntimeError):
    """The Ray cluster could not be reached, or it has no speech workers."""


class WorkerLostError(ClusterError):
    """A turn's workers died on every attempt: the turn could not be transcribed."""


def join_cluster(address: str) -> None:
    """Connect this process to the Ray cluster at `address` (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``)."""
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot join the Ray cluster at {address!r}: {exc}") from exc
    logger.info("joined the Ray cluster at %s: %s", address, ray.cluster_resources())


def speech_slots() -> int:
    """Speech worker cores the cluster offers (its ``callbuffer_speech`` resource)."""
    import ray

    return int(ray.cluster_resources().get(SPEECH_RESOURCE, 0))


class ClusterTranscription:
    """``transcribe`` and ``set_prompts`` for the pool, on the cluster's speech workers.

    ``workers``: how many worker actors to use (default: one per ``callbuffer_speech`` core the cluster
    has now). ``attempts``: workers a turn may try before :class:`WorkerLostError`; ``timeout``: seconds one
    attempt may take (a worker whose machine vanished does not answer at all).
    """

    def __init__(
        self,
        whisper_model: str,
        window: float,
        *,
        workers: int | None = None,
        attempts: int = 4,
        timeout: float = 120.0,
    ) -> None:
        import ray

        count = workers if workers is not None else speech_slots()
        if count < 1:
            raise ClusterError(
                "the Ray cluster has no speech workers: add one with `callbuffer worker --ray ADDRESS` "
                f"(or `ray start --address ADDRESS --resources '{{\"{SPEECH_RESOURCE}\": 1}}'`)"
            )
        # `where` answers from a thread of its own (its concurrency group), not behind a turn
        actor = ray.remote(concurrency_groups={STATUS_GROUP: 1})(SpeechWorker)
        self._workers = [
            actor.options(
                name=f"speech-{i}",
                namespace=NAMESPACE,
                get_if_exists=True,
                lifetime="detached",
                num_cpus=1,
                resources={SPEECH_RESOURCE: 1},
                max_restarts=-1,
                max_concurrency=1,  # one turn at a time: a worker is one core
            ).remote(whisper_model, window)
            for i in range(count)
        ]
        self._idle: queue.Queue[Any] = queue.Queue()
        for worker in self._workers:
            self._idle.put(worker)
        self._attempts = attempts
        self._timeout = timeout
        self._prompts: dict[str, str] = {}
        self._lock = threading.Lock()
        self.retried = 0  # turns sent again after their worker died
        self._closed = False

    @property
    def slots(self) -> int:
        """Worker actors this front-end sends turns to (its pool's thread count)."""
        return len(self._workers)

    def set_prompts(self, prompts: Mapping[str, str]) -> None:
        """The decoder prompt per language, sent with each turn from now on."""
        with self._lock:
            self._prompts = dict(prompts)

    def transcribe(self, samples: np.ndarray, language: str | None) -> list[Segment]:
        """One turn on an idle worker; on a worker that dies, again on the next idle one."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        with self._lock:
            prompt = self._prompts.get(language) if language else None
        samples_ref = ray.put(np.ascontiguousarray(samples, dtype=np.float32))
        for attempt in range(1, self._attempts + 1):
            worker = self._idle.get()
            try:
                turn = worker.transcribe.remote(samples_ref, language, prompt)
                result = ray.get(turn, timeout=self._timeout)
            except (RayActorError, GetTimeoutError) as exc:
                self.retried += 1
                logger.warning("a speech worker lost a turn (try %d of %d): %s", attempt, self._attempts, exc)
                threading.Thread(target=self._back_when_alive, args=(worker,), daemon=True).start()
                continue
            self._idle.put(worker)
            return result
        raise WorkerLostError(f"no speech worker could transcribe the turn in {self._attempts} attempts")

    def _back_when_alive(self, worker: Any) -> None:
        """Put a worker that failed back in line once it answers again (Ray restarts it where the cluster
        has room); until then its turns go to the others instead of waiting for it."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        while not self._closed and ray.is_initialized():
            try:
                ray.get(_status(worker), timeout=5)
            except (RayActorError, GetTimeoutError):
                time.sleep(1.0)
                continue
            except SystemExit:  # Ray's way of ending a wait when this process disconnects (ray.shutdown)
                return
            logger.info("a speech worker is back")
            self._idle.put(worker)
            return

    def close(self) -> None:
        """Stop waiting for lost workers (the workers themselves stay, shared by the cluster)."""
        self._closed = True

    def loads(self) -> list[WorkerLoad]:
        """Each answering worker's turns, busy seconds and reference-turn time (measured when it started)."""
        return [
            WorkerLoad(
                f"{found['name']}@{found['host']}",
                int(found["turns"]),
                float(found["busy_seconds"]),
                float(found["turn_seconds"]),
            )
            for found in self.where()
        ]

    def where(self) -> list[dict[str, object]]:
        """Each worker's name, host, process, turns done and speed (workers that do not answer in 10 s left
        out)."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        found = []
        asked = [_status(worker) for worker in self._workers]  # all at once: a dead one costs 10 s once
        for i, answer in enumerate(asked):
            try:
                found.append({"name": f"speech-{i}", **ray.get(answer, timeout=10)})
            except (RayActorError, GetTimeoutError) as exc:
                logger.warning("speech worker does not answer: %s", exc)
        return found


def _status(worker: Any) -> Any:
    """The worker's ``where()`` in its status group: it answers while a turn is being transcribed."""
    return worker.where.options(concurrency_group=STATUS_GROUP).remote()
