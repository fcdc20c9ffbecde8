"""Writing QA audit reports: one call as JSON, HTML or CSV, and the summary of a batch.

Everything works on the JSON-ready dict of :meth:`models.audit.CallReport.to_dict`, so a report read
back from its JSON file renders exactly like a fresh one (``callbuffer audit --format html`` on calls
audited earlier as JSON renders them without transcribing again).

* JSON: the report as is (schema in :mod:`models.audit` and the README, "QA audit report (JSON)").
* HTML: one self-contained page (inline CSS, no scripts, no external assets; every text goes through
  ``html.escape``): scorecard, talk time, silences and overtalk, then the transcript by speaker and time
  with flagged turns highlighted, their categories and the suggested phrases.
* CSV: one row per detection: file, turn, start, end, speaker, category, kind, score, text.
* summary: ``summary.json`` always, and ``summary.csv`` or ``summary.html`` for those formats: the calls
  ranked by scorecard score, worst first, and how many calls and detections each category had.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMATS = ("json", "html", "csv")
CSV_FIELDS = ("file", "turn", "start", "end", "speaker", "category", "kind", "score", "text")
SUMMARY_FIELDS = (
    "file",
    "report",
    "duration",
    "score",
    "passed",
    "failed",
    "forbidden",
    "triggers",
    "categories",
    "agent",
)


@dataclass(frozen=True)
class SummaryRow:
    """What the batch summary keeps of one call (small, so a batch of thousands stays light)."""

    file: str
    report: str
    duration: float
    score: float
    passed: int
    failed: int
    forbidden: int
    triggers: int
    categories: dict[str, int]
    agent: str | None = None  # the agent named on the call (`audit --agent`), if any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SummaryRow:
        return cls(**{k: data[k] for k in SUMMARY_FIELDS if k in data})


def summary_row(report: dict[str, Any], report_path: Path | str) -> SummaryRow:
    """The summary line of one report."""
    detections = report["detections"]
    card = report["scorecard"]
    return SummaryRow(
        file=report["source"],
        report=str(report_path),
        duration=report["duration"],
        score=card["score"],
        passed=card["passed"],
        failed=card["failed"],
        forbidden=sum(d["kind"] == "forbidden" for d in detections),
        triggers=sum(d["kind"] == "trigger" for d in detections),
        categories=dict(Counter(d["category"] for d in detections)),
        agent=report.get("agent"),
    )


# ------------------------------------------------------------------------------------------ writing


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename, so a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_report(report: dict[str, Any], out_dir: Path, stem: str, fmt: str) -> list[Path]:
    """Write ``<stem>.json`` (always: it is what a later run re-renders from) and ``<stem>.<fmt>``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}: expected one of {', '.join(FORMATS)}")
    json_path = out_dir / f"{stem}.json"
    atomic_write(json_path, render_json(report))
    written = [json_path]
    if fmt != "json":
        written.append(render_to(report, out_dir / f"{stem}.{fmt}", fmt))
    return written


def render_to(report: dict[str, Any], path: Path, fmt: str) -> Path:
    """Render ``report`` as ``fmt`` (html or csv) into ``path``."""
    atomic_write(path, render_html(report) if fmt == "html" else render_csv(report))
    return path


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


