"""Fill a database with synthetic stored calls, through the real stores, for the search and trends benches.

    python bench/synthetic_calls.py --db /tmp/calls.db --calls 10000 [--seed 0] [--audited 0.4]
    python bench/synthetic_calls.py --db postgresql://user@127.0.0.1:5432/db --calls 2000

Each call is live (calls, turns and alerts through :class:`server.live.store.Store`) or audited (a job,
an audited call with its report, flags and scorecard through :class:`server.audits.store.AuditStore`),
6-20 turns of both speakers in Russian (about three in four) or English, on dates spread over the 90 days
before `end`, named for one of 30 agents (made users with the ``agent`` role in the access store). Turns
are built from templates with varied slots, the default pack's neutral phrases, and, on some turns, one of
the pack's examples of a category of that speaker's side: a live alert is stored on most of them, an
audited report has a detection on each, and every call's scorecard is scored by
:func:`models.scorecard.score_call` (for a live call, as the server's scorer of ended calls would).
The same `seed` gives the same calls, texts and agents (dates count back from `end`, today by default).

Other benches import :func:`generate`. Calls are written in batches, one transaction each (the stores'
``import_calls``), so 10 000 calls take seconds on SQLite.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.packs import Category, PhrasePack, load_pack  # noqa: E402
from models.scorecard import JudgedTurn, score_call  # noqa: E402
from server.access.store import AuthStore, Role, UserConflictError  # noqa: E402
from server.audits.store import AuditImport, AuditStore  # noqa: E402
from server.live.store import AlertRecord, CallImport, CallRecord, Store, TurnRecord  # noqa: E402

logger = logging.getLogger(__name__)

BATCH = 500  # calls per transaction
DAYS = 90
AGENT_COUNT = 30

_FIRST = [
    "anna",
    "oleg",
    "irina",
    "pavel",
    "maria",
    "sergey",
    "elena",
    "dmitry",
    "olga",
    "ivan",
    "nadia",
    "artem",
    "yulia",
    "maxim",
    "tanya",
    "kirill",
    "vera",
    "roman",
]
_LAST = [
    "petrova",
    "ivanov",
    "smirnova",
    "kuznetsov",
    "popova",
    "sokolov",
    "lebedeva",
    "kozlov",
    "novikova",
    "morozov",
    "volkova",
    "orlov",
]

_SLOTS: dict[str, dict[str, list[str]]] = {
    "ru": {
        "thing": ["интернет", "роутер", "договор", "счёт", "тариф", "заказ", "карта", "доставка",
                  "личный кабинет", "телевидение", "приложение", "возврат", "подписка", "кредит", "перевод"],
        "n": ["пять", "шесть", "десять", "несколько", "семь", "двенадцать"],
        "period": ["дней", "недель", "часов", "месяцев"],
        "when": ["вчера", "сегодня утром", "в понедельник", "на прошлой неделе", "позавчера", "ночью"],
        "name": ["Анна", "Олег", "Ирина", "Павел", "Мария", "Сергей", "Елена", "Дмитрий"],
        "num": ["4815", "2290", "7731", "1042", "5568", "9034"],
        "city": ["Москве", "Казани", "Самаре", "Твери", "Екатеринбурге", "Новосибирске"],
    },
    "en": {
        "thing": ["internet", "router", "contract", "bill", "plan", "order", "card", "delivery", "account",
                  "TV service", "mobile app", "refund", "subscription", "loan", "transfer"],
        "n": ["two", "three", "five", "ten", "several", "four"],
        "period": ["days", "weeks", "hours", "months"],
        "when": ["yesterday", "this morning", "on Monday", "last week", "the day before yesterday",
                 "overnight"],
        "name": ["Anna", "Oleg", "Irene", "Paul", "Maria", "Sergey", "Helen", "Dmitry"],
        "num": ["4815", "2290", "7731", "1042", "5568", "9034"],
        "city": ["London", "Leeds", "Bristol", "Glasgow", "Cardiff", "York"],
    },
}  # fmt: skip
_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "ru": {
        "agent": [
            "Здравствуйте, меня зовут {name}, слушаю вас.",
            "Назовите, пожалуйста, номер договора, он заканчивается на {num}?",
            "Сейчас посмотрю, что у вас с услугой «{thing}».",
            "Вижу вашу заявку, её создали {when}.",
            "Подождите, пожалуйста, минуту, я проверяю {thing}.",
            "По адресу в {city} сейчас идут плановые работы.",
            "Уточните, пожалуйста, когда именно это началось?",
            "Я перезагрузил оборудование со своей стороны, проверьте ещё раз.",
            "Хорошо, я записал ваше обращение по теме «{thing}».",
            "Есть ли ещё вопросы, с которыми я могу помочь?",
            "Спасибо за ожидание, я всё проверил.",
            "Мастер может приехать через {n} {period}.",
        ],
        "customer": [
            "Здравствуйте, у меня проблема: {thing} не работает уже {n} {period}.",
            "Я звонил {when}, и ничего не изменилось.",
            "Номер договора заканчивается на {num}.",
            "Живу в {city}, адрес есть в договоре.",
            "Да, я уже перезагружал, не помогает.",
            "Мне списали деньги за {thing}, а я ничего не подключал.",
            "Хорошо, подожду.",
            "Понятно, спасибо.",
            "А можно как-то быстрее решить вопрос с {thing}?",
            "Мне нужно, чтобы {thing} заработал до выходных.",
            "Я пользуюсь вашими услугами уже {n} лет.",
            "Нет, других вопросов нет, до свидания.",
        ],
    },
    "en": {
        "agent": [
            "Hello, my name is {name}, how can I help?",
            "Could you give me your contract number, it ends in {num}?",
            "Let me look at your {thing} right now.",
            "I can see your request, it was opened {when}.",
            "One moment please, I'm checking the {thing}.",
            "There is planned maintenance in {city} at the moment.",
            "When exactly did this start?",
            "I have restarted the equipment on my side, please try again.",
            "Right, I have logged your request about the {thing}.",
            "Is there anything else I can help you with?",
            "Thank you for waiting, I've checked everything.",
            "An engineer can come within {n} {period}.",
        ],
        "customer": [
            "Hi, I have a problem: my {thing} hasn't worked for {n} {period}.",
            "I called {when} and nothing changed.",
            "The contract number ends in {num}.",
            "I live in {city}, the address is on the contract.",
            "Yes, I already restarted it, it doesn't help.",
            "You charged me for the {thing} and I never ordered it.",
            "Okay, I'll wait.",
            "I see, thanks.",
            "Can the {thing} issue be solved any faster?",
            "I need the {thing} working before the weekend.",
            "I've been your customer for {n} years.",
            "No, nothing else, goodbye.",
        ],
    },
}


@dataclass
class Summary:
    """What :func:`generate` stored (or found stored, when `reused`)."""

    location: str
    calls: int
    live_calls: int = 0
    audited_calls: int = 0
    turns: int = 0
    alerts: int = 0
    agents: list[str] = field(default_factory=list)
    since: str = ""
    until: str = ""
    seconds: float = 0.0
    reused: bool = False


def agent_names(count: int = AGENT_COUNT) -> list[str]:
    """`count` distinct agent user names, the same every time."""
    names = [f"{first}.{last}" for last in _LAST for first in _FIRST]
    return random.Random(7).sample(names, count)


class _Maker:
    """Makes one call after another from one random generator (so a seed fixes them all)."""

    def __init__(self, seed: int, pack: PhrasePack, agents: list[str], end: datetime, audited: float) -> None:
        self.rng = random.Random(seed)
        self.seed, self.pack, self.agents, self.end, self.audited = seed, pack, agents, end, audited
        self.sides: dict[str, list[Category]] = {"agent": [], "customer": []}
        for category in pack.categories:
            self.sides.setdefault(category.speaker.value, []).append(category)

    def date(self) -> str:
        moment = self.end - timedelta(seconds=self.rng.uniform(0, DAYS * 86400))
        return moment.isoformat(timespec="milliseconds")

    def filler(self, lang: str, speaker: str) -> str:
        if self.rng.random() < 0.3:
            neutral = getattr(self.pack.neutral, lang)
            if neutral:
                return self.rng.choice(neutral)
        template = self.rng.choice(_TEMPLATES[lang][speaker])
        slots = {k: self.rng.choice(v) for k, v in _SLOTS[lang].items()}
        return template.format(**slots)

    def turns(self, lang: str) -> list[tuple[str, str, Category | None]]:
        """(speaker, text, category or None) for 6-20 turns; about one turn in four carries a category."""
        out: list[tuple[str, str, Category | None]] = []
        speaker = "agent"
        for position in range(self.rng.randint(6, 20)):
            category = None
            if position > 0 and self.rng.random() < 0.25:
                candidates = [c for c in self.sides[speaker] if getattr(c.examples, lang)]
                category = self.rng.choice(candidates) if candidates else None
            text = (
                self.rng.choice(getattr(category.examples, lang)) if category else self.filler(lang, speaker)
            )
            out.append((speaker, text, category))
            speaker = "customer" if speaker == "agent" else "agent"
        return out

    def times(self, count: int) -> list[tuple[float, float]]:
        at, spans = self.rng.uniform(0.5, 2.0), []
        for _ in range(count):
            length = self.rng.uniform(1.5, 7.0)
            spans.append((round(at, 2), round(at + length, 2)))
            at += length + self.rng.uniform(0.3, 2.5)
        return spans


def _title(category: Category, lang: str) -> str:
    return getattr(category.title, lang, None) or category.title.en or category.id


def _responses(category: Category, lang: str) -> tuple[str, ...]:
    return tuple(getattr(category.responses, lang)[:3])


def live_call(maker: _Maker, index: int, lang: str, agent: str, created: str) -> CallImport:
    """One ended live call with its turns, the alerts raised on them and its scorecard."""
    rng = maker.rng
    said = maker.turns(lang)
    spans = maker.times(len(said))
    call_id = f"syn-{maker.seed}-{index:06d}"
    turns = [
        TurnRecord(id=i, call_id=call_id, speaker=s, text=t, start=a, end=b)
        for i, ((s, t, _), (a, b)) in enumerate(zip(said, spans, strict=True))
    ]
    alerts = []
    for i, (speaker, text, category) in enumerate(said):
        if category is None or category.kind.value == "practice" or rng.random() > 0.85:
            continue
        alerts.append(
            AlertRecord(
                id=0,
                call_id=call_id,
                turn_id=i,
                category=category.id,
                kind=category.kind.value,
                speaker=speaker,
                text=text,
                start=spans[i][0],
                end=spans[i][1],
                score=round(rng.uniform(0.5, 0.97), 3),
                suggestions=_responses(category, lang),
                pack_version=maker.pack.version,
                title=_title(category, lang),
                span=(0, len(text)),
            )
        )
    ended = (datetime.fromisoformat(created) + timedelta(seconds=spans[-1][1] + 1)).isoformat(
        timespec="milliseconds"
    )
    judged = [
        JudgedTurn(i, speaker, a, b, text, frozenset({category.id}) if category else frozenset())
        for i, ((speaker, text, category), (a, b)) in enumerate(zip(said, spans, strict=True))
    ]
    card = score_call(judged)  # as the server's scorer of ended live calls would score it
    practices = tuple(sorted({c.id for _, _, c in said if c is not None and c.kind.value == "practice"}))
    record = CallRecord(
        call_id, ("agent", "customer"), lang, "mulaw", 8000, "completed", created, ended, agent,
        score=card.score, practices=practices,
    )  # fmt: skip
    return CallImport(record, turns, alerts)


def audited_call(maker: _Maker, index: int, lang: str, agent: str, created: str) -> AuditImport:
    """One audited recording's report: transcript, a detection on each category turn, scorecard."""
    rng = maker.rng
    said = maker.turns(lang)
    spans = maker.times(len(said))
    turns, detections, judged = [], [], []
    for i, ((speaker, text, category), (a, b)) in enumerate(zip(said, spans, strict=True)):
        turns.append({"index": i, "speaker": speaker, "start": a, "end": b, "text": text, "lang": lang})
        found = frozenset({category.id}) if category else frozenset()
        judged.append(JudgedTurn(i, speaker, a, b, text, found))
        if category is not None:
            detections.append(
                {
                    "turn": i,
                    "category": category.id,
                    "kind": category.kind.value,
                    "speaker": speaker,
                    "start": a,
                    "end": b,
                    "text": text,
                    "span": [0, len(text)],
                    "score": round(rng.uniform(0.5, 0.97), 4),
                    "example": text,
                    "title": _title(category, lang),
                    "suggestions": list(_responses(category, lang)),
                }
            )
    card = score_call(judged)
    duration = round(spans[-1][1] + 1.0, 2)
    talk = {s: round(sum(b - a for (sp, _, _), (a, b) in zip(said, spans, strict=True) if sp == s), 2)
            for s in ("agent", "customer")}  # fmt: skip
    name = f"syn-{maker.seed}-{index:06d}.wav"
    report: dict[str, Any] = {
        "schema": 1,
        "source": name,
        "sha256": f"{maker.seed:08x}{index:056x}",
        "duration": duration,
        "channels": 2,
        "roles": ["agent", "customer"],
        "language": lang,
        "diarization": "channels",
        "notes": ["synthetic call (bench/synthetic_calls.py)"],
        "masked": True,
        "turns": turns,
        "detections": detections,
        "talk_time": talk,
        "silences": [],
        "overtalk": [],
        "scorecard": {
            "score": card.score,
            "passed": card.passed,
            "failed": card.failed,
            "items": [
                {
                    "id": i.id,
                    "title": i.title,
                    "status": i.status.value,
                    "turns": list(i.turns),
                    "note": i.note,
                }
                for i in card.items
            ],
        },
        "audited_at": created,
        "model": {"synthetic": True},
    }
    return AuditImport(name, f"synthetic/{name}", created, report, agent)


