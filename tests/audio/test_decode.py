"""decode_file on generated tones: wav (PCM and mu-law), flac, mp3, ogg/opus; channels, rates, errors."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from audio.decode import AudioDecodeError, DecodedAudio, decode_file

LEFT_HZ, RIGHT_HZ = 440.0, 1000.0
LEFT_AMP, RIGHT_AMP = 0.5, 0.25


def tones(rate: int, seconds: float = 1.0) -> np.ndarray:
    """Stereo test signal (2, n): a 440 Hz tone on the left, a quieter 1 kHz tone on the right."""
    t = np.arange(int(rate * seconds)) / rate
    return np.stack(
        [LEFT_AMP * np.sin(2 * np.pi * LEFT_HZ * t), RIGHT_AMP * np.sin(2 * np.pi * RIGHT_HZ * t)]
    ).astype(np.float32)


def write_pcm_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """16-bit PCM WAV with the standard-library ``wave`` module; ``samples`` is (channels, n)."""
    pcm = np.round(samples.T * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(samples.shape[0])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())


def mulaw_encode(x: np.ndarray) -> np.ndarray:
    """G.711 mu-law bytes of float samples in [-1, 1] (the classic 14-bit biased segment encoder)."""
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int32)
    sign = (pcm < 0).astype(np.int32) << 7
    mag = np.minimum(np.abs(pcm), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def write_mulaw_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """WAVE_FORMAT_MULAW (tag 7) file written byte by byte, independent of sox and FFmpeg."""
    channels = samples.shape[0]
    data = mulaw_encode(samples.T.reshape(-1)).tobytes()
    fmt = (
        (7).to_bytes(2, "little")
        + channels.to_bytes(2, "little")
        + rate.to_bytes(4, "little")
        + (rate * channels).to_bytes(4, "little")
        + channels.to_bytes(2, "little")
        + (8).to_bytes(2, "little")
        + (0).to_bytes(2, "little")
    )
    body = (
        b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt + b"data" + len(data).to_bytes(4, "little")
    )
    path.write_bytes(b"RIFF" + (len(body) + len(data)).to_bytes(4, "little") + body + data)


def peak_hz(channel: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(channel))
    return float(np.fft.rfftfreq(channel.size, 1 / rate)[spectrum.argmax()])


def assert_tone_channels(decoded: DecodedAudio) -> None:
    """Left carries 440 Hz at 0.5, right 1 kHz at 0.25: the channels were neither mixed nor swapped."""
    assert decoded.samples.dtype == np.float32
    assert decoded.channels == 2
    assert np.abs(decoded.samples).max() <= 1.0
    assert peak_hz(decoded.samples[0], decoded.sample_rate) == pytest.approx(LEFT_HZ, abs=3)
    assert peak_hz(decoded.samples[1], decoded.sample_rate) == pytest.approx(RIGHT_HZ, abs=3)
    rms = np.sqrt((decoded.samples**2).mean(axis=1))
    assert rms[0] == pytest.approx(LEFT_AMP / np.sqrt(2), rel=0.1)
    assert rms[1] == pytest.approx(RIGHT_AMP / np.sqrt(2), rel=0.1)


@pytest.fixture
def stereo_wav(tmp_path: Path) -> Path:
    path = tmp_path / "stereo.wav"
    write_pcm_wav(path, tones(16000), 16000)
    return path


def test_mono_wav_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    signal = tones(16000)[:1]
    write_pcm_wav(path, signal, 16000)
    decoded = decode_file(path, sample_rate=None)
    assert decoded.sample_rate == 16000
    assert decoded.samples.shape == (1, 16000)
    assert decoded.duration == pytest.approx(1.0)
    np.testing.assert_allclose(decoded.samples, signal, atol=1 / 32767)


def test_stereo_wav_keeps_channels_separate(stereo_wav: Path) -> None:
    decoded = decode_file(stereo_wav, sample_rate=None)
    np.testing.assert_allclose(decoded.samples, tones(16000), atol=1 / 32767)
    assert_tone_channels(decoded)


def test_mono_averages_channels(stereo_wav: Path) -> None:
    decoded = decode_file(stereo_wav, sample_rate=None, mono=True)
    assert decoded.samples.shape == (1, 16000)
    np.testing.assert_allclose(decoded.samples[0], tones(16000).mean(axis=0), atol=2 / 32767)


@pytest.mark.parametrize(("src_rate", "dst_rate"), [(44100, 16000), (8000, 16000), (48000, 8000)])
def test_resampling_gives_right_length_and_keeps_channels(
    tmp_path: Path, src_rate: int, dst_rate: int
) -> None:
    path = tmp_path / f"tones_{src_rate}.wav"
    write_pcm_wav(path, tones(src_rate, seconds=1.5), src_rate)
    decoded = decode_file(path, sample_rate=dst_rate)
    assert decoded.sample_rate == dst_rate
    assert decoded.samples.shape == (2, round(1.5 * dst_rate))
    assert decoded.duration == pytest.approx(1.5)
    assert_tone_channels(decoded)


def test_default_rate_is_16k(tmp_path: Path) -> None:
    path = tmp_path / "tones_8k.wav"
    write_pcm_wav(path, tones(8000), 8000)
    assert decode_file(path).sample_rate == 16000


def test_mulaw_wav_8k(tmp_path: Path) -> None:
    path = tmp_path / "mulaw.wav"
    signal = tones(8000)
    write_mulaw_wav(path, signal, 8000)
    decoded = decode_file(path, sample_rate=None)
    assert decoded.sample_rate == 8000
    assert decoded.samples.shape == (2, 8000)
    # mu-law keeps ~2-3 % relative precision: errors stay below 1/32 of full scale at these levels.
    np.testing.assert_allclose(decoded.samples, signal, atol=1 / 32)
    assert_tone_channels(decoded)
    upsampled = decode_file(path, sample_rate=16000)
    assert upsampled.samples.shape == (2, 16000)
    assert_tone_channels(upsampled)


SOX_FORMATS = {
    "mulaw_sox.wav": ["-r", "8000", "-e", "mu-law", "-b", "8"],
    "sox.flac": [],
    "sox.ogg": [],
}
FFMPEG_FORMATS = {
    "ff.flac": ["-c:a", "flac"],
    "ff.mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "ff_vorbis.ogg": ["-c:a", "libvorbis"],
    "ff_opus.ogg": ["-c:a", "libopus", "-b:a", "64k"],
    "ff.opus": ["-c:a", "libopus", "-b:a", "64k"],
}


@pytest.mark.parametrize("name", sorted(SOX_FORMATS))
def test_formats_made_by_sox(stereo_wav: Path, tmp_path: Path, name: str) -> None:
    sox = shutil.which("sox")
    if sox is None:
        pytest.skip("sox (Debian package sox) is not installed")
    out = tmp_path / name
    subprocess.run(
        [sox, "-R", str(stereo_wav), *SOX_FORMATS[name], str(out)], check=True, capture_output=True
    )
    decoded = decode_file(out, sample_rate=16000)
    assert decoded.duration == pytest.approx(1.0, abs=0.02)  # vorbis may pad a few ms
    assert_tone_channels(decoded)


@pytest.mark.parametrize("name", sorted(FFMPEG_FORMATS))
def test_formats_made_by_ffmpeg(stereo_wav: Path, tmp_path: Path, name: str) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg (Debian package ffmpeg) is not installed")
    out = tmp_path / name
    cmd = [
        ffmpeg,
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(stereo_wav),
        *FFMPEG_FORMATS[name],
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    decoded = decode_file(out, sample_rate=16000)
    assert decoded.duration == pytest.approx(1.0, abs=0.02)
    assert_tone_channels(decoded)


def test_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "no_such_call.wav"
    with pytest.raises(AudioDecodeError, match="no_such_call.wav: no such file") as info:
        decode_file(path)
    assert info.value.path == path


def test_empty_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "empty_call.wav"
    path.touch()
    with pytest.raises(AudioDecodeError, match="empty_call.wav: file is empty"):
        decode_file(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("text_call.wav", b"this is not audio, just some text\n" * 20),
        ("random_call.mp3", np.random.default_rng(0).bytes(5000)),
    ],
)
def test_corrupt_file_names_it(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=f"{name}: cannot decode"):
        decode_file(path)


def test_header_only_wav_has_no_samples(tmp_path: Path) -> None:
    path = tmp_path / "header_only.wav"
    write_pcm_wav(path, np.zeros((1, 0), dtype=np.float32), 8000)
    with pytest.raises(AudioDecodeError, match="header_only.wav: no audio samples"):
        decode_file(path)


def test_decode_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        decode_file(tmp_path / "missing.flac")


def test_rejects_bad_sample_rate(stereo_wav: Path) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        decode_file(stereo_wav, sample_rate=0)
