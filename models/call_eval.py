"""How many alerts survive a whole call: labelled turns said, turns the engine heard, alerts it raised.

The classifier's own figures (:mod:`models.evaluation`) judge written turns. An agent never sees written
turns: they see what comes out of phone audio, endpointing, Whisper and the classifier. This module scores
that whole chain on labelled calls: for each turn that was *said* (speaker, time, text, the alert
categories it must raise, the ones it may raise), what the engine *heard* in that stretch of the call and
which alerts it raised. It is pure: the runs that produce the heard turns (an audit of the recording, the
live engine) live with the engines (:mod:`server.packs.call_eval`).

Matching is by time and speaker, as a reviewer would line up a transcript with a script: a heard turn
belongs to every said turn of the same speaker that it overlaps by at least ``MIN_OVERLAP_S`` (or, for a
very short said turn, by ``MIN_OVERLAP_SHARE`` of it). A heard turn of speaker ``unknown`` (a mono
recording nobody told apart) may belong to either speaker.

- an expected category of a said turn is **hit** when a heard turn belonging to it raised that category;
  otherwise it is **missed**;
- a category raised on a heard turn is a **false alarm** when no said turn it belongs to expects it or
  allows it (``also_ok``); a heard turn belonging to no said turn (noise heard as speech) that raised an
  alert is a false alarm too. Each (heard turn, category) counts once;
- a heard final turn **repeats** when it holds a run of three or more words twice in a row that the said
  text does not ("let me speak to your manager let me speak to your manager let me speak"): Whisper looping
  on a short window, or two pieces of one turn joined with an overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.loops import find_loops

MIN_OVERLAP_S = 0.3
MIN_OVERLAP_SHARE = 0.5
SPLITS = ("tune", "heldout")


@dataclass(frozen=True)
class SaidTurn:
    """A labelled turn of a call: who said what, when (seconds of call audio), and what it must raise."""

    speaker: str
    text: str
    start: float
    end: float
    expect: tuple[str, ...] = ()
    also_ok: tuple[str, ...] = ()


@dataclass(frozen=True)
class HeardTurn:
    """A final turn the engine produced, with the alert categories it raised on it."""

    speaker: str
    text: str
    start: float
    end: float
    alerts: tuple[str, ...] = ()


@dataclass(frozen=True)
class TurnRow:
    """One line of the turn table: a said turn (None for speech heard where none was said), what was
    heard in it, what was raised, and how that compares with the labels."""

    said: SaidTurn | None
    heard: tuple[HeardTurn, ...]
    hits: tuple[str, ...]
    misses: tuple[str, ...]
    false_alarms: tuple[str, ...]
    repeated: tuple[str, ...]  # the repeated runs of words found in the heard finals

    @property
    def heard_text(self) -> str:
        return " | ".join(h.text for h in self.heard)

    @property
    def alerted(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for h in self.heard for c in h.alerts))

    def to_dict(self) -> dict[str, Any]:
        said = self.said
        return {
            "speaker": said.speaker if said else self.heard[0].speaker,
            "start": said.start if said else self.heard[0].start,
            "end": said.end if said else self.heard[-1].end,
            "said": said.text if said else None,
            "expect": list(said.expect) if said else [],
            "also_ok": list(said.also_ok) if said else [],
            "heard": [{"text": h.text, "start": h.start, "end": h.end} for h in self.heard],
            "alerted": list(self.alerted),
            "hits": list(self.hits),
            "misses": list(self.misses),
            "false_alarms": list(self.false_alarms),
            "repeated": list(self.repeated),
        }


@dataclass(frozen=True)
class CallResult:
    """The turn table of one labelled call and its counts."""

    name: str
    split: str | None
    rows: tuple[TurnRow, ...]

    @property
    def expected(self) -> int:
        return sum(len(r.hits) + len(r.misses) for r in self.rows)

    @property
    def hits(self) -> int:
        return sum(len(r.hits) for r in self.rows)

    @property
    def false_alarms(self) -> int:
        return sum(len(r.false_alarms) for r in self.rows)

    @property
    def repeated_finals(self) -> int:
        return sum(
            1 for r in self.rows for h in r.heard if repeated_runs(h.text, r.said.text if r.said else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "split": self.split,
            "expected": self.expected,
            "hits": self.hits,
            "false_alarms": self.false_alarms,
            "repeated_finals": self.repeated_finals,
            "turns": [r.to_dict() for r in self.rows],
        }


@dataclass(frozen=True)
class CategoryCount:
    category: str
    expected: int = 0
    hits: int = 0
    false_alarms: int = 0

    @property
    def recall(self) -> float | None:
        return self.hits / self.expected if self.expected else None


@dataclass(frozen=True)
class Totals:
    """Alert recall, false alarms per call and repeated finals over a group of calls."""

    calls: int
    expected: int
    hits: int
    false_alarms: int
    repeated_finals: int

    @property
    def recall(self) -> float | None:
        return self.hits / self.expected if self.expected else None

    @property
    def false_alarms_per_call(self) -> float | None:
        return self.false_alarms / self.calls if self.calls else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "expected": self.expected,
            "hits": self.hits,
            "recall": _rounded(self.recall),
            "false_alarms": self.false_alarms,
            "false_alarms_per_call": _rounded(self.false_alarms_per_call),
            "repeated_finals": self.repeated_finals,
        }


@dataclass(frozen=True)
class CallSetReport:
    """Every call's turn table, and the totals over all of them, by split and by category."""

    mode: str  # "audit" or "live"
    calls: tuple[CallResult, ...]
    failed: tuple[tuple[str, str], ...] = field(default=())  # (call, why) for calls that could not run

    def totals(self, split: str | None = None) -> Totals:
        """Over every call, or over the calls of one split (``tune``, ``heldout``)."""
        calls = [c for c in self.calls if split is None or c.split == split]
        return Totals(
            len(calls),
            sum(c.expected for c in calls),
            sum(c.hits for c in calls),
            sum(c.false_alarms for c in calls),
            sum(c.repeated_finals for c in calls),
        )

    def categories(self) -> list[CategoryCount]:
        """Expected, hit and falsely raised, per category, in order of first appearance."""
        counts: dict[str, list[int]] = {}
        for row in (r for c in self.calls for r in c.rows):
            for index, categories in enumerate((row.hits + row.misses, row.hits, row.false_alarms)):
                for category in categories:
                    counts.setdefault(category, [0, 0, 0])[index] += 1
        return [CategoryCount(c, *n) for c, n in counts.items()]

    def splits(self) -> list[str]:
        return [s for s in SPLITS if any(c.split == s for c in self.calls)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "totals": self.totals().to_dict(),
            "by_split": {s: self.totals(s).to_dict() for s in self.splits()},
            "by_category": [
                {
                    "category": c.category,
                    "expected": c.expected,
                    "hits": c.hits,
                    "recall": _rounded(c.recall),
                    "false_alarms": c.false_alarms,
                }
                for c in self.categories()
            ],
            "calls": [c.to_dict() for c in self.calls],
            "failed": [{"call": name, "error": why} for name, why in self.failed],
        }


