"""The pure streaming core on a real stereo telephone call: festival speech, Silero endpointing, Whisper."""

from __future__ import annotations

import numpy as np
import pytest

from models.hallucinations import normalise
from models.streaming import CallRecognizer, StreamError, piece_key

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


def test_deferred_mode_hands_out_turns_and_never_transcribes(call, transcriber):
    """With no transcribe function the recogniser only listens: finished turns, previews and likely finals
    are handed out (each once) and become events through turn_event; a likely final's audio is exactly the
    final's when the speaker stays quiet."""
    audio, agent_span, _ = call
    rec = CallRecognizer(None, ["agent", "customer"], language="ru")
    finals, previews, likely = [], [], {}
    for i in range(0, audio.shape[1], 160):
        assert rec.push(audio[:, i : i + 160], RATE) == []
        finals += rec.take_finals()
        previews += rec.due_partials()
        for turn in rec.likely_finals(200):
            likely[(turn.channel, turn.utterance.start, turn.utterance.end)] = turn.utterance.samples
    assert rec.finish() == []
    finals += rec.take_finals()
    assert [t.speaker for t in finals] == ["agent", "customer"] and all(t.final for t in finals)
    agent = finals[0]
    assert np.array_equal(likely[(0, agent.utterance.start, agent.utterance.end)], agent.utterance.samples)
    agent_previews = [p for p in previews if p.speaker == "agent"]
    assert agent_previews and not any(p.final for p in agent_previews)
    assert len({p.utterance.end for p in agent_previews}) == len(agent_previews)  # each handed out once
    event = rec.turn_event(agent, transcriber.transcribe(agent.utterance.samples, language="ru"))
    assert event.final and event.speaker == "agent" and "занима" in normalise(event.text)
    preview = rec.turn_event(agent_previews[-1], transcriber.transcribe(agent_previews[-1].utterance.samples))
    assert preview is None or (not preview.final and preview.end <= event.end)


def test_a_declined_partial_gives_no_event(call, transcriber):
    """A busy transcriber returns None for a partial: no partial event, the final still comes."""
    audio, _, _ = call

    def busy(x, lang, final):
        return transcriber.transcribe(x, language=lang) if final else None

    rec = CallRecognizer(busy, ["agent", "customer"], language="ru")
    events = stream(rec, audio) + rec.finish()
    assert events and all(e.final for e in events)


def test_a_long_turn_is_handed_out_in_pieces_while_it_is_spoken(call, transcriber):
    """With ``min_piece``, a pause after that much of a turn cuts a piece that is kept (handed out once,
    ``kept``) while the speaker goes on; the final's pieces are those very pieces plus the last one,
    they tile the turn's audio exactly, and their texts joined say what the whole turn says."""
    audio, agent_span, _ = call
    rec = CallRecognizer(None, ["agent", "customer"], language="ru", min_piece=1.5)
    finals, handed = [], {}
    for i in range(0, audio.shape[1], 160):
        rec.push(audio[:, i : i + 160], RATE)
        for turn in rec.likely_finals(200):
            key = piece_key(turn.channel, turn.utterance)
            assert key not in handed  # each piece is handed out once
            handed[key] = turn
        finals += rec.take_finals()
    rec.finish()
    finals += rec.take_finals()
    agent = next(t for t in finals if t.speaker == "agent")
    pieces = agent.parts()
    assert len(pieces) >= 2, "the agent's three clauses were one piece"
    assert pieces[0].start == agent.utterance.start and pieces[-1].end == agent.utterance.end
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
    assert np.array_equal(np.concatenate([p.samples for p in pieces]), agent.utterance.samples)
    for piece in pieces:  # every piece was sent ahead, with exactly the final's samples
        early = handed[piece_key(0, piece)]
        assert np.array_equal(early.utterance.samples, piece.samples)
    assert all(handed[piece_key(0, p)].kept for p in pieces[:-1])
    assert all(p.duration >= 1.5 for p in pieces[:-1])
    used = {piece_key(0, p) for p in pieces}
    unused = [t for key, t in handed.items() if key[0] == 0 and key not in used]
    assert not any(t.kept for t in unused)  # only guesses the speaker outran go unused
    heard = [s.text for p in pieces for s in transcriber.transcribe(p.samples, language="ru")]
    text = normalise(" ".join(heard))
    assert "занима" in text and "отдел" in text


def test_min_piece_must_be_positive():
    with pytest.raises(StreamError, match="min_piece"):
        CallRecognizer(None, ["agent"], min_piece=0)
