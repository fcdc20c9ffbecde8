"""models.pii: personal data masked in ru and en transcripts, and ordinary numbers left alone."""

from __future__ import annotations

import pytest

from models.pii import find_pii, mask_pii


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Номер карты 4276 3800 1234 5670, проверьте", "Номер карты [CARD], проверьте"),
        ("my card is 4111-1111-1111-1111.", "my card is [CARD]."),
        ("Перезвоните на +7 (916) 123-45-67", "Перезвоните на [PHONE]"),
        ("мой телефон 89161234567", "мой телефон [PHONE]"),
        ("call me at 415 555 0134 please", "call me at [PHONE] please"),
        ("паспорт 45 06 123456 выдан", "паспорт [ID] выдан"),
        ("пишите на ivan.petrov+cb@mail.ru или звоните", "пишите на [EMAIL] или звоните"),
        ("it's anna_b@example.co.uk", "it's [EMAIL]"),
        ("номер договора четыре два ноль семь пять", "номер договора [NUMBER]"),
        ("Сорок два, ноль семь, девятнадцать", "[NUMBER]"),
        ("the account is four two zero seven nine", "the account is [NUMBER]"),
        ("my number is double seven three oh five", "my number is [NUMBER]"),
        ("Мой номер 8,916,555,1234, запишите", "Мой номер [PHONE], запишите"),
        ("карта 4,276, 3,801,234 5678", "карта [ID]"),
    ],
)
def test_personal_data_is_masked_by_kind(text, masked):
    assert mask_pii(text).text == masked


@pytest.mark.parametrize(
    "text",
    [
        "Я перезвоню до 15:00, заявка 4207.",
        "It costs 1 200 rubles and takes 3 days.",
        "That's 1,200, and 3,500 for the router.",
        "Интернет не работает с двух часов.",
        "I'll call you back at three p.m. or four.",
        "В 2024 году тариф стоил 500 рублей.",
    ],
)
def test_ordinary_numbers_are_kept(text):
    assert mask_pii(text).text == text and find_pii(text) == []


def test_spans_point_into_the_original_text():
    text = "карта 4111 1111 1111 1111 и почта a@b.ru"
    result = mask_pii(text)
    assert [(text[s.start : s.end], s.kind) for s in result.spans] == [
        ("4111 1111 1111 1111", "CARD"),
        ("a@b.ru", "EMAIL"),
    ]
