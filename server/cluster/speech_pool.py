"""The transcription pool's turns sent to speech workers on a Ray cluster.

The pool (:class:`server.live.pool.TranscriptionPool`) keeps deciding which turn goes next (finished
turns first, round-robin across calls, previews last); only ``transcribe(samples, language)`` changes:
in process it runs Whisper on a thread, here it hands the turn to an idle worker actor and waits. The pool
gets one thread per worker, so a worker never holds more than one of this front-end's turns.

A worker that dies mid-turn (its machine gone, its process killed) loses nothing: the turn goes to the
next idle worker, and Ray starts the dead one again where the cluster has room (``max_restarts=-1``;
:class:`server.cluster.actors.WorkerLine`).
Workers are named detached actors (``speech-0``, ``speech-1``… in the ``callbuffer`` namespace), so every
front-end on the cluster shares the same ones, however many front-ends there are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

import numpy as np

from models.transcriber import Segment
from server.cluster.actors import (
    NAMESPACE,
    SPEECH_RESOURCE,
    STATUS_GROUP,
    ClusterError,
    WorkerLine,
    cluster_resource,
)
from server.cluster.speech_worker import SpeechWorker
from server.live.pool import WorkerLoad

logger = logging.getLogger(__name__)


def speech_slots() -> int:
    """Speech worker cores the cluster offers (its ``callbuffer_speech`` resource)."""
    return cluster_resource(SPEECH_RESOURCE)


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
        workers_ = [
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
        self._line = WorkerLine(workers_, "speech worker", attempts=attempts, timeout=timeout)
        self._prompts: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def slots(self) -> int:
        """Worker actors this front-end sends turns to (its pool's thread count)."""
        return len(self._line.actors)

    @property
    def retried(self) -> int:
        """Turns sent again after their worker died."""
        return self._line.retried

    def set_prompts(self, prompts: Mapping[str, str]) -> None:
        """The decoder prompt per language, sent with each turn from now on."""
        with self._lock:
            self._prompts = dict(prompts)

    def transcribe(self, samples: np.ndarray, language: str | None) -> list[Segment]:
        """One turn on an idle worker; on a worker that dies, again on the next idle one."""
        import ray

        with self._lock:
            prompt = self._prompts.get(language) if language else None
        samples_ref = ray.put(np.ascontiguousarray(samples, dtype=np.float32))
        return self._line.call(lambda worker: worker.transcribe.remote(samples_ref, language, prompt))

    def close(self) -> None:
        """Stop waiting for lost workers (the workers themselves stay, shared by the cluster)."""
        self._line.close()

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
        return [{"name": f"speech-{found.pop('index')}", **found} for found in self._line.where()]
