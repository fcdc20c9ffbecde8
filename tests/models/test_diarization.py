"""models.diarization on real speech: pyannote's sample call, a festival call with a pitch-shifted
customer mixed to mono and audited, one-voice prompts; and the audit's fallback without the encoder."""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
import wave
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from audio.decode import decode_file
from models.audit import (
    MONO_NOTE,
    NO_DIARIZATION_NOTE,
    VOICES_NOTE,
    AuditOptions,
    Auditor,
)
from models.diarization import (
    Diarization,
    DiarizationUnavailable,
    Diarizer,
    SpeakerTurn,
    mel_filters,
    mel_spectrogram,
)

BENCH = Path(__file__).resolve().parents[2] / "bench"
ASTERISK_EN = Path("/usr/share/asterisk/sounds/en")


@pytest.fixture(scope="module")
def diarizer() -> Diarizer:
    found = Diarizer()
    try:
        found.encoder  # noqa: B018 - load it once, or skip
    except DiarizationUnavailable as exc:
        pytest.skip(str(exc))
    return found


@functools.cache
def _sample_module() -> ModuleType:
    """bench/pyannote_sample.py (shared with the benchmark), loaded from its file on first use."""
    spec = importlib.util.spec_from_file_location("pyannote_sample", BENCH / "pyannote_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def attributed(result: Diarization, reference: list[tuple[float, float, str]], duration: float) -> float:
    """Share of single-speaker reference time given to the right voice (see bench/pyannote_sample.py)."""
    return _sample_module().attributed(result, reference, duration)


@pytest.fixture(scope="session")
def pyannote_sample() -> tuple[Path, list[tuple[float, float, str]]]:
    """sample.wav and its reference turns from the pyannote.audio wheel (bench/pyannote_sample.py)."""
    sample = _sample_module()
    try:
        return sample.fetch()
    except sample.SampleUnavailable as exc:
        pytest.skip(str(exc))


# -------------------------------------------------------------------------------------- features


def test_features_match_librosa_and_the_network_matches_resemblyzer(diarizer: Diarizer) -> None:
    """The numpy mel filters are librosa's; the rebuilt network gives Resemblyzer's own embeddings."""
    librosa = pytest.importorskip("librosa")
    assert np.allclose(mel_filters(), librosa.filters.mel(sr=16000, n_fft=400, n_mels=40), atol=1e-6)
    try:
        import torch
        from resemblyzer import VoiceEncoder
    except ImportError as exc:  # webrtcvad 2.0.10 needs pkg_resources, gone from setuptools >= 81
        pytest.skip(f"resemblyzer does not import here: {exc}")
    rng = np.random.default_rng(0)
    mels = mel_spectrogram(rng.standard_normal(16000 * 2).astype(np.float32) * 0.03)[None, :160]
    with torch.no_grad():
        theirs = VoiceEncoder("cpu", verbose=False)(torch.from_numpy(np.ascontiguousarray(mels))).numpy()
    assert np.allclose(diarizer.encoder.embed(mels), theirs, atol=1e-5)


# ------------------------------------------------------------------------------------ real calls


def test_pyannote_sample_two_speakers(diarizer: Diarizer, pyannote_sample) -> None:
    """pyannote's 30 s English call, speech found by energy: 87.1 % of single-speaker reference time
    goes to the right voice (88.0 % with the reference turns as the speech; measured)."""
    path, reference = pyannote_sample
    samples = decode_file(path, sample_rate=16000).samples[0]
    found = diarizer.diarize(samples)
    assert found.speakers == 2
    assert attributed(found, reference, 30.0) >= 0.8
    oracle = diarizer.diarize(samples, [(a, b) for a, b, _ in reference])
    assert oracle.speakers == 2 and attributed(oracle, reference, 30.0) >= 0.8


def _pitch_shifted_mono(ru_call, folder: Path) -> Path:
    """The Russian call with the customer's channel pitched down 3 semitones by sox (another voice than
    the agent's festival one), mixed to one 8 kHz channel."""
    if shutil.which("sox") is None:
        pytest.skip("sox is not installed")
    customer, shifted = folder / "customer.wav", folder / "customer-low.wav"
    _write_wav(customer, ru_call.samples[1], ru_call.sample_rate)
    subprocess.run(["sox", str(customer), str(shifted), "pitch", "-300"], check=True, capture_output=True)
    low = decode_file(shifted, sample_rate=ru_call.sample_rate).samples[0]
    n = min(low.size, ru_call.samples.shape[1])
    mono = (ru_call.samples[0, :n] + low[:n]) / 2
    return _write_wav(folder / "ru-mono.wav", mono, ru_call.sample_rate)


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="module")
def auditor(classifier, cache_dir: Path) -> Auditor:
    from models.whisper_model import load_whisper

    return Auditor(
        load_whisper("bundled", cache_dir=cache_dir), classifier, model_info={"whisper": "bundled"}
    )


