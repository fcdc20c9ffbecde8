"""Audit speed and memory: the audit against plain faster-whisper on the same 8 kHz stereo calls.

Builds the calls of ``bench/data/calls/*.yaml`` (or takes ``--folder``), writes them as 8 kHz μ-law
stereo WAV, then for each distinct call times plain faster-whisper long-form transcription of both
channels with the audit's own settings (``models.audit.transcribe_options``, same model) and the full
audit (decode, transcribe, filter, classify, score, mask), alternating which goes first. Then audits
``--calls`` files (copies of the few calls under new names) printing RSS every 10 calls, to show memory
stays flat. ``--batched`` runs both sides through ``faster_whisper.BatchedInferencePipeline``.

``--ray-workers N`` measures audit throughput on a Ray cluster instead: a local cluster on this machine
(a head with no speech cores, N one-core speech nodes), the ``--calls`` files fanned out by
:class:`server.cluster.audit_pool.ClusterAuditPool`, N at once, as ``callbuffer audit --ray`` does, after
one warm-up audit per worker (model loading). ``--ray-workers 0`` audits the same files in this process, one
after another, as ``callbuffer audit`` does (batched Whisper on every core).

    python bench/bench_audit.py --calls 100
    python bench/bench_audit.py --calls 8 --ray-workers 0   # then 1, then 2
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_latency as latency  # noqa: E402

from audio.decode import decode_file  # noqa: E402
from models.audit import AuditOptions, Auditor, transcribe_channel  # noqa: E402

logger = logging.getLogger("bench_audit")
CALLS = Path(__file__).resolve().parent / "data" / "calls"


def rss_mb() -> float:
    """Current resident memory in MB (Linux /proc), else the peak."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_calls(folder: Path) -> list[tuple[Path, str]]:
    """The two complaint scripts spoken into 8 kHz μ-law stereo WAVs: (path, language)."""
    from audio.synth import build_call, load_script

    made = []
    for script in (CALLS / "ru-complaint.yaml", CALLS / "en-complaint.yaml"):
        path = build_call(load_script(script)).write_wav(folder / f"{script.stem}.wav", "mulaw")
        made.append((path, script.stem[:2]))
    return made


def plain(model, path: Path, language: str | None, extra: dict) -> float:
    """Seconds for decode + plain long-form transcription of every channel, same settings as the audit."""
    started = time.perf_counter()
    decoded = decode_file(path, sample_rate=16000)
    for channel in decoded.samples:
        transcribe_channel(model, channel, language, **extra)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20, help="files to audit for the memory run")
    parser.add_argument("--folder", type=Path, help="8 kHz stereo calls to use instead of synthesizing")
    parser.add_argument("--batched", action="store_true", help="BatchedInferencePipeline on both sides")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--ray-workers",
        type=int,
        default=None,
        help="audit throughput only: on a local cluster of N one-core speech nodes (0: in this process)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.ray_workers is not None:
        throughput(args.ray_workers, args.calls, args.folder)
        return

    from models.whisper_model import load_whisper
    from server.config import Settings
    from server.live.engine import build_classifier

    settings = Settings()
    model = load_whisper(settings.whisper_model, cache_dir=settings.cache_dir)
    extra: dict = {}
    if args.batched:
        from faster_whisper import BatchedInferencePipeline

        model, extra = BatchedInferencePipeline(model), {"batch_size": args.batch_size}
    auditor = Auditor(model, build_classifier(settings), transcribe_extra=extra)

    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        work = Path(tmp)
        found = [(p, None) for p in sorted(args.folder.glob("*.wav"))] if args.folder else None
        calls = found or build_calls(work)
        # warm-up: first inference pays for allocations
        auditor.audit(calls[0][0], AuditOptions(language=calls[0][1]))
        audio = plain_s = audit_s = 0.0
        for i, (path, lang) in enumerate(calls):
            duration = decode_file(path, sample_rate=8000).duration
            order = ("plain", "audit") if i % 2 == 0 else ("audit", "plain")
            took = {}
            for side in order:
                if side == "plain":
                    took[side] = plain(model, path, lang, extra)
                else:
                    started = time.perf_counter()
                    auditor.audit(path, AuditOptions(language=lang))
                    took[side] = time.perf_counter() - started
            audio, plain_s, audit_s = audio + duration, plain_s + took["plain"], audit_s + took["audit"]
            print(
                f"{path.name}: {duration:.1f} s audio; plain {took['plain']:.2f} s "
                f"({duration / took['plain']:.1f}x); "
                f"audit {took['audit']:.2f} s ({duration / took['audit']:.1f}x)"
            )
        print(
            f"total {audio:.1f} s of call audio (2 channels each): plain {plain_s:.2f} s = "
            f"{audio / plain_s:.1f}x real time; audit {audit_s:.2f} s = {audio / audit_s:.1f}x real time; "
            f"overhead {100 * (audit_s / plain_s - 1):+.1f} %"
        )
        memory_run(auditor, calls, args.calls, work)


