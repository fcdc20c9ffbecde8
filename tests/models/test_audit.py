"""models.audit on real synthesized calls with the real bundled Whisper base and the default pack."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from models.audit import (
    MONO_NOTE,
    AuditError,
    AuditOptions,
    Auditor,
    Interval,
    ReportTurn,
    Word,
    move_offset,
    overtalk,
    silences,
    talk_time,
    words_to_turns,
)
from models.pii import mask_pii

SMALL_SCRIPT = """
- speaker: agent
  lang: en
  text: Thank you for calling customer support, how can I help you?
- speaker: customer
  lang: en
  text: Is my internet working again?
"""
# Dictated digit by digit, the recogniser writes «8-9-1-6-5-5-5-1-2-3-4»: a phone number to mask.
PII_SCRIPT = """
- speaker: agent
  lang: ru
  text: Здравствуйте, служба поддержки, чем могу помочь?
- speaker: customer
  lang: ru
  text: Запишите номер, восемь, девять, один, шесть, пять, пять, пять, один, два, три, четыре.
"""


@pytest.fixture(scope="module")
def auditor(classifier, cache_dir: Path) -> Auditor:
    from models.whisper_model import load_whisper

    return Auditor(
        load_whisper("bundled", cache_dir=cache_dir), classifier, model_info={"whisper": "bundled"}
    )


@pytest.fixture(scope="module")
def small_call(tmp_path_factory: pytest.TempPathFactory):
    """A two-turn English call (espeak-ng: fast)."""
    return _build(SMALL_SCRIPT, tmp_path_factory.mktemp("script") / "small.yaml")


def _build(text: str, script: Path):
    from audio.synth import MissingToolError, build_call, load_script

    script.write_text(text, encoding="utf-8")
    try:
        return build_call(load_script(script))
    except MissingToolError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def pii_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Russian call whose customer dictates a phone number digit by digit."""
    folder = tmp_path_factory.mktemp("pii")
    return _build(PII_SCRIPT, folder / "pii.yaml").write_wav(folder / "pii.wav")


@pytest.fixture(scope="module")
def ru_report(auditor: Auditor, ru_call, tmp_path_factory: pytest.TempPathFactory):
    """The Russian complaint call audited once for the module (several seconds of transcription)."""
    path = ru_call.write_wav(tmp_path_factory.mktemp("ru") / "ru-complaint.wav")
    return path, auditor.audit(path, AuditOptions(language="ru"))


# ------------------------------------------------------------------------------------- whole calls


def test_ru_complaint_report(ru_report, ru_call) -> None:
    path, report = ru_report
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert report.diarization == "channels" and report.roles == ["agent", "customer"]
    assert report.language == "ru" and report.channels == 2
    assert abs(report.duration - ru_call.duration) < 0.05
    starts = [t.start for t in report.turns]
    assert starts == sorted(starts) and [t.index for t in report.turns] == list(range(len(report.turns)))
    assert {t.speaker for t in report.turns} == {"agent", "customer"}
    # turns follow the script: about one per scripted turn, none spanning a long pause
    assert len(ru_call.turns) - 3 <= len(report.turns) <= len(ru_call.turns) + 2
    assert report.talk_time["agent"] > report.talk_time["customer"] > 5
    data = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    assert data["schema"] == 1 and data["model"]["pack"] == "default"


def test_scorecard_fails_at_the_forbidden_turns(ru_report) -> None:
    """The agent refuses the issue and blames accounting: no_forbidden fails at those turns."""
    _, report = ru_report
    item = report.scorecard.item("no_forbidden")
    assert item.status == "failed"
    refusal = next(t for t in report.turns if "не занимаюсь" in t.text.lower())
    assert refusal.speaker == "agent" and refusal.index in item.turns
    assert "not_my_job" in item.note
    forbidden = [d for d in report.detections if d.kind == "forbidden"]
    assert forbidden and {d.turn for d in forbidden} == set(item.turns)
    det = next(d for d in forbidden if d.category == "not_my_job")
    assert det.suggestions and det.title and det.speaker == "agent"
    assert "не занимаюсь" in det.text[det.span[0] : det.span[1]].lower()
    assert (det.start, det.end) == (refusal.start, refusal.end)
    # customer triggers and agent good practice are kept too (practice feeds the scorecard)
    kinds = {d.kind for d in report.detections}
    assert {"forbidden", "trigger", "practice"} <= kinds
    assert all(not d.suggestions for d in report.detections if d.kind == "practice")


def test_no_invented_silence_or_overtalk(ru_report) -> None:
    """The script never pauses 3 s, and its one overtalk is 0.4 s (under the 0.5 s that counts): word
    times keep turns from swallowing pauses, so neither may show up as more than a word's slack."""
    _, report = ru_report
    assert report.silences == []
    assert all(o.duration < 1.5 for o in report.overtalk), report.overtalk


