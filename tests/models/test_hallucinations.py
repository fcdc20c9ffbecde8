"""Whisper's silence hallucinations never become turns; real short turns survive."""

from __future__ import annotations

import numpy as np
import pytest

from models.hallucinations import HallucinationFilter
from models.transcriber import Segment, Transcriber
from models.whisper_model import load_whisper


def seg(text: str, no_speech: float = 0.1, logprob: float = -0.3) -> Segment:
    return Segment(0.0, 1.0, text, logprob, no_speech)


@pytest.mark.parametrize(
    "text",
    [
        "Продолжение следует...",
        "Субтитры сделал DimaTorzok",
        "Редактор субтитров А.Семкин Корректор А.Егорова",
        "Спасибо за просмотр!",
        "Thank you for watching.",
        "[Music]",
        "СПОКОЙНАЯ МУЗЫКА",
        "(смех)",
        "  ...  ",
        "да да да да да да да",
        "Алло? Алло? Алло? Алло? Алло? Алло?",
    ],
)
def test_hallucinations_are_dropped(text: str):
    assert HallucinationFilter().is_hallucination(seg(text))


@pytest.mark.parametrize(
    "text",
    [
        "Да, да, да, всё верно.",
        "Спасибо за внимание к проблеме, мы разберёмся.",
        "Музыка на линии играет.",
        "Продолжение договора обсудим позже.",
        "Thank you for waiting.",
        "Алло, вы меня слышите?",
        "OK",
        "СМС пришло",
    ],
)
def test_real_turns_are_kept(text: str):
    assert not HallucinationFilter().is_hallucination(seg(text))


def test_unsure_of_speech_and_words():
    flt = HallucinationFilter()
    assert flt.is_hallucination(seg("Угу.", no_speech=0.9, logprob=-1.4))
    assert not flt.is_hallucination(seg("Угу.", no_speech=0.9, logprob=-0.2))  # sure of the words
    assert [s.text for s in flt.keep([seg("Продолжение следует..."), seg("Когда почините?")])] == [
        "Когда почините?"
    ]


def test_real_whisper_on_tones_and_noise_yields_no_turn(tmp_path):
    """A steady tone (a dial or hold tone), low rumble and line hiss through the real bundled model.

    Whisper writes captions such as «СПОКОЙНАЯ МУЗЫКА» for some of them; none may survive the filter.
    """
    sr, rng = 16000, np.random.default_rng(1)
    t = np.arange(6 * sr) / sr
    rumble = np.cumsum(rng.standard_normal(6 * sr))
    rumble -= np.convolve(rumble, np.ones(400) / 400, "same")
    sounds = {
        "tone": 0.3 * np.sin(2 * np.pi * 440 * t),
        "rumble": 0.1 * rumble / np.abs(rumble).max(),
        "hiss": 0.003 * rng.standard_normal(3 * sr),
    }
    transcriber = Transcriber(load_whisper("bundled", cache_dir=tmp_path))
    raw_texts = []
    for audio in sounds.values():
        for language in ("ru", "en"):
            segments = transcriber.transcribe(audio.astype(np.float32), language=language)
            raw_texts += [s.text for s in segments]
            assert HallucinationFilter().keep(segments) == [], segments
    assert raw_texts, "the model wrote nothing at all, so the filter was not exercised"
