"""The live engine's judgement of a final turn, alone and with the same speaker's turn just before it."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.classifier import Speaker, Turn


@pytest.fixture(scope="module")
def engine(shared_models, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from server.config import Settings
    from server.live.engine import LiveEngine
    from server.live.store import Store

    pool, classifier, endpoint = shared_models
    settings = Settings(cache_dir=cache_dir, data_dir=tmp_path_factory.mktemp("engine"))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return LiveEngine(settings, Store(settings.db_path), pool, classifier, endpoint)


def categories(judged) -> list[str]:
    return [d.category for d in judged.detections]


def test_a_phrase_cut_by_a_pause_is_judged_across_it(engine):
    """«Доставкой у нас занимается подрядчик, | вот он и виноват.»: the endpointer cut at the comma;
    neither half blames another department on its own, the two together do, and the alert points into the
    second half."""
    agent = Speaker.AGENT
    before = Turn("Доставкой у нас занимается подрядчик,", agent, "ru")
    turn = Turn("вот он и виноват.", agent, "ru")
    assert "blame_shifting" not in categories(engine.judge(before))
    assert "blame_shifting" not in categories(engine.judge(turn))
    judged = engine.judge(turn, before)
    assert "blame_shifting" in categories(judged)
    shift = next(d for d in judged.detections if d.category == "blame_shifting")
    assert 0 <= shift.start < shift.end <= len(turn.text)


def test_an_alert_the_previous_turn_raised_is_not_raised_again(engine):
    customer = Speaker.CUSTOMER
    before, turn = (
        Turn("Put me through to your manager,", customer, "en"),
        Turn("and do it now.", customer, "en"),
    )
    assert categories(engine.judge(before)) == ["escalation_request"]
    assert categories(engine.judge(turn)) == []
    assert categories(engine.judge(turn, before, raised_before={"escalation_request"})) == []


def test_words_only_in_the_previous_turn_raise_nothing_for_this_one(engine):
    """A refusal wholly inside the previous turn belongs to it, not to a neutral turn after it."""
    agent = Speaker.AGENT
    before = Turn("Я этим не занимаюсь, звоните в другой отдел.", agent, "ru")
    turn = Turn("Номер телефона у вас есть?", agent, "ru")
    assert categories(engine.judge(turn, before)) == []


def test_the_decoder_prompt_follows_the_published_pack(shared_models, cache_dir, tmp_path):
    """With the prompt on, the live recogniser reads the active pack's everyday phrases before each turn;
    a pack published with other everyday phrases is read from the next turn on. Off (the default), it
    reads none."""
    from models.classifier import PhraseClassifier
    from models.decoder_prompt import decoder_prompts
    from models.packs import ByLanguage
    from server.config import Settings
    from server.live.engine import LiveEngine
    from server.live.store import Store

    pool, classifier, endpoint = shared_models
    settings = Settings(cache_dir=cache_dir, data_dir=tmp_path, whisper_prompt=True)
    engine = LiveEngine(settings, Store(settings.db_path), pool, classifier, endpoint)
    try:
        assert pool.prompts == decoder_prompts(classifier.pack)
        assert pool.prompts["ru"].startswith("Здравствуйте")
        hotel = classifier.pack.model_copy(
            update={
                "version": 2,
                "neutral": ByLanguage(ru=["Гостиница «Волна», администратор Ирина, слушаю вас."], en=[]),
            }
        )
        engine.use_classifier(PhraseClassifier(hotel, classifier.encoder))
        assert pool.prompts == {"ru": "Гостиница «Волна», администратор Ирина, слушаю вас."}
    finally:
        off = LiveEngine(
            Settings(cache_dir=cache_dir, data_dir=tmp_path), engine.store, pool, classifier, endpoint
        )
        engine.store.close()
    assert off.pool.prompts == {}  # the shared pool is left as every other test expects it