def _make_agents(location: str | Path, agents: list[str]) -> None:
    """The agents as users with the agent role (tokens only), unless they exist."""
    with AuthStore(location) as auth:
        for name in agents:
            with contextlib.suppress(UserConflictError):  # made by an earlier run: same name, same role
                auth.add_user(name, Role.AGENT)


def generate(
    location: str | Path,
    calls: int = 10000,
    seed: int = 0,
    *,
    audited: float = 0.4,
    end: datetime | None = None,
    agents: int = AGENT_COUNT,
    reuse: bool = True,
    pack: PhrasePack | None = None,
) -> Summary:
    """Store `calls` synthetic calls at `location` (an SQLite path or a ``postgresql://`` URL), a share
    `audited` of them audited recordings; with `reuse`, a database that already holds this seed's calls
    is left as it is. Returns what was stored."""
    started = time.perf_counter()
    end = (end or datetime.now(UTC)).astimezone(UTC)
    names = agent_names(agents)
    summary = Summary(location=str(location), calls=calls, agents=names)
    summary.since = (end - timedelta(days=DAYS)).isoformat(timespec="seconds")
    summary.until = end.isoformat(timespec="seconds")
    maker = _Maker(seed, pack or load_pack(), names, end, audited)
    with Store(location) as live, AuditStore(location) as audits:
        if reuse and live.get_call(f"syn-{seed}-{0:06d}") is not None:
            summary.reused = True
            summary.seconds = time.perf_counter() - started
            return summary
        _make_agents(location, names)
        for first in range(0, calls, BATCH):
            live_batch: list[CallImport] = []
            audit_batch: list[AuditImport] = []
            for index in range(first, min(first + BATCH, calls)):
                lang = "ru" if maker.rng.random() < 0.75 else "en"
                agent, created = maker.rng.choice(names), maker.date()
                if index > 0 and maker.rng.random() < audited:
                    audit_batch.append(audited_call(maker, index, lang, agent, created))
                else:
                    live_batch.append(live_call(maker, index, lang, agent, created))
            summary.turns += live.import_calls(live_batch)
            summary.turns += sum(len(c.report["turns"]) for c in audit_batch)
            summary.alerts += sum(len(c.alerts) for c in live_batch)
            audits.import_calls(audit_batch, {"synthetic": True, "seed": seed})
            summary.live_calls += len(live_batch)
            summary.audited_calls += len(audit_batch)
    summary.seconds = time.perf_counter() - started
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="an SQLite file path or a postgresql:// URL")
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--audited", type=float, default=0.4, help="share of audited calls (0-1)")
    parser.add_argument("--end", help="ISO date the 90 days end on (default: now)")
    parser.add_argument("--no-reuse", action="store_true", help="add calls even if this seed's exist")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    end = datetime.fromisoformat(args.end).replace(tzinfo=UTC) if args.end else None
    s = generate(args.db, args.calls, args.seed, audited=args.audited, end=end, reuse=not args.no_reuse)
    if s.reused:
        print(f"{s.location}: already holds the calls of seed {args.seed}; nothing added")
    else:
        print(
            f"{s.location}: {s.live_calls} live + {s.audited_calls} audited calls, {s.turns} turns, "
            f"{s.alerts} live alerts, {len(s.agents)} agents, {s.since[:10]}..{s.until[:10]}, "
            f"{s.seconds:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