def memory_run(auditor: Auditor, calls: list[tuple[Path, str | None]], count: int, work: Path) -> None:
    """Audit ``count`` copies of the calls under new names, printing RSS every 10 (reports discarded)."""
    copies = work / "copies"
    copies.mkdir()
    started, audio = time.perf_counter(), 0.0
    print(f"memory run over {count} calls; RSS {rss_mb():.0f} MB before")
    for n in range(1, count + 1):
        src, lang = calls[n % len(calls)]
        path = copies / f"call-{n:04d}.wav"
        shutil.copyfile(src, path)
        audio += auditor.audit(path, AuditOptions(language=lang)).duration
        path.unlink()
        if n % 10 == 0 or n == count:
            wall = time.perf_counter() - started
            print(
                f"  {n} calls, {audio / 60:.1f} audio min, {audio / wall:.1f}x real time, "
                f"RSS {rss_mb():.0f} MB"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


def throughput(workers: int, count: int, folder: Path | None) -> None:
    """Audit ``count`` copies of the calls, in this process (``workers`` 0) or on a local cluster of
    ``workers`` one-core speech nodes, ``workers`` at once; print audio seconds per wall second."""
    from models.audit import file_sha256
    from models.packs import default_pack_path
    from server.cluster.audit_pool import AuditJob, ClusterAuditPool
    from server.config import Settings

    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        work = Path(tmp)
        found = [(p, None) for p in sorted(folder.glob("*.wav"))] if folder else None
        calls = found or build_calls(work)
        copies = []
        for n in range(count):
            src, lang = calls[n % len(calls)]
            copies.append((shutil.copyfile(src, work / f"call-{n:04d}.wav"), lang))
        durations = {path: decode_file(path, sample_rate=8000).duration for path, _ in copies}
        if workers == 0:
            from server.cli.audit import load_auditor

            auditor = load_auditor(settings)
            auditor.audit(copies[0][0], AuditOptions(language=copies[0][1]))  # warm-up
            started, busy_before = time.perf_counter(), cpu_busy()
            for path, lang in copies:
                auditor.audit(path, AuditOptions(language=lang))
            where = "in process (batched Whisper, every core)"
        else:
            pack = default_pack_path().read_text(encoding="utf-8")

            def jobs(files: list[tuple[Path, str | None]]) -> Iterator[AuditJob]:
                for path, lang in files:
                    yield AuditJob(path, file_sha256(path), AuditOptions(language=lang), pack)

            with latency.local_ray(workers) as address:
                pool = ClusterAuditPool.for_settings(
                    settings.model_copy(update={"ray": address}), parallel=workers
                )
                try:
                    loading = time.perf_counter()
                    warm = [o for o in pool.run(jobs(copies[:workers])) if o.error is None]
                    print(
                        f"{len(warm)} workers ready in {time.perf_counter() - loading:.1f} s (models loaded)"
                    )
                    started, busy_before = time.perf_counter(), cpu_busy()
                    failed = [o for o in pool.run(jobs(copies)) if o.error is not None]
                finally:
                    pool.close()
            if failed:
                raise SystemExit(f"{len(failed)} audits failed: {failed[0].error}")
            where = f"Ray cluster, {workers} one-core speech node(s), {workers} at once"
        wall = time.perf_counter() - started
        busy = (cpu_busy() - busy_before) / wall
        audio = sum(durations.values())
        print(
            f"{where}: {count} calls, {audio:.0f} s of audio in {wall:.1f} s = {audio / wall:.1f}x real "
            f"time; this machine's cores busy {busy:.2f} of {os.cpu_count()} (every process)"
        )


def cpu_busy() -> float:
    """Seconds every core of this machine has been busy since boot (Linux /proc/stat), every process."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
