"""What the front-end's pools of cluster actors share: the cluster's resources, and a line of idle actors
that survives the death of any of them.

Each live turn (to transcribe, to judge) takes the next idle actor of its kind; an actor that dies or does
not answer in time is set aside until Ray has restarted it (``max_restarts=-1``, where the cluster has
room) and it answers again, and the turn goes to the next idle one. So a worker machine lost mid-call
costs its turns a retry, never the turns themselves.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)

NAMESPACE = "callbuffer"
SPEECH_RESOURCE = "callbuffer_speech"  # one per core a machine gives to speech workers
JUDGE_RESOURCE = "callbuffer_judge"  # one per worker machine: where a classification worker goes
STATUS_GROUP = "status"  # the actors' concurrency group for `where` (health, load, speed)
ALIVE_CHECK_S = 2.0  # a request not answered by then: is its actor still there?
STATUS_TIMEOUT_S = 3.0  # ... it must answer a status call in this (at once, when it is there)


class ClusterError(RuntimeError):
    """The Ray cluster could not be reached, or it has no workers of a kind."""


class WorkerLostError(ClusterError):
    """A turn's workers died on every attempt: the turn could not be done."""


def worker_resources(cores: int) -> dict[str, float]:
    """The custom resources of a worker machine giving `cores` cores to callbuffer: a speech worker per
    core, and one classification worker (which shares them: judging a turn takes milliseconds)."""
    return {SPEECH_RESOURCE: cores, JUDGE_RESOURCE: 1}


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


def cluster_resource(name: str) -> int:
    """How much of a custom resource the cluster this process joined offers now."""
    import ray

    return int(ray.cluster_resources().get(name, 0))


def status(actor: Any) -> Any:
    """The actor's ``where()`` in its status group: it answers while a turn is in hand."""
    return actor.where.options(concurrency_group=STATUS_GROUP).remote()


class WorkerLine:
    """Idle `actors` in line; :meth:`call` runs one request on the next idle one, again on another when it
    dies (up to `attempts` actors; `timeout` seconds each). `kind` names them in logs and errors."""

    def __init__(
        self, actors: Sequence[Any], kind: str, *, attempts: int = 4, timeout: float = 120.0
    ) -> None:
        self.actors = list(actors)
        self._idle: queue.Queue[Any] = queue.Queue()
        for actor in self.actors:
            self._idle.put(actor)
        self._kind = kind
        self._attempts = attempts
        self._timeout = timeout
        self.retried = 0  # requests sent again after their actor died
        self._closed = False

    def call(self, send: Callable[[Any], Any]) -> Any:
        """The result of ``send(actor)`` (an ObjectRef) on an idle actor."""
        from ray.exceptions import GetTimeoutError, RayActorError

        for attempt in range(1, self._attempts + 1):
            actor = self._idle.get()
            try:
                result = self._answer(actor, send(actor))
            except (RayActorError, GetTimeoutError) as exc:
                self.retried += 1
                logger.warning(
                    "a %s lost a turn (try %d of %d): %s", self._kind, attempt, self._attempts, exc
                )
                threading.Thread(target=self._back_when_alive, args=(actor,), daemon=True).start()
                continue
            self._idle.put(actor)
            return result
        raise WorkerLostError(f"no {self._kind} could take the turn in {self._attempts} attempts")

    def _answer(self, actor: Any, ref: Any) -> Any:
        """The result of `ref`, a request to `actor`. While it is not ready, the actor is asked for its
        status every ALIVE_CHECK_S (answered at once beside a turn): one that does not answer died or is
        restarting (a worker whose machine went while it was idle in line gets a request it will never
        run), and GetTimeoutError sends the request to another instead of waiting out `timeout`."""
        import ray
        from ray.exceptions import GetTimeoutError

        deadline = time.monotonic() + self._timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GetTimeoutError(f"no answer from a {self._kind} in {self._timeout:.0f} s")
            ready, _ = ray.wait([ref], timeout=min(ALIVE_CHECK_S, left))
            if ready:
                return ray.get(ref)
            ray.get(status(actor), timeout=STATUS_TIMEOUT_S)  # RayActorError or GetTimeoutError: gone

    def _back_when_alive(self, actor: Any) -> None:
        """Put an actor that failed back in line once it answers again; until then its turns go to the
        others instead of waiting for it."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        while not self._closed and ray.is_initialized():
            try:
                ray.get(status(actor), timeout=5)
            except (RayActorError, GetTimeoutError):
                time.sleep(1.0)
                continue
            except SystemExit:  # Ray's way of ending a wait when this process disconnects (ray.shutdown)
                return
            logger.info("a %s is back", self._kind)
            self._idle.put(actor)
            return

    def where(self) -> list[dict[str, object]]:
        """Each answering actor's ``where()`` with its index (actors that do not answer in 10 s left out)."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        found = []
        asked = [status(actor) for actor in self.actors]  # all at once: a dead one costs 10 s once
        for i, answer in enumerate(asked):
            try:
                found.append({"index": i, **ray.get(answer, timeout=10)})
            except (RayActorError, GetTimeoutError) as exc:
                logger.warning("a %s does not answer: %s", self._kind, exc)
        return found

    def close(self) -> None:
        """Stop waiting for lost actors (the actors themselves stay, shared by the cluster)."""
        self._closed = True
