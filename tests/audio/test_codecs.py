"""audio.codecs: G.711 mu-law bit-exactness (audioop, sox), PCM16, channel split and FrameError cases."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from audio.codecs import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameError,
    decode_frame,
    deinterleave,
    mulaw_decode,
    mulaw_encode,
    pcm16_decode,
    to_float32,
)

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def _audioop():
    """Python's deprecated audioop (present up to 3.12): the reference G.711 implementation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop", reason="audioop was removed from this Python")


def tone(hz: float, n: int, rate: int = 8000, amp: float = 0.5) -> np.ndarray:
    return (amp * 32767 * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype(np.int16)


def dominant_hz(x: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[spectrum.argmax()])


# -- mu-law ----------------------------------------------------------------------------------------


def test_mulaw_decode_matches_audioop_for_every_code() -> None:
    audioop = _audioop()
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype="<i2")
    decoded = mulaw_decode(ALL_CODES)
    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, expected)


def test_mulaw_encode_matches_audioop_for_every_int16_value() -> None:
    audioop = _audioop()
    assert mulaw_encode(ALL_INT16) == audioop.lin2ulaw(ALL_INT16.astype("<i2").tobytes(), 2)


def test_mulaw_known_values() -> None:
    # G.711: 0xFF and 0x7F are +0 and -0, 0x80 / 0x00 the positive / negative extremes.
    np.testing.assert_array_equal(mulaw_decode(b"\xff\x7f\x80\x00"), [0, 0, 32124, -32124])
    assert mulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == b"\xff\x80\x00"


def test_mulaw_code_round_trip_is_identity_except_negative_zero() -> None:
    back = np.frombuffer(mulaw_encode(mulaw_decode(ALL_CODES)), dtype=np.uint8)
    expected = np.arange(256, dtype=np.uint8)
    expected[0x7F] = 0xFF  # -0 decodes to 0, which encodes as +0
    np.testing.assert_array_equal(back, expected)


def test_mulaw_sample_round_trip_error_is_within_the_quantisation_step() -> None:
    back = mulaw_decode(mulaw_encode(ALL_INT16)).astype(np.int64)
    x = ALL_INT16.astype(np.int64)
    error = np.abs(back - x)
    # Logarithmic quantiser: the step grows with the magnitude (~1/16 of it), so the error is ~1/32.
    assert np.all(error <= np.abs(x) / 32 + 8)
    # Near zero the finest step is 8 at the 16-bit scale (14-bit codec), and the reference truncates.
    assert error[np.abs(x) < 32].max() <= 7


def test_mulaw_encode_rejects_non_int16() -> None:
    with pytest.raises(TypeError, match="int16"):
        mulaw_encode(np.zeros(4, dtype=np.float32))


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_mulaw_agrees_with_sox(tmp_path: Path) -> None:
    raw = tmp_path / "sweep.raw"
    ulaw = tmp_path / "sweep.ul"
    back = tmp_path / "back.raw"
    fmt16 = ["-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1"]
    fmt_ul = ["-t", "raw", "-r", "8000", "-e", "u-law", "-b", "8", "-c", "1"]
    subprocess.run(
        ["sox", "-n", *fmt16, str(raw), "synth", "2", "sine", "100-3000", "vol", "0.9"], check=True
    )
    subprocess.run(["sox", "-D", *fmt16, str(raw), *fmt_ul, str(ulaw)], check=True)
    subprocess.run(["sox", *fmt_ul, str(ulaw), *fmt16, str(back)], check=True)
    pcm = np.fromfile(raw, dtype="<i2").astype(np.int16)
    sox_codes = ulaw.read_bytes()
    # Decoding is bit-exact with sox.
    np.testing.assert_array_equal(mulaw_decode(sox_codes), np.fromfile(back, dtype="<i2"))
    # sox rounds a few values exactly on segment decision levels the other way than the reference
    # (Sun/audioop) encoder; everywhere else the bytes are identical, and never more than one level apart.
    ours = mulaw_encode(pcm)
    assert np.mean(np.frombuffer(ours, np.uint8) == np.frombuffer(sox_codes, np.uint8)) > 0.99
    levels = np.unique(mulaw_decode(ALL_CODES))
    rank_ours = np.searchsorted(levels, mulaw_decode(ours))
    rank_sox = np.searchsorted(levels, mulaw_decode(sox_codes))
    assert np.abs(rank_ours - rank_sox).max() <= 1


