"""audio.endpoint: streaming endpointing of real synthesized and recorded telephone speech, real Silero model.

The fixture speaks three Russian sentences (festival, voice msu_ru_nsh_clunits) and two English ones
(espeak-ng) with :func:`audio.synth.speak`, each trimmed to its first/last audible sample, joins them with
known silences, and turns the call into 8 kHz telephone band with :func:`audio.synth.telephone_band` (sox
``sinc 300-3400``, ``rate 8k``), both as 16-bit PCM and as mu-law streamed through
:func:`audio.codecs.decode_frame`. Known sentence boundaries are therefore exact.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from audio.codecs import decode_frame, mulaw_encode
from audio.decode import decode_file
from audio.endpoint import EndpointConfig, Endpointer, EndpointError, Utterance, find_silero_model
from audio.synth import MissingToolError, speak, telephone_band

RU_SENTENCES = [
    "Добрый день, вы позвонили в службу поддержки клиентов.",
    "Пожалуйста, назовите номер вашего договора.",
    "Спасибо, я проверю информацию и вернусь к вам через минуту.",
]
EN_SENTENCES = [
    "Good afternoon, I would like to check the status of my order.",
    "The delivery was supposed to arrive last Tuesday.",
]
GAPS_S = [1.0, 1.2, 0.8, 1.5, 1.0, 1.0]  # before the first sentence, between them, after the last
RATE = 8000
TOLERANCE_S = 0.3


def _require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"Debian tool(s) not installed: {', '.join(missing)}")


@dataclass
class Call:
    """A synthetic 8 kHz telephone call with exactly known sentence boundaries (seconds)."""

    pcm: np.ndarray  # float32, telephone band, 16-bit PCM
    mulaw: np.ndarray  # float32, telephone band, via mu-law bytes and decode_frame
    bounds: list[tuple[float, float]]
    clips: list[np.ndarray]  # the trimmed 16 kHz sentences


def _synthesize() -> list[np.ndarray]:
    _require("text2wave", "espeak-ng", "sox")
    try:
        return [speak(text, "ru") for text in RU_SENTENCES] + [speak(text, "en") for text in EN_SENTENCES]
    except MissingToolError as exc:
        pytest.skip(str(exc))


def _join(clips: list[np.ndarray], gaps_s: list[float], rate: int = 16000):
    parts = [np.zeros(round(gaps_s[0] * rate), np.float32)]
    bounds, t = [], parts[0].size
    for clip, gap in zip(clips, gaps_s[1:], strict=True):
        bounds.append((t / rate, (t + clip.size) / rate))
        silence = np.zeros(round(gap * rate), np.float32)
        parts += [clip, silence]
        t += clip.size + silence.size
    return np.concatenate(parts), bounds


def _telephone(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Band-limit to 300-3400 Hz at 8 kHz: returns (16-bit PCM as float32, mu-law decoded frame by frame)."""
    pcm16 = np.round(np.clip(telephone_band(x, 16000), -1, 1) * 32767).astype(np.int16)
    data = mulaw_encode(pcm16)
    frames = [decode_frame(data[i : i + 160], encoding="mulaw", channels=1) for i in range(0, len(data), 160)]
    return pcm16.astype(np.float32) / 32768, np.concatenate(frames, axis=1)[0]


@pytest.fixture(scope="session")
def call() -> Call:
    clips = _synthesize()
    wide, bounds = _join(clips, GAPS_S)
    pcm, mulaw = _telephone(wide)
    return Call(pcm=pcm, mulaw=mulaw, bounds=bounds, clips=clips)


def stream(
    x: np.ndarray, chunk_ms: int = 20, config: EndpointConfig | None = None, rate: int = RATE
) -> list[Utterance]:
    endpointer = Endpointer(config)
    step = rate * chunk_ms // 1000
    out: list[Utterance] = []
    for i in range(0, x.size, step):
        out += endpointer.push(x[i : i + step], rate)
    return out + endpointer.flush()


def spans(utterances: list[Utterance]) -> list[tuple[float, float]]:
    return [(round(u.start, 3), round(u.end, 3)) for u in utterances]


# -- the model --------------------------------------------------------------------------------------


def test_bundled_silero_model_is_found() -> None:
    path = find_silero_model()
    assert path.is_file()
    assert path.name.startswith("silero_vad") and path.suffix == ".onnx"


# -- sentences on telephone audio -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pcm", "mulaw"])
def test_every_sentence_is_one_utterance_with_accurate_boundaries(call: Call, kind: str) -> None:
    utterances = stream(getattr(call, kind))
    assert len(utterances) == len(call.bounds), spans(utterances)
    for utterance, (start, end) in zip(utterances, call.bounds, strict=True):
        assert utterance.start == pytest.approx(start, abs=TOLERANCE_S), spans(utterances)
        assert utterance.end == pytest.approx(end, abs=TOLERANCE_S), spans(utterances)
        assert utterance.samples.dtype == np.float32
        assert utterance.samples.size == round((utterance.end - utterance.start) * 16000)
        assert np.abs(utterance.samples).max() > 0.1


