"""What Whisper hears of the pack's phrases: read from the shipped file, learned by the classifier."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from models.heard import HeardPhrase, hear_phrases, heard_path, load_heard, write_heard
from models.packs import parse_pack


def test_heard_phrases_are_read_by_phrase_and_bad_lines_are_skipped(tmp_path: Path, caplog):
    path = tmp_path / "heard.jsonl"
    rows = [
        {"text": "Позовите руководителя!", "lang": "ru", "voice": "ru-0", "heard": "Позавите руководителя."},
        {"text": "Позовите руководителя!", "lang": "ru", "voice": "ru-0", "heard": "позовите, руководителя"},
        {"text": "Позовите руководителя!", "lang": "ru", "voice": "ru-0", "heard": "Позавите руководителя."},
        {"text": "It's not my job.", "lang": "en", "voice": "en-1", "heard": "It's not my shop."},
    ]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + ["{broken", '{"text": "no heard"}', ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        heard = load_heard(path)
    # the same words as said are no variant; a variant heard twice is one
    assert heard == {
        "позовите руководителя": ["Позавите руководителя."],
        "it s not my job": ["It's not my shop."],
    }
    assert sum("skipped" in r.message for r in caplog.records) == 2
    assert load_heard(tmp_path / "missing.jsonl") == {}


def test_hearing_phrases_spreads_them_over_voices_and_leaves_out_what_cannot_be_said(tmp_path: Path):
    said = []

    def say(text: str, lang: str, voice: int):
        said.append((text, voice))
        return None if "%" in text else [len(text)]

    rows = list(
        hear_phrases(
            [("Скидка 20%.", "ru"), ("Добрый день.", "ru"), ("Hello.", "en"), ("Bonjour.", "fr")],
            say,
            lambda samples, lang: f"{lang}:{samples[0]}",
            {"ru": 1, "en": 3},
        )
    )
    assert rows == [
        HeardPhrase("Добрый день.", "ru", "ru-0", "ru:12"),
        HeardPhrase("Hello.", "en", rows[1].voice, "en:6"),
    ]
    assert rows[1].voice in {"en-0", "en-1", "en-2"}
    assert write_heard(rows, tmp_path / "out.jsonl") == 2
    assert load_heard(tmp_path / "out.jsonl") == {"добрый день": ["ru:12"], "hello": ["en:6"]}


def test_the_shipped_file_holds_what_whisper_heard_of_the_default_pack(default_pack):
    """Built by bench/hear_pack.py from the default pack: most of its phrases, each heard otherwise."""
    from models.loops import normalise

    heard = load_heard(heard_path())
    pack = {
        normalise(p)
        for c in default_pack.categories
        for ph in (c.examples, c.counter_examples)
        for _, p in ph.items()
    }
    pack |= {normalise(p) for _, p in default_pack.neutral.items()}
    assert len(heard) > 1000
    assert sum(key in pack for key in heard) > 0.95 * len(heard)


PACK = """
name: tiny
categories:
  - id: escalation_request
    kind: trigger
    speaker: customer
    title: {en: Manager}
    examples: {en: [I want to speak to your manager., Get me your supervisor., Put me through to your boss.]}
    responses: {en: [Of course.]}
  - id: asks_when
    kind: trigger
    speaker: customer
    title: {en: When}
    examples: {en: ["When will it be fixed?", "How long do I have to wait?", "When is the engineer coming?"]}
    responses: {en: [Today by six.]}
neutral: {en: [Hello., Thank you., My account number is four two.]}
"""


def test_the_classifier_learns_variants_as_their_phrase_and_never_points_at_them(encoder):
    from models.classifier import PhraseClassifier

    pack = parse_pack(PACK)
    heard = {"i want to speak to your manager": ["I want to speak to your man itcher."], "hello": ["Hello."]}
    plain = PhraseClassifier(pack, encoder)
    learned = PhraseClassifier(pack, encoder, heard=heard)
    assert (plain.heard_count, learned.heard_count) == (0, 1)  # "Hello." is the phrase itself
    assert plain.phrase_count == learned.phrase_count
    found = learned.classify("I want to speak to your man itcher.", "customer")
    assert [d.category for d in found] == ["escalation_request"]
    assert found[0].example in pack.category("escalation_request").examples.en  # a real phrase


@pytest.mark.parametrize(
    "heard",
    [
        "Забити вашего руководителя.",  # «Позовите вашего руководителя», issue 18's call
        "Тогда дают мне старшего.",  # «Тогда дайте мне старшего», a labelled call
    ],
)
def test_what_whisper_made_of_a_request_for_a_manager_is_still_one(classifier, heard):
    """Requests for a manager as Whisper base wrote them from 8 kHz calls are still found. (The whole
    labelled-call turn, «…дают мне старшего того, кто у вас решает вопрос со своими звратами», sits within
    a few hundredths of the threshold and falls either side of it with the CPU's arithmetic: AVX2 finds
    it, AVX-512 VNNI does not; it is not a test.)"""
    assert "escalation_request" in {d.category for d in classifier.classify(heard, "customer")}


@pytest.fixture(scope="module")
def encoder(cache_dir):
    from models.encoders import get_encoder

    return get_encoder("e5", cache_dir)
