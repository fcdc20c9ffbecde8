"""Turns of several sentences, and turns with no punctuation at all, as a recogniser writes them.

A forbidden sentence must be found whether a neutral one comes before or after it, with full stops,
with commas instead, or with no punctuation and no capitals; and a turn of neutral sentences, or of a
neutral one and a misheard one, must raise no alert. None of these sentences is in the pack or in the
shared evaluation sets (a guard test below checks the pack).
"""

from __future__ import annotations

import pytest

from models.classifier import Speaker

AGENT, CUSTOMER = Speaker.AGENT, Speaker.CUSTOMER

# (turn, speaker, alert categories that must be found, alert categories also acceptable)
CASES = [
    # a forbidden sentence after a neutral one, and before one
    (
        "Let me see, I have your order here. That's not something I deal with, call the warehouse.",
        AGENT,
        {"not_my_job"},
        set(),
    ),
    (
        "I don't handle refunds, you'll need to ring the shop. Anything else I can help with?",
        AGENT,
        {"not_my_job"},
        set(),
    ),
    ("Добрый день, вижу вашу заявку. Это не ко мне, звоните в отдел доставки.", AGENT, {"not_my_job"}, set()),
    ("That's not my department, I can see your account is blocked, sorry.", AGENT, {"not_my_job"}, set()),
    (
        "Thanks for holding. The courier lost it, that's on them, not on us.",
        AGENT,
        {"blame_shifting"},
        {"not_my_job"},
    ),
    ("Да, я посмотрела ваш счёт, это биллинг опять всё перепутал, не мы.", AGENT, {"blame_shifting"}, set()),
    ("I checked your line. You must have unplugged the router yourself.", AGENT, {"blaming_customer"}, set()),
    (
        "Минуточку, сейчас открою вашу карточку. Вы сами неправильно указали адрес, вот курьер и не нашёл.",
        AGENT,
        {"blaming_customer"},
        set(),
    ),
    ("Не повышайте на меня голос. Я вам ничего не должна.", AGENT, {"lecturing_customer"}, set()),
    (
        "I've been waiting for two weeks. This is completely unacceptable, I want a refund.",
        CUSTOMER,
        {"customer_complaint"},
        set(),
    ),
    (
        "I already explained everything twice. Put me through to your supervisor.",
        CUSTOMER,
        {"escalation_request"},
        set(),
    ),
    (
        "Я третий день без интернета. Это просто издевательство, верните деньги!",
        CUSTOMER,
        {"customer_complaint"},
        set(),
    ),
    # no punctuation, no capitals
    (
        "ok i have your account open its the delivery company that messed up not us",
        AGENT,
        {"blame_shifting"},
        {"not_my_job"},
    ),
    ("это не ко мне звоните в отдел доставки а заявку вашу я вижу", AGENT, {"not_my_job"}, set()),
    (
        "посмотрела ваш договор это монтажники напортачили мы тут ни при чём",
        AGENT,
        {"blame_shifting"},
        {"not_my_job"},
    ),
    ("ваш счёт заблокирован это бухгалтерия ошиблась а не я", AGENT, {"blame_shifting"}, {"not_my_job"}),
    ("hello yes my name is john when are you going to fix my internet", CUSTOMER, {"asks_when"}, set()),
    ("алло здравствуйте когда уже почините интернет у меня", CUSTOMER, {"asks_when"}, set()),
    # several sentences, none of them an alert
    ("Hello, thanks for calling. How can I help you today?", AGENT, set(), set()),
    ("I'm sorry about that. I'll call you back by four with an update.", AGENT, set(), set()),
    ("Добрый день, меня зовут Ольга. Чем могу помочь?", AGENT, set(), set()),
    ("Простите за ожидание. Я сейчас всё проверю и перезвоню вам до пяти.", AGENT, set(), set()),
    ("Бухгалтерия уже пересчитала ваш счёт. Деньги вернутся в течение трёх дней.", AGENT, set(), set()),
    (
        "Этим занимается мой коллега, я переведу вас. Сама всё ему расскажу, вам не придётся повторять.",
        AGENT,
        set(),
        set(),
    ),
    ("Понимаю ваше недовольство, номер договора, пожалуйста, сейчас проверю", AGENT, set(), set()),
]


def _alerts(classifier, text: str, speaker: Speaker) -> set[str]:
    return {d.category for d in classifier.classify(text, speaker) if d.kind.is_alert}