# -- PCM16, channels, float ------------------------------------------------------------------------


def test_pcm16_decode_is_little_endian() -> None:
    np.testing.assert_array_equal(pcm16_decode(b"\x01\x00\xff\x7f\x00\x80\xff\xff"), [1, 32767, -32768, -1])


def test_to_float32_range() -> None:
    out = to_float32(np.array([-32768, 0, 16384, 32767], dtype=np.int16))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [-1.0, 0.0, 0.5, 32767 / 32768])
    assert out.max() < 1.0


def test_deinterleave_shapes_and_order() -> None:
    out = deinterleave(np.arange(6), 2)
    np.testing.assert_array_equal(out, [[0, 2, 4], [1, 3, 5]])
    assert out.flags.c_contiguous
    with pytest.raises(ValueError, match="5 samples"):
        deinterleave(np.arange(5), 2)


@pytest.mark.parametrize("encoding", ["pcm16", "mulaw"])
def test_stereo_frame_keeps_channels_apart(encoding: str) -> None:
    n = 1600  # 200 ms at 8 kHz
    left, right = tone(440.0, n), tone(1200.0, n, amp=0.25)
    interleaved = np.stack([left, right], axis=1).reshape(-1)
    data = interleaved.astype("<i2").tobytes() if encoding == "pcm16" else mulaw_encode(interleaved)
    out = decode_frame(data, encoding=encoding, channels=2)
    assert out.shape == (2, n)
    assert out.dtype == np.float32
    assert dominant_hz(out[0]) == pytest.approx(440.0, abs=10)
    assert dominant_hz(out[1]) == pytest.approx(1200.0, abs=10)
    assert np.abs(out[0]).max() == pytest.approx(0.5, abs=0.03)
    assert np.abs(out[1]).max() == pytest.approx(0.25, abs=0.02)
    if encoding == "pcm16":
        np.testing.assert_array_equal(out[0], to_float32(left))
        np.testing.assert_array_equal(out[1], to_float32(right))


def test_mono_mulaw_frame_equals_table_decode() -> None:
    codes = bytes(range(256)) * 2
    out = decode_frame(codes, encoding="mulaw", channels=1)
    np.testing.assert_array_equal(out[0], to_float32(mulaw_decode(codes)))


# -- FrameError ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (b"", {"encoding": "pcm16", "channels": 1}, r"empty pcm16 frame \(0 bytes\)"),
        (b"", {"encoding": "mulaw", "channels": 2}, r"empty mulaw frame"),
        (b"\x00" * 321, {"encoding": "pcm16", "channels": 1}, r"odd length of 321 bytes"),
        (b"\x00" * 322, {"encoding": "pcm16", "channels": 2}, r"322 bytes is not a multiple of 4"),
        (b"\x00" * 161, {"encoding": "mulaw", "channels": 2}, r"161 bytes is not a multiple of 2"),
        (b"\x00" * 320, {"encoding": "alaw", "channels": 1}, r"unknown encoding 'alaw'"),
        (b"\x00" * 320, {"encoding": "pcm16", "channels": 0}, r"channels must be 1 or 2, got 0"),
        (b"\x00" * 320, {"encoding": "pcm16", "channels": 3}, r"channels must be 1 or 2, got 3"),
        (
            b"\x00" * (DEFAULT_MAX_FRAME_BYTES + 2),
            {"encoding": "pcm16", "channels": 1},
            rf"{DEFAULT_MAX_FRAME_BYTES + 2} bytes exceeds max_bytes={DEFAULT_MAX_FRAME_BYTES}",
        ),
        (
            b"\x00" * 400,
            {"encoding": "mulaw", "channels": 1, "max_bytes": 320},
            r"400 bytes exceeds max_bytes=320",
        ),
    ],
)
def test_frame_errors(data: bytes, kwargs: dict, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        decode_frame(data, **kwargs)


def test_frame_error_is_a_value_error() -> None:
    assert issubclass(FrameError, ValueError)
    with pytest.raises(ValueError):
        decode_frame(b"\x00", encoding="pcm16", channels=1)


def test_frame_at_max_bytes_is_accepted() -> None:
    out = decode_frame(b"\x00" * 320, encoding="pcm16", channels=2, max_bytes=320)
    assert out.shape == (2, 80)
