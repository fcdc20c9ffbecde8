"""An audit worker: :class:`models.audit.Auditor` in a Ray actor on a speech machine of the cluster.

The recording lives on the machine that asked for the audit (the ``callbuffer audit`` machine, or the
front-end an upload reached), so the worker gets its bytes, writes them to a temporary file here, audits
it exactly as :func:`server.audits.jobs.make_auditor` does in process (batched Whisper, the classifier of
the pack sent, the same decoder prompts), and returns the report dict (``CallReport.to_dict()``) with the
caller's path as ``source``. Whisper and the encoder load once per worker process (on its first audit);
the classifier is built once per pack content (the pack's YAML text comes with every audit, so a
trainer's newly published version is heard with at once) and kept for the next audits, the last
:data:`KEPT_PACKS` of them.

Batch work runs below live calls: the worker puts itself in Linux's ``SCHED_IDLE`` scheduling class
before loading anything (every thread it starts inherits it). Ray runs the live speech workers at its
worker niceness (15 by default); against one of them on a core, a ``SCHED_IDLE`` thread gets a CFS weight
of 3 to its 36, under a tenth of the core, and all of a core nobody else wants. Lowering ``nice`` would
not do: at 19 an audit would still take three tenths of a core from a live worker at 15. Whisper runs on
one thread: one audit is one core at most.

A recording that cannot be audited raises :class:`models.audit.AuditError` naming the caller's path
(never the temporary one); models that cannot load raise :class:`WorkerSetupError`. This module imports
no Ray: :mod:`server.cluster.audit_pool` makes the class an actor.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.audit import AuditError, AuditOptions

if TYPE_CHECKING:
    from models.audit import Auditor
    from models.encoders import Encoder

logger = logging.getLogger(__name__)

KEPT_PACKS = 4  # classifiers of distinct pack contents a worker keeps
LOWEST_NICE = 19  # where SCHED_IDLE is missing


class WorkerSetupError(RuntimeError):
    """The audit worker could not load Whisper, the encoder or the pack: no recording can be audited."""


class AuditWorker:
    """Audits recordings sent as bytes with Whisper ``whisper_model`` and encoder ``encoder``.

    ``whisper_prompt``: Whisper reads the pack's decoder prompt first, as in process
    (``CALLBUFFER_WHISPER_PROMPT`` of the caller)."""

    def __init__(self, whisper_model: str, encoder: str, whisper_prompt: bool) -> None:
        run_when_idle()
        self._spec = {"whisper_model": whisper_model, "encoder": encoder, "whisper_prompt": whisper_prompt}
        self._encoder: Encoder | None = None
        self._auditors: OrderedDict[str, Auditor] = OrderedDict()
        self._audits = 0
        self._busy = 0.0
        logger.info("audit worker on %s (pid %d), %s", socket.gethostname(), os.getpid(), priority())

    def audit(
        self, data: bytes, source: str, sha256: str, options: AuditOptions, pack_yaml: str
    ) -> dict[str, Any]:
        """The report of the recording `data` (the bytes of the caller's file `source`, whose SHA-256 the
        caller computed), heard with `options` and judged by the pack `pack_yaml`."""
        run_when_idle()  # Linux: the policy is per thread; Ray may run this on another one
        auditor = self._auditor(pack_yaml)
        started = time.perf_counter()
        suffix = Path(source).suffix.lower()
        with tempfile.TemporaryDirectory(prefix="callbuffer-audit-") as folder:
            path = Path(folder) / f"recording{suffix}"
            path.write_bytes(data)
            try:
                report = auditor.audit(path, options, sha256=sha256).to_dict()
            except AuditError as exc:  # the caller's path, and no trace of the temporary one
                raise AuditError(source, exc.reason.replace(str(path), source)) from None
            finally:
                self._audits += 1
                self._busy += time.perf_counter() - started
        report["source"] = source
        return report

    def where(self) -> dict[str, object]:
        """Host, Ray node, process, CPU priority, audits done and seconds spent on them: for tests and
        operators."""
        import ray

        return {
            "host": socket.gethostname(),
            "node": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "priority": priority(),
            "audits": self._audits,
            "busy_seconds": round(self._busy, 3),
        }

    def _auditor(self, pack_yaml: str) -> Auditor:
        """The auditor for this pack content: built the first time, then kept (the last KEPT_PACKS)."""
        digest = hashlib.sha256(pack_yaml.encode("utf-8")).hexdigest()
        if digest in self._auditors:
            self._auditors.move_to_end(digest)
            return self._auditors[digest]
        from models.encoders import EncoderError
        from models.packs import PackError
        from models.whisper_model import ModelUnavailableError

        started = time.perf_counter()
        try:
            auditor = self._build(pack_yaml)
        except (PackError, EncoderError, ModelUnavailableError, OSError) as exc:
            raise WorkerSetupError(f"cannot load the models on {socket.gethostname()}: {exc}") from None
        self._auditors[digest] = auditor
        while len(self._auditors) > KEPT_PACKS:
            self._auditors.popitem(last=False)
        logger.info(
            "audit worker: pack %s v%d ready in %.1f s",
            auditor.classifier.pack.name,
            auditor.classifier.pack.version,
            time.perf_counter() - started,
        )
        return auditor

    def _build(self, pack_yaml: str) -> Auditor:
        from models.classifier import PhraseClassifier
        from models.encoders import get_encoder
        from models.heard import load_heard
        from models.packs import parse_pack
        from server.audits.jobs import make_auditor
        from server.config import Settings

        # the caller's model choices; this machine's own cache directory (CALLBUFFER_CACHE_DIR)
        settings = Settings(**self._spec)
        if self._encoder is None:
            self._encoder = get_encoder(settings.encoder, settings.cache_dir)
        pack = parse_pack(pack_yaml, source="the pack sent with the audit")
        classifier = PhraseClassifier(pack, self._encoder, cache_dir=settings.cache_dir, heard=load_heard())
        return make_auditor(settings, classifier, cpu_threads=1)


def run_when_idle() -> None:
    """Put the calling thread (and the threads it starts) in the ``SCHED_IDLE`` class; where there is
    none (not Linux), at the lowest ``nice`` instead. Lowering one's own priority needs no privilege."""
    if hasattr(os, "SCHED_IDLE"):
        if os.sched_getscheduler(0) != os.SCHED_IDLE:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif os.getpriority(os.PRIO_PROCESS, 0) < LOWEST_NICE:
        os.setpriority(os.PRIO_PROCESS, 0, LOWEST_NICE)


def priority() -> str:
    """The calling thread's scheduling: ``idle`` (SCHED_IDLE) or ``nice N``."""
    if hasattr(os, "SCHED_IDLE") and os.sched_getscheduler(0) == os.SCHED_IDLE:
        return "idle"
    return f"nice {os.getpriority(os.PRIO_PROCESS, 0)}"