@pytest.mark.parametrize(("text", "speaker", "expected", "also_ok"), CASES, ids=[c[0][:40] for c in CASES])
def test_multi_sentence_turns(classifier, text, speaker, expected, also_ok):
    found = _alerts(classifier, text, speaker)
    assert expected <= found, f"missed {expected - found}"
    assert found <= expected | also_ok, f"wrong alert {found - expected - also_ok}"


REFUSALS = [
    ("я таким вообще не занимаюсь", "сейчас посмотрю ваш договор"),
    ("sorry that isn't my area at all", "i'm opening your account now"),
]
JOINS = {
    "neutral. refusal.": lambda r, n: f"{n.capitalize()}. {r.capitalize()}.",
    "refusal. neutral.": lambda r, n: f"{r.capitalize()}. {n.capitalize()}.",
    "neutral, refusal.": lambda r, n: f"{n.capitalize()}, {r}.",
    "refusal, neutral.": lambda r, n: f"{r.capitalize()}, {n}.",
    "neutral refusal": lambda r, n: f"{n} {r}",
    "refusal neutral": lambda r, n: f"{r} {n}",
}
# Known misses: the refusal is found alone, but its clause or word window, blended with a whole turn that
# leans the other way, stays under the threshold (en), or clears it by a hair (ru: 0.51 against 0.50 on
# an AVX2 machine), which the int8 encoder's arithmetic on another CPU can tip either way. Not strict.
# English: "sorry that isn't my area at all" sat 0.02 over its threshold written alone; since the probe
# also learns what Whisper hears of the pack's phrases (models.heard), whose apologetic English turns
# lean "sorry ..." towards an apology, it sits 0.03 under it in every join (measured: probe 0.27 against
# 0.30). Kept visible here rather than pasted into the pack.
KNOWN_MISSES = {("ru", "refusal neutral"), *(("en", join) for join in JOINS)}
_KNOWN = pytest.mark.xfail(reason="known miss")


@pytest.mark.parametrize(
    ("lang", "join"),
    [
        pytest.param(
            lang,
            join,
            marks=[_KNOWN] if (lang, join) in KNOWN_MISSES else [],
        )
        for lang in ("ru", "en")
        for join in JOINS
    ],
)
def test_forbidden_sentence_in_every_position_and_punctuation(classifier, lang, join):
    """The same refusal and the same neutral sentence, joined every way a recogniser may write them."""
    refusal, neutral = REFUSALS[0] if lang == "ru" else REFUSALS[1]
    text = JOINS[join](refusal, neutral)
    assert _alerts(classifier, text, AGENT) == {"not_my_job"}, text


def test_span_points_at_the_forbidden_sentence(classifier):
    text = "Добрый день, вижу вашу заявку. Это не ко мне, звоните в отдел доставки."
    [det] = [d for d in classifier.classify(text, AGENT) if d.category == "not_my_job"]
    assert det.start >= text.index("Это не ко мне")


def test_misheard_sentence_adds_no_alert(classifier):
    """A refusal followed by a sentence the recogniser garbled: only the refusal (the whole turn's
    embedding, an average of the two, must not land on a third category)."""
    assert _alerts(classifier, "Это не ко мне. Вам придётся нарисовать сто дома.", AGENT) == {"not_my_job"}


# What Whisper made of two agent turns of the English test call (bench/data/calls/en-complaint.yaml),
# "I understand how annoying this is. I am removing the block right now and I will make sure you are back
# online." and, 0.4 s later, "I will call you back today before three p.m. to confirm that everything
# works.", at 8 kHz, joined into one by the endpointer (latency bench with --min-piece 3).
MISHEARD_PROMISE = (
    "I understand how annoying this is. I am removing the block right out and I will make sure you are "
    "not online. I will call you back to maybe for 3PM to consume up and ridding work."
)


def test_misheard_long_promise_raises_no_alert(classifier):
    """A long turn of three sentences, one of them garbled: no word window across two sentences
    («…not online. I will call you back to maybe for») and no piece scoring for a category its whole
    never came near may turn it into "call another number"."""
    assert _alerts(classifier, MISHEARD_PROMISE, AGENT) == set()


def test_sentences_are_not_in_the_pack(default_pack):
    phrases = {t.lower() for c in default_pack.categories for _, t in c.examples.items()}
    phrases |= {t.lower() for c in default_pack.categories for _, t in c.counter_examples.items()}
    phrases |= {t.lower() for _, t in default_pack.neutral.items()}
    for text, *_ in CASES:
        assert text.lower() not in phrases, text
