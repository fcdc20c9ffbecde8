"""Shared fixtures: the real default pack, the real offline encoder, one classifier per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the whole session, so each pack is embedded once."""
    return tmp_path_factory.mktemp("callbuffer-cache")


@pytest.fixture(scope="session")
def default_pack():
    from models.packs import load_pack

    return load_pack()


@pytest.fixture(scope="session")
def classifier(default_pack, cache_dir):
    from models.classifier import PhraseClassifier
    from models.encoders import get_encoder

    return PhraseClassifier(default_pack, get_encoder("e5"), cache_dir=cache_dir)