def test_silero_default_threshold_loses_band_limited_speech(call: Call) -> None:
    """Why EndpointConfig lowers the threshold: at Silero's usual 0.5, 8 kHz band-limited speech drops out."""
    utterances = stream(call.pcm, config=EndpointConfig(threshold=0.5, neg_threshold=0.35))
    found = [
        any(abs(u.start - start) <= TOLERANCE_S and abs(u.end - end) <= TOLERANCE_S for u in utterances)
        for start, end in call.bounds
    ]
    assert not all(found), spans(utterances)


def test_chunk_size_does_not_change_the_result(call: Call) -> None:
    small, large = stream(call.mulaw, chunk_ms=20), stream(call.mulaw, chunk_ms=100)
    assert spans(small) == spans(large)
    for a, b in zip(small, large, strict=True):
        np.testing.assert_allclose(a.samples, b.samples, atol=1e-5)


def test_16k_input_needs_no_resampling(call: Call) -> None:
    wide, bounds = _join(call.clips, GAPS_S)
    utterances = stream(wide, rate=16000)
    assert len(utterances) == len(bounds)
    for utterance, (start, end) in zip(utterances, bounds, strict=True):
        assert utterance.start == pytest.approx(start, abs=TOLERANCE_S)
        assert utterance.end == pytest.approx(end, abs=TOLERANCE_S)


# -- no speech --------------------------------------------------------------------------------------


def test_silence_gives_no_utterance() -> None:
    endpointer = Endpointer()
    silence = np.zeros(10 * RATE, dtype=np.float32)
    out = []
    for i in range(0, silence.size, 160):
        out += endpointer.push(silence[i : i + 160], RATE)
        assert endpointer.pending() is None
    assert out + endpointer.flush() == []


@pytest.mark.parametrize("noise", ["whitenoise", "pinknoise", "brownnoise"])
def test_line_noise_gives_no_utterance(tmp_path: Path, noise: str) -> None:
    _require("sox")
    wav = tmp_path / "noise.wav"
    synth = ["synth", "8", noise, "vol", "0.3", "sinc", "300-3400"]
    subprocess.run(["sox", "-n", "-r", "8000", "-b", "16", str(wav), *synth], check=True)
    assert stream(decode_file(wav, sample_rate=None).samples[0]) == []


def test_hum_and_tone_give_no_utterance() -> None:
    t = np.arange(6 * RATE) / RATE
    hum = 0.3 * np.sin(2 * np.pi * 50 * t) + 0.2 * np.sin(2 * np.pi * 425 * t)  # mains + dial tone
    assert stream(hum.astype(np.float32)) == []


# -- partial speech, flush, max length -------------------------------------------------------------


def test_flush_mid_speech_returns_the_partial_utterance(call: Call) -> None:
    start, end = call.bounds[2]
    stop = start + 2.0  # two seconds into the third sentence
    endpointer = Endpointer()
    x = call.mulaw[: round(stop * RATE)]
    finished: list[Utterance] = []
    for i in range(0, x.size, 160):
        finished += endpointer.push(x[i : i + 160], RATE)
    assert len(finished) == 2
    pending = endpointer.pending()
    assert pending is not None
    assert pending.start == pytest.approx(start, abs=TOLERANCE_S)
    assert pending.end == pytest.approx(stop, abs=0.05)
    last = endpointer.flush()
    assert len(last) == 1
    assert last[0].start == pending.start
    assert last[0].end == pytest.approx(stop, abs=0.05)
    assert last[0].end < end - 1.0
    with pytest.raises(EndpointError, match="flushed"):
        endpointer.push(x[:160], RATE)


def test_pending_grows_while_speech_goes_on(call: Call) -> None:
    start, end = call.bounds[0]
    endpointer = Endpointer()
    seen = []
    x = call.pcm[: round((end + 1.0) * RATE)]
    for i in range(0, x.size, 160):
        done = endpointer.push(x[i : i + 160], RATE)
        if (pending := endpointer.pending()) is not None:
            seen.append(pending.end)
        if done:
            break
    assert len(done) == 1
    assert len(seen) > 50
    assert seen == sorted(seen)
    assert endpointer.pending() is None


def test_long_monologue_is_cut_at_max_length(call: Call) -> None:
    # The five sentences with 0.3 s pauses (shorter than min_silence): one ~19 s turn.
    wide, bounds = _join(call.clips, [0.5, 0.3, 0.3, 0.3, 0.3, 1.0])
    pcm, _ = _telephone(wide)
    config = EndpointConfig(max_utterance_s=6.0)
    utterances = stream(pcm, config=config)
    assert len(stream(pcm)) == 1  # with the default 20 s limit it is one utterance
    assert len(utterances) >= 3, spans(utterances)
    assert all(u.duration <= config.max_utterance_s + 1e-9 for u in utterances), spans(utterances)
    pauses = [(end, start) for (_, end), (start, _) in zip(bounds, bounds[1:], strict=False)]
    for before, after in zip(utterances, utterances[1:], strict=False):
        assert after.start == before.end  # cuts lose no audio
        # ... and fall in a pause between sentences rather than mid-word.
        assert any(lo - 0.05 <= before.end <= hi + 0.05 for lo, hi in pauses), spans(utterances)
    assert utterances[0].start == pytest.approx(bounds[0][0], abs=TOLERANCE_S)
    assert utterances[-1].end == pytest.approx(bounds[-1][1], abs=TOLERANCE_S)


