"""Running uploaded recordings through the audit, one at a time, on a background thread.

Audits are batch work: they take the CPU that live calls leave, one recording at a time, in upload order.
A recording that cannot be audited (corrupt, empty, no speech) is marked failed with the reason and the
queue goes on. Recordings still queued when the server stopped are picked up at the next start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.audits.store import AuditStore

if TYPE_CHECKING:
    from models.audit import Auditor
    from models.classifier import PhraseClassifier
    from server.config import Settings
    from server.live.engine import LiveEngine

logger = logging.getLogger(__name__)

# (recording path, job options) -> report dict (models.audit's CallReport.to_dict()).
AuditFn = Callable[[Path, dict[str, Any]], dict[str, Any]]


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


def make_auditor(settings: Settings, classifier: PhraseClassifier) -> Auditor:
    """An auditor with the configured Whisper (loaded once per process, batched over a channel's speech)
    and `classifier`: what `callbuffer audit`, uploads and the trainer's labelled calls all hear with."""
    from models.audit import Auditor, batched
    from models.decoder_prompt import decoder_prompts
    from models.whisper_model import load_whisper

    pipeline, extra = batched(load_whisper(settings.whisper_model, cache_dir=settings.cache_dir))
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
    model loads at the first upload, on the audit thread, so the server starts as fast without audits."""
    from models.audit import AuditError, AuditOptions

    def run(path: Path, options: dict[str, Any]) -> dict[str, Any]:
        auditor = make_auditor(settings, engine.classifier)
        audit_options = AuditOptions(
            roles=tuple(options.get("channels") or ("agent", "customer")),
            language=options.get("language"),
            mask=not options.get("keep_pii", False),
        )
        return auditor.audit(path, audit_options).to_dict()

    return run, (AuditError, ValueError)
