"""Where models keep what they build once: the joined Whisper model, the int8 encoder, pack embeddings."""

from pathlib import Path


def default_cache_dir() -> Path:
    """``~/.cache/callbuffer``; the server's settings pass ``CALLBUFFER_CACHE_DIR`` explicitly."""
    return Path.home() / ".cache" / "callbuffer"
