"""Synthetic stereo telephone calls from a script of turns, spoken by the system's TTS, with exact timing.

Tests, benchmarks and demos need calls whose every turn is known: who speaks, what is said, and where in
the recording the speech starts and ends. :func:`build_call` speaks each :class:`ScriptTurn` (Russian
with festival's ``msu_ru_nsh_clunits`` voice, English with ``espeak-ng``), band-limits it to a telephone
line with ``sox`` (300-3400 Hz at 8 kHz), trims it to its first and last audible sample, and lays the
turns one after another on their speaker's channel: channel 0 is the agent, channel 1 the customer. The
returned :class:`SynthCall` carries the samples and a :class:`PlacedTurn` per turn with its start and
end in the call, exact to the sample at the call's sample rate.

Each speaker can have a :class:`Voice` of their own: festival's Russian voice or its English ones
(``kal_diphone``, ``ked_diphone``, ``cmu_us_slt_arctic_hts``), or any ``espeak-ng`` voice and variant
(``ru+f3``, ``en-us+m3``), faster or slower, higher or lower; so a labelled set of calls is heard in many
voices, as real calls are.

Scripts are small YAML or JSON files: a list of turns (:func:`load_script`), or a whole call with its
voices, its line (μ-law or PCM, line noise) and its place in a labelled set (:func:`load_call_script`);
``bench/data/calls/`` holds the project's set. The external tools are Debian's ``festival`` +
``festvox-ru`` (+ ``festvox-kallpc16k``, ``festvox-kdlpc16k``, ``festvox-us-slt-hts`` for its English
voices), ``espeak-ng`` and ``sox``; when one is missing or fails, :class:`SynthError`
(:class:`MissingToolError` for a missing tool or voice) says which.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import wave
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import yaml

from audio.decode import AudioDecodeError, decode_file
from audio.resample import resample

logger = logging.getLogger(__name__)

SPEAKERS = ("agent", "customer")
LANGUAGES = ("ru", "en")
#: The festival voice for Russian (Debian package festvox-ru).
FESTIVAL_VOICE = "msu_ru_nsh_clunits"
#: The espeak-ng voice for English.
ESPEAK_VOICE = "en"
#: Rate of :func:`speak`'s output.
SPEECH_RATE = 16000
#: Rate of :func:`telephone_band`'s output.
TELEPHONE_RATE = 8000
#: A sample is audible when its magnitude exceeds this (-40 dBFS); speech is trimmed to audible samples.
AUDIBLE = 0.01
#: Peak level of :func:`speak`'s output.
PEAK = 0.5

#: festival's voices by name: the language each speaks and the Debian package that holds it.
FESTIVAL_VOICES: dict[str, tuple[str, str]] = {
    "msu_ru_nsh_clunits": ("ru", "festvox-ru"),
    "kal_diphone": ("en", "festvox-kallpc16k"),
    "ked_diphone": ("en", "festvox-kdlpc16k"),
    "cmu_us_slt_arctic_hts": ("en", "festvox-us-slt-hts"),
}
TTS_ENGINES = ("festival", "espeak-ng")
ESPEAK_WPM = 175  # espeak-ng's own default rate, words per minute: rate 1.0
RATE_RANGE = (0.5, 2.0)
ENCODINGS = ("pcm16", "mulaw")

_TOOL_TIMEOUT_S = 120
_PAD_S = 0.05  # silence around a clip while it is filtered, so filter edges fall outside the speech
_CATEGORY_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_FIELDS = ("speaker", "text", "lang", "pause_before", "expect", "also_ok")
_CALL_FIELDS = ("split", "voices", "line", "turns")
_VOICE_FIELDS = ("tts", "voice", "rate", "pitch")
_LINE_FIELDS = ("encoding", "noise_dbfs")
_cache: dict[tuple[str, str, Voice], np.ndarray] = {}


class SynthError(RuntimeError):
    """A call could not be synthesized: a tool failed, or a script or argument is invalid."""


class MissingToolError(SynthError):
    """A required external tool (festival, its Russian voice, espeak-ng, sox) is not installed."""


@dataclass(frozen=True)
class Voice:
    """Who speaks a turn: a TTS engine (``festival`` or ``espeak-ng``), its voice, and how.

    ``rate`` is a speed factor (1.0 = the voice's own; espeak-ng sets it natively, festival's output is
    time-stretched by sox at the same pitch); ``pitch`` is espeak-ng's 0-99 (its default 50), None
    for the voice's own. A festival voice speaks the language :data:`FESTIVAL_VOICES` gives; an espeak-ng
    voice the language its name starts with (``ru+f3`` Russian, ``en-us+m3`` English).
    """

    tts: str
    name: str
    rate: float = 1.0
    pitch: int | None = None

    def __post_init__(self) -> None:
        problem = _voice_problem(self)
        if problem:
            raise SynthError(f"{problem[0]}: {problem[1]}")

    @property
    def lang(self) -> str:
        """The language the voice speaks (``ru``, ``en``, or another espeak-ng language)."""
        if self.tts == "festival":
            return FESTIVAL_VOICES[self.name][0]
        return re.split(r"[-+]", self.name, maxsplit=1)[0]

    def describe(self) -> str:
        """``festival msu_ru_nsh_clunits``, ``espeak-ng ru+f3 x1.1 pitch 65``: for reports and errors."""
        extra = (f" x{self.rate:g}" if self.rate != 1.0 else "") + (
            f" pitch {self.pitch}" if self.pitch is not None else ""
        )
        return f"{self.tts} {self.name}{extra}"


def default_voice(lang: str) -> Voice:
    """The voice a turn in `lang` gets when its script names none: festival's Russian voice, espeak-ng's
    English one."""
    if lang not in LANGUAGES:
        raise SynthError(f"unknown language {lang!r}: expected one of {', '.join(LANGUAGES)}")
    return Voice("festival", FESTIVAL_VOICE) if lang == "ru" else Voice("espeak-ng", ESPEAK_VOICE)


def _voice_problem(voice: Voice) -> tuple[str, str] | None:
    """The first invalid field of a voice as ``(field, what is wrong)``, or None when it is valid."""
    if voice.tts not in TTS_ENGINES:
        return "tts", f"unknown TTS {voice.tts!r} (expected festival or espeak-ng)"
    if not isinstance(voice.name, str) or not re.fullmatch(r"[A-Za-z0-9_+-]+", voice.name):
        return "voice", f"not a voice name: {voice.name!r}"
    if voice.tts == "festival" and voice.name not in FESTIVAL_VOICES:
        return "voice", f"unknown festival voice {voice.name!r} (known: {', '.join(FESTIVAL_VOICES)})"
    rate = voice.rate
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not RATE_RANGE[0] <= rate <= RATE_RANGE[1]
    ):
        return "rate", f"a speed factor from {RATE_RANGE[0]} to {RATE_RANGE[1]}, got {rate!r}"
    if voice.pitch is not None:
        if voice.tts != "espeak-ng":
            return "pitch", "only espeak-ng voices take a pitch"
        if isinstance(voice.pitch, bool) or not isinstance(voice.pitch, int) or not 0 <= voice.pitch <= 99:
            return "pitch", f"espeak-ng's pitch is a whole number from 0 to 99, got {voice.pitch!r}"
    return None


@dataclass(frozen=True)
class ScriptTurn:
    """One turn of a call script.

    ``pause_before`` is the silence in seconds between the end of all earlier speech and this turn; a
    negative pause starts the turn that much before the earlier speech ends (overtalk). It is ignored
    for the first turn, which starts after :func:`build_call`'s ``lead``. ``expect`` lists the alert
    category ids (from the shared taxonomy) a classifier should raise on this turn; empty for a clean one.
    ``also_ok`` lists categories that are defensible on the turn but not required (as in the evaluation
    sets): raising one is not a false alarm, missing it is not a miss.
    """

    speaker: str
    text: str
    lang: str
    pause_before: float = 0.8
    expect: tuple[str, ...] = ()
    also_ok: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("expect", "also_ok"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        problem = _turn_problem(
            {
                "speaker": self.speaker,
                "text": self.text,
                "lang": self.lang,
                "pause_before": self.pause_before,
                "expect": self.expect,
                "also_ok": self.also_ok,
            }
        )
        if problem:
            raise SynthError(f"{problem[0]}: {problem[1]}")


@dataclass(frozen=True)
class PlacedTurn:
    """A turn as placed in a :class:`SynthCall`.

    ``start`` is the time in seconds of the turn's first audible sample, ``end`` the time just after its
    last one, both whole samples at the call's rate: ``samples[channel, round(start * rate) :
    round(end * rate)]`` is exactly the turn's speech.
    """

    speaker: str
    text: str
    lang: str
    start: float
    end: float
    expect: tuple[str, ...] = ()
    also_ok: tuple[str, ...] = ()

    @property
    def channel(self) -> int:
        """The channel the turn is on: 0 for the agent, 1 for the customer."""
        return SPEAKERS.index(self.speaker)

    @property
    def duration(self) -> float:
        """Length of the speech in seconds."""
        return self.end - self.start


@dataclass
class SynthCall:
    """A synthetic stereo call: ``samples`` float32 shaped ``(2, n)`` (0 = agent, 1 = customer)."""

    samples: np.ndarray
    sample_rate: int
    turns: list[PlacedTurn] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Length of the call in seconds."""
        return self.samples.shape[1] / self.sample_rate

    def mono(self) -> np.ndarray:
        """Both channels as one float32 signal shaped ``(n,)``: their plain mean, which never clips."""
        return self.samples.mean(axis=0, dtype=np.float32)

    def write_wav(self, path: str | os.PathLike[str], encoding: Literal["pcm16", "mulaw"] = "pcm16") -> Path:
        """Write a stereo WAV file: 16-bit PCM (``pcm16``) or G.711 mu-law (``mulaw``); returns the path."""
        path = Path(path)
        pcm = np.round(np.clip(self.samples, -1.0, 1.0) * 32767).astype("<i2")
        interleaved = np.ascontiguousarray(pcm.T)  # (n, 2): left, right, left, right, ...
        if encoding == "pcm16":
            with wave.open(str(path), "wb") as out:
                out.setnchannels(2)
                out.setsampwidth(2)
                out.setframerate(self.sample_rate)
                out.writeframes(interleaved.tobytes())
        elif encoding == "mulaw":
            with av.open(str(path), mode="w", format="wav") as container:
                stream = container.add_stream("pcm_mulaw", rate=self.sample_rate, layout="stereo")
                frame = av.AudioFrame.from_ndarray(interleaved.reshape(1, -1), format="s16", layout="stereo")
                frame.sample_rate = self.sample_rate
                for packet in [*stream.encode(frame), *stream.encode(None)]:
                    container.mux(packet)
        else:
            raise SynthError(f"unknown WAV encoding {encoding!r}: expected 'pcm16' or 'mulaw'")
        logger.debug("wrote %s: %s, %.2f s", path, encoding, self.duration)
        return path