# -- real 8 kHz recordings ------------------------------------------------------------------------


def test_real_asterisk_prompts(tmp_path: Path) -> None:
    prompts = [
        Path("/usr/share/asterisk/sounds/ru/agent-alreadyon.wav"),
        Path("/usr/share/asterisk/sounds/en/all-circuits-busy-now.wav"),
    ]
    if not all(p.is_file() for p in prompts):
        pytest.skip("asterisk-core-sounds-ru-wav / -en-wav not installed")
    gap = np.zeros(round(1.5 * RATE), np.float32)
    first, second = (decode_file(p, sample_rate=None).samples[0] for p in prompts)
    x = np.concatenate([gap, first, gap, second, gap])
    utterances = stream(x)
    assert len(utterances) == 2, spans(utterances)
    boundary = (gap.size + first.size + gap.size / 2) / RATE
    assert utterances[0].start >= 1.5 - TOLERANCE_S and utterances[0].end < boundary
    assert utterances[1].start > boundary and utterances[1].end <= x.size / RATE


# -- input and config validation --------------------------------------------------------------------


def test_bad_input_raises_endpoint_error() -> None:
    endpointer = Endpointer()
    with pytest.raises(EndpointError, match="1-D"):
        endpointer.push(np.zeros((2, 160), np.float32), RATE)
    with pytest.raises(EndpointError, match="dtype int16"):
        endpointer.push(np.zeros(160, np.int16), RATE)
    endpointer.push(np.zeros(160, np.float32), RATE)
    with pytest.raises(EndpointError, match="from 8000 to 16000 Hz"):
        endpointer.push(np.zeros(160, np.float32), 16000)
    assert endpointer.push(np.zeros(0, np.float32), RATE) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": 0.3, "neg_threshold": 0.4}, "neg_threshold"),
        ({"min_silence_ms": 100, "post_roll_ms": 200}, "post_roll_ms"),
        ({"pre_roll_ms": -1}, "pre_roll_ms"),
        ({"max_utterance_s": 0.5}, "max_utterance_s"),
    ],
)
def test_bad_config_raises(kwargs: dict, message: str) -> None:
    with pytest.raises(EndpointError, match=message):
        EndpointConfig(**kwargs)


def test_sample_buffer_appends_trims_and_compacts_like_a_plain_array() -> None:
    from audio.endpoint import _SampleBuffer

    rng = np.random.default_rng(0)
    buffer, reference, start = _SampleBuffer(), np.zeros(0, np.float32), 0
    for _ in range(400):
        chunk = rng.standard_normal(int(rng.integers(0, 3000))).astype(np.float32)
        buffer.append(chunk)
        reference = np.concatenate([reference, chunk])
        if rng.random() < 0.3:
            start = int(rng.integers(start, reference.size + 1))
            buffer.drop_before(start)
            assert buffer.start == start
        assert buffer.end == reference.size
        lo = max(start, buffer.end - 5000)
        np.testing.assert_array_equal(buffer.view(lo, buffer.end), reference[lo:])


def test_flush_on_a_window_boundary_still_returns_the_open_turn(call: Call) -> None:
    wide, bounds = _join(call.clips, GAPS_S)
    start, _ = bounds[0]
    stop = (round((start + 1.5) * 16000) // 512) * 512  # mid-sentence, an exact number of VAD windows
    endpointer = Endpointer()
    for i in range(0, stop, 320):
        assert endpointer.push(wide[i : min(i + 320, stop)], 16000) == []
    last = endpointer.flush()
    assert len(last) == 1
    assert last[0].start == pytest.approx(start, abs=TOLERANCE_S)
    assert last[0].end == pytest.approx(stop / 16000, abs=0.05)


def test_tentative_end_has_exactly_the_final_samples(call: Call) -> None:
    """After 200 ms of silence the endpointer offers the turn as it will end; every final utterance of the
    call was offered earlier with identical samples (so a transcription started early can be reused),
    and nothing is offered while speech goes on."""
    endpointer = Endpointer(EndpointConfig(min_silence_ms=500))
    offered: dict[tuple[float, float], np.ndarray] = {}
    finals: list[Utterance] = []
    for i in range(0, call.pcm.size, 160):
        finals += endpointer.push(call.pcm[i : i + 160], RATE)
        tentative = endpointer.tentative(200)
        if tentative is not None:
            offered[(tentative.start, tentative.end)] = tentative.samples
            assert endpointer.pending() is not None  # the turn is still open
    finals += endpointer.flush()
    assert len(finals) == len(call.bounds)
    for final in finals[:-1]:  # the last one may end by flush, before 200 ms of silence
        assert np.array_equal(offered[(final.start, final.end)], final.samples)
