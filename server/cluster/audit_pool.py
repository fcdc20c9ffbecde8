"""Audits of recordings fanned out to audit workers on the Ray cluster's speech machines.

A :class:`ClusterAuditPool` keeps ``parallel`` audit workers (:class:`server.cluster.audit_worker.AuditWorker`
actors, one recording each at a time) and feeds them the jobs of an iterator: each recording's bytes are
read here (the file lives on this machine, not on the worker), sent with the audit options and the pack's
YAML text, and its outcome comes back as soon as it is done, in completion order. At most ``parallel``
recordings are read and in flight at once.

Where audits run, and how many: only on speech machines, the nodes that give the cluster's
``callbuffer_speech`` resource (``callbuffer worker``), each worker pinned to one of them, spread across
them. A worker does not *reserve* a unit of that resource: the front-ends' live speech workers hold one
unit per speech core for as long as they live (``speech-0``, ``speech-1``… take every unit there is), so an
audit that waited for a free unit would wait for ever while any front-end runs. Instead an audit worker
reserves nothing, runs Whisper on one thread, and schedules itself ``SCHED_IDLE``
(:mod:`server.cluster.audit_worker`): on a core a live worker needs, the live turn goes first and the
audit takes what is left. ``parallel`` (default
:data:`DEFAULT_PARALLEL`, ``callbuffer audit --ray ADDRESS --parallel N``) is then how many speech cores a
batch may keep busy when live calls leave them idle, and how many Whisper + encoder copies it holds in
memory (about 0.8 GB each). Two audit a batch about 1.8 times as fast as one (22x against 12x real time
on two one-core nodes, ``bench/bench_audit.py --ray-workers``) while no more than two cores of the whole
cluster ever work on it. The server's upload queue uses one.

A worker that dies mid-audit (its machine gone, its process killed, out of memory) loses nothing: the
recording is sent again to a new worker on another speech machine, up to ``attempts`` times in all
(:class:`AuditLostError` after that), and each recording's outcome is given exactly once, whichever
attempt produced it. Ray reports a vanished machine's workers dead after its health checks fail (tens of
seconds), so no attempt is given a time limit: a long recording on a busy machine may take long.

A recording that cannot be audited comes back as the worker's :class:`models.audit.AuditError` (unwrapped
from Ray's ``RayTaskError``, with the same reason as in process); models that cannot load on the workers
end the run with :class:`ClusterAuditSetupError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.audit import AuditError, AuditOptions, file_sha256
from server.cluster.actors import NAMESPACE, SPEECH_RESOURCE, ClusterError, join_cluster
from server.cluster.audit_worker import AuditWorker, WorkerSetupError
from server.config import Settings

logger = logging.getLogger(__name__)

DEFAULT_PARALLEL = 2  # audits in flight at once per batch (and audit workers it starts)
ATTEMPTS = 3  # workers a recording may try before it is given up as lost
NODE_WAIT_S = 60.0  # how long to wait for a speech machine when every one is gone
LOST_NODE_S = 120.0  # a machine that lost a worker is the last choice for new ones this long
_names = itertools.count()


class AuditLostError(ClusterError):
    """A recording's audit workers died on every attempt."""


class RemoteAuditError(ClusterError):
    """An audit failed on a worker with an error that is not the recording's fault (a bug, a crash)."""


class ClusterAuditSetupError(ClusterError):
    """The audit workers cannot load the models (or no speech machine is left): nothing can be audited."""


@dataclass(frozen=True)
class AuditJob:
    """One recording to audit: ``source`` on this machine, its SHA-256, how to hear it, the pack's YAML
    text, and ``tag``, anything the caller wants back with the outcome."""

    source: Path
    sha256: str
    options: AuditOptions
    pack_yaml: str
    tag: Any = None


@dataclass(frozen=True)
class AuditOutcome:
    """A job's report dict, or why there is none (:class:`AuditError`: the recording;
    :class:`AuditLostError` or :class:`RemoteAuditError`: the cluster); ``attempts`` made."""

    job: AuditJob
    report: dict[str, Any] | None
    error: AuditError | ClusterError | None
    attempts: int


@dataclass
class _Slot:
    """An audit worker actor and the speech machine it is pinned to."""

    name: str
    actor: Any
    node: str


@dataclass
class _Sent:
    job: AuditJob
    data: Any  # the recording's bytes in the object store, kept for a retry
    attempt: int
    slot: _Slot