# -- speech --------------------------------------------------------------------------------------------


def speak(text: str, lang: str, voice: Voice | None = None) -> np.ndarray:
    """Speak ``text`` with the system TTS: 16 kHz float32 mono, trimmed to audible samples, peak 0.5.

    ``voice`` defaults to :func:`default_voice` of ``lang`` and must speak ``lang``. Results are cached per
    process by ``(text, lang, voice)``; each call returns a fresh copy. Raises :class:`MissingToolError`
    when the tool or voice is not installed and :class:`SynthError` when it fails or gives no audible
    sound.
    """
    if lang not in LANGUAGES:
        raise SynthError(f"unknown language {lang!r}: expected one of {', '.join(LANGUAGES)}")
    if not isinstance(text, str) or not text.strip():
        raise SynthError("nothing to speak: text is empty")
    voice = voice or default_voice(lang)
    if voice.lang != lang:
        raise SynthError(f"voice {voice.describe()} speaks {voice.lang!r}, not {lang!r}: {text!r}")
    key = (text, lang, voice)
    cached = _cache.get(key)
    if cached is None:
        with tempfile.TemporaryDirectory(prefix="callbuffer-tts-") as tmp:
            wav = Path(tmp) / "speech.wav"
            if voice.tts == "festival":
                _festival(text, wav, voice)
            else:
                _espeak(text, wav, voice)
            try:
                x = decode_file(wav, sample_rate=SPEECH_RATE, mono=True).samples[0]
            except AudioDecodeError as exc:
                raise SynthError(f"{voice.describe()} wrote no usable audio for {text!r}: {exc}") from exc
        x = _trim(x)
        if x.size == 0:
            raise SynthError(f"{voice.describe()} produced no audible speech for {text!r}")
        cached = (PEAK * x / np.abs(x).max()).astype(np.float32)
        cached.flags.writeable = False
        _cache[key] = cached
        logger.debug("spoke %r (%s): %.2f s", text, voice.describe(), cached.size / SPEECH_RATE)
    return cached.copy()