def render_csv(report: dict[str, Any]) -> str:
    """One row per detection (header only when there is none)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for d in report["detections"]:
        writer.writerow(
            [report["source"], d["turn"], d["start"], d["end"], d["speaker"], d["category"], d["kind"]]
            + [d["score"], d["text"]]
        )
    return out.getvalue()


# --------------------------------------------------------------------------------------------- HTML

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222;padding:0 1em}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
.meta{color:#555}.turn{margin:.4em 0;padding:.4em .6em;border-left:4px solid #ddd}
.agent{border-color:#4a7bd0}.customer{border-color:#7a7a7a}.unknown{border-color:#b58cd8}
.who{font-weight:600;margin-right:.5em}.time{color:#777;font-size:.9em;margin-right:.5em}
.flag-forbidden{background:#fde8e8}.flag-trigger{background:#fff4de}
.tag{display:inline-block;border-radius:3px;padding:0 .4em;margin:.2em .3em 0 0;font-size:.85em}
.tag-forbidden{background:#c62828;color:#fff}.tag-trigger{background:#e69500;color:#fff}
.tag-practice{background:#2e7d32;color:#fff}
.passed{color:#2e7d32}.failed{color:#c62828;font-weight:600}.not_applicable,.advisory{color:#777}
ul.sugg{margin:.2em 0 .2em 1.2em;padding:0}mark{background:#ffd54f}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(float(seconds), 60.0)
    return f"{int(minutes):d}:{secs:04.1f}"


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page; every piece of text is escaped."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>QA audit: {_e(Path(report['source']).name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>QA audit: {_e(Path(report['source']).name)}</h1>",
        _html_meta(report),
        _html_scorecard(report["scorecard"]),
        _html_timing(report),
        _html_transcript(report),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _html_meta(report: dict[str, Any]) -> str:
    model = report.get("model", {})
    rows = [
        ("file", report["source"]),
        *([("agent", report["agent"])] if report.get("agent") else []),
        ("sha256", report["sha256"]),
        ("duration", _clock(report["duration"])),
        ("channels", f"{report['channels']} ({', '.join(report['roles'])})"),
        ("language", report["language"] or "?"),
        ("personal data", "masked" if report["masked"] else "kept (not masked)"),
        ("models", ", ".join(f"{k} {v}" for k, v in model.items())),
        ("audited at", report["audited_at"]),
    ]
    table = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    notes = "".join(f"<p class='meta'>{_e(n)}</p>" for n in report.get("notes", []))
    return f"<table class='meta'>{table}</table>{notes}"


def _html_scorecard(card: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(i['title'])}</td><td class='{_e(i['status'])}'>{_e(i['status'].replace('_', ' '))}</td>"
        f"<td>{_e(', '.join(f'#{t}' for t in i['turns']))}</td><td>{_e(i['note'])}</td></tr>"
        for i in card["items"]
    )
    head = "<tr><th>item</th><th>status</th><th>turns</th><th>note</th></tr>"
    score = f"{100 * card['score']:.0f} % ({card['passed']} passed, {card['failed']} failed)"
    return f"<h2>Scorecard: {_e(score)}</h2><table>{head}{rows}</table>"


def _html_timing(report: dict[str, Any]) -> str:
    talk = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(_clock(v))}</td></tr>" for k, v in report["talk_time"].items() if v
    )
    lines = [f"<h2>Talk time</h2><table>{talk or '<tr><td>nobody spoke</td></tr>'}</table>"]
    for name in ("silences", "overtalk"):
        items = report[name]
        listed = ", ".join(f"{_clock(i['start'])}–{_clock(i['end'])} ({i['duration']:.1f} s)" for i in items)
        lines.append(f"<p><b>{_e(name.capitalize())}:</b> {_e(listed or 'none')}</p>")
    return "\n".join(lines)


def _html_transcript(report: dict[str, Any]) -> str:
    by_turn: dict[int, list[dict[str, Any]]] = {}
    for d in report["detections"]:
        by_turn.setdefault(d["turn"], []).append(d)
    out = ["<h2>Transcript</h2>"]
    for turn in report["turns"]:
        found = by_turn.get(turn["index"], [])
        kinds = {d["kind"] for d in found}
        flag = "flag-forbidden" if "forbidden" in kinds else "flag-trigger" if "trigger" in kinds else ""
        out.append(
            f"<div class='turn {_e(turn['speaker'])} {flag}' id='turn-{turn['index']}'>"
            f"<span class='time'>#{turn['index']} {_clock(turn['start'])}–{_clock(turn['end'])}</span>"
            f"<span class='who'>{_e(turn['speaker'])}</span>{_highlight(turn['text'], found)}"
            + "".join(_html_detection(d) for d in found)
            + "</div>"
        )
    if not report["turns"]:
        out.append("<p class='meta'>No speech was found.</p>")
    return "\n".join(out)


def _highlight(text: str, found: Sequence[dict[str, Any]]) -> str:
    """The turn's text, escaped, with the words that fired an alert marked."""
    spans = sorted(
        (max(0, d["span"][0]), min(len(text), d["span"][1])) for d in found if d["kind"] != "practice"
    )
    out, at = [], 0
    for start, end in spans:
        if start < at or start >= end:
            continue  # overlapping spans: the first one is marked
        out.append(_e(text[at:start]) + "<mark>" + _e(text[start:end]) + "</mark>")
        at = end
    out.append(_e(text[at:]))
    return "".join(out)


