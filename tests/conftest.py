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

    return PhraseClassifier(default_pack, get_encoder("e5", cache_dir), cache_dir=cache_dir)


@pytest.fixture(scope="session")
def transcriber(cache_dir):
    """The real bundled Whisper base, loaded once for the session."""
    from models.transcriber import Transcriber
    from models.whisper_model import load_whisper

    return Transcriber(load_whisper("bundled", cache_dir=cache_dir))


@pytest.fixture(scope="session")
def speak(tmp_path_factory: pytest.TempPathFactory):
    """speak(text, lang) -> 16 kHz float32 speech: festival's Russian voice or espeak-ng's English."""
    import shutil
    import subprocess

    import numpy as np

    from audio.decode import decode_file

    workdir = tmp_path_factory.mktemp("tts")

    def _speak(text: str, lang: str) -> np.ndarray:
        wav = workdir / f"{abs(hash((text, lang)))}.wav"
        if lang == "ru":
            if shutil.which("text2wave") is None:
                pytest.skip("festival (text2wave) is not installed")
            done = subprocess.run(
                ["text2wave", "-eval", "(voice_msu_ru_nsh_clunits)", "-o", str(wav)],
                input=text.encode(),
                capture_output=True,
            )
            if done.returncode or not wav.is_file():
                pytest.skip(f"festival voice msu_ru_nsh_clunits unavailable: {done.stderr[-200:]!r}")
        else:
            if shutil.which("espeak-ng") is None:
                pytest.skip("espeak-ng is not installed")
            subprocess.run(["espeak-ng", "-v", "en", "-w", str(wav), text], check=True)
        x = decode_file(wav, sample_rate=16000, mono=True).samples[0]
        loud = np.flatnonzero(np.abs(x) > 0.01)
        x = x[loud[0] : loud[-1] + 1]
        return (0.5 * x / np.abs(x).max()).astype(np.float32)

    return _speak


@pytest.fixture(scope="session")
def telephone(tmp_path_factory: pytest.TempPathFactory):
    """telephone(x16k) -> 8 kHz float32 band-limited to 300-3400 Hz by sox, as a phone line delivers it."""
    import shutil
    import subprocess
    import wave

    import numpy as np

    from audio.decode import decode_file

    if shutil.which("sox") is None:
        pytest.skip("sox is not installed")
    workdir = tmp_path_factory.mktemp("phone")

    def _telephone(x: np.ndarray) -> np.ndarray:
        wide, narrow = workdir / "wide.wav", workdir / "narrow.wav"
        with wave.open(str(wide), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
        subprocess.run(
            ["sox", "-D", "-R", str(wide), "-b", "16", str(narrow), "sinc", "300-3400", "rate", "8k"],
            check=True,
        )
        return decode_file(narrow, sample_rate=None).samples[0]

    return _telephone
