"""Whisper's loops inside a turn: found, kept once, and never reaching a final turn (on real audio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.loops import find_loops, loop_free, without_loops


@pytest.mark.parametrize(
    ("heard", "kept"),
    [
        (
            "Let me speak to your manager. Let me speak to your manager. Let me speak",
            "Let me speak to your manager.",
        ),
        (
            "Хорошо, одну минуту, я открываю вашу карточку. Хорошо, одну минуту, я открываю вашу карточку.",
            "Хорошо, одну минуту, я открываю вашу карточку.",
        ),
        ("When we'll miss me big. When we'll miss me big. When", "When we'll miss me big."),
        ("Okay. I see. I'm not sure. I'm not sure. I'm not sure. I'm not", "Okay. I see. I'm not sure."),
        ("Я купил мать. Я купил мать. Я купил мать. Я куп", "Я купил мать."),  # the last word cut short
        ("по-любому, в сфле, в сфле, в сфле, в сфле, в с", "по-любому, в сфле,"),  # two words, four times
    ],
)
def test_a_loop_is_kept_once(heard: str, kept: str):
    assert without_loops(heard) == kept


@pytest.mark.parametrize(
    "said",
    [
        "Да, да, да, я понял.",  # a short word thrice is speech
        "Верните деньги, верните деньги!",  # two words twice is speech
        "Алло? Алло? Вы меня слышите?",
        "I said no — no, and I meant no.",
    ],
)
def test_people_repeating_themselves_is_no_loop(said: str):
    assert find_loops(said.split()) == [] and without_loops(said) == said


def test_loop_free_gives_indices_and_keeps_punctuation_tokens():
    words = ["Good", "morning,", "—", "Oliver.", "Good", "morning,", "—", "Oliver.", "Hi"]
    assert loop_free(words) == [0, 1, 2, 3, 8]
    (loop,) = find_loops(words)
    assert (loop.start, loop.size, loop.end, loop.run) == (0, 4, 8, "good morning oliver")


# A turn Whisper base loops on in a short window, from the labelled call set: the customer of
# bench/data/calls/en-07-energy-bill.yaml (festival's kal_diphone voice over an 8 kHz line) says "Flat
# six, twenty two Rowan Court." and greedy decoding writes "Flat six, 22 row in court." three times.
CALL = Path(__file__).resolve().parents[2] / "bench" / "data" / "calls" / "en-07-energy-bill.yaml"


def test_a_looping_turn_reaches_the_recogniser_as_words_said_once(transcriber):
    """Real audio, real Whisper: greedy decoding of the turn loops; the final turn the recogniser makes of
    it holds each word once (the loop is retried hotter, and any loop left is kept once)."""
    from audio.resample import resample
    from audio.synth import MissingToolError, load_call_script
    from models.streaming import CallRecognizer
    from models.transcriber import Transcriber

    script = load_call_script(CALL)
    try:
        call = script.build()
    except MissingToolError as exc:
        pytest.skip(str(exc))
    turn = next(t for t in call.turns if t.text.startswith("Flat six"))
    cut = call.samples[turn.channel, round((turn.start - 0.3) * 8000) : round((turn.end + 0.2) * 8000)]
    audio = resample(cut, 8000, 16000)
    greedy = Transcriber(transcriber.model, window=6.0, temperatures=(0.0,))
    heard = " ".join(s.text for s in greedy.transcribe(audio, language="en"))
    assert find_loops(heard.split()), f"greedy decoding no longer loops here: {heard!r}; pick another turn"

    live = Transcriber(transcriber.model, window=6.0)
    recognizer = CallRecognizer(
        lambda x, lang, final: live.transcribe(x, language=lang), ["customer"], language="en"
    )
    silence = np.zeros(16000, np.float32)
    events = recognizer.push(np.concatenate([audio, silence])[np.newaxis, :], 16000) + recognizer.finish()
    finals = [e for e in events if e.final]
    assert len(finals) == 1
    assert find_loops(finals[0].text.split()) == [], finals[0].text
    assert "court" in finals[0].text.lower()
