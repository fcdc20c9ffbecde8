"""Building the shared judgement engine from settings, once per process."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from models.classifier import PhraseClassifier
from models.encoders import get_encoder
from models.packs import load_pack
from server.config import Settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_classifiers: dict[tuple[str, str, str], PhraseClassifier] = {}


def build_classifier(settings: Settings) -> PhraseClassifier:
    """The classifier for the configured pack and encoder; built on first use and kept."""
    pack_path: Path | None = settings.pack
    key = (str(pack_path or ""), settings.encoder, str(settings.cache_dir))
    with _lock:
        if key not in _classifiers:
            started = time.perf_counter()
            pack = load_pack(pack_path)
            encoder = get_encoder(settings.encoder, settings.cache_dir)
            _classifiers[key] = PhraseClassifier(pack, encoder, cache_dir=settings.cache_dir)
            logger.info(
                "classifier for pack %s v%d ready in %.2f s",
                pack.name,
                pack.version,
                time.perf_counter() - started,
            )
        return _classifiers[key]
