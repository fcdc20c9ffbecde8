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
from server.cli.audit import audit
from server.cli.classify_lines import format_result, parse_raw, read_line_batches
from server.cli.evaluate_calls import evaluate_calls
from server.cli.settings import database_url_option, encoder_option, pack_option, ray_option, settings_from
from server.cli.users import users
from server.cli.worker import worker
from server.config import Settings

logger = logging.getLogger(__name__)


def _classifier(settings: Settings) -> PhraseClassifier:
    from server.live.engine import build_classifier  # models load only when a command needs them

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
@pack_option
@encoder_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
def classify(pack: Path | None, encoder: str | None, file: Path | None) -> None:
    """Classify turns: JSON lines ({"text", "speaker", "lang", "id"}) or plain text from FILE or stdin.

    Writes one JSON line per input line, in order: {"id", "labels": [{"category", "score", "start", "end",
    "example"}]}, or {"id", "error"} for a line that cannot be read.
    """
    classifier = _classifier(settings_from(pack=pack, encoder=encoder))
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
@pack_option
@encoder_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.argument("eval_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def evaluate_command(pack: Path | None, encoder: str | None, as_json: bool, eval_file: Path) -> None:
    """Measure a pack on labelled rows: per-category P/R/F1, macro-F1 over alerts, false alarms, misses."""
    classifier = _classifier(settings_from(pack=pack, encoder=encoder))
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


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1, CALLBUFFER_HOST).")
@click.option("--port", type=int, default=None, help="Port (default 8000, CALLBUFFER_PORT).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the SQLite store lives (CALLBUFFER_DATA_DIR).",
)
@database_url_option
@pack_option
@encoder_option
@ray_option
def serve(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    database_url: str | None,
    pack: Path | None,
    encoder: str | None,
    ray: str | None,
) -> None:
    """Run the live-assist server: call WebSockets, telephony adapters, REST and the agent sidebar."""
    import uvicorn

    from models.whisper_model import ModelUnavailableError
    from server.app import create_app
    from server.cluster.actors import ClusterError
    from server.live.engine import LiveEngine
    from server.storage.database import DatabaseError

    settings = settings_from(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        pack=pack,
        encoder=encoder,
        ray=ray,
    )
    try:
        engine = LiveEngine.start(settings)
    except (PackError, EncoderError, ModelUnavailableError, OSError, DatabaseError, ClusterError) as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc
    click.echo(f"callbuffer: sidebar at http://{settings.host}:{settings.port}/agent", err=True)
    try:
        uvicorn.run(
            create_app(settings, engine=engine),
            host=settings.host,
            port=settings.port,
            log_level="info",
            ws="websockets-sansio",
        )
    finally:
        engine.close()


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
@click.option("--url", default="ws://127.0.0.1:8000", show_default=True, help="The server's WebSocket URL.")
@click.option("--call-id", default=None, help="Call id (default: the file name and the time).")
@click.option("--roles", default=None, help="Comma-separated role per channel (default agent,customer).")
@click.option("--language", type=click.Choice(["ru", "en"]), default=None, help="Pin the language.")
@click.option("--realtime/--fast", default=True, show_default=True, help="Send at the pace of the audio.")
@click.option("--mic", is_flag=True, help="Stream the default microphone instead of a file (Ctrl+C ends).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw events as JSON lines.")
@click.option("--token", envvar="CALLBUFFER_TOKEN", default=None, help="API token (CALLBUFFER_TOKEN).")
@click.option("--agent", default=None, help="The agent user on the call (their sidebar sees it).")
def simulate(
    file: Path | None,
    url: str,
    call_id: str | None,
    roles: str | None,
    language: str | None,
    realtime: bool,
    mic: bool,
    as_json: bool,
    token: str | None,
    agent: str | None,
) -> None:
    """Stream a recording (or the microphone) to a running server and print its events as they come."""
    import asyncio
    import time

    from audio.decode import AudioDecodeError
    from server.live.simulate import SimulateError, describe, load_recording, stream_call

    if (file is None) == (not mic):
        raise click.UsageError("give a FILE to stream, or --mic")
    role_list = [r.strip() for r in roles.split(",")] if roles else None

    def show(received):  # noqa: ANN001, ANN202
        click.echo(json.dumps(received.event, ensure_ascii=False) if as_json else describe(received))

    try:
        if mic:
            start, frames = _microphone(role_list, language)
            name = "mic"
        else:
            recording = load_recording(file, role_list, language)
            start, frames, name = recording.start, recording.frames, file.stem
        call = call_id or f"{name}-{int(time.time())}"
        start = start.model_copy(update={"agent": agent}) if agent else start
        result = asyncio.run(
            stream_call(url, call, start, frames, realtime=realtime or mic, on_event=show, token=token)
        )
    except (SimulateError, AudioDecodeError, ValidationError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        return
    if result.close_code not in (1000, None):
        raise click.ClickException(f"the server closed the call with code {result.close_code}")


def _microphone(roles: list[str] | None, language: str | None):  # noqa: ANN202
    from audio.microphone import MicrophoneError, capture, default_input_device
    from server.live.protocol import StartMessage

    try:
        device = default_input_device()
    except MicrophoneError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"streaming from {device}; Ctrl+C ends the call", err=True)
    start = StartMessage(
        encoding="pcm16", sample_rate=16000, channels=1, roles=roles or ["agent"], language=language
    )
    return start, capture(16000)


main.add_command(audit)
main.add_command(evaluate_calls)
main.add_command(users)
main.add_command(worker)