def _festival(text: str, wav: Path, voice: Voice) -> None:
    """festival's ``text2wave`` with the voice; a rate other than 1 is a sox time-stretch afterwards
    (festival's own ``Duration_Stretch`` is ignored by its clunits and HTS voices)."""
    package = FESTIVAL_VOICES[voice.name][1]
    if shutil.which("text2wave") is None:
        raise MissingToolError(
            f"festival is not installed: text2wave not found on PATH (Debian packages festival and {package})"
        )
    spoken = wav.with_name("festival.wav") if voice.rate != 1.0 else wav
    command = ["text2wave", "-eval", f"(voice_{voice.name})", "-o", str(spoken)]
    done = _run(command, "festival", _FESTIVAL_UNSAYABLE.sub(_festival_says, text))
    stderr = done.stderr.decode(errors="replace")
    if f"voice_{voice.name}" in stderr and "unbound variable" in stderr:
        raise MissingToolError(f"festival voice {voice.name} is not installed (Debian package {package})")
    if done.returncode or not spoken.is_file() or spoken.stat().st_size <= 44:
        raise SynthError(f"festival failed (exit {done.returncode}) on {text!r}: {stderr.strip()[-300:]}")
    if spoken != wav:
        _sox([str(spoken), str(wav), "tempo", "-s", f"{voice.rate:g}"])