class ClusterAuditPool:
    """``parallel`` audit workers on the speech machines of the cluster this process joined
    (:func:`server.cluster.speech_pool.join_cluster`); :meth:`run` audits jobs, :meth:`close` ends them.

    ``whisper_model``, ``encoder``, ``whisper_prompt``: as the caller's settings say (the workers' own
    cache directories hold the models). Workers start on the first job, so a pool that audits nothing
    starts nothing."""

    def __init__(
        self,
        whisper_model: str,
        encoder: str,
        whisper_prompt: bool,
        *,
        parallel: int = DEFAULT_PARALLEL,
        attempts: int = ATTEMPTS,
    ) -> None:
        if parallel < 1 or attempts < 1:
            raise ValueError(f"parallel and attempts must be at least 1, got {parallel} and {attempts}")
        self._spec = (whisper_model, encoder, whisper_prompt)
        self.parallel = parallel
        self._attempts = attempts
        self._slots: list[_Slot] = []
        self._lost_on: dict[str, float] = {}  # node -> when a worker of this pool was lost there
        self._packs: dict[str, Any] = {}  # pack YAML digest -> its object in the store, put once
        self.retried = 0  # recordings sent again after their worker died
        self.started: list[tuple[str, str]] = []  # (worker name, speech node) of every worker started
        self._closed = False

    @classmethod
    def for_settings(cls, settings: Settings, **options: Any) -> ClusterAuditPool:
        """A pool on the cluster at ``settings.ray`` (joined here), with its models."""
        join_cluster(settings.ray or "auto")
        return cls(settings.whisper_model, settings.encoder, settings.whisper_prompt, **options)

    # ------------------------------------------------------------------------------------------- run

    def run(self, jobs: Iterable[AuditJob]) -> Iterator[AuditOutcome]:
        """Audit `jobs` (pulled from the iterator only as workers free up), yielding each outcome once,
        as it completes. :class:`ClusterAuditSetupError` when the workers cannot load the models."""
        import ray

        if self._closed:
            raise ClusterError("the audit pool was closed")
        pending = iter(jobs)
        again: deque[tuple[AuditJob, Any, int]] = deque()  # lost ones, sent before new ones
        sent: dict[Any, _Sent] = {}
        exhausted = False
        while True:
            while len(sent) < self.parallel and (again or not exhausted):
                if again:
                    job, data, attempt = again.popleft()
                else:
                    job = next(pending, None)
                    if job is None:
                        exhausted = True
                        break
                    attempt = 1
                    try:
                        data = ray.put(_read(job.source))
                    except AuditError as exc:
                        yield AuditOutcome(job, None, exc, 0)
                        continue
                slot = self._free_slot(sent.values())
                ref = slot.actor.audit.remote(
                    data, str(job.source), job.sha256, job.options, self._pack_ref(job.pack_yaml)
                )
                sent[ref] = _Sent(job, data, attempt, slot)
            if not sent:
                return
            ready, _ = ray.wait(list(sent), num_returns=1)
            done = sent.pop(ready[0])
            outcome = self._collect(ready[0], done)
            if outcome is None:  # the worker was lost: again, on a new one
                again.append((done.job, done.data, done.attempt + 1))
                continue
            yield outcome

    def audit(self, job: AuditJob) -> dict[str, Any]:
        """One recording's report, blocking; raises its outcome's error."""
        outcome = next(iter(self.run([job])))
        if outcome.error is not None:
            raise outcome.error
        assert outcome.report is not None
        return outcome.report

    def _collect(self, ref: Any, sent: _Sent) -> AuditOutcome | None:
        """The outcome of a finished attempt, or None when its worker was lost and it may go again."""
        import ray
        from ray.exceptions import RayTaskError

        try:
            return AuditOutcome(sent.job, ray.get(ref), None, sent.attempt)
        except RayTaskError as exc:  # raised by the audit itself: unwrap what the worker raised
            cause = exc.cause
            if isinstance(cause, AuditError):
                return AuditOutcome(sent.job, None, cause, sent.attempt)
            if isinstance(cause, WorkerSetupError):
                raise ClusterAuditSetupError(str(cause)) from None
            logger.error("audit of %s failed on %s: %s", sent.job.source, sent.slot.name, exc)
            error = RemoteAuditError(f"the audit failed on a worker: {type(cause).__name__}: {cause}")
            return AuditOutcome(sent.job, None, error, sent.attempt)
        except _lost_errors() as exc:
            if getattr(exc, "actor_init_failed", False):  # the worker cannot even start: a version skew?
                last = str(exc).strip().splitlines()[-1]
                raise ClusterAuditSetupError(f"the audit workers cannot start: {last}") from None
            if self._closed:  # ended by close(), not lost: nothing is sent again
                return AuditOutcome(sent.job, None, AuditLostError("the audit pool was closed"), sent.attempt)
            self._replace(sent.slot)
            if sent.attempt >= self._attempts:
                error = AuditLostError(f"its audit worker was lost {sent.attempt} times (last: {exc})")
                return AuditOutcome(sent.job, None, error, sent.attempt)
            self.retried += 1
            logger.warning(
                "audit worker %s lost %s (try %d of %d); sending it again",
                sent.slot.name,
                sent.job.source,
                sent.attempt,
                self._attempts,
            )
            return None

    # --------------------------------------------------------------------------------------- workers

    def _free_slot(self, busy: Iterable[_Sent]) -> _Slot:
        """A worker with no recording in hand, started on a speech machine if there is none yet."""
        taken = {id(s.slot) for s in busy}
        for slot in self._slots:
            if id(slot) not in taken:
                return slot
        slot = self._start(self._pick_node())
        self._slots.append(slot)
        return slot

    def _replace(self, lost: _Slot) -> None:
        """Retire a worker that died; its machine is the last choice for new ones for a while (Ray may
        not have noticed yet that it is gone)."""

        self._lost_on[lost.node] = time.monotonic()
        self._slots.remove(lost)
        _kill(lost.actor)

    def _start(self, node: str) -> _Slot:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        name = f"audit-{socket.gethostname()}-{os.getpid()}-{next(_names)}"
        actor = (
            ray.remote(AuditWorker)
            .options(
                name=name,
                namespace=NAMESPACE,
                num_cpus=0,  # reserves nothing: it runs below the live workers' priority (module doc)
                max_restarts=0,  # pinned to its machine: a lost one is replaced on another by this pool
                max_concurrency=1,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            )
            .remote(*self._spec)
        )
        logger.info("audit worker %s starts on speech node %s", name, node)
        self.started.append((name, node))
        return _Slot(name, actor, node)

    def _pick_node(self) -> str:
        """The live speech machine with the fewest of this pool's workers per speech core, one that
        lost a worker in the last LOST_NODE_S only when there is no other (waiting up to NODE_WAIT_S for
        one when every one is gone)."""
        deadline = time.monotonic() + NODE_WAIT_S
        while True:
            nodes = speech_nodes()
            if nodes:
                return min(nodes, key=self._ranking(nodes))
            if time.monotonic() > deadline:
                raise ClusterAuditSetupError(
                    "the Ray cluster has no speech machine to audit on: add one with "
                    "`callbuffer worker --ray ADDRESS`"
                )
            time.sleep(1.0)

    def _ranking(self, nodes: dict[str, float]) -> Callable[[str], tuple[bool, float, float, str]]:
        """A sort key for `nodes` (id -> speech cores): not lost recently, fewest workers per core, most
        cores."""
        mine = [s.node for s in self._slots]
        now = time.monotonic()

        def rank(node: str) -> tuple[bool, float, float, str]:
            lost_recently = now - self._lost_on.get(node, -LOST_NODE_S) < LOST_NODE_S
            return lost_recently, mine.count(node) / nodes[node], -nodes[node], node

        return rank

    def _pack_ref(self, pack_yaml: str) -> Any:
        """The pack's text in the object store, put once per distinct content."""
        import ray

        digest = hashlib.sha256(pack_yaml.encode("utf-8")).hexdigest()
        if digest not in self._packs:
            self._packs[digest] = ray.put(pack_yaml)
        return self._packs[digest]

    def close(self) -> None:
        """End the workers (their models' memory goes back to the speech machines)."""

        self._closed = True
        for slot in self._slots:
            _kill(slot.actor)
        self._slots.clear()
        self._packs.clear()


