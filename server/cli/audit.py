"""`callbuffer audit PATH...`: QA reports for recorded calls, in batches, resumable.

Registered in :mod:`server.cli.main` with ``main.add_command(audit)``. It does not import
``server.cli.main`` (which imports this module to register the command), so the few option helpers it
needs are its own.

A batch: PATHs are files or folders (searched recursively for wav, mp3, ogg, opus, flac). Each file is
hashed; a file already audited with the same settings (``index.jsonl`` in the output folder, keyed by the
file's SHA-256 and the settings) is skipped unless ``--force``, so an interrupted batch picks up where it
stopped. Models load once, only when some file needs auditing. A file that cannot be audited (corrupt,
empty, unreadable) is reported on stderr with the reason and skipped; the exit code is 1 only when every
file failed. Only one summary row per call stays in memory, never the reports.

With ``--ray ADDRESS`` (or ``CALLBUFFER_RAY``) the same batch is audited by workers on the Ray cluster's
speech machines, ``--parallel`` recordings at once (:mod:`server.cli.audit_cluster`,
:mod:`server.cluster.audit_pool`): same index, progress bar, reports, summary and skipped bad files, the
reports written as they come back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from models.audit import (
    BATCH_SIZE,
    SCHEMA_VERSION,
    AuditError,
    AuditOptions,
    Auditor,
    file_sha256,
    transcribe_options,
)
from models.packs import default_pack_path
from server.access.store import USER_NAME_PATTERN
from server.audits.reports import FORMATS, SummaryRow, render_to, summary_row, write_report, write_summary
from server.cli.settings import encoder_option, pack_option, ray_option, settings_from
from server.cluster.audit_pool import DEFAULT_PARALLEL
from server.config import Settings

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".ogg", ".opus", ".flac"})
INDEX_NAME = "index.jsonl"
DEFAULT_OUT = Path("callbuffer-audit")


class AuditSetupError(Exception):
    """The batch cannot start: models that do not load, an output folder that cannot be written."""


@dataclass
class BatchResult:
    """Counts of a batch and the summary rows of its calls (audited now or earlier)."""

    audited: int = 0
    skipped: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    rows: list[SummaryRow] = field(default_factory=list)
    resent: int = 0  # with --ray: recordings sent again after their audit worker was lost

    @property
    def exit_code(self) -> int:
        """1 when something was tried and nothing succeeded, else 0."""
        return 1 if self.failed and not (self.audited or self.skipped) else 0


# -------------------------------------------------------------------------------------------- files


def find_audio(paths: tuple[Path, ...], problems: list[str]) -> list[Path]:
    """Audio files under ``paths`` (files as given, folders recursively, sorted); what cannot be read is
    appended to ``problems`` as a message and skipped."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(_walk(path, problems))
        elif path.is_file():
            found.append(path)
        elif path.exists():
            problems.append(f"{path}: not a regular file or folder")
        else:
            problems.append(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def _walk(folder: Path, problems: list[str]) -> Iterator[Path]:
    def report(exc: OSError) -> None:
        problems.append(f"{exc.filename or folder}: cannot read folder ({exc.strerror or exc})")

    if not os.access(folder, os.R_OK | os.X_OK):
        problems.append(f"{folder}: cannot read folder (permission denied)")
        return
    for root, dirs, files in os.walk(folder, onerror=report):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                yield Path(root) / name


# -------------------------------------------------------------------------------------------- index


class AuditIndex:
    """``index.jsonl`` in the output folder: one line per audited (file content, settings), appended as
    each call finishes, so a crash loses at most the call in progress."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.is_file():
            self._load()

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry
                except (ValueError, KeyError, TypeError):
                    logger.warning("%s line %d is not an index entry; ignored", self.path, number)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def add(self, entry: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self.entries[entry["key"]] = entry


def settings_key(settings: Settings, options: AuditOptions, agent: str | None = None) -> str:
    """A digest of everything that changes a report: roles, language, masking, pack file content,
    encoder, Whisper model, transcription settings, the report schema, and the agent named (only when one
    is, so batches run before ``--agent`` existed keep their keys)."""
    pack_path = settings.pack or default_pack_path()
    try:
        pack_digest = file_sha256(pack_path)
    except AuditError:
        pack_digest = str(pack_path)
    parts = {
        "roles": list(options.roles),
        "language": options.language,
        "mask": options.mask,
        "pack": pack_digest,
        "encoder": settings.encoder,
        "whisper": settings.whisper_model,
        "transcribe": transcribe_options(options.language),
        "batch_size": BATCH_SIZE,
        "schema": SCHEMA_VERSION,
    }
    if agent is not None:
        parts["agent"] = agent
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def report_stem(path: Path, key: str) -> str:
    """A file name for a call's reports: its stem (safe characters only) and the start of its key."""
    safe = re.sub(r"[^\w.-]+", "_", path.stem)[:80] or "call"
    return f"{safe}-{key[:12]}"


# -------------------------------------------------------------------------------------------- batch


@dataclass(frozen=True)
class PendingCall:
    """A file the batch has to audit: its path, content digest and index key."""

    path: Path
    sha256: str
    key: str


class BatchAuditor:
    """Runs a batch: skip what the index has, audit the rest with models loaded on first need."""

    def __init__(
        self,
        settings: Settings,
        options: AuditOptions,
        out_dir: Path,
        fmt: str,
        force: bool,
        agent: str | None = None,
    ) -> None:
        self.settings, self.options, self.out_dir, self.fmt, self.force = (
            settings,
            options,
            out_dir,
            fmt,
            force,
        )
        self.agent = agent  # named in each report; part of the index key only when given
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self.index = AuditIndex(out_dir / INDEX_NAME)
        except OSError as exc:
            raise AuditSetupError(f"cannot use output folder {out_dir}: {exc.strerror or exc}") from exc
        self.settings_key = settings_key(settings, options, agent)
        self._auditor: Auditor | None = None

    def auditor(self) -> Auditor:
        """The auditor, loading Whisper and the classifier the first time a file needs them."""
        if self._auditor is None:
            self._auditor = load_auditor(self.settings)
        return self._auditor

    def run_one(self, path: Path, result: BatchResult) -> None:
        """Audit (or skip) one file, updating ``result``; raises :class:`AuditError` for a bad file."""
        call = self.lookup(path, result)
        if call is not None:
            self.record(call, self.auditor().audit(path, self.options, sha256=call.sha256).to_dict(), result)

    def lookup(self, path: Path, result: BatchResult) -> PendingCall | None:
        """The file to audit, or None when the index has it already (counted in ``result`` as skipped);
        :class:`AuditError` when it cannot be read."""
        digest = file_sha256(path)
        key = hashlib.sha256(f"{digest}:{self.settings_key}".encode()).hexdigest()
        entry = self.index.get(key)
        if entry is not None and not self.force and self._reuse(entry):
            result.skipped += 1
            result.audio_seconds += entry["summary"]["duration"]
            result.rows.append(SummaryRow.from_dict(entry["summary"]))
            logger.info("%s: already audited (%s)", path, entry["report"])
            return None
        return PendingCall(path, digest, key)

    def record(self, call: PendingCall, report: dict[str, Any], result: BatchResult) -> None:
        """Write a call's reports and its index line, and count it; :class:`AuditError` when the reports
        cannot be written."""
        path, digest, key = call.path, call.sha256, call.key
        if self.agent is not None:
            report = {**report, "agent": self.agent}
        try:
            written = write_report(report, self.out_dir, report_stem(path, key), self.fmt)
        except OSError as exc:
            raise AuditError(path, f"cannot write the report: {exc.strerror or exc}") from exc
        row = summary_row(report, written[0])
        self.index.add(
            {
                "key": key,
                "sha256": digest,
                "source": str(path),
                "report": str(written[0]),
                "summary": row.to_dict(),
            }
        )
        result.audited += 1
        result.audio_seconds += report["duration"]
        result.rows.append(row)

    def _reuse(self, entry: dict[str, Any]) -> bool:
        """Whether an indexed report is still there, rendering the requested format from it if missing."""
        json_path = Path(entry["report"])
        if not json_path.is_file():
            return False
        wanted = json_path.with_suffix(f".{self.fmt}")
        if not wanted.is_file():
            try:
                render_to(json.loads(json_path.read_text(encoding="utf-8")), wanted, self.fmt)
            except (OSError, ValueError, KeyError) as exc:
                logger.warning("cannot re-render %s (%s); auditing again", json_path, exc)
                return False
        return True


def load_auditor(settings: Settings) -> Auditor:
    """Whisper and the classifier, once for the batch; :class:`AuditSetupError` when they cannot load."""
    from models.encoders import EncoderError
    from models.packs import PackError
    from models.whisper_model import ModelUnavailableError
    from server.audits.jobs import make_auditor
    from server.live.engine import build_classifier

    try:
        return make_auditor(settings, build_classifier(settings))
    except (PackError, EncoderError, ModelUnavailableError, OSError) as exc:
        raise AuditSetupError(f"cannot load the models: {exc}") from exc


# ---------------------------------------------------------------------------------------------- CLI


def _agent(agent: str | None) -> str | None:
    """The --agent value stripped (None when empty); a name no user could have is a usage error."""
    agent = (agent or "").strip() or None
    if agent is not None and not re.match(USER_NAME_PATTERN, agent):
        raise click.BadParameter(
            f"{agent!r} is not a user name (letters, digits and . _ @ -, up to 64)", param_hint="--agent"
        )
    return agent


def _options(channels: str, language: str | None, keep_pii: bool) -> AuditOptions:
    roles = tuple(r.strip() for r in channels.split(",") if r.strip())
    try:
        return AuditOptions(roles=roles, language=language, mask=not keep_pii)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--channels") from exc


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Folder for the reports, the summary and the index of audited calls.",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True)
@click.option(
    "--channels", default="agent,customer", show_default=True, help="Role of each channel, left first."
)
@click.option("--language", type=click.Choice(["ru", "en"]), default=None, help="Pin the language.")
@click.option("--force", is_flag=True, help="Audit again files already in the index.")
@click.option("--agent", default=None, help="The agent user on the calls (a user name), kept in the reports.")
@click.option("--keep-pii", is_flag=True, help="Do not mask phone, card and ID numbers in the reports.")
@pack_option
@encoder_option
@ray_option
@click.option(
    "--parallel",
    type=click.IntRange(1, 256),
    default=DEFAULT_PARALLEL,
    show_default=True,
    help="With --ray: recordings audited at once, one speech core each, below live calls' priority.",
)
def audit(
    paths: tuple[Path, ...],
    out_dir: Path,
    fmt: str,
    channels: str,
    language: str | None,
    force: bool,
    agent: str | None,
    keep_pii: bool,
    pack: Path | None,
    encoder: str | None,
    ray: str | None,
    parallel: int,
) -> None:
    """Audit recorded calls: transcript by speaker, flagged moments, scorecard, talk time, per call.

    PATHS are audio files or folders (searched recursively for wav, mp3, ogg, opus, flac). Writes
    <name>-<key>.json (and .html or .csv with --format) per call, and summary.json (+ summary.csv or
    summary.html) ranking the calls worst score first. With --ray the recordings are sent to audit
    workers on the cluster's speech machines, --parallel at once.
    """
    settings = settings_from(pack=pack, encoder=encoder, ray=ray)
    options = _options(channels, language, keep_pii)
    agent = _agent(agent)
    problems: list[str] = []
    files = find_audio(paths, problems)
    result = BatchResult(failed=len(problems))
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    try:
        batch = BatchAuditor(settings, options, out_dir, fmt, force, agent)
        if settings.ray:
            from server.cli.audit_cluster import run_on_cluster

            run_on_cluster(batch, files, result, parallel)
        else:
            _run(batch, files, result)
    except AuditSetupError as exc:
        raise click.ClickException(str(exc)) from exc
    if result.rows:
        write_summary(result.rows, out_dir, fmt)
    resent = f"; {result.resent} sent again after their worker was lost" if result.resent else ""
    click.echo(
        f"audited {result.audited}, already audited {result.skipped}, failed {result.failed}; "
        f"{result.audio_seconds / 60:.1f} audio min; reports in {out_dir}{resent}",
        err=True,
    )
    sys.exit(result.exit_code)


def _run(batch: BatchAuditor, files: list[Path], result: BatchResult) -> None:
    def show(item: Path | None) -> str:
        return f"{result.audio_seconds / 60:.1f} audio min" + (f"  {item.name}" if item is not None else "")

    with click.progressbar(files, label="auditing", file=sys.stderr, item_show_func=show) as bar:
        for path in bar:
            try:
                batch.run_one(path, result)
            except AuditError as exc:
                result.failed += 1
                click.echo(f"\nerror: {path}: {exc.reason} (skipped)", err=True)


if __name__ == "__main__":  # python -m server.cli.audit, until the command is registered in server.cli.main
    audit()