@pytest.fixture(scope="module")
def ru_mono(ru_call, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pitch_shifted_mono(ru_call, tmp_path_factory.mktemp("mono"))


def test_mono_call_is_attributed_by_voice(diarizer: Diarizer, auditor: Auditor, ru_call, ru_mono) -> None:
    """The audit of the mono mix: the agent greets first and is taken as the agent; 100 % of turn time
    lands on the script's speaker here (measured), and every expected alert on the right side."""
    report = auditor.audit(ru_mono, AuditOptions(language="ru"))
    assert report.channels == 1 and report.diarization == "voices"
    assert report.roles == ["agent", "customer"]
    assert VOICES_NOTE.format(first="agent", second="customer") in report.notes
    right = total = 0.0
    for turn in report.turns:
        for placed in ru_call.turns:
            overlap = min(turn.end, placed.end) - max(turn.start, placed.start)
            if overlap > 0:
                total += overlap
                right += overlap * (turn.speaker == placed.speaker)
    assert total > 40 and right / total >= 0.9, f"{right / total:.1%} of turn time on the right speaker"
    expected = [(p, c) for p in ru_call.turns for c in p.expect]
    landed = [
        (p, c)
        for p, c in expected
        if any(d.category == c and d.start < p.end and p.start < d.end for d in report.detections)
    ]
    # Whisper's batched decoding of the mono mix differs from run to run in a word or two (threads): the
    # escalation request is heard «Кто на Путыл позавить руководителя?» (no alert: a question about who)
    # and the blame shift «Это бы хагал теряя на Путыла» (an alert, or not); 3 to 4 of 5 measured here.
    assert len(landed) >= len(expected) - 2, f"found {len(landed)} of {len(expected)} expected alerts"
    for placed, category in landed:
        speakers = {
            d.speaker
            for d in report.detections
            if d.category == category and d.start < placed.end and placed.start < d.end
        }
        assert placed.speaker in speakers, f"{category} on {speakers}, expected {placed.speaker}"
    assert report.talk_time["agent"] > report.talk_time["customer"] > 0 and report.talk_time["unknown"] == 0


def test_without_the_encoder_mono_stays_unknown(classifier, cache_dir: Path, ru_mono, tmp_path: Path) -> None:
    """Weights that cannot be loaded (as without resemblyzer) leave every mono turn 'unknown', and the
    notes say why."""
    from models.whisper_model import load_whisper

    missing = Diarizer(weights=tmp_path / "missing.pt")
    with pytest.raises(DiarizationUnavailable):
        missing.diarize(np.zeros(16000, np.float32))
    auditor = Auditor(load_whisper("bundled", cache_dir=cache_dir), classifier, diarizer=missing)
    report = auditor.audit(ru_mono, AuditOptions(language="ru"))
    assert report.diarization == "none" and report.roles == ["unknown"]
    assert {t.speaker for t in report.turns} == {"unknown"}
    assert MONO_NOTE in report.notes and NO_DIARIZATION_NOTE in report.notes


# ----------------------------------------------------------------------------------- one voice


def test_one_voice_is_not_split(diarizer: Diarizer, ru_call, speak) -> None:
    """Long stretches of one voice stay one speaker: an asterisk prompt (a real recording), the
    festival agent's whole side of the call, and espeak-ng."""
    voices = [ru_call.samples[0]]
    rates = [ru_call.sample_rate]
    prompts = [ASTERISK_EN / "demo-instruct.wav", ASTERISK_EN / "demo-congrats.wav"]
    if all(p.exists() for p in prompts):
        voices.append(np.concatenate([decode_file(p, sample_rate=16000).samples[0] for p in prompts]))
        rates.append(16000)
    english = (
        "Thank you for calling customer support. My name is Anna and I will help you today. Please tell me "
        "your contract number, and I will check the line. I am sorry your internet has been down."
    )
    voices.append(speak(english, "en"))
    rates.append(16000)
    for samples, rate in zip(voices, rates, strict=True):
        if rate != 16000:
            from audio.resample import resample

            samples = resample(samples, rate, 16000)
        found = diarizer.diarize(samples)
        assert found.speakers == 1, f"{found.speakers} voices, centroid similarity {found.similarity}"
        assert {t.speaker for t in found.turns} == {0}


def test_short_silent_and_empty(diarizer: Diarizer, speak) -> None:
    """Too little speech is one voice; silence and no speech spans are nobody."""
    hello = speak("Hello, how can I help?", "en")
    found = diarizer.diarize(hello)
    assert found.speakers == 1 and found.speaker_of(0.0, 0.5) == 0
    assert diarizer.diarize(np.zeros(16000 * 3, np.float32)).speakers == 0
    nobody = diarizer.diarize(hello, [])
    assert nobody.speakers == 0 and nobody.turns == () and nobody.speaker_of(0, 1) is None
    assert diarizer.diarize(np.zeros(0, np.float32)).speakers == 0


def test_speaker_of_majority_and_nearest() -> None:
    result = Diarization(2, (SpeakerTurn(0.0, 2.0, 0), SpeakerTurn(2.0, 3.0, 1), SpeakerTurn(5.0, 6.0, 0)))
    assert result.speaker_of(1.5, 2.4) == 0
    assert result.speaker_of(1.9, 3.0) == 1
    assert result.speaker_of(3.2, 3.4) == 1  # between turns: the nearest
    assert result.speaker_of(4.8, 4.9) == 0
