"""Running uploaded recordings through the audit, one at a time, on a background thread.

Audits are batch work: they take the CPU that live calls leave, one recording at a time, in upload order.
With ``CALLBUFFER_RAY`` (``serve --ray``) each runs on an audit worker on the cluster's speech machines
(:mod:`server.cluster.audit_pool`), below the live speech workers' priority, and the server loads no
Whisper for audits.
A recording that cannot be audited (corrupt, empty, no speech) is marked failed with the reason and the
queue goes on. Recordings still queued when the server stopped are picked up at the next start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from server.audits.store import AuditStore

if TYPE_CHECKING:
    from models.audit import AuditOptions, Auditor
    from models.classifier import TurnClassifier
    from server.cluster.audit_pool import ClusterAuditor
    from server.config import Settings
    from server.live.engine import LiveEngine

logger = logging.getLogger(__name__)

# (recording path, job options) -> report dict (models.audit's CallReport.to_dict()).
AuditFn = Callable[[Path, dict[str, Any]], dict[str, Any]]
# The same with the options as the audit's: an auditor here (in_process) or a cluster's audit worker.
ReportFn = Callable[[Path, "AuditOptions"], dict[str, Any]]


@runtime_checkable
class Closable(Protocol):
    """An audit function holding something to end with the runner (the cluster's audit worker)."""

    def close(self) -> None: ...


class AuditRunner:
    """Works through the store's queued recordings with `audit`; `wake()` after adding some."""

    def __init__(
        self, store: AuditStore, audit: AuditFn, expected_errors: tuple[type[Exception], ...]
    ) -> None:
        self._store = store
        self._audit = audit
        self._expected = expected_errors
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="audits", daemon=True)
        self._thread.start()
        self._wake.set()  # pick up what a previous run left queued

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued (for tests and shutdown)."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=600)
        if isinstance(self._audit, Closable):
            self._audit.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            while not self._stop.is_set() and (queued := self._store.queued()):
                self._run_one(queued[0].id, Path(queued[0].audio_path), queued[0].job_id)
            self._idle.set()

    def _run_one(self, call_id: str, path: Path, job_id: str) -> None:
        self._store.mark_running(call_id)
        try:
            report = self._audit(path, self._store.job_options(job_id))
        except self._expected as exc:
            logger.warning("audit of %s failed: %s", call_id, exc)
            self._store.mark_failed(call_id, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a background job's boundary: record it, keep the queue going
            logger.exception("audit of %s failed unexpectedly", call_id)
            self._store.mark_failed(call_id, f"internal error: {type(exc).__name__}")
            return
        self._store.save_report(call_id, report)
        logger.info("audited %s: score %s", call_id, (report.get("scorecard") or {}).get("score"))


def make_auditor(settings: Settings, classifier: TurnClassifier, *, cpu_threads: int = 0) -> Auditor:
    """An auditor with the configured Whisper (loaded once per process, batched over a channel's speech)
    and `classifier`: what `callbuffer audit`, uploads, the trainer's labelled calls and the cluster's
    audit workers all hear with. ``cpu_threads``: CTranslate2's threads (0: its choice; an audit worker on
    the cluster uses one core)."""
    from models.audit import Auditor, batched
    from models.decoder_prompt import decoder_prompts
    from models.whisper_model import load_whisper

    model = load_whisper(settings.whisper_model, cpu_threads=cpu_threads, cache_dir=settings.cache_dir)
    pipeline, extra = batched(model)
    return Auditor(
        pipeline,
        classifier,
        model_info={"whisper": settings.whisper_model, "encoder": settings.encoder},
        transcribe_extra=extra,
        prompts=decoder_prompts(classifier.pack) if settings.whisper_prompt else None,
    )


def audit_function(settings: Settings, engine: LiveEngine) -> tuple[AuditFn, tuple[type[Exception], ...]]:
    """The audit the server runs on uploads (the live engine's classifier of the active pack, Whisper's
    full window), and the errors that mean "this recording cannot be audited" rather than a fault. The
    model loads at the first upload, on the audit thread, so the server starts as fast without audits.

    With ``settings.ray`` the audit runs on an audit worker on the cluster's speech machines instead
    (:class:`server.cluster.audit_pool.ClusterAuditor`, the active pack sent with each recording), and
    this process loads no Whisper for it; a recording whose workers kept dying fails with the reason."""
    from models.audit import AuditError

    if settings.ray:
        return _cluster_audit(settings, engine)

    def run(path: Path, options: dict[str, Any]) -> dict[str, Any]:
        return in_process(make_auditor(settings, engine.classifier))(path, audit_options(options))

    return run, (AuditError, ValueError)


def in_process(auditor: Auditor) -> ReportFn:
    """The reports of `auditor`, in this process."""
    return lambda path, options: auditor.audit(path, options).to_dict()


def report_function(settings: Settings, classifier: TurnClassifier) -> tuple[ReportFn, Callable[[], None]]:
    """Reports judged by `classifier`'s pack, and what to call when done: in this process (Whisper loaded
    here), or with ``settings.ray`` on an audit worker of the cluster, ended when done (this process then
    loads no model)."""
    if not settings.ray:
        return in_process(make_auditor(settings, classifier)), lambda: None
    from models.packs import dump_pack
    from server.cluster.audit_pool import ClusterAuditor

    cluster = ClusterAuditor(settings, lambda: dump_pack(classifier.pack))
    return cluster, cluster.close


def audit_options(options: dict[str, Any]) -> AuditOptions:
    """A job's stored options (``channels``, ``language``, ``keep_pii``) as the audit's."""
    from models.audit import AuditOptions

    return AuditOptions(
        roles=tuple(options.get("channels") or ("agent", "customer")),
        language=options.get("language"),
        mask=not options.get("keep_pii", False),
    )


def _cluster_audit(settings: Settings, engine: LiveEngine) -> tuple[AuditFn, tuple[type[Exception], ...]]:
    from models.audit import AuditError
    from models.packs import dump_pack
    from server.cluster.actors import ClusterError
    from server.cluster.audit_pool import ClusterAuditor

    cluster = ClusterAuditor(settings, lambda: dump_pack(engine.classifier.pack))
    return _OnCluster(cluster), (AuditError, ValueError, ClusterError)


class _OnCluster:
    """The upload audit on the cluster; ``close()`` (by :meth:`AuditRunner.close`) ends its worker."""

    def __init__(self, cluster: ClusterAuditor) -> None:
        self._cluster = cluster

    def __call__(self, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        return self._cluster(path, audit_options(options))

    def close(self) -> None:
        self._cluster.close()