def score_call(
    name: str, said: Sequence[SaidTurn], heard: Sequence[HeardTurn], *, split: str | None = None
) -> CallResult:
    """The turn table of one call (see the module's docstring for the rules)."""
    owners: list[list[int]] = [[i for i, s in enumerate(said) if _belongs(h, s)] for h in heard]
    rows = []
    for i, turn in enumerate(said):
        mine = tuple(h for h, own in zip(heard, owners, strict=True) if i in own)
        raised = {c for h in mine for c in h.alerts}
        hits = tuple(c for c in turn.expect if c in raised)
        misses = tuple(c for c in turn.expect if c not in raised)
        false = tuple(
            dict.fromkeys(
                c
                for h, own in zip(heard, owners, strict=True)
                if i in own and own[0] == i  # a heard turn's false alarm is told at its first said turn
                for c in h.alerts
                if not any(c in said[j].expect or c in said[j].also_ok for j in own)
            )
        )
        repeats = tuple(r for h in mine for r in repeated_runs(h.text, turn.text))
        rows.append(TurnRow(turn, mine, hits, misses, false, repeats))
    for h, own in zip(heard, owners, strict=True):
        if not own:
            rows.append(
                TurnRow(None, (h,), (), (), tuple(dict.fromkeys(h.alerts)), repeated_runs(h.text, ""))
            )
    rows.sort(key=lambda r: r.said.start if r.said else r.heard[0].start)
    return CallResult(name, split, tuple(rows))


