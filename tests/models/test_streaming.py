"""The pure streaming core on a real stereo telephone call: festival speech, Silero endpointing, Whisper."""

from __future__ import annotations

import numpy as np
import pytest

from models.hallucinations import normalise
from models.streaming import CallRecognizer, StreamError

RATE = 8000
AGENT_TEXT = "Я этим не занимаюсь, звоните в другой отдел, там вам всё расскажут и помогут с подключением."
CUSTOMER_TEXT = "Когда вы наконец почините интернет?"


@pytest.fixture(scope="module")
def call(speak, telephone):
    """Stereo 8 kHz: the agent speaks on the left from 1.0 s, the customer on the right 2 s after."""
    agent, customer = telephone(speak(AGENT_TEXT, "ru")), telephone(speak(CUSTOMER_TEXT, "ru"))
    agent_start = 1.0
    customer_start = agent_start + agent.size / RATE + 2.0
    total = int((customer_start + customer.size / RATE + 1.5) * RATE)
    audio = np.zeros((2, total), np.float32)
    a0, c0 = int(agent_start * RATE), int(customer_start * RATE)
    audio[0, a0 : a0 + agent.size] = agent
    audio[1, c0 : c0 + customer.size] = customer
    return (
        audio,
        (agent_start, agent_start + agent.size / RATE),
        (customer_start, customer_start + customer.size / RATE),
    )


def recognizer(transcriber) -> CallRecognizer:
    return CallRecognizer(
        lambda x, lang, final: transcriber.transcribe(x, language=lang),
        ["agent", "customer"],
        language="ru",
        partial_every=1.0,
    )


def stream(rec: CallRecognizer, audio: np.ndarray, chunk: int = 160) -> list:
    events = []
    for i in range(0, audio.shape[1], chunk):
        events += rec.push(audio[:, i : i + chunk], RATE)
    return events


def test_final_turns_per_speaker_with_times(call, transcriber):
    audio, agent_span, customer_span = call
    rec = recognizer(transcriber)
    events = stream(rec, audio) + rec.finish()
    finals = [e for e in events if e.final]
    assert [e.speaker for e in finals] == ["agent", "customer"], finals
    agent, customer = finals
    assert "занима" in normalise(agent.text) or "отдел" in normalise(agent.text), agent.text
    assert "интернет" in normalise(customer.text) or "почин" in normalise(customer.text), customer.text
    assert abs(agent.start - agent_span[0]) < 0.5 and abs(agent.end - agent_span[1]) < 0.5
    assert abs(customer.start - customer_span[0]) < 0.5 and abs(customer.end - customer_span[1]) < 0.5


def test_partials_come_before_the_final_of_a_long_turn(call, transcriber):
    audio, agent_span, _ = call
    rec = recognizer(transcriber)
    events = stream(rec, audio) + rec.finish()
    agent = [e for e in events if e.speaker == "agent"]
    partials = [e for e in agent if not e.final]
    assert partials, "a turn of several seconds produced no partial transcript"
    final = next(e for e in agent if e.final)
    assert agent.index(partials[0]) < agent.index(final)
    assert all(p.end < final.end for p in partials) and all(p.text for p in partials)


def test_finish_mid_turn_keeps_what_was_said(call, transcriber):
    audio, agent_span, _ = call
    cut = int((agent_span[0] + 0.7 * (agent_span[1] - agent_span[0])) * RATE)  # hang up mid-sentence
    rec = recognizer(transcriber)
    events = [e for e in stream(rec, audio[:, :cut]) if e.final] + rec.finish()
    assert [e.speaker for e in events if e.final] == ["agent"]
    assert rec.finish() == []  # finishing twice is harmless


def test_bad_audio_and_use_after_end(transcriber):
    rec = recognizer(transcriber)
    with pytest.raises(StreamError, match=r"expected audio of shape \(2, n\)"):
        rec.push(np.zeros(160, np.float32), RATE)  # mono chunk on a stereo call
    with pytest.raises(StreamError, match=r"expected audio of shape \(2, n\)"):
        rec.push(np.zeros((3, 160), np.float32), RATE)
    assert rec.push(np.zeros((2, 1600), np.float32), RATE) == []  # silence: nothing to say
    rec.finish()
    with pytest.raises(StreamError, match="the call has ended"):
        rec.push(np.zeros((2, 160), np.float32), RATE)
    with pytest.raises(StreamError, match="at least one channel"):
        CallRecognizer(lambda x, lang, final: [], [])


def test_deferred_partials_are_handed_out_and_never_delay_finals(call, transcriber):
    """With inline_partials=False the recogniser only pushes finals; the open turn's previews come from
    due_partials() (each once) and become events through partial_event()."""
    audio, agent_span, _ = call
    asked: list[bool] = []

    def transcribe(x, lang, final):
        asked.append(final)
        return transcriber.transcribe(x, language=lang)

    rec = CallRecognizer(transcribe, ["agent", "customer"], language="ru", inline_partials=False)
    previews = []
    finals = []
    for i in range(0, audio.shape[1], 160):
        finals += rec.push(audio[:, i : i + 160], RATE)
        for due in rec.due_partials():
            assert due.speaker == "agent" or due.speaker == "customer"
            event = rec.partial_event(due, transcriber.transcribe(due.utterance.samples, language="ru"))
            if event is not None:
                previews.append(event)
    finals += rec.finish()
    assert all(asked)  # the recogniser itself only transcribed finals
    assert [e.speaker for e in finals] == ["agent", "customer"] and all(e.final for e in finals)
    agent_previews = [p for p in previews if p.speaker == "agent"]
    assert agent_previews and all(not p.final and p.end <= finals[0].end for p in agent_previews)
    assert len({p.end for p in agent_previews}) == len(agent_previews)  # each preview handed out once


def test_a_declined_partial_gives_no_event(call, transcriber):
    """A busy transcriber returns None for a partial: no partial event, the final still comes."""
    audio, _, _ = call

    def busy(x, lang, final):
        return transcriber.transcribe(x, language=lang) if final else None

    rec = CallRecognizer(busy, ["agent", "customer"], language="ru")
    events = stream(rec, audio) + rec.finish()
    assert events and all(e.final for e in events)