# festival's Russian letter-to-sound rules stop the whole utterance at a dash or a guillemet
# ("LTS_Ruleset: no rule matches"): a dash is said as the pause it marks, quotes are not said at all.
_FESTIVAL_UNSAYABLE = re.compile(r"\s*[—–]\s*|[«»„“”]")


def _festival_says(match: re.Match[str]) -> str:
    return ", " if match.group().strip() in "—–" else ""


def _espeak(text: str, wav: Path, voice: Voice) -> None:
    if shutil.which("espeak-ng") is None:
        raise MissingToolError("espeak-ng is not installed: not found on PATH (Debian package espeak-ng)")
    command = ["espeak-ng", "-v", voice.name, "-s", str(round(ESPEAK_WPM * voice.rate)), "-w", str(wav)]
    if voice.pitch is not None:
        command += ["-p", str(voice.pitch)]
    done = _run([*command, "--stdin"], "espeak-ng", text)
    stderr = done.stderr.decode(errors="replace").strip()
    if "voice does not exist" in stderr.lower() or "failed to load voice" in stderr.lower():
        raise MissingToolError(f"espeak-ng has no voice {voice.name!r}: {stderr[-200:]}")
    if done.returncode or not wav.is_file() or wav.stat().st_size <= 44:
        raise SynthError(f"espeak-ng failed (exit {done.returncode}) on {text!r}: {stderr[-300:]}")