def _belongs(heard: HeardTurn, said: SaidTurn) -> bool:
    if heard.speaker not in (said.speaker, "unknown"):
        return False
    overlap = min(heard.end, said.end) - max(heard.start, said.start)
    return overlap >= min(MIN_OVERLAP_S, MIN_OVERLAP_SHARE * (said.end - said.start))


def repeated_runs(text: str, said: str = "") -> tuple[str, ...]:
    """The loops (:func:`models.loops.find_loops`) in `text` that `said` does not have: «я
    открываю вашу карточку я открываю вашу карточку» gives ``("я открываю вашу карточку",)``."""
    spoken = {loop.run for loop in find_loops(said.split())}
    return tuple(dict.fromkeys(loop.run for loop in find_loops(text.split()) if loop.run not in spoken))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def render_report(report: CallSetReport, *, turns: bool = True) -> str:
    """The report as text: the turn table of each call (said / heard / alerted), then the totals by
    split and by category."""
    lines: list[str] = []
    if turns:
        for call in report.calls:
            lines.extend(_call_lines(call))
    for name, why in report.failed:
        lines.append(f"FAILED {name}: {why}")
    lines.append(f"mode: {report.mode}")
    lines.append(
        f"{'calls':12} {'n':>4} {'alerts':>7} {'hit':>5} {'recall':>7} {'false':>6} {'per call':>9} "
        f"{'repeats':>8}"
    )
    groups = [("all", report.totals())] + [(s, report.totals(s)) for s in report.splits()]
    for name, t in groups:
        lines.append(
            f"{name:12} {t.calls:4d} {t.expected:7d} {t.hits:5d} {_fmt(t.recall):>7} {t.false_alarms:6d} "
            f"{_fmt(t.false_alarms_per_call):>9} {t.repeated_finals:8d}"
        )
    lines.append("")
    lines.append(f"{'category':22} {'alerts':>7} {'hit':>5} {'recall':>7} {'false':>6}")
    for c in report.categories():
        lines.append(f"{c.category:22} {c.expected:7d} {c.hits:5d} {_fmt(c.recall):>7} {c.false_alarms:6d}")
    return "\n".join(lines)


def _call_lines(call: CallResult) -> Iterable[str]:
    split = f" [{call.split}]" if call.split else ""
    yield f"== {call.name}{split}: {call.hits}/{call.expected} alerts, {call.false_alarms} false"
    for row in call.rows:
        said = row.said
        who = (said.speaker if said else row.heard[0].speaker)[:4]
        at = said.start if said else row.heard[0].start
        marks = [f"+{c}" for c in row.hits] + [f"MISSED {c}" for c in row.misses]
        marks += [f"FALSE {c}" for c in row.false_alarms] + [f"REPEATS «{r}»" for r in row.repeated]
        yield f"  {at:6.1f} {who:4} said:  {said.text if said else '(nothing)'}"
        yield f"              heard: {row.heard_text or '(nothing)'}"
        if marks or row.alerted:
            yield f"              alerts: {', '.join(row.alerted) or '-'}   {'  '.join(marks)}"
    yield ""


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
