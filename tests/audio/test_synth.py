"""audio.synth: stereo telephone calls from scripts with the real festival, espeak-ng and sox.

The tests skip (saying which) only when one of those Debian tools is missing; everything else runs the
real tools and checks the placed turn times against where the energy actually is in the channels.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from audio import synth
from audio.decode import decode_file
from audio.synth import (
    MissingToolError,
    PlacedTurn,
    ScriptTurn,
    SynthCall,
    SynthError,
    build_call,
    load_script,
    speak,
    telephone_band,
)

CALLS = Path(__file__).resolve().parents[2] / "bench" / "data" / "calls"
TOLERANCE_S = 0.02
SCRIPT = [
    ScriptTurn("agent", "Добрый день, служба поддержки, слушаю вас.", "ru"),
    ScriptTurn("customer", "Hello, my phone line has been silent since yesterday.", "en", pause_before=0.6),
    ScriptTurn("agent", "Назовите, пожалуйста, ваш адрес.", "ru", pause_before=1.0),
    ScriptTurn("customer", "Twelve Garden Street.", "en", pause_before=0.7),
]


def require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"Debian tool(s) not installed: {', '.join(missing)}")


def speech_span(
    x: np.ndarray, rate: int, frame_s: float = 0.005, level: float = 0.004
) -> tuple[float, float]:
    """Start and end (s) of the 5 ms frames of ``x`` whose RMS is above ``level`` (-48 dBFS, 12 dB above
    the noise floor)."""
    step = round(frame_s * rate)
    frames = x[: x.size // step * step].reshape(-1, step)
    loud = np.flatnonzero(np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) > level)
    assert loud.size, "no energy at all"
    return loud[0] * step / rate, (loud[-1] + 1) * step / rate


def segment(call: SynthCall, channel: int, start: float, end: float) -> np.ndarray:
    return call.samples[channel, round(start * call.sample_rate) : round(end * call.sample_rate)]


@pytest.fixture(scope="module")
def call() -> SynthCall:
    require("text2wave", "espeak-ng", "sox")
    return build_call(SCRIPT)


# -- speak and the telephone line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"), [("Проверка связи, раз, два, три.", "ru"), ("Testing the line, one two three.", "en")]
)
def test_speak_gives_trimmed_16k_speech_peaking_at_half(text: str, lang: str) -> None:
    require("text2wave" if lang == "ru" else "espeak-ng")
    x = speak(text, lang)
    assert x.dtype == np.float32 and x.ndim == 1
    assert 0.5 < x.size / 16000 < 5
    assert np.abs(x).max() == pytest.approx(0.5)
    assert x[0] != 0 and x[-1] != 0  # trimmed: no leading or trailing silence
    first, last = speech_span(x, 16000)
    assert first < 0.02 and last > x.size / 16000 - 0.02
    x[:] = 0  # the caller's copy: the cache is not touched
    again = speak(text, lang)
    assert np.abs(again).max() == pytest.approx(0.5)
    assert (text, lang, synth.default_voice(lang)) in synth._cache


def test_telephone_band_keeps_300_to_3400_hz_at_8k() -> None:
    require("sox")
    t = np.arange(16000) / 16000
    tones = {hz: (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32) for hz in (100, 1000, 3800)}
    out = {hz: telephone_band(x, 16000) for hz, x in tones.items()}
    assert all(y.dtype == np.float32 and y.size == 8000 for y in out.values())

    def rms(y: np.ndarray) -> float:
        return float(np.sqrt(np.mean(y[1000:-1000] ** 2)))

    assert rms(out[1000]) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)
    assert rms(out[100]) < 0.01 and rms(out[3800]) < 0.01
    np.testing.assert_array_equal(telephone_band(tones[1000], 16000), out[1000])  # repeatable
    with pytest.raises(SynthError, match="mono"):
        telephone_band(np.zeros((2, 100), np.float32), 16000)


# -- a ru+en call -------------------------------------------------------------------------------------


def test_call_shape_rate_and_turn_order(call: SynthCall) -> None:
    assert call.sample_rate == 8000
    assert call.samples.dtype == np.float32 and call.samples.shape[0] == 2
    assert [(t.speaker, t.text, t.lang) for t in call.turns] == [(s.speaker, s.text, s.lang) for s in SCRIPT]
    assert all(isinstance(t, PlacedTurn) for t in call.turns)
    assert call.turns[0].start == 0.5  # lead
    for before, turn, script in zip(call.turns[:-1], call.turns[1:], SCRIPT[1:], strict=True):
        assert turn.start - before.end == pytest.approx(script.pause_before, abs=1 / 8000)
    assert call.duration == pytest.approx(call.turns[-1].end + 1.0, abs=1 / 8000)  # tail
    for turn in call.turns:  # times fall on whole samples
        assert turn.start * 8000 == pytest.approx(round(turn.start * 8000), abs=1e-6)
        assert turn.end * 8000 == pytest.approx(round(turn.end * 8000), abs=1e-6)
        assert turn.channel == (0 if turn.speaker == "agent" else 1)


def test_placed_times_are_where_the_energy_is(call: SynthCall) -> None:
    for turn in call.turns:
        lo, hi = max(0.0, turn.start - 0.4), min(call.duration, turn.end + 0.4)
        first, last = speech_span(segment(call, turn.channel, lo, hi), call.sample_rate)
        assert lo + first == pytest.approx(turn.start, abs=TOLERANCE_S), turn
        assert lo + last == pytest.approx(turn.end, abs=TOLERANCE_S), turn


def test_the_other_channel_is_silent_while_one_speaks(call: SynthCall) -> None:
    for turn in call.turns:
        other = segment(call, 1 - turn.channel, turn.start, turn.end)
        assert np.abs(other).max() < 0.01, turn
        assert np.abs(segment(call, turn.channel, turn.start, turn.end)).max() > 0.2, turn


def test_silence_is_a_low_noise_floor_not_digital_zero(call: SynthCall) -> None:
    gap = segment(call, 0, 0.0, call.turns[0].start - 0.05)
    level_db = 20 * np.log10(np.sqrt(np.mean(gap.astype(np.float64) ** 2)))
    assert -62 < level_db < -58
    assert np.count_nonzero(gap) == gap.size


def test_same_script_same_samples(call: SynthCall) -> None:
    again = build_call(SCRIPT)
    np.testing.assert_array_equal(again.samples, call.samples)
    assert again.turns == call.turns
    other = build_call(SCRIPT, seed=1, tail=0.25)
    assert other.turns == call.turns and other.duration == pytest.approx(call.duration - 0.75)
    assert not np.array_equal(other.samples[:, :4000], call.samples[:, :4000])
    quiet = build_call(SCRIPT, noise_dbfs=None, lead=1.0)
    assert np.count_nonzero(quiet.samples[:, : 8000 - 10]) == 0
    assert quiet.turns[0].start == 1.0


def test_mono_is_the_mean_of_both_channels(call: SynthCall) -> None:
    mono = call.mono()
    assert mono.dtype == np.float32 and mono.shape == (call.samples.shape[1],)
    np.testing.assert_allclose(mono, call.samples.mean(axis=0), atol=1e-7)


@pytest.mark.parametrize(
    ("encoding", "codec", "atol"), [("pcm16", "pcm_s16le", 1 / 32767), ("mulaw", "pcm_mulaw", 0.02)]
)
def test_wav_round_trips_through_decode_file(
    call: SynthCall, tmp_path: Path, encoding: str, codec: str, atol: float
) -> None:
    path = call.write_wav(tmp_path / f"call-{encoding}.wav", encoding=encoding)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == codec
    decoded = decode_file(path, sample_rate=None)
    assert decoded.sample_rate == call.sample_rate
    assert decoded.samples.shape == call.samples.shape
    np.testing.assert_allclose(decoded.samples, call.samples, atol=atol)


def test_unknown_wav_encoding_is_refused(call: SynthCall, tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="alaw"):
        call.write_wav(tmp_path / "x.wav", encoding="alaw")  # type: ignore[arg-type]


@pytest.mark.parametrize(("sample_rate", "telephone"), [(16000, False), (16000, True), (8000, False)])
def test_other_rates_and_wideband(sample_rate: int, telephone: bool) -> None:
    require("text2wave", "espeak-ng", "sox")
    call = build_call(SCRIPT[:2], sample_rate=sample_rate, telephone=telephone)
    assert call.sample_rate == sample_rate
    for turn, script in zip(call.turns, SCRIPT[:2], strict=True):
        assert turn.duration == pytest.approx(speak(script.text, script.lang).size / 16000, abs=0.05)
        first, last = speech_span(segment(call, turn.channel, turn.start - 0.3, turn.end + 0.3), sample_rate)
        assert turn.start - 0.3 + first == pytest.approx(turn.start, abs=TOLERANCE_S)
        assert turn.start - 0.3 + last == pytest.approx(turn.end, abs=TOLERANCE_S)
    if sample_rate == 16000:
        spectrum = np.abs(np.fft.rfft(call.samples[0])) ** 2
        freqs = np.fft.rfftfreq(call.samples.shape[1], 1 / sample_rate)
        above_4k = spectrum[freqs > 4200].sum() / spectrum.sum()
        assert (above_4k < 1e-3) == telephone


# -- overtalk -----------------------------------------------------------------------------------------


def test_negative_pause_is_overtalk_on_the_other_channel() -> None:
    require("text2wave", "espeak-ng", "sox")
    script = [
        ScriptTurn("agent", "Одну минуту, я сейчас проверю ваш договор и всё вам расскажу.", "ru"),
        ScriptTurn("customer", "No, listen to me!", "en", pause_before=-1.5),
        ScriptTurn("agent", "Слушаю вас.", "ru", pause_before=0.5),
    ]
    call = build_call(script)
    agent, customer, reply = call.turns
    assert customer.start == pytest.approx(agent.end - 1.5, abs=1 / 8000)
    assert customer.start < agent.end
    assert reply.start == pytest.approx(max(agent.end, customer.end) + 0.5, abs=1 / 8000)
    both = (customer.start, min(agent.end, customer.end))
    assert np.abs(segment(call, 0, *both)).max() > 0.1 and np.abs(segment(call, 1, *both)).max() > 0.1
    for turn in call.turns:
        lo = turn.start - 0.3
        first, last = speech_span(segment(call, turn.channel, lo, turn.end + 0.3), call.sample_rate)
        assert (lo + first, lo + last) == pytest.approx((turn.start, turn.end), abs=TOLERANCE_S)


def test_a_speaker_cannot_overtalk_themselves() -> None:
    require("text2wave", "espeak-ng", "sox")
    script = [
        ScriptTurn("agent", "Good afternoon.", "en"),
        ScriptTurn("customer", "Hi.", "en"),
        ScriptTurn("agent", "How are you doing today?", "en", pause_before=-1.5),
    ]
    with pytest.raises(SynthError, match=r"turn 2: .*agent overlap their own turn 0"):
        build_call(script)
    with pytest.raises(SynthError, match="before the call"):
        build_call([script[0], ScriptTurn("customer", "Hi.", "en", pause_before=-30)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"lead": -1}, "lead"), ({"tail": float("nan")}, "tail"), ({"sample_rate": 0}, "sample_rate")],
)
def test_bad_build_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(SynthError, match=message):
        build_call(SCRIPT, **kwargs)
    with pytest.raises(SynthError, match="no turns"):
        build_call([])


# -- scripts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ru-complaint.yaml", "en-complaint.yaml"])
def test_bundled_scripts_load_with_expected_alerts(name: str, default_pack) -> None:
    turns = load_script(CALLS / name)
    lang = name[:2]
    assert len(turns) >= 10 and all(t.lang == lang for t in turns)
    alerts = {c.id: c.speaker.value for c in default_pack.categories if c.kind.is_alert}
    for turn in turns:
        for category in turn.expect:
            assert alerts.get(category) == turn.speaker, (turn, category)
    expected = {c for t in turns for c in t.expect}
    assert {"not_my_job", "blame_shifting", "escalation_request", "asks_when"} <= expected
    clean_agent = [t for t in turns if t.speaker == "agent" and not t.expect]
    assert len(clean_agent) >= 3
    assert any(t.pause_before < 0 for t in turns)  # one overtalk


def test_script_from_json(tmp_path: Path) -> None:
    path = tmp_path / "call.json"
    path.write_text(
        json.dumps(
            [
                {"speaker": "agent", "text": "Hello.", "lang": "en"},
                {"speaker": "customer", "text": "Привет.", "lang": "ru", "pause_before": -0.2, "expect": []},
            ]
        )
    )
    assert load_script(path) == [
        ScriptTurn("agent", "Hello.", "en"),
        ScriptTurn("customer", "Привет.", "ru", pause_before=-0.2),
    ]


GOOD = "- {speaker: agent, text: Здравствуйте, lang: ru}\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (GOOD + "- {speaker: boss, text: Hi, lang: en}\n", r"item 1: speaker: unknown speaker 'boss'"),
        (GOOD + "- {speaker: customer, text: '  ', lang: en}\n", r"item 1: text: empty text"),
        (GOOD + "- {speaker: customer, text: 42, lang: en}\n", r"item 1: text: not a string"),
        ("- {speaker: agent, text: Hi, lang: de}\n", r"item 0: lang: unknown language 'de'"),
        (GOOD + GOOD + "- {speaker: agent, lang: en}\n", r"item 2: text: missing"),
        (GOOD + "- {speaker: agent, text: Hi, lang: en, pause_before: soon}\n", r"item 1: pause_before"),
        (GOOD + "- {speaker: agent, text: Hi, lang: en, expect: not_my_job}\n", r"item 1: expect"),
        (GOOD + "- {speaker: agent, text: Hi, lang: en, expect: [Not My Job]}\n", r"item 1: expect"),
        (GOOD + "- {speaker: agent, text: Hi, lang: en, also_ok: [x y]}\n", r"item 1: also_ok"),
        (GOOD + "- {speaker: agent, text: Hi, lang: en, pause: 1}\n", r"item 1: unknown field\(s\) pause"),
        (GOOD + "- just a line\n", r"item 1: a turn is a mapping"),
        ("speaker: agent\n", r"unknown field\(s\) speaker \(expected split, voices, line, turns\)"),
        ("[]\n", "non-empty list"),
        ("- {speaker: agent\n", "not valid YAML"),
    ],
)
def test_invalid_scripts_name_the_item_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(SynthError, match=message) as info:
        load_script(path)
    assert str(path) in str(info.value)


def test_missing_script_file(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="cannot read"):
        load_script(tmp_path / "nope.yaml")


def test_script_turns_validate_themselves() -> None:
    with pytest.raises(SynthError, match="speaker"):
        ScriptTurn("supervisor", "Hi", "en")
    with pytest.raises(SynthError, match="lang"):
        ScriptTurn("agent", "Hi", "fr")
    assert ScriptTurn("agent", "Hi", "en", expect=["not_my_job"]).expect == ("not_my_job",)  # type: ignore[arg-type]
    assert ScriptTurn("customer", "Hi", "en", also_ok=["asks_when"]).also_ok == ("asks_when",)  # type: ignore[arg-type]
    with pytest.raises(SynthError, match="also_ok"):
        ScriptTurn("agent", "Hi", "en", also_ok=("Not An Id",))


# -- missing or failing tools -------------------------------------------------------------------------


def test_missing_tools_raise_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth, "_cache", {})
    monkeypatch.setenv("PATH", "")
    with pytest.raises(MissingToolError, match=r"festival is not installed.*festvox-ru"):
        speak("Проверка.", "ru")
    with pytest.raises(MissingToolError, match="espeak-ng is not installed"):
        speak("Testing.", "en")
    with pytest.raises(MissingToolError, match="sox is not installed"):
        telephone_band(np.zeros(1600, np.float32), 16000)
    with pytest.raises(SynthError, match="festival"):
        build_call(SCRIPT)


def test_missing_festival_voice_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    require("text2wave")
    monkeypatch.setattr(synth, "_cache", {})
    monkeypatch.setitem(synth.FESTIVAL_VOICES, "no_such_voice_clunits", ("ru", "festvox-nothing"))
    voice = synth.Voice("festival", "no_such_voice_clunits")
    with pytest.raises(MissingToolError, match=r"festival voice no_such_voice_clunits .*festvox-nothing"):
        speak("Проверка.", "ru", voice)


def test_bad_speak_arguments() -> None:
    with pytest.raises(SynthError, match="unknown language"):
        speak("Hallo", "de")
    with pytest.raises(SynthError, match="empty"):
        speak(" ", "en")


# -- voices and whole-call scripts ----------------------------------------------------------------------

CALL_SCRIPT = """\
split: heldout
voices:
  agent: {tts: festival, voice: kal_diphone, rate: 1.25}
  customer: {tts: espeak-ng, voice: en-us+f2, rate: 0.9, pitch: 70}
