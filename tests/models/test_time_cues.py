"""Concrete times and questions about time found by rule, and what the classifier makes of them."""

from __future__ import annotations

import pytest
import yaml

from models.packs import Cue, CueEffect, PackError, dump_pack, parse_pack
from models.time_cues import concrete_times, promised_times, when_questions

CONCRETE = [
    ("Бригада подключит вас в среду после обеда.", "в среду"),
    ("счёт пересчитают не позднее пятнадцатого числа", "не позднее пятнадцатого числа"),
    ("Оператор перезвонит в 14.30.", "14.30"),
    ("ответ будет в течение двух рабочих дней", "в течение двух рабочих дней"),
    ("ВОДУ ДАДУТ К СЕМИ ВЕЧЕРА", "К СЕМИ ВЕЧЕРА"),
    ("минут через сорок пришлю подтверждение", "минут через сорок"),
    ("Курьер приедет с одиннадцати до часу", "с одиннадцати до часу"),
    ("Доступ вернём до конца рабочего дня.", "до конца рабочего дня"),
    ("Перезвоню сегодня вечером, обещаю.", "сегодня вечером"),
    ("I'll ring you back at 4:15 sharp.", "4:15"),
    ("the technician can come on Saturday morning", "on Saturday"),
    ("You'll see the credit within 48 hours.", "within 48 hours"),
    ("it should be sorted by the end of this week", "by the end of this week"),
    ("we'll email you the new contract by 11 am", "by 11"),
    ("Your booking is moved to the 21st of May.", "the 21st of May"),
    ("We'll reply no later than the 10th.", "than the 10th"),
]
VAGUE = [
    "Сделаем в ближайшее время.",
    "Скоро всё заработает, не волнуйтесь.",
    "Сроков пока нет, ждите.",
    "Оператор ответит через несколько минут",
    "У вас три заявки в работе.",
    "Нажмите один, чтобы продолжить.",
    "It'll be fixed as soon as we can.",
    "We'll get back to you shortly.",
    "Press two for billing.",
    "You have three open tickets.",
    "The office is on the 4th floor, you will see it.",
]


@pytest.mark.parametrize(("text", "time"), CONCRETE, ids=[t for t, _ in CONCRETE])
def test_a_concrete_time_is_found_with_its_span(text, time):
    found = concrete_times(text)
    assert found, text
    assert time in {c.text for c in found}
    for cue in found:
        assert text[cue.start : cue.end] == cue.text


@pytest.mark.parametrize("text", VAGUE)
def test_a_vague_time_or_a_bare_number_is_no_concrete_time(text):
    assert concrete_times(text) == []


def test_speech_recogniser_forms_are_found_alike():
    """No case, no punctuation, «е» for «ё», the number in words or in digits."""
    forms = {
        "Мастер приедёт в четверг, к 10:00.": ["в четверг", "10:00"],
        "мастер приедет в четверг к десяти утра": ["в четверг", "к десяти утра"],
        "МАСТЕР ПРИЕДЕТ В ЧЕТВЕРГ К ДЕСЯТИ УТРА": ["В ЧЕТВЕРГ", "К ДЕСЯТИ УТРА"],
    }
    for text, times in forms.items():
        assert [c.text for c in concrete_times(text)] == times, text


def test_pack_names_unknown_cue_and_its_category(default_pack):
    data = yaml.safe_load(dump_pack(default_pack))
    data["categories"][0]["cues"] = {"weather": "for"}
    with pytest.raises(PackError) as err:
        parse_pack(yaml.safe_dump(data, allow_unicode=True), source="broken.yaml")
    message = str(err.value)
    assert "broken.yaml" in message and data["categories"][0]["id"] in message and "cues" in message