def _html_detection(d: dict[str, Any]) -> str:
    tag = (
        f"<div><span class='tag tag-{_e(d['kind'])}'>{_e(d['kind'])}</span>"
        f"<b>{_e(d['title'] or d['category'])}</b> <span class='meta'>({_e(d['category'])}, "
        f"score {d['score']:.2f})</span></div>"
    )
    if not d["suggestions"]:
        return tag
    items = "".join(f"<li>{_e(s)}</li>" for s in d["suggestions"])
    return f"{tag}<div class='meta'>Say instead:</div><ul class='sugg'>{items}</ul>"


# ------------------------------------------------------------------------------------------ summary


def write_summary(rows: Iterable[SummaryRow], out_dir: Path, fmt: str) -> list[Path]:
    """``summary.json`` and, for csv/html, ``summary.csv``/``summary.html``: calls worst score first,
    and per category the number of calls and of detections."""
    ranked = sorted(rows, key=lambda r: (r.score, -r.failed, r.file))
    calls: Counter[str] = Counter()
    detections: Counter[str] = Counter()
    for row in ranked:
        calls.update(row.categories.keys())
        detections.update(row.categories)
    categories = [
        {"category": c, "calls": calls[c], "detections": detections[c]}
        for c in sorted(calls, key=lambda c: (-calls[c], c))
    ]
    summary = {
        "calls": len(ranked),
        "audio_seconds": round(sum(r.duration for r in ranked), 2),
        "ranking": [r.to_dict() for r in ranked],
        "categories": categories,
    }
    written = [out_dir / "summary.json"]
    atomic_write(written[0], json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    if fmt == "csv":
        written.append(out_dir / "summary.csv")
        atomic_write(written[-1], _summary_csv(ranked))
    elif fmt == "html":
        written.append(out_dir / "summary.html")
        atomic_write(written[-1], _summary_html(summary))
    return written


def _summary_csv(ranked: Sequence[SummaryRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(SUMMARY_FIELDS)
    for r in ranked:
        cats = ";".join(f"{c}={n}" for c, n in sorted(r.categories.items()))
        writer.writerow(
            [r.file, r.report, r.duration, r.score, r.passed, r.failed, r.forbidden, r.triggers, cats]
            + [r.agent or ""]
        )
    return out.getvalue()


def _summary_html(summary: dict[str, Any]) -> str:
    head = (
        "<tr><th>score</th><th>failed</th><th>forbidden</th><th>triggers</th><th>call</th><th>agent</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{100 * r['score']:.0f} %</td><td>{r['failed']}</td><td>{r['forbidden']}</td>"
        f"<td>{r['triggers']}</td><td><a href='{_e(_link(r['report']))}'>{_e(r['file'])}</a></td>"
        f"<td>{_e(r.get('agent') or '')}</td></tr>"
        for r in summary["ranking"]
    )
    cats = "".join(
        f"<tr><td>{_e(c['category'])}</td><td>{c['calls']}</td><td>{c['detections']}</td></tr>"
        for c in summary["categories"]
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>QA audit summary</title>"
        f"<style>{_CSS}</style></head><body><h1>QA audit summary</h1>"
        f"<p class='meta'>{summary['calls']} calls, {_e(_clock(summary['audio_seconds']))} of audio; "
        f"worst score first.</p><table>{head}{rows}</table><h2>Categories</h2><table>"
        f"<tr><th>category</th><th>calls</th><th>detections</th></tr>{cats}</table></body></html>\n"
    )


def _link(report_json: str) -> str:
    """The HTML page next to a report's JSON file (the summary links to pages, not to JSON)."""
    return Path(report_json).with_suffix(".html").name