line: {encoding: mulaw, noise_dbfs: -42}
turns:
  - {speaker: agent, text: "Good afternoon, how can I help?", lang: en}
  - {speaker: customer, text: My card was blocked this morning., lang: en, expect: []}
"""


def test_a_call_script_names_its_voices_line_and_split(tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text(CALL_SCRIPT, encoding="utf-8")
    script = synth.load_call_script(path)
    assert script.name == "card" and script.split == "heldout"
    assert script.encoding == "mulaw" and script.noise_dbfs == -42
    assert script.voices == {
        "agent": synth.Voice("festival", "kal_diphone", 1.25),
        "customer": synth.Voice("espeak-ng", "en-us+f2", 0.9, 70),
    }
    assert [t.speaker for t in script.turns] == ["agent", "customer"]
    assert load_script(path) == list(script.turns)


def test_voices_speak_at_their_rate_and_pitch() -> None:
    """A rate of 1.25 makes festival's English voice about a fifth shorter (sox tempo); espeak-ng's pitch
    changes the sound but barely its length; a voice that does not speak the turn's language is refused."""
    require("text2wave", "espeak-ng", "sox")
    text = "Please hold the line while I check your account."
    try:
        plain = speak(text, "en", synth.Voice("festival", "kal_diphone"))
    except MissingToolError as exc:
        pytest.skip(str(exc))
    fast = speak(text, "en", synth.Voice("festival", "kal_diphone", rate=1.25))
    assert fast.size / plain.size == pytest.approx(1 / 1.25, abs=0.05)
    low, high = (speak(text, "en", synth.Voice("espeak-ng", "en-us", pitch=p)) for p in (20, 80))
    assert not np.array_equal(low[: min(low.size, high.size)], high[: min(low.size, high.size)])
    with pytest.raises(SynthError, match=r"speaks 'ru', not 'en'"):
        speak(text, "en", synth.Voice("espeak-ng", "ru+f3"))


