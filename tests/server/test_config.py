"""Settings: environment with the CALLBUFFER_ prefix, validated at start-up, offline defaults."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from server.config import Settings


def test_offline_defaults(monkeypatch: pytest.MonkeyPatch):
    for var in ("CALLBUFFER_PACK", "CALLBUFFER_ENCODER", "CALLBUFFER_WHISPER_MODEL", "CALLBUFFER_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings()
    assert (settings.pack, settings.encoder, settings.whisper_model) == (None, "e5", "bundled")
    assert settings.cache_dir == Path.home() / ".cache" / "callbuffer"


def test_environment_and_validation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("CALLBUFFER_WHISPER_MODEL", " /models/whisper-small ")
    monkeypatch.setenv("CALLBUFFER_CACHE_DIR", str(tmp_path))
    settings = Settings()
    assert settings.whisper_model == "/models/whisper-small" and settings.cache_dir == tmp_path
    monkeypatch.setenv("CALLBUFFER_PACK", str(tmp_path / "missing.yaml"))
    with pytest.raises(ValidationError, match="pack file not found"):
        Settings()
    monkeypatch.delenv("CALLBUFFER_PACK")
    with pytest.raises(ValidationError, match="must not be empty"):
        Settings(encoder="  ")