def test_default_pack_ties_concrete_time_to_timeline_for_and_vague_timeline_against(default_pack):
    assert default_pack.category("timeline").cues == {Cue.PROMISED_TIME: CueEffect.FOR}
    assert default_pack.category("vague_timeline").cues == {Cue.PROMISED_TIME: CueEffect.AGAINST}
    again = parse_pack(dump_pack(default_pack), source="round-trip")
    assert again.category("timeline").cues == default_pack.category("timeline").cues


def test_a_hedged_or_past_time_is_no_promise():
    assert promised_times("Мастер приедет в пятницу к десяти утра.")
    for text in (
        "ну может через недельку может через две",
        "Maybe it'll be done by Friday, maybe not.",
        "Вы звонили нам вчера в три часа.",
        "Касса работает с восьми до восьми.",
    ):
        assert promised_times(text) == [], text


def test_a_promised_time_is_a_timeline_and_points_at_the_time(classifier):
    text = "Заявку я передала, электрики восстановят питание сегодня до семи вечера."
    [det] = [d for d in classifier.classify(text, "agent") if d.category == "timeline"]
    assert text[det.start : det.end] == "до семи вечера"


def test_the_same_promise_without_a_time_is_vague(classifier):
    """The cue is what separates the two: the encoder puts them side by side."""
    text = "Заявку я передала, электрики восстановят питание в ближайшее время."
    found = {d.category for d in classifier.classify(text, "agent")}
    assert "timeline" not in found


def test_a_time_alone_decides_nothing(classifier):
    """Opening hours and a past call carry a time and promise nothing."""
    for text in ("Касса работает с восьми до восьми без выходных.", "Вы были у нас в пятницу, правильно?"):
        assert "timeline" not in {d.category for d in classifier.classify(text, "agent")}, text


ASKING = [
    ("Ну когда же вы наконец сделаете перерасчёт?", "когда же"),
    ("сколько можно ждать этого мастера", "сколько можно ждать"),
    ("Через сколько примерно ответят из банка?", "Через сколько"),
    ("До какого числа продлится проверка?", "До какого числа"),
    ("Когда мне доставят документы?", "Когда"),
    ("скажите когда подключат", "когда"),
    ("How long will the outage last?", "How long will"),
    ("So when can I expect the engineer?", "when can"),
    ("how much longer is this going to take", "how much longer"),
]
TELLING = [
    "Когда я пришёл домой, света уже не было.",
    "Я вам перезвоню, когда освобожусь.",
    "Когда будете уходить, закройте дверь.",
    "Мы долго ждали автобус.",
    "Вы когда-нибудь были у нас в офисе?",
    "When I moved in, the line was fine.",
    "I waited for a long time.",
]


@pytest.mark.parametrize(("text", "frame"), ASKING, ids=[t for t, _ in ASKING])
def test_a_question_about_time_is_found_with_its_span(text, frame):
    found = when_questions(text)
    assert [c.text for c in found] == [frame]
    assert text[found[0].start : found[0].end] == frame


@pytest.mark.parametrize("text", TELLING)
def test_when_in_a_statement_or_an_order_asks_nothing(text):
    """A past «когда», «когда» after the main verb, an order, a "when" clause: none asks when."""
    assert when_questions(text) == []


def test_default_pack_ties_the_when_question_to_asks_when(default_pack):
    assert default_pack.category("asks_when").cues == {Cue.WHEN_QUESTION: CueEffect.FOR}


def test_a_when_question_whose_verb_the_recogniser_lost_is_still_asks_when(classifier):
    """Whisper keeps the frame («когда вы уже…», "how much longer…") and mangles the verb; the encoder
    alone puts these below the threshold, the frame lifts them over it."""
    for text in ("когда вы уже при шлете мастера то", "how much longer do I have to keep wading"):
        assert "asks_when" in {d.category for d in classifier.classify(text, "customer")}, text


def test_a_customer_saying_when_they_will_call_back_is_not_asking(classifier):
    for text in ("Я вам перезвоню, когда освобожусь.", "When I get home I'll check the router myself."):
        assert "asks_when" not in {d.category for d in classifier.classify(text, "customer")}, text
