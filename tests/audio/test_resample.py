"""audio.resample: lengths, fidelity, channel independence and seamless chunked streaming."""

from __future__ import annotations

import numpy as np
import pytest

from audio.resample import Resampler, resample


def sine(hz: float, rate: int, n: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype(np.float32)


@pytest.mark.parametrize(
    ("src", "dst", "n"),
    [(8000, 16000, 8000), (8000, 16000, 8001), (44100, 16000, 44100), (48000, 8000, 12345)],
)
def test_output_length(src: int, dst: int, n: int) -> None:
    out = resample(np.zeros(n, dtype=np.float32), src, dst)
    assert out.dtype == np.float32
    assert out.shape == (round(n * dst / src),)


def test_upsampled_tone_matches_the_ideal_one() -> None:
    out = resample(sine(300.0, 8000, 8000), 8000, 16000)
    ideal = sine(300.0, 16000, 16000)
    # Away from the edges the filter is transparent in the passband and adds no delay.
    np.testing.assert_allclose(out[200:-200], ideal[200:-200], atol=1e-3)


def test_downsampling_removes_content_above_new_nyquist() -> None:
    out = resample(sine(6000.0, 48000, 48000), 48000, 8000)
    assert np.sqrt((out[200:-200] ** 2).mean()) < 0.01


def test_channels_are_resampled_independently() -> None:
    stereo = np.stack([sine(440.0, 8000, 8000), np.zeros(8000, dtype=np.float32)])
    out = resample(stereo, 8000, 16000)
    assert out.shape == (2, 16000)
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_array_equal(out[0], resample(stereo[0], 8000, 16000))


def test_chunked_stream_equals_one_shot() -> None:
    signal = sine(440.0, 8000, 8000)
    stream = Resampler(8000, 16000)
    pieces = [stream.process(chunk) for chunk in np.array_split(signal, 7)]
    np.testing.assert_allclose(
        np.concatenate([*pieces, stream.flush()]), resample(signal, 8000, 16000), atol=1e-6
    )


def test_same_rate_is_a_copy() -> None:
    signal = sine(440.0, 16000, 100)
    out = resample(signal, 16000, 16000)
    np.testing.assert_array_equal(out, signal)
    assert out is not signal


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 16000)
    with pytest.raises(ValueError, match="shape"):
        resample(np.zeros((1, 2, 3), dtype=np.float32), 8000, 16000)
    with pytest.raises(ValueError, match="1-D"):
        Resampler(8000, 16000).process(np.zeros((2, 10), dtype=np.float32))