def speech_nodes() -> dict[str, float]:
    """Live nodes that give the cluster ``callbuffer_speech`` cores: node id -> cores."""
    import ray

    return {
        node["NodeID"]: float(node["Resources"][SPEECH_RESOURCE])
        for node in ray.nodes()
        if node.get("Alive") and node.get("Resources", {}).get(SPEECH_RESOURCE)
    }


def _lost_errors() -> tuple[type[Exception], ...]:
    """Ray's ways of saying an attempt's worker, its machine or its result is gone (not the audit's
    fault): the recording may go again."""
    from ray import exceptions as rex

    return (
        rex.RayActorError,
        rex.ActorUnschedulableError,
        rex.ObjectLostError,
        rex.NodeDiedError,
        rex.WorkerCrashedError,
        rex.OutOfMemoryError,
    )


def _kill(actor: Any) -> None:
    """End an audit worker, whether or not it is still there."""
    import ray

    with contextlib.suppress(ValueError):  # Ray's word for a handle whose actor is gone
        ray.kill(actor, no_restart=True)


def _read(path: Path) -> bytes:
    """A recording's bytes; :class:`AuditError` when it cannot be read (as the in-process audit says)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AuditError(path, f"cannot read: {exc.strerror or exc}") from exc


class ClusterAuditor:
    """The server's upload queue on the cluster: ``audit(path, options, pack_yaml)`` one recording at a
    time on one audit worker, joining the cluster and starting the worker at the first upload."""

    def __init__(self, settings: Settings, pack_yaml: Callable[[], str]) -> None:
        self._settings = settings
        self._pack_yaml = pack_yaml
        self._pool: ClusterAuditPool | None = None

    def __call__(self, path: Path, options: AuditOptions) -> dict[str, Any]:
        """`path`'s report, heard with `options` and judged by the pack `pack_yaml()` gives now."""
        if self._pool is None:
            self._pool = ClusterAuditPool.for_settings(self._settings, parallel=1)
        job = AuditJob(path, file_sha256(path), options, self._pack_yaml())
        return self._pool.audit(job)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
