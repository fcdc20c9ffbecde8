"""Masking personal data in transcripts: card, phone and passport-like numbers, e-mails, spoken digit runs.

QA reports leave the building (exports, e-mails to team leads), so what a customer dictated must not be
in them. Recognisers write numbers either as digits («4276 3800 1234 5678») or as words («четыре два семь
шесть…», "four two seven six"); both are found. Short numbers that carry no identity (a time, a price,
«42 07» of a contract typed as two groups) are left alone: a digit run is masked from 6 digits on, a run of
spoken number words from 4 words on.

The kind of each masked span is kept (``[CARD]``, ``[PHONE]``…), so a reviewer still sees what the
customer gave, just not the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_DIGITS = 6
MIN_SPOKEN_NUMBERS = 4

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# Digits with the separators people and recognisers put between groups: spaces, dashes, dots, brackets,
# and the commas Whisper writes into long numbers ("8,916,555,1234").
_DIGIT_RUN = re.compile(r"\+?\(?\d(?:[\d\s().,-]*\d)?")

_RU_NUMBER_WORDS = (
    "ноль нуль один одна одно два две три четыре пять шесть семь восемь девять десять одиннадцать "
    "двенадцать тринадцать четырнадцать пятнадцать шестнадцать семнадцать восемнадцать девятнадцать "
    "двадцать тридцать сорок пятьдесят шестьдесят семьдесят восемьдесят девяносто сто двести триста "
    "четыреста пятьсот шестьсот семьсот восемьсот девятьсот"
)
_EN_NUMBER_WORDS = (
    "zero oh nought one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
    "hundred double triple"
)
_NUMBER_WORD = (
    r"(?:"
    + "|".join(sorted((_RU_NUMBER_WORDS + " " + _EN_NUMBER_WORDS).split(), key=len, reverse=True))
    + r"|\d+)"
)
_SPOKEN_RUN = re.compile(
    rf"(?<![\w]){_NUMBER_WORD}(?:[\s,-]+{_NUMBER_WORD}){{{MIN_SPOKEN_NUMBERS - 1},}}(?![\w])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Masked:
    """One masked span of the original text: ``[start, end)`` and its kind."""

    start: int
    end: int
    kind: str  # EMAIL, CARD, PHONE, ID, NUMBER


@dataclass(frozen=True)
class MaskResult:
    text: str
    spans: tuple[Masked, ...]


def find_pii(text: str) -> list[Masked]:
    """Personal data in `text`, left to right, spans never overlapping."""
    found: list[Masked] = [Masked(m.start(), m.end(), "EMAIL") for m in _EMAIL.finditer(text)]
    for match in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if len(digits) >= MIN_DIGITS and not _overlaps(found, match.start(), match.end()):
            start, end = _strip_edges(text, match.start(), match.end())
            found.append(Masked(start, end, _digit_kind(match.group(), digits)))
    for match in _SPOKEN_RUN.finditer(text):
        if not _overlaps(found, match.start(), match.end()):
            found.append(Masked(match.start(), match.end(), "NUMBER"))
    return sorted(found, key=lambda m: m.start)


def mask_pii(text: str) -> MaskResult:
    """`text` with every personal-data span replaced by its kind in brackets, e.g. ``[PHONE]``."""
    spans = find_pii(text)
    out, at = [], 0
    for span in spans:
        out.append(text[at : span.start])
        out.append(f"[{span.kind}]")
        at = span.end
    out.append(text[at:])
    return MaskResult("".join(out), tuple(spans))


def _digit_kind(raw: str, digits: str) -> str:
    """CARD (Luhn-valid, or four groups of four), ID for a passport layout (2-2-6 or 4-6 digits), PHONE
    (a leading +, 11 digits from 7/8, or 10 digits), ID for any other long number."""
    groups = [len(g) for g in re.findall(r"\d+", raw)]
    if 13 <= len(digits) <= 19 and (_luhn(digits) or groups == [4, 4, 4, 4]):
        return "CARD"
    if groups in ([2, 2, 6], [4, 6]):
        return "ID"
    if raw.lstrip().startswith("+") or (len(digits) == 11 and digits[0] in "78") or len(digits) == 10:
        return "PHONE"
    return "ID"


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _strip_edges(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop separators the digit pattern took at the edges (a trailing space or dot, an unmatched bracket)."""
    while start < end and text[start] in " .,-)":
        start += 1
    while end > start and text[end - 1] in " .,-(":
        end -= 1
    return start, end


def _overlaps(spans: list[Masked], start: int, end: int) -> bool:
    return any(s.start < end and start < s.end for s in spans)
