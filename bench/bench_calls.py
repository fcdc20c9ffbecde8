"""Alerts through the whole chain: the labelled call set heard by the audit path and by the live engine.

What it measures (issue 18): every call script under ``bench/data/calls/`` (or the ones given) is spoken
by its voices into an 8 kHz stereo telephone call, then

- audited as a recording (``callbuffer evaluate-calls``), and
- streamed at real-time pace into the live engine in this process, ``--concurrent`` calls at a time
  (``callbuffer evaluate-calls --live``), as a phone system would,

and each alert that reached the report or the sidebar is lined up with the labelled turns
(:mod:`models.call_eval`). It prints, for the audit, for live, and side by side per call: alert recall,
false alarms per call and finals with repeated text, over all calls and for the ``tune`` and ``heldout``
splits apart (the held-out calls are never looked at while tuning), then per category and per voice (what
the recogniser makes of each TTS voice). Targets: recall
>= 0.85 audited and >= 0.80 live (live within 5 points of the audit), <= 1 false alarm per call, no
repeated finals.

    python bench/bench_calls.py [SCRIPTS...] [--mode audit|live|both] [--concurrent 4] [--speed 1]
                                [--split heldout] [--turns] [--json out.json]

It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from audio.synth import default_voice
from models.call_eval import CallSetReport, render_report
from server.audits.jobs import in_process
from server.packs.call_eval import audit_calls, live_calls, load_scripts, speak_call

CALLS_DIR = Path(__file__).resolve().parent / "data" / "calls"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scripts", nargs="*", type=Path, default=[CALLS_DIR])
    parser.add_argument("--mode", choices=["audit", "live", "both"], default="both")
    parser.add_argument("--concurrent", type=int, default=4, help="live calls at once (default 4)")
    parser.add_argument("--speed", type=float, default=1.0, help="live pace, times real time (default 1)")
    parser.add_argument("--split", choices=["tune", "heldout"], default=None, help="only these calls")
    parser.add_argument("--turns", action="store_true", help="print each call's turn table too")
    parser.add_argument("--json", type=Path, default=None, help="write both reports here")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def run_audit(calls) -> CallSetReport:  # noqa: ANN001
    from server.cli.audit import load_auditor
    from server.config import Settings

    return audit_calls(calls, in_process(load_auditor(Settings())), progress=print)


def run_live(calls, concurrent: int, speed: float) -> CallSetReport:  # noqa: ANN001
    from server.config import Settings
    from server.live.engine import LiveEngine

    with tempfile.TemporaryDirectory(prefix="bench-calls-") as data_dir:
        engine = LiveEngine.start(Settings(data_dir=Path(data_dir)))
        try:
            return asyncio.run(live_calls(calls, engine, speed=speed, concurrent=concurrent, progress=print))
        finally:
            engine.close()


def side_by_side(audit: CallSetReport, live: CallSetReport) -> list[str]:
    """Per call: audit and live hits, false alarms and repeated finals."""
    lines = [f"{'call':34} {'split':8} {'audit':>9} {'live':>9}  false a/l  repeats a/l"]
    by_name = {c.name: c for c in live.calls}
    for a in audit.calls:
        b = by_name.get(a.name)
        if b is None:
            continue
        lines.append(
            f"{a.name:34} {a.split or '-':8} {a.hits:>4}/{a.expected:<4} {b.hits:>4}/{b.expected:<4}"
            f"  {a.false_alarms:>4}/{b.false_alarms:<4} {a.repeated_finals:>6}/{b.repeated_finals}"
        )
    return lines


def voice_labels(scripts, calls) -> dict[tuple[str, float], str]:  # noqa: ANN001
    """The voice of each said turn, by (call, start): ``festival msu_ru_nsh_clunits``, ``espeak-ng ru``
    (espeak-ng's variants, rate and pitch left out)."""
    labels = {}
    for script, call in zip(scripts, calls, strict=True):
        for turn, said in zip(script.turns, call.said, strict=True):
            voice = script.voices.get(turn.speaker)
            if voice is None or voice.lang != turn.lang:
                voice = default_voice(turn.lang)
            labels[(call.name, said.start)] = f"{voice.tts} {voice.name.split('+')[0]}"
    return labels


def by_voice(report: CallSetReport, labels: dict[tuple[str, float], str]) -> list[str]:
    """Alert recall per voice that said the labelled turns: what the recogniser makes of each voice."""
    counts: dict[str, list[int]] = {}
    for call in report.calls:
        for row in call.rows:
            if row.said is not None and row.said.expect:
                n = counts.setdefault(labels[(call.name, row.said.start)], [0, 0])
                n[0] += len(row.said.expect)
                n[1] += len(row.hits)
    lines = [f"{report.mode}: {'voice':30} {'alerts':>6} {'hit':>5} {'recall':>7}"]
    for voice, (expected, hits) in sorted(counts.items()):
        lines.append(f"{'':{len(report.mode) + 2}}{voice:30} {expected:>6} {hits:>5} {hits / expected:>7.2f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    scripts = [s for s in load_scripts(args.scripts) if args.split is None or s.split == args.split]
    started = time.perf_counter()
    calls = [speak_call(s) for s in scripts]
    audio = sum(c.duration for c in calls)
    print(
        f"{len(calls)} calls, {audio / 60:.1f} min of audio, spoken in {time.perf_counter() - started:.0f} s"
    )
    reports: dict[str, CallSetReport] = {}
    if args.mode in ("audit", "both"):
        started = time.perf_counter()
        reports["audit"] = run_audit(calls)
        print(f"audit: {time.perf_counter() - started:.0f} s")
    if args.mode in ("live", "both"):
        started = time.perf_counter()
        reports["live"] = run_live(calls, args.concurrent, args.speed)
        print(f"live ({args.concurrent} at a time, x{args.speed:g}): {time.perf_counter() - started:.0f} s")
    labels = voice_labels(scripts, calls)
    for report in reports.values():
        print()
        print(render_report(report, turns=args.turns))
        print()
        print("\n".join(by_voice(report, labels)))
    if len(reports) == 2:
        print()
        print("\n".join(side_by_side(reports["audit"], reports["live"])))
    if args.json:
        args.json.write_text(
            json.dumps({k: r.to_dict() for k, r in reports.items()}, ensure_ascii=False, indent=1), "utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