def _sox(arguments: list[str]) -> None:
    """Run sox quietly and repeatably (no dither), or :class:`SynthError` saying why it failed."""
    if shutil.which("sox") is None:
        raise MissingToolError("sox is not installed: not found on PATH (Debian package sox)")
    done = _run(["sox", "-D", "-R", *arguments], "sox")
    if done.returncode:
        stderr = done.stderr.decode(errors="replace").strip()
        raise SynthError(f"sox failed (exit {done.returncode}): {stderr[-300:]}")


def _run(command: list[str], tool: str, stdin: str | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            command,
            input=None if stdin is None else stdin.encode(),
            capture_output=True,
            timeout=_TOOL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SynthError(f"{tool} did not finish within {_TOOL_TIMEOUT_S} s") from exc
    except OSError as exc:
        raise SynthError(f"{tool} could not be started: {exc}") from exc


def _trim(x: np.ndarray, level: float = AUDIBLE) -> np.ndarray:
    """``x`` from its first to its last sample louder than ``level``; empty when none is."""
    loud = np.flatnonzero(np.abs(x) > level)
    if loud.size == 0:
        return x[:0]
    return x[loud[0] : loud[-1] + 1]


# -- the telephone line -------------------------------------------------------------------------------


def telephone_band(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Band-limit mono float audio to 300-3400 Hz at 8 kHz with sox, as a telephone line delivers it.

    Runs ``sox -D -R ... sinc 300-3400 rate 8k`` on 32-bit float temp files (no quantisation, no dither,
    repeatable). Returns float32 at 8 kHz, ``round(n * 8000 / sample_rate)`` samples long. Raises
    :class:`MissingToolError` when sox is not installed and :class:`SynthError` when it fails.
    """
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 1:
        raise SynthError(f"telephone_band expects mono audio shaped (n,), got {arr.shape}")
    if sample_rate <= 2 * 3400:
        raise SynthError(f"telephone_band needs a sample rate above 6800 Hz, got {sample_rate}")
    if shutil.which("sox") is None:
        raise MissingToolError("sox is not installed: not found on PATH (Debian package sox)")
    if arr.size == 0:
        return np.zeros(0, np.float32)
    with tempfile.TemporaryDirectory(prefix="callbuffer-sox-") as tmp:
        wide, narrow = Path(tmp) / "wide.f32", Path(tmp) / "narrow.f32"
        arr.astype("<f4").tofile(wide)
        raw = ["-t", "f32", "-c", "1"]
        _sox([*raw, "-r", str(sample_rate), str(wide), *raw, str(narrow), "sinc", "300-3400", "rate", "8k"])
        return np.fromfile(narrow, dtype="<f4").astype(np.float32)


# -- calls --------------------------------------------------------------------------------------------


def build_call(
    script: Sequence[ScriptTurn],
    *,
    sample_rate: int = 8000,
    telephone: bool = True,
    tail: float = 1.0,
    lead: float = 0.5,
    noise_dbfs: float | None = -60.0,
    seed: int = 0,
    voices: Mapping[str, Voice] | None = None,
) -> SynthCall:
    """Speak ``script`` into a stereo call: channel 0 the agent, channel 1 the customer.

    Each turn is spoken (:func:`speak`), band-limited to a telephone line when ``telephone`` (then
    resampled from 8 kHz if ``sample_rate`` differs), resampled to ``sample_rate`` otherwise, and trimmed
    to its audible samples. The first turn starts after ``lead`` seconds; each later turn starts
    ``pause_before`` seconds after the end of all earlier speech (negative: overtalk, overlapping it);
    ``tail`` seconds follow the last speech. A speaker never overlaps their own earlier turn
    (:class:`SynthError`). Seeded Gaussian noise at ``noise_dbfs`` (RMS re full scale; ``None`` for none)
    is added to both channels so the call is never digital silence; the same script and seed give the
    same samples. Turn times in :attr:`SynthCall.turns` are exact samples at ``sample_rate``.
    ``voices`` gives a speaker (``agent``, ``customer``) a :class:`Voice`; a speaker with none, or a turn
    in a language the voice does not speak, gets :func:`default_voice`.
    """
    turns = list(script)
    if not turns:
        raise SynthError("the script has no turns")
    for i, turn in enumerate(turns):
        if not isinstance(turn, ScriptTurn):
            raise SynthError(f"turn {i}: expected a ScriptTurn, got {type(turn).__name__}")
    if sample_rate <= 0:
        raise SynthError(f"sample_rate must be positive, got {sample_rate}")
    for name, value in (("lead", lead), ("tail", tail)):
        if not math.isfinite(value) or value < 0:
            raise SynthError(f"{name} must be a non-negative number of seconds, got {value}")

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        clips = list(
            pool.map(lambda turn: _render(turn, _voice_of(turn, voices), sample_rate, telephone), turns)
        )

    spans: list[tuple[int, int]] = []
    speech_end = 0  # end of all speech so far, in samples
    for i, (turn, clip) in enumerate(zip(turns, clips, strict=True)):
        start = round(lead * sample_rate) if i == 0 else speech_end + round(turn.pause_before * sample_rate)
        if start < 0:
            raise SynthError(f"turn {i}: pause_before {turn.pause_before} s would start it before the call")
        end = start + clip.size
        for j in range(i):
            if turns[j].speaker == turn.speaker and start < spans[j][1] and spans[j][0] < end:
                raise SynthError(
                    f"turn {i}: pause_before {turn.pause_before} s makes the {turn.speaker} overlap "
                    f"their own turn {j}; only the other speaker can overtalk"
                )
        spans.append((start, end))
        speech_end = max(speech_end, end)

    n = speech_end + round(tail * sample_rate)
    if noise_dbfs is None:
        samples = np.zeros((2, n), np.float32)
    else:
        rng = np.random.default_rng(seed)
        samples = (rng.standard_normal((2, n)) * 10 ** (noise_dbfs / 20)).astype(np.float32)
    placed = []
    for turn, clip, (start, end) in zip(turns, clips, spans, strict=True):
        channel = SPEAKERS.index(turn.speaker)
        samples[channel, start:end] += clip
        placed.append(
            PlacedTurn(
                speaker=turn.speaker,
                text=turn.text,
                lang=turn.lang,
                start=start / sample_rate,
                end=end / sample_rate,
                expect=turn.expect,
                also_ok=turn.also_ok,
            )
        )
    band = " (telephone band)" if telephone else ""
    logger.info("built a %.1f s call of %d turns at %d Hz%s", n / sample_rate, len(turns), sample_rate, band)
    return SynthCall(samples=samples, sample_rate=sample_rate, turns=placed)


def _voice_of(turn: ScriptTurn, voices: Mapping[str, Voice] | None) -> Voice:
    voice = (voices or {}).get(turn.speaker)
    return voice if voice is not None and voice.lang == turn.lang else default_voice(turn.lang)


def _render(turn: ScriptTurn, voice: Voice, sample_rate: int, telephone: bool) -> np.ndarray:
    """One turn's speech at ``sample_rate``, through the telephone band if asked, trimmed to audible."""
    x, rate = speak(turn.text, turn.lang, voice), SPEECH_RATE
    pad = np.zeros(round(_PAD_S * rate), np.float32)
    x = np.concatenate([pad, x, pad])
    if telephone:
        x, rate = telephone_band(x, rate), TELEPHONE_RATE
    if rate != sample_rate:
        x = resample(x, rate, sample_rate)
    x = _trim(x)
    if x.size == 0:
        raise SynthError(f"turn {turn.text!r} has no audible speech at {sample_rate} Hz")
    return x.astype(np.float32, copy=False)


# -- scripts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallScript:
    """A whole scripted call: its turns, who speaks them (:class:`Voice` by speaker), and the line.

    ``encoding`` is how the call reaches the server (``pcm16`` or G.711 ``mulaw``); ``noise_dbfs`` the
    line noise (see :func:`build_call`); ``split`` the script's place in a labelled set (``tune`` or
    ``heldout``: calls kept out of all tuning are reported apart), None when it has none.
    """

    name: str
    turns: tuple[ScriptTurn, ...]
    voices: Mapping[str, Voice] = field(default_factory=dict)
    encoding: str = "pcm16"
    noise_dbfs: float | None = -60.0
    split: str | None = None
    source: str = ""  # the file it was read from

    def build(self, **options: Any) -> SynthCall:
        """The call spoken (:func:`build_call`) with the script's voices and line noise, seeded by its
        name, so the same script always gives the same samples."""
        options = {"noise_dbfs": self.noise_dbfs, "seed": zlib.crc32(self.name.encode()), **options}
        return build_call(self.turns, voices=self.voices, **options)


def load_script(path: str | os.PathLike[str]) -> list[ScriptTurn]:
    """The turns of a call script (:func:`load_call_script`), in order."""
    return list(load_call_script(path).turns)


def load_call_script(path: str | os.PathLike[str]) -> CallScript:
    """Read a call script, YAML (or ``.json``): a list of turns, or a mapping of a whole call::

        split: heldout                      # optional: tune | heldout
        voices:                             # optional, by speaker; default: default_voice(lang)
          agent: {tts: festival, voice: msu_ru_nsh_clunits, rate: 1.0}
          customer: {tts: espeak-ng, voice: ru+f3, rate: 1.1, pitch: 65}
        line: {encoding: mulaw, noise_dbfs: -42}   # optional: pcm16 | mulaw; line noise, dBFS RMS
        turns:
          - {speaker: agent, text: ..., lang: ru, pause_before: 0.8, expect: [], also_ok: []}

    A turn's ``speaker`` is ``agent`` or ``customer``, ``lang`` ``ru`` or ``en``, ``pause_before`` seconds
    (default 0.8), ``expect`` and ``also_ok`` lists of category ids. An invalid file raises
    :class:`SynthError` naming the file and the field (``item 3: lang: …``, ``voices: customer: rate: …``).
    """
    path = Path(path)
    data = _read_structured(path)
    if isinstance(data, list):
        return CallScript(path.stem, _parse_turns(path, data, "item"), source=str(path))
    if not isinstance(data, Mapping):
        raise SynthError(f"{path}: a script is a non-empty list of turns, or a call with turns")
    unknown = sorted(str(key) for key in data if key not in _CALL_FIELDS)
    if unknown:
        raise SynthError(
            f"{path}: unknown field(s) {', '.join(unknown)} (expected {', '.join(_CALL_FIELDS)})"
        )
    turns = _parse_turns(path, data.get("turns"), "turns: item")
    voices = _parse_voices(path, data.get("voices") or {})
    for i, turn in enumerate(turns):
        voice = voices.get(turn.speaker)
        if voice is not None and voice.lang != turn.lang:
            raise SynthError(
                f"{path}: turns: item {i}: lang: {turn.lang!r}, but the {turn.speaker}'s voice "
                f"{voice.describe()} speaks {voice.lang!r}"
            )
    encoding, noise = _parse_line(path, data.get("line") or {})
    split = data.get("split")
    if split is not None and split not in ("tune", "heldout"):
        raise SynthError(f"{path}: split: {split!r} is not tune or heldout")
    logger.debug("loaded call script %s: %d turns", path, len(turns))
    return CallScript(path.stem, turns, voices, encoding, noise, split, str(path))


def _read_structured(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SynthError(f"{path}: cannot read the script: {exc}") from exc
    try:
        return json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise SynthError(f"{path}: not valid {kind}: {exc}") from exc


def _parse_turns(path: Path, data: Any, where: str) -> tuple[ScriptTurn, ...]:
    if not isinstance(data, list) or not data:
        raise SynthError(f"{path}: a script is a non-empty list of turns")
    turns = []
    for i, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise SynthError(f"{path}: {where} {i}: a turn is a mapping with speaker, text and lang")
        unknown = sorted(str(key) for key in item if key not in _FIELDS)
        if unknown:
            raise SynthError(f"{path}: {where} {i}: unknown field(s) {', '.join(unknown)}")
        values = {"pause_before": 0.8, "expect": [], "also_ok": [], **item}
        for name in ("expect", "also_ok"):
            if values[name] is None:
                values[name] = []
        problem = _turn_problem(values)
        if problem:
            raise SynthError(f"{path}: {where} {i}: {problem[0]}: {problem[1]}")
        turns.append(
            ScriptTurn(
                speaker=values["speaker"],
                text=values["text"],
                lang=values["lang"],
                pause_before=float(values["pause_before"]),
                expect=tuple(values["expect"]),
                also_ok=tuple(values["also_ok"]),
            )
        )
    return tuple(turns)


def _parse_voices(path: Path, data: Any) -> dict[str, Voice]:
    if not isinstance(data, Mapping):
        raise SynthError(f"{path}: voices: a mapping of speaker to voice, got {data!r}")
    voices = {}
    for speaker, spec in data.items():
        where = f"{path}: voices: {speaker}"
        if speaker not in SPEAKERS:
            raise SynthError(f"{where}: unknown speaker (expected agent or customer)")
        if not isinstance(spec, Mapping) or "tts" not in spec or "voice" not in spec:
            raise SynthError(f"{where}: a voice is a mapping with tts and voice, got {spec!r}")
        unknown = sorted(str(key) for key in spec if key not in _VOICE_FIELDS)
        if unknown:
            raise SynthError(f"{where}: unknown field(s) {', '.join(unknown)}")
        try:
            voice = Voice(spec["tts"], spec["voice"], spec.get("rate", 1.0), spec.get("pitch"))
        except SynthError as exc:
            raise SynthError(f"{where}: {exc}") from exc
        voices[speaker] = voice
    return voices


def _parse_line(path: Path, data: Any) -> tuple[str, float | None]:
    if not isinstance(data, Mapping):
        raise SynthError(f"{path}: line: a mapping with encoding and noise_dbfs, got {data!r}")
    unknown = sorted(str(key) for key in data if key not in _LINE_FIELDS)
    if unknown:
        raise SynthError(f"{path}: line: unknown field(s) {', '.join(unknown)}")
    encoding = data.get("encoding", "pcm16")
    if encoding not in ENCODINGS:
        raise SynthError(f"{path}: line: encoding: {encoding!r} is not pcm16 or mulaw")
    noise = data.get("noise_dbfs", -60.0)
    if noise is not None and (
        isinstance(noise, bool) or not isinstance(noise, int | float) or not -120 <= noise <= 0
    ):
        raise SynthError(f"{path}: line: noise_dbfs: a level from -120 to 0 dBFS or null, got {noise!r}")
    return encoding, None if noise is None else float(noise)


def _turn_problem(values: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first invalid field of a turn as ``(field, what is wrong)``, or None when it is valid."""
    for name in ("speaker", "text", "lang"):
        if name not in values:
            return name, "missing"
    speaker, text, lang = values["speaker"], values["text"], values["lang"]
    if speaker not in SPEAKERS:
        return "speaker", f"unknown speaker {speaker!r} (expected agent or customer)"
    if not isinstance(text, str) or not text.strip():
        return "text", "empty text" if isinstance(text, str) or text is None else f"not a string: {text!r}"
    if lang not in LANGUAGES:
        return "lang", f"unknown language {lang!r} (expected ru or en)"
    pause = values.get("pause_before", 0.8)
    if isinstance(pause, bool) or not isinstance(pause, int | float) or not math.isfinite(pause):
        return "pause_before", f"not a number of seconds: {pause!r}"
    for name in ("expect", "also_ok"):
        categories = values.get(name, ())
        if not isinstance(categories, list | tuple):
            return name, f"a list of category ids, got {categories!r}"
        for category in categories:
            if not isinstance(category, str) or not _CATEGORY_ID.match(category):
                return name, f"not a category id: {category!r}"
    return None
