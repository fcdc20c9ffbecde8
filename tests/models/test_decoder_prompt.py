"""The text Whisper reads before each turn: built from a pack's everyday phrases, read in batches of
turns of different languages, and never written into a clean turn."""

from __future__ import annotations

import numpy as np
import pytest

from models.decoder_prompt import MAX_WORDS, decoder_prompts
from models.packs import ByLanguage


def test_the_prompt_is_the_packs_everyday_phrases_without_numbers(default_pack):
    prompts = decoder_prompts(default_pack)
    assert set(prompts) == {"ru", "en"}
    neutral = {lang: default_pack.neutral.get(lang) for lang in prompts}
    alert_examples = {p for c in default_pack.categories if c.kind.is_alert for _, p in c.examples.items()}
    for lang, prompt in prompts.items():
        assert MAX_WORDS <= len(prompt.split()) < MAX_WORDS + 20
        assert not any(ch.isdigit() for ch in prompt)
        assert prompt.startswith(neutral[lang][0])  # the pack's own greeting comes first
        assert not any(example in prompt for example in alert_examples)
    assert decoder_prompts(default_pack.model_copy(update={"neutral": ByLanguage()})) == {}


@pytest.fixture(scope="module")
def prompted(transcriber, default_pack):
    from models.transcriber import Transcriber

    return Transcriber(transcriber.model, window=6.0, prompts=decoder_prompts(default_pack))


def test_turns_of_two_languages_with_prompts_of_two_lengths_decode_together(prompted, speak, telephone):
    """CTranslate2 decodes a batch only when every prompt has the same length: a Russian and an English
    turn, language detected, are decoded in groups and both come back."""
    from audio.resample import resample

    ru = resample(telephone(speak("Позовите, пожалуйста, вашего руководителя.", "ru")), 8000, 16000)
    en = resample(telephone(speak("I would like to speak to your manager.", "en")), 8000, 16000)
    heard = prompted.transcribe_batch([ru, en], [None, None])
    assert "руковод" in heard[0][0].text.lower()
    assert "manager" in heard[1][0].text.lower()


def test_a_prompted_turn_holds_what_was_said_not_the_prompt(prompted, speak, telephone):
    """A clean turn and line noise: neither comes back with the prompt's words (no invented phrases)."""
    from audio.resample import resample

    turn = resample(telephone(speak("Спасибо, я подожду звонка.", "ru")), 8000, 16000)
    heard = " ".join(s.text for s in prompted.transcribe(turn, language="ru")).lower()
    assert "подожду" in heard and "связьтелеком" not in heard and "договора" not in heard
    noise = (np.random.default_rng(0).standard_normal(16000 * 2) * 0.003).astype(np.float32)
    heard = " ".join(s.text for s in prompted.transcribe(noise, language="ru")).lower()
    assert "связьтелеком" not in heard and "номер договора" not in heard
