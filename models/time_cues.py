"""Promised times in a turn: «восстановят сегодня до шести вечера», «вернутся в течение трёх дней», "by 6 pm".

The seed articles ask the agent for a real time ("сообщите реальные сроки") and forbid the vague one
(«в ближайшее время», "soon"). A sentence encoder blurs the difference: «восстановят линию сегодня до шести
вечера» and «восстановят линию в ближайшее время» are near neighbours. Whether a turn names a clock time, a
day, a date or a counted duration is a matter of surface form, so it is found here by patterns that survive
speech recognition (no case, no punctuation, «е» for «ё», numbers in words or digits); it is a promise when
the same sentence speaks of the future («приедет», «будет», "will", "'ll") and does not hedge («может через
неделю, может через две»), so opening hours («касса работает с восьми до восьми») and a past call («вы
звонили в пятницу») are none. A pack category can take the cue as evidence for it (``timeline``) or against
it (``vague_timeline``); the classifier weighs it with everything else, so the cue alone decides nothing.

The customer's side of the same matter is the question «когда?» (``asks_when``). Whisper often keeps the
question's frame and loses its verb («когда вы уже почините интернет» heard as «когда вы уже почти не темнее
интернет»), and the frame alone («когда вы уже…», «сколько ещё ждать», "how much longer") is what the
encoder then misses; so it is found here too, as a question about time: «когда» opening a sentence about
the future, or a fixed asking frame anywhere. «Когда я звонил вчера…» and "when I called" are none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from models.text import is_future_ru, is_imperative_ru, normalise
from models.windows import sentences_of

# Russian number words by stem, in any case («шесть», «шести», «шестью»), and their ordinals («шестое»).
_RU_NUMBER = (
    r"(?:одн|один|два|две|двух|двум|двумя|три|трех|трем|тремя|четыр|пят|шест|сем|восем|восьм|девят|десят"
    r"|одиннадцат|двенадцат|тринадцат|четырнадцат|пятнадцат|шестнадцат|семнадцат|восемнадцат|девятнадцат"
    r"|двадцат|тридцат|сорок|полтор|пол|перв|втор|трет|четверт|полу)[а-я]*"
)
_NUM = rf"(?:\d{{1,4}}|{_RU_NUMBER})"
_RU_DAY = r"(?:понедельник|вторник|сред|четверг|пятниц|суббот|воскресень)[а-я]*"
_RU_MONTH = r"(?:январ|феврал|март|апрел|ма[яй]|июн|июл|август|сентябр|октябр|ноябр|декабр)[а-я]*"
_RU_UNIT = r"(?:минут|час|дн|день|дня|сут|недел|месяц|рабоч)[а-я]*"
_RU_PART = r"(?:утра|дня|вечера|ночи|утром|днем|вечером|обеда|обед|обеду)"

_EN_NUMBER = (
    r"(?:\d{1,4}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty"
    r"|forty|half an?|a couple of|a few)"
)
_EN_DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_EN_MONTH = r"(?:january|february|march|april|may|june|july|august|september|october|november|december)"
_EN_UNIT = r"(?:minutes?|mins?|hours?|hrs?|days?|working days?|business days?|weeks?|months?)"

_PATTERNS = [
    # clock times: 18:00, 15.30, "6 pm", "six o'clock", «в три часа», «к восьми вечера», «с десяти до двух»
    r"\d{1,2}[:.]\d{2}",
    rf"{_EN_NUMBER}(?:[ :.]\d{{2}})? ?(?:am|pm|a m|p m|o'clock|oclock)",
    rf"(?:в|к|до|после|с|около|ровно в|между) {_NUM}(?: и {_NUM})?(?: час[а-я]*)?(?: {_RU_PART})",
    rf"(?:в|к|до|после|около|ровно в) {_NUM} час[а-я]*",
    rf"(?:в|к|до|после|около) часу {_RU_PART}",
    rf"(?:не позже|не позднее) {_NUM}(?: {_RU_PART})",
    rf"(?:с|между) {_NUM} (?:до|и) (?:{_NUM}|часу)",
    r"(?:at|by|before|after|until|between) \d{1,2}(?: and \d{1,2})?(?![\d:.,])",
    rf"between {_EN_NUMBER} and {_EN_NUMBER}",
    # counted durations: «в течение трёх рабочих дней», «через час», «минут через двадцать», "within an hour"
    rf"(?:в течение|в течении|через|за|не больше|не дольше|не более|не позднее|не позже|в пределах)"
    rf"(?: {_NUM})?(?: рабоч[а-я]*)? {_RU_UNIT}",
    rf"{_RU_UNIT} через {_NUM}",
    rf"(?:within|in|under|up to|no more than|no later than|for)(?: the next| exactly| about)?"
    rf" {_EN_NUMBER} {_EN_UNIT}",
    # days and dates: «в пятницу», «к понедельнику», «завтра», «до десятого числа», "by Monday", "tomorrow"
    rf"(?:в|во|к|до|на|по|с) {_RU_DAY}",
    r"(?:завтра|послезавтра)",
    r"(?:сегодня|завтра) (?:утром|днем|вечером|ночью)",
    r"(?:до|к) завтрашн[а-я]* (?:утр|дн|вечер|обед)[а-я]*",
    rf"(?:до|к) (?:конц[а-я]* (?:рабочего )?(?:дня|недели|месяца)|{_RU_PART}|утру|вечеру)",
    rf"(?:до|к|на|не позднее|не позже) {_NUM}(?:-?го|-?е)?(?: {_RU_MONTH}| числ[а-я]*)",
    rf"{_NUM}(?:-?го|-?е)? {_RU_MONTH}",
    rf"(?:on|by|until|before|next|this|from) {_EN_DAY}",
    r"(?:tomorrow|tonight|this afternoon|this evening|by lunchtime|by noon|by midday)",
    r"(?:by|before|until) the end of (?:the |this )?(?:day|week|month)",
    r"(?:end of (?:the )?day|end of (?:the |this )?week)",
    # "by the 10th", not "on the 4th floor" or "for the 3rd time"
    r"(?:on|by|until|before|after|from|than) the \d{1,2}(?:st|nd|rd|th)"
    r"(?! (?:floor|time|attempt|try|page|line|step|row|place|level|grade))",
    rf"(?:the )?\d{{1,2}}(?:st|nd|rd|th) of {_EN_MONTH}",
    rf"{_EN_MONTH} \d{{1,2}}(?:st|nd|rd|th)?",
]
_CONCRETE_TIME = re.compile(r"(?<![\w'])(?:" + "|".join(_PATTERNS) + r")(?![\w'])")
_SPACES = re.compile(r"(?:[^\w:.']|(?<!\d)[:.]|[:.](?!\d))+")  # a "." or ":" between digits is kept


@dataclass(frozen=True)
class TimeCue:
    """A concrete time found in a text: its characters and offsets into the text as given."""

    text: str
    start: int
    end: int


# English words that put a sentence in the future or make it a commitment
_EN_FUTURE = frozenset({"will", "ll", "shall", "going", "gonna", "should", "expect", "due", "promise"})
# Words that take the commitment back: «может через неделю, может через две» is a vague timeline
_HEDGES = frozenset({"может", "наверное", "возможно", "вроде", "maybe", "might", "perhaps"})
_WORDS = re.compile(r"[^\W\d_]+(?:'[a-z]+)?")


def promised_times(text: str) -> list[TimeCue]:
    """The concrete times of `text` in a sentence that speaks of the future."""
    cues = []
    for start, end in sentences_of(text):
        sentence = text[start:end]
        if _promises(sentence):
            cues += [TimeCue(c.text, start + c.start, start + c.end) for c in concrete_times(sentence)]
    return cues


def _promises(sentence: str) -> bool:
    """Whether a Russian verb of the sentence is in the future, or an English word makes it one, and no
    hedge takes it back."""
    words = _WORDS.findall(normalise(sentence))
    if _HEDGES.intersection(words):
        return False
    return any(w in _EN_FUTURE or w.endswith("'ll") or is_future_ru(w) for w in words)


def concrete_times(text: str) -> list[TimeCue]:
    """Every concrete time, date or counted duration in `text`, in order."""
    flat, offsets = _flatten(normalise(text))
    cues = []
    for match in _CONCRETE_TIME.finditer(flat):
        start, end = offsets[match.start()], offsets[match.end() - 1] + 1
        cues.append(TimeCue(text[start:end], start, end))
    return cues


# Frames that ask about time wherever they stand: «когда же», «когда вы уже», «сколько можно ждать»,
# «через сколько», «к какому числу», "how long will", "how much longer", "by when"
_WHEN_FRAMES = [
    r"когда (?:же|ж)",
    r"когда (?:(?:вы|они|мне|нам|это|все) )?(?:уже|наконец|хоть)",
    r"сколько (?:(?:мне|нам|можно|еще|вам|это) )*(?:ждать|ожидать|будет длиться|продлится|займет)",
    r"сколько (?:еще |по )?(?:времени|дней|часов|недель|минут)",
    r"(?:как долго|долго (?:еще|ли|мне|нам)|надолго|через сколько|во сколько|в какие сроки|какие сроки)",
    r"(?:к|до) как(?:ому|ого|ой) (?:числ|времен|срок|дат|дн)[а-я]*",
    r"when (?:will|would|is|are|can|could|do|does|should|shall|exactly|roughly)",
    r"how (?:long (?:will|would|do|does|is|are|am|until|till|before|to|have|has|should|must|more)"
    r"|much longer|soon|many (?:more )?(?:days|hours|weeks|minutes))",
    r"(?:by when|what time (?:will|is|are|can|should|does|do)|any (?:idea|estimate|eta) (?:of )?when)",
]
_WHEN_FRAME = re.compile(r"(?<![\w'])(?:" + "|".join(_WHEN_FRAMES) + r")(?![\w'])")
# Words a customer may say before the question: «ну и когда…», «скажите, когда…», "so when…"
_LEAD_IN = frozenset(
    {
        "ну",
        "и",
        "а",
        "так",
        "то",
        "есть",
        "скажите",
        "подскажите",
        "слушайте",
        "девушка",
        "короче",
        "хорошо",
        "ладно",
        "вообще",
        "so",
        "and",
        "ok",
        "okay",
        "well",
        "then",
        "but",
        "just",
        "tell",
        "me",
    }
)


def when_questions(text: str) -> list[TimeCue]:
    """Where `text` asks when something will happen or how long it will take: a fixed asking frame
    (``_WHEN_FRAMES``) anywhere, or «когда» opening a sentence whose verb is in the future («Когда
    привезут заказ»); «когда» inside a statement («перезвоню, когда вернусь») is not a question."""
    cues = []
    for start, end in sentences_of(text):
        sentence = text[start:end]
        flat, offsets = _flatten(normalise(sentence))
        spans = [(m.start(), m.end()) for m in _WHEN_FRAME.finditer(flat)]
        if not spans and (opening := _opening_when(flat)) is not None:
            spans = [opening]
        for a, b in spans:
            cue_start, cue_end = start + offsets[a], start + offsets[b - 1] + 1
            cues.append(TimeCue(text[cue_start:cue_end], cue_start, cue_end))
    return cues


def _opening_when(flat: str) -> tuple[int, int] | None:
    """The span of «когда» when it is the first word after lead-ins and a verb after it is in the future,
    but none is an order («Когда будете уходить, закройте дверь» asks nothing)."""
    words = list(re.finditer(r"\S+", flat))
    for i, word in enumerate(words):
        if word.group() in ("когда", "када"):
            rest = [w.group() for w in words[i + 1 :]]
            if any(map(is_future_ru, rest)) and not any(map(is_imperative_ru, rest)):
                return word.start(), word.end()
            return None
        if word.group() not in _LEAD_IN:
            return None
    return None


def _flatten(text: str) -> tuple[str, list[int]]:
    """`text` with every run of punctuation and spaces as one space, and each kept character's offset in
    `text`: «В 15:00, да.» and «в 15:00 да» match alike."""
    chars: list[str] = []
    offsets: list[int] = []
    pos = 0
    for gap in _SPACES.finditer(text + " "):
        for i in range(pos, gap.start()):
            chars.append(text[i])
            offsets.append(i)
        pos = gap.end()
        if chars and chars[-1] != " ":
            chars.append(" ")
            offsets.append(gap.start())
    if chars and chars[-1] == " ":
        chars.pop()
        offsets.pop()
    return "".join(chars), offsets
