"""The QA scorecard of a call, built from the seed articles' algorithms for handling a problem.

What a good agent does, in the articles' order: never use a forbidden phrase; when the customer complains,
accept the emotion (empathy or regret), apologise when the company is at fault, say what will be done
(a concrete next step) and by when (a concrete time), and say how it will not happen again where that
applies; when the customer asks for a manager, offer to go higher. Each item is judged from the categories
the classifier found in the call's turns, and names the turn that satisfied or broke it, so a reviewer can
jump to the moment.

An item that does not apply to the call (no complaint, no escalation request) is ``not_applicable`` and
does not count. ``prevention`` is advisory ("where it applies" cannot be known from the words alone): it
is reported, never failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class ItemStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"
    ADVISORY = "advisory"  # an optional good practice that was not seen


@dataclass(frozen=True)
class JudgedTurn:
    """A turn of the call with the categories found in it."""

    index: int
    speaker: str
    start: float
    end: float
    text: str
    categories: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ScoreItem:
    """One line of the scorecard; `turns` are the indexes of the turns that satisfied or broke it."""

    id: str
    title: str
    status: ItemStatus
    turns: tuple[int, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Scorecard:
    items: tuple[ScoreItem, ...]
    score: float  # passed / (passed + failed), 1.0 when nothing applies
    passed: int
    failed: int

    def item(self, item_id: str) -> ScoreItem:
        return next(i for i in self.items if i.id == item_id)


@dataclass(frozen=True)
class _Rule:
    """An item that applies after a customer trigger and is satisfied by an agent practice after it."""

    id: str
    title: str
    after: frozenset[str]  # customer categories that make the item apply
    satisfied_by: frozenset[str]  # agent categories that satisfy it
    advisory: bool = False
    fail_note: str = field(default="")


FORBIDDEN = frozenset(
    {
        "not_my_job",
        "blame_shifting",
        "excuses",
        "blaming_customer",
        "lecturing_customer",
        "dismissing_complaint",
        "internal_jargon",
        "giving_up",
        "vague_timeline",
    }
)
COMPLAINT = frozenset({"customer_complaint"})

RULES: tuple[_Rule, ...] = (
    _Rule(
        "empathy",
        "Accepted the emotion (empathy or regret)",
        COMPLAINT,
        frozenset({"empathy", "apology"}),
        fail_note="the complaint was never acknowledged",
    ),
    _Rule(
        "apology",
        "Apologised for the company's failure",
        COMPLAINT,
        frozenset({"apology"}),
        fail_note="no apology after the complaint",
    ),
    _Rule(
        "next_step",
        "Said what will be done (a concrete next step)",
        COMPLAINT,
        frozenset({"next_steps", "compensation"}),
        fail_note="no concrete next step after the complaint",
    ),
    _Rule(
        "timeline",
        "Gave a concrete time",
        COMPLAINT | {"asks_when"},
        frozenset({"timeline"}),
        fail_note="the customer was not told when",
    ),
    _Rule(
        "prevention", "Said how it will not happen again", COMPLAINT, frozenset({"prevention"}), advisory=True
    ),
    _Rule(
        "escalation",
        "Offered to go higher when asked for a manager",
        frozenset({"escalation_request"}),
        frozenset({"escalation_offer"}),
        fail_note="the request for a manager was not answered",
    ),
)


def score_call(turns: Sequence[JudgedTurn], forbidden: frozenset[str] = FORBIDDEN) -> Scorecard:
    """The scorecard of a call from its judged turns (in time order); `forbidden` are the pack's forbidden
    category ids (the taxonomy's by default)."""
    items = [_no_forbidden(turns, forbidden), *(_apply(rule, turns) for rule in RULES)]
    passed = sum(i.status is ItemStatus.PASSED for i in items)
    failed = sum(i.status is ItemStatus.FAILED for i in items)
    score = passed / (passed + failed) if passed + failed else 1.0
    return Scorecard(tuple(items), round(score, 3), passed, failed)


def _no_forbidden(turns: Sequence[JudgedTurn], forbidden: frozenset[str]) -> ScoreItem:
    broken = tuple(t.index for t in turns if t.speaker != "customer" and t.categories & forbidden)
    if broken:
        found = sorted({c for t in turns if t.index in broken for c in t.categories & forbidden})
        return ScoreItem("no_forbidden", "No forbidden phrase", ItemStatus.FAILED, broken, ", ".join(found))
    return ScoreItem("no_forbidden", "No forbidden phrase", ItemStatus.PASSED)


def _apply(rule: _Rule, turns: Sequence[JudgedTurn]) -> ScoreItem:
    triggers = [t for t in turns if t.speaker != "agent" and t.categories & rule.after]
    if not triggers:
        return ScoreItem(rule.id, rule.title, ItemStatus.NOT_APPLICABLE)
    first = triggers[0]
    answers = tuple(
        t.index
        for t in turns
        if t.speaker != "customer" and t.start >= first.start and t.categories & rule.satisfied_by
    )
    if answers:
        return ScoreItem(rule.id, rule.title, ItemStatus.PASSED, answers)
    status = ItemStatus.ADVISORY if rule.advisory else ItemStatus.FAILED
    return ScoreItem(rule.id, rule.title, status, tuple(t.index for t in triggers), rule.fail_note)
