"""`callbuffer evaluate-calls DIR|FILES`: how many alerts labelled calls raise through the whole chain.

Registered in :mod:`server.cli.main`. Each call script is spoken into an 8 kHz telephone call and heard by the
audit path (default) or by the live engine in this process (``--live``), then printed as a turn table
(said / heard / alerted) with alert recall, false alarms per call, repeated finals, by split and by
category (:mod:`server.packs.call_eval`, :mod:`models.call_eval`).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import click

from models.call_eval import CallSetReport, render_report
from server.cli.settings import encoder_option, pack_option, settings_from


@click.command(name="evaluate-calls")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--live", is_flag=True, help="Stream the calls through the live engine (default: audit them).")
@click.option(
    "--speed",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="--live: times real time (0: as fast as the engine takes them).",
)
@click.option(
    "--concurrent", type=click.IntRange(1, 64), default=1, show_default=True, help="--live: calls at once."
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--no-turns", is_flag=True, help="Print only the totals, not each call's turn table.")
@pack_option
@encoder_option
def evaluate_calls(
    paths: tuple[Path, ...],
    live: bool,
    speed: float,
    concurrent: int,
    as_json: bool,
    no_turns: bool,
    pack: Path | None,
    encoder: str | None,
) -> None:
    """Run labelled call scripts (files, or folders of them) through the audit path or the live engine
    and print alert recall, false alarms per call, per category, and the turn table."""
    from models.packs import PackError, load_pack
    from server.packs.call_eval import CallEvalError, check_labels, load_scripts, speak_call

    try:
        scripts = load_scripts(paths)
        labels = load_pack(settings_from(pack=pack).pack)
        for script in scripts:
            check_labels(script, labels)
        click.echo(f"speaking {len(scripts)} calls", err=True)
        calls = [speak_call(script) for script in scripts]
    except (CallEvalError, PackError) as exc:
        raise click.ClickException(str(exc)) from exc

    def say(message: str) -> None:
        click.echo(message, err=True)

    if live:
        report = _live(calls, pack, encoder, speed, concurrent, say)
    else:
        report = _audit(calls, pack, encoder, say)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(render_report(report, turns=not no_turns))


def _audit(calls, pack, encoder, say) -> CallSetReport:  # noqa: ANN001
    from server.cli.audit import AuditSetupError, load_auditor

    try:
        auditor = load_auditor(settings_from(pack=pack, encoder=encoder))
    except AuditSetupError as exc:
        raise click.ClickException(str(exc)) from exc
    from server.audits.jobs import in_process
    from server.packs.call_eval import audit_calls

    return audit_calls(calls, in_process(auditor), progress=say)


def _live(calls, pack, encoder, speed, concurrent, say) -> CallSetReport:  # noqa: ANN001
    from models.encoders import EncoderError
    from models.packs import PackError
    from models.whisper_model import ModelUnavailableError
    from server.live.engine import LiveEngine
    from server.packs.call_eval import live_calls

    with tempfile.TemporaryDirectory(prefix="callbuffer-eval-") as data_dir:
        settings = settings_from(pack=pack, encoder=encoder, data_dir=Path(data_dir))
        try:
            engine = LiveEngine.start(settings)
        except (PackError, EncoderError, ModelUnavailableError, OSError) as exc:
            raise click.ClickException(f"cannot start the live engine: {exc}") from exc
        try:
            return asyncio.run(live_calls(calls, engine, speed=speed, concurrent=concurrent, progress=say))
        finally:
            engine.close()