def test_a_call_is_built_with_each_speakers_voice(tmp_path: Path) -> None:
    require("text2wave", "espeak-ng", "sox")
    path = tmp_path / "card.yaml"
    path.write_text(CALL_SCRIPT, encoding="utf-8")
    script = synth.load_call_script(path)
    try:
        call = script.build(telephone=False, sample_rate=16000)
    except MissingToolError as exc:
        pytest.skip(str(exc))
    for turn, placed in zip(script.turns, call.turns, strict=True):
        voice = script.voices[turn.speaker]
        spoken = synth._trim(speak(turn.text, "en", voice))  # as _render trims it
        assert placed.duration == pytest.approx(spoken.size / 16000, abs=0.01)
    again = script.build(telephone=False, sample_rate=16000)
    assert np.array_equal(call.samples, again.samples)  # noise seeded by the script's name


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (CALL_SCRIPT.replace("rate: 1.25", "rate: fast"), r"voices: agent: rate: a speed factor"),
        (CALL_SCRIPT.replace("kal_diphone", "hal_9000"), r"voices: agent: voice: unknown festival voice"),
        (CALL_SCRIPT.replace("pitch: 70", "pitch: 170"), r"voices: customer: pitch: .* 0 to 99"),
        (CALL_SCRIPT.replace("tts: festival", "tts: say"), r"voices: agent: tts: unknown TTS 'say'"),
        (CALL_SCRIPT.replace("voice: kal_diphone, ", ""), r"voices: agent: a voice is a mapping"),
        (CALL_SCRIPT.replace("voices:", "voices:\n  boss: {tts: espeak-ng, voice: en}"), r"voices: boss"),
        (CALL_SCRIPT.replace("encoding: mulaw", "encoding: alaw"), r"line: encoding: 'alaw'"),
        (CALL_SCRIPT.replace("noise_dbfs: -42", "noise_dbfs: 3"), r"line: noise_dbfs"),
        (CALL_SCRIPT.replace("split: heldout", "split: secret"), r"split: 'secret'"),
        (CALL_SCRIPT.replace("lang: en, expect", "lang: ru, expect"), r"turns: item 1: lang: 'ru', but"),
        (CALL_SCRIPT.replace("expect: []", "expect: nope"), r"turns: item 1: expect: a list"),
        (CALL_SCRIPT.replace("turns:", "turnz:"), r"unknown field\(s\) turnz"),
        (CALL_SCRIPT.split("turns:")[0], r"non-empty list of turns"),
    ],
)
def test_invalid_call_scripts_name_the_file_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad-call.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(SynthError, match=message) as info:
        synth.load_call_script(path)
    assert str(path) in str(info.value)


def test_festival_says_a_dash_as_a_pause_and_no_quotes() -> None:
    """festival's Russian rules stop on «—» and guillemets; the text it is given has a comma and none."""
    require("text2wave")
    try:
        x = speak("Это — компания «Связьтелеком», слушаю вас.", "ru")
    except MissingToolError as exc:
        pytest.skip(str(exc))
    plain = speak("Это, компания Связьтелеком, слушаю вас.", "ru")
    assert np.array_equal(x, plain)