@pytest.mark.parametrize("kind", ["pcm16", "mulaw", "mp3", "ogg", "opus", "flac"])
def test_formats(kind: str, auditor: Auditor, small_call, tmp_path: Path) -> None:
    wav = small_call.write_wav(tmp_path / "call.wav", "mulaw" if kind == "mulaw" else "pcm16")
    path = wav if kind in ("pcm16", "mulaw") else _ffmpeg(wav, tmp_path / f"call.{kind}")
    report = auditor.audit(path, AuditOptions(language="en"))
    assert report.channels == 2 and report.diarization == "channels"
    speakers = [t.speaker for t in report.turns]
    assert speakers[0] == "agent" and "customer" in speakers
    assert "thank" in report.turns[0].text.lower()


def test_mono_is_unknown_with_a_note(auditor: Auditor, small_call, tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    pcm = np.round(np.clip(small_call.mono(), -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(small_call.sample_rate)
        out.writeframes(pcm.tobytes())
    report = auditor.audit(path, AuditOptions(language="en"))
    assert report.channels == 1 and report.diarization == "none"
    assert report.turns and {t.speaker for t in report.turns} == {"unknown"}
    assert MONO_NOTE in report.notes and report.overtalk == []
    assert report.talk_time["unknown"] > 0 and report.talk_time["agent"] == 0


def test_pii_masked_by_default_and_kept_on_request(auditor: Auditor, pii_wav: Path) -> None:
    masked = auditor.audit(pii_wav, AuditOptions(language="ru"))
    kept = auditor.audit(pii_wav, AuditOptions(language="ru", mask=False))
    said = next(t.text for t in kept.turns if t.speaker == "customer")
    assert mask_pii(said).spans, f"the recogniser wrote no number: {said!r}"
    hidden = next(t.text for t in masked.turns if t.speaker == "customer")
    assert "[PHONE]" in hidden and hidden == mask_pii(said).text
    assert not any(ch.isdigit() for ch in hidden)
    assert masked.masked and not kept.masked


def test_empty_and_corrupt_files_raise_audit_error(auditor: Auditor, tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AuditError, match="empty"):
        auditor.audit(empty)
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(AuditError, match="corrupt.mp3"):
        auditor.audit(corrupt)
    with pytest.raises(AuditError, match="cannot read"):
        auditor.audit(tmp_path / "missing.wav")


def test_bad_roles_are_refused() -> None:
    with pytest.raises(ValueError, match="roles"):
        AuditOptions(roles=("agent", "boss"))


# ------------------------------------------------------------------------------------- pure parts


def test_words_to_turns_split_on_pauses() -> None:
    words = [Word(0.0, 0.5, " Hello"), Word(0.7, 1.0, " there."), Word(2.5, 3.0, " Bye.")]
    assert words_to_turns(words) == [(0.0, 1.0, "Hello there."), (2.5, 3.0, "Bye.")]


def test_timing_talk_silence_overtalk() -> None:
    turns = [
        ReportTurn(0, "agent", 0.0, 4.0, "a", "en"),
        ReportTurn(1, "customer", 3.2, 6.0, "b", "en"),  # 0.8 s overtalk
        ReportTurn(2, "agent", 10.0, 11.0, "c", "en"),  # 4 s of silence before it
        ReportTurn(3, "customer", 10.8, 12.0, "d", "en"),  # 0.2 s overlap: too short
    ]
    assert talk_time(turns) == pytest.approx({"agent": 5.0, "customer": 4.0, "unknown": 0.0})
    assert silences(turns) == [Interval(6.0, 10.0)]
    [only] = overtalk(turns)
    assert (only.start, only.end) == (3.2, 4.0)


def test_move_offset_through_masks() -> None:
    text = "call 8 916 555 12 34 now please"
    result = mask_pii(text)
    assert result.text == "call [PHONE] now please"
    at = text.index("now")
    assert result.text[move_offset(result.spans, at, is_end=False) :].startswith("now")
    inside = text.index("555")
    assert move_offset(result.spans, inside, is_end=False) == result.text.index("[PHONE]")
    assert move_offset(result.spans, inside, is_end=True) == result.text.index(" now")


def _ffmpeg(src: Path, dest: Path) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    codec = {".mp3": ["-c:a", "libmp3lame"], ".ogg": ["-c:a", "libvorbis"], ".opus": ["-c:a", "libopus"]}
    args = codec.get(dest.suffix, [])
    done = subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), *args, str(dest)],
        capture_output=True,
        timeout=60,
    )
    if done.returncode:
        pytest.skip(f"ffmpeg cannot write {dest.suffix}: {done.stderr.decode()[-200:]}")
    return dest
