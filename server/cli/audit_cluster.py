"""``callbuffer audit --ray ADDRESS``: the batch of :mod:`server.cli.audit` on the cluster's audit workers.

The batch is the same: each file hashed and looked up in ``index.jsonl`` here (skipped when audited with
the same settings), reports and index lines written here as each call comes back, bad files reported on
stderr and skipped, the same progress bar and summary. Only the audits move: the files still to audit are
fanned out to :class:`server.cluster.audit_pool.ClusterAuditPool`, ``--parallel`` at once, and come back
in the order they finish. The cluster is joined, and its workers started, only when some file needs
auditing, so a batch that was all audited before touches no cluster.
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from models.audit import AuditError
from models.packs import PackError, default_pack_path, parse_pack
from server.cli.audit import AuditSetupError, BatchAuditor, BatchResult, PendingCall
from server.cluster.actors import ClusterError
from server.cluster.audit_pool import AuditJob, AuditOutcome, ClusterAuditPool

logger = logging.getLogger(__name__)


def run_on_cluster(batch: BatchAuditor, files: list[Path], result: BatchResult, parallel: int) -> None:
    """Audit `files` on the cluster at ``batch.settings.ray``, updating `result`;
    :class:`AuditSetupError` when the cluster or its workers cannot audit at all."""

    def show(item: Path | None) -> str:
        return f"{result.audio_seconds / 60:.1f} audio min" + (f"  {item.name}" if item is not None else "")

    with click.progressbar(length=len(files), label="auditing", file=sys.stderr, item_show_func=show) as bar:

        def to_audit() -> Iterator[PendingCall]:
            for path in files:
                try:
                    call = batch.lookup(path, result)
                except AuditError as exc:
                    _failed(result, path, exc.reason)
                    call = None
                if call is None:
                    bar.update(1, path)
                    continue
                yield call

        calls = to_audit()
        first = next(calls, None)
        if first is None:
            return
        pack_yaml = _pack_text(batch)
        try:
            pool = ClusterAuditPool.for_settings(batch.settings, parallel=parallel)
        except ClusterError as exc:
            raise AuditSetupError(str(exc)) from exc
        jobs = (
            AuditJob(call.path, call.sha256, batch.options, pack_yaml, tag=call)
            for call in itertools.chain([first], calls)
        )
        try:
            for outcome in pool.run(jobs):
                _record(batch, outcome, result)
                bar.update(1, outcome.job.source)
        except ClusterError as exc:  # the workers cannot load the models, or no speech machine is left
            raise AuditSetupError(str(exc)) from exc
        finally:
            result.resent += pool.retried
            pool.close()
        nodes = {node for _, node in pool.started}
        click.echo(
            f"\non the Ray cluster at {batch.settings.ray}: {len(pool.started)} audit workers on "
            f"{len(nodes)} speech machines",
            err=True,
        )


def _record(batch: BatchAuditor, outcome: AuditOutcome, result: BatchResult) -> None:
    """Write a finished call's reports and index line, or report why it failed."""
    path = outcome.job.source
    if outcome.error is not None:
        reason = outcome.error.reason if isinstance(outcome.error, AuditError) else str(outcome.error)
        _failed(result, path, reason)
        return
    assert outcome.report is not None
    try:
        batch.record(outcome.job.tag, outcome.report, result)
    except AuditError as exc:
        _failed(result, path, exc.reason)


def _failed(result: BatchResult, path: Path, reason: str) -> None:
    result.failed += 1
    click.echo(f"\nerror: {path}: {reason} (skipped)", err=True)


def _pack_text(batch: BatchAuditor) -> str:
    """The pack file's text, sent with every audit (checked here, so a bad pack fails before any)."""
    path = batch.settings.pack or default_pack_path()
    try:
        text = path.read_text(encoding="utf-8")
        parse_pack(text, source=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditSetupError(f"cannot read the pack {path}: {exc}") from exc
    except PackError as exc:
        raise AuditSetupError(f"cannot load the models: {exc}") from exc
    return text
