"""Measuring a pack on labelled turns: what it catches, what it misses, what it raises for nothing.

Rows follow the shared evaluation format: `text`, `lang`, `speaker`, `labels` (must be found),
`also_ok` (acceptable extras, never counted as false positives), optional `id` and `noisy`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models.classifier import Speaker, Turn, TurnClassifier
from models.packs import PhrasePack


class EvalDataError(ValueError):
    """An evaluation file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class EvalRow:
    text: str
    speaker: Speaker
    labels: frozenset[str]
    also_ok: frozenset[str] = frozenset()
    lang: str | None = None
    id: str | None = None


@dataclass
class CategoryScore:
    category: str
    kind: str
    support: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else (1.0 if not self.support else 0.0)

    @property
    def recall(self) -> float:
        return self.tp / self.support if self.support else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


@dataclass(frozen=True)
class RowResult:
    id: str | None
    text: str
    speaker: str
    expected: list[str]
    predicted: list[str]
    missed: list[str]
    extra: list[str]


@dataclass
class EvalReport:
    rows: int
    categories: list[CategoryScore]
    macro_f1: float
    alert_categories: list[str]
    clean_rows: int
    false_alarms: int
    wrong: list[RowResult] = field(default_factory=list)

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.clean_rows if self.clean_rows else 0.0

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "macro_f1": round(self.macro_f1, 4),
            "alert_categories": self.alert_categories,
            "clean_rows": self.clean_rows,
            "false_alarms": self.false_alarms,
            "false_alarm_rate": round(self.false_alarm_rate, 4),
            "categories": [c.as_dict() for c in self.categories],
            "wrong": [asdict(w) for w in self.wrong],
        }


def read_eval_rows(lines: Iterable[str], *, source: str = "<eval>") -> list[EvalRow]:
    """Parse JSON lines; any bad line stops with the file and line number (a measurement must be whole)."""
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            rows.append(
                EvalRow(
                    text=str(data["text"]),
                    speaker=Speaker(data.get("speaker", "unknown")),
                    labels=frozenset(data.get("labels", [])),
                    also_ok=frozenset(data.get("also_ok", [])),
                    lang=data.get("lang"),
                    id=None if data.get("id") is None else str(data["id"]),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise EvalDataError(f"{source}:{number}: not an evaluation row: {exc}") from exc
    return rows


def load_eval(path: str | Path) -> list[EvalRow]:
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            return read_eval_rows(fh, source=str(path))
    except OSError as exc:
        raise EvalDataError(f"{path}: cannot read: {exc}") from exc


def check_labels(rows: Sequence[EvalRow], pack: PhrasePack) -> None:
    """Refuse rows that name a category the pack does not have: a typo would silently lower recall."""
    known = set(pack.ids)
    for row in rows:
        unknown = (row.labels | row.also_ok) - known
        if unknown:
            raise EvalDataError(f"row {row.id or row.text!r}: unknown categories {sorted(unknown)}")


def evaluate(classifier: TurnClassifier, rows: Sequence[EvalRow]) -> EvalReport:
    """Per-category precision/recall/F1, macro-F1 over alert categories, false alarms on clean rows."""
    pack = classifier.pack
    check_labels(rows, pack)
    alerts = set(pack.alert_ids)
    scores = {c.id: CategoryScore(c.id, c.kind.value) for c in pack.categories}
    predictions = classifier.classify_batch([Turn(r.text, r.speaker, r.lang) for r in rows])
    clean = false_alarms = 0
    wrong = []
    for row, dets in zip(rows, predictions, strict=True):
        predicted = {d.category for d in dets}
        for cat in row.labels:
            scores[cat].support += 1
            if cat in predicted:
                scores[cat].tp += 1
            else:
                scores[cat].fn += 1
        extra = predicted - row.labels - row.also_ok
        for cat in extra:
            scores[cat].fp += 1
        if not row.labels & alerts:
            clean += 1
            false_alarms += bool(extra & alerts)
        missed = row.labels - predicted
        if missed or extra:
            wrong.append(
                RowResult(
                    row.id,
                    row.text,
                    row.speaker.value,
                    sorted(row.labels),
                    sorted(predicted),
                    sorted(missed),
                    sorted(extra),
                )
            )
    judged = [scores[c] for c in pack.alert_ids if scores[c].support or scores[c].fp]
    macro = sum(s.f1 for s in judged) / len(judged) if judged else 0.0
    return EvalReport(
        len(rows), list(scores.values()), macro, [s.category for s in judged], clean, false_alarms, wrong
    )
