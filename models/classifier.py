"""The phrase classifier: which categories of the pack does one turn of speech show?

Hybrid, because neither half is enough. A multilingual sentence encoder catches the paraphrase that
shares no word with any example; lexical matching (:mod:`models.lexical`) is precise, negation-aware and
points at the exact words. Per window of a turn and per category:

1. a ridge probe over the embedding (:mod:`models.probe`), learned from the pack's examples against
   every other phrase of the pack, gives the semantic score;
2. a near-literal match of an example raises it, of a counter-example or neutral phrase lowers it;
3. for alert categories, a known-benign phrase (neutral, counter-example, good practice) that is nearer
   than any example lowers it too;
4. the category fires above its own threshold, calibrated on out-of-fold scores of the pack's phrases
   (:mod:`models.thresholds`), so each category's decision is learned from its examples and counter-examples.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from models.encoders import Encoder
from models.lexical import LexicalHit, LexicalIndex
from models.packs import Category, Kind, PhrasePack, Side
from models.probe import fit_probe, out_of_fold
from models.text import tokenize
from models.thresholds import THRESHOLD_BAND, calibrate_threshold
from models.windows import Window, split_windows

logger = logging.getLogger(__name__)

PROBE_ALPHA = 30.0  # ridge penalty on standardised embeddings
KNN_WEIGHT = 3.0  # how much a nearer benign phrase (by cosine) lowers an alert category's score
LEXICAL_WEIGHT = 0.3  # how far a near-literal (counter-)example moves the probe's score
LEXICAL_STRONG = 0.6  # lexical coverage below this is no evidence either way
SCORE_SLOPE = 12.0  # maps the margin over a category's threshold to a 0-1 score (0.5 at the threshold)
# Calibrated thresholds depend on these and on the lexical matcher: bump the version when either changes.
_ALGORITHM = "v1-" + "-".join(
    map(str, (PROBE_ALPHA, KNN_WEIGHT, LEXICAL_WEIGHT, LEXICAL_STRONG, *THRESHOLD_BAND))
)
_ROLE_EXAMPLE, _ROLE_COUNTER, _ROLE_NEUTRAL = 0, 1, 2


class Speaker(StrEnum):
    """Who said a turn; `unknown` (a mono recording, a plain-text line) is checked for every category."""

    AGENT = "agent"
    CUSTOMER = "customer"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Turn:
    """One turn to classify."""

    text: str
    speaker: Speaker = Speaker.UNKNOWN
    lang: str | None = None


@dataclass(frozen=True)
class Detection:
    """A category found in a turn: score in [0, 1], the span of characters that triggered it, and the
    pack example it resembled most."""

    category: str
    kind: Kind
    score: float
    start: int
    end: int
    example: str


@dataclass(frozen=True)
class _Ref:
    text: str
    category: int  # index into pack.categories, -1 for neutral
    role: int


class PhraseClassifier:
    """Built from a pack and an encoder; classifies turns in batches."""

    def __init__(self, pack: PhrasePack, encoder: Encoder, *, cache_dir: Path | None = None) -> None:
        self.pack = pack
        self.encoder = encoder
        self.categories: list[Category] = list(pack.categories)
        self._refs = _collect_refs(pack)
        self._ref_category = np.array([r.category for r in self._refs])
        self._ref_role = np.array([r.role for r in self._refs])
        self._lexical = LexicalIndex([r.text for r in self._refs])
        texts = [r.text for r in self._refs]
        pack_key = _digest(encoder.name, *(f"{r.category}|{r.role}|{r.text}" for r in self._refs))
        self._embeddings = _cached_array(
            cache_dir, f"embeddings-{pack_key}", lambda: encoder.encode(texts), (len(texts), encoder.dim)
        )
        self._examples = self._example_index()
        self._benign = self._benign_index()
        self._targets = self._target_matrix()
        self._probe = fit_probe(self._embeddings, self._targets, PROBE_ALPHA)
        self._thresholds = _cached_array(
            cache_dir, f"thresholds-{pack_key}-{_ALGORITHM}", self._calibrate, (len(self.categories),)
        )

    # ----------------------------------------------------------------- public
    def classify(
        self, text: str, speaker: Speaker | str = Speaker.UNKNOWN, lang: str | None = None
    ) -> list[Detection]:
        """Detections for one turn, best first."""
        return self.classify_batch([Turn(text, Speaker(speaker), lang)])[0]

    def classify_batch(self, turns: Sequence[Turn]) -> list[list[Detection]]:
        """Detections for many turns; the encoder runs once over all their windows."""
        windows = [split_windows(t.text) for t in turns]
        flat = [w for ws in windows for w in ws]
        vectors = self.encoder.encode([w.text for w in flat]) if flat else np.zeros((0, 1), np.float32)
        results, at = [], 0
        for turn, turn_windows in zip(turns, windows, strict=True):
            allowed = self._allowed(turn.speaker)
            best: dict[int, Detection] = {}
            for window in turn_windows:
                for det_index, det in self._judge(window, vectors[at], allowed):
                    if det_index not in best or det.score > best[det_index].score:
                        best[det_index] = det
                at += 1
            results.append(sorted(best.values(), key=lambda d: -d.score))
        return results

    def category(self, category_id: str) -> Category:
        return self.pack.category(category_id)

    @property
    def phrase_count(self) -> int:
        """How many distinct pack phrases (examples, counter-examples, neutral) it learned from."""
        return len(self._refs)

    # -------------------------------------------------------------- features
    def _example_index(self) -> list[np.ndarray]:
        """Per category, the indices of its example phrases."""
        is_example = self._ref_role == _ROLE_EXAMPLE
        return [np.flatnonzero((self._ref_category == ci) & is_example) for ci in range(len(self.categories))]

    def _benign_index(self) -> np.ndarray:
        """Phrases known not to be any alert: neutral turns, counter-examples, good-practice examples."""
        practice = np.array([c.kind is Kind.PRACTICE for c in self.categories])
        is_practice_example = (self._ref_role == _ROLE_EXAMPLE) & practice[self._ref_category.clip(0)]
        return np.flatnonzero((self._ref_role != _ROLE_EXAMPLE) | is_practice_example)

    def _nearest_margin(self, sims: np.ndarray) -> np.ndarray:
        """Per category: similarity of the nearest example minus that of the nearest benign phrase
        (0 for practice categories, which are never alerts)."""
        benign = float(sims[self._benign].max()) if len(self._benign) else 0.0
        margin = np.zeros(len(self.categories))
        for ci, examples in enumerate(self._examples):
            if self.categories[ci].kind.is_alert and len(examples):
                margin[ci] = float(sims[examples].max()) - benign
        return margin

    def _lexical_best(self, lex: dict[int, LexicalHit]) -> np.ndarray:
        """(n_categories, 2): the best lexical coverage by an example, and by a counter-example or a
        neutral phrase (neutral phrases are counter-examples of every category)."""
        best = np.zeros((len(self.categories), 2))
        for ref, hit in lex.items():
            ci, role = self._ref_category[ref], self._ref_role[ref]
            if role == _ROLE_NEUTRAL:
                best[:, 1] = np.maximum(best[:, 1], hit.score)
            else:
                col = 0 if role == _ROLE_EXAMPLE else 1
                best[ci, col] = max(best[ci, col], hit.score)
        return best

    @staticmethod
    def _combine(probe: np.ndarray, lexical: np.ndarray, margin: np.ndarray) -> np.ndarray:
        """One raw score per category: the probe, raised by a near-literal example, lowered by a
        near-literal counter-example (which is how «я этим займусь» escapes «я этим не занимаюсь»),
        and lowered when a known-benign phrase is nearer than any example of an alert category."""
        lexical_evidence = _strong(lexical[:, 0]) - _strong(lexical[:, 1])
        return probe + LEXICAL_WEIGHT * lexical_evidence + KNN_WEIGHT * np.minimum(margin, 0.0)

    # -------------------------------------------------------------- training
    def _target_matrix(self) -> np.ndarray:
        """(n_refs, n_categories): 1 where a phrase is an example of the category."""
        targets = np.zeros((len(self._refs), len(self.categories)))
        for ci, examples in enumerate(self._examples):
            targets[examples, ci] = 1.0
        return targets

    def _calibrate(self) -> np.ndarray:
        """Each category's threshold, from held-out scores of every pack phrase (the slow part of a
        build, so it is cached with the embeddings)."""
        targets = self._targets
        held_out = out_of_fold(self._embeddings, targets, PROBE_ALPHA)
        sims_all = self._embeddings @ self._embeddings.T
        np.fill_diagonal(sims_all, -1.0)  # a phrase is not its own neighbour
        scores = np.stack(
            [
                self._combine(
                    held_out[r], self._lexical_best(self._loo_lexical(r)), self._nearest_margin(sims_all[r])
                )
                for r in range(len(self._refs))
            ]
        )
        return np.array(
            [calibrate_threshold(scores[:, ci], targets[:, ci] > 0.5) for ci in range(len(self.categories))]
        )

    def _loo_lexical(self, r: int) -> dict[int, LexicalHit]:
        lex = self._lexical.match(tokenize(self._refs[r].text))
        lex.pop(r, None)  # a phrase does not vote for itself
        return lex

    # ------------------------------------------------------------- inference
    def _allowed(self, speaker: Speaker) -> list[int]:
        if speaker is Speaker.UNKNOWN:
            return list(range(len(self.categories)))
        side = Side(speaker.value)
        return [ci for ci, c in enumerate(self.categories) if c.speaker is side]

    def _judge(self, window: Window, vector: np.ndarray, allowed: list[int]) -> list[tuple[int, Detection]]:
        lex = self._lexical.match(tokenize(window.text))
        sims = self._embeddings @ vector
        raw = self._combine(
            self._probe.scores(vector)[0], self._lexical_best(lex), self._nearest_margin(sims)
        )
        found = []
        for ci in allowed:
            if raw[ci] < self._thresholds[ci]:
                continue
            score = 1.0 / (1.0 + np.exp(-SCORE_SLOPE * (raw[ci] - self._thresholds[ci])))
            found.append((ci, self._detection(ci, float(score), window, vector, lex)))
        return found

    def _detection(
        self, ci: int, score: float, window: Window, vector: np.ndarray, lex: dict[int, LexicalHit]
    ) -> Detection:
        """Point at the words: the best lexical hit of the category if it is a real match, else the window."""
        examples = self._examples[ci]
        nearest = int(examples[np.argmax(self._embeddings[examples] @ vector)])
        start, end, example = window.start, window.end, self._refs[nearest].text
        hits = [
            h
            for ref, h in lex.items()
            if self._ref_category[ref] == ci and self._ref_role[ref] == _ROLE_EXAMPLE and h.score >= 0.6
        ]
        if hits:
            hit = max(hits, key=lambda h: h.score)
            start, end = window.start + hit.start, window.start + hit.end
            example = self._refs[hit.phrase].text
        cat = self.categories[ci]
        return Detection(cat.id, cat.kind, round(score, 4), start, end, example)


def _collect_refs(pack: PhrasePack) -> list[_Ref]:
    refs: list[_Ref] = []
    seen: set[tuple[str, int, int]] = set()

    def add(text: str, ci: int, role: int) -> None:
        key = (text.strip().lower(), ci, role)
        if key not in seen:
            seen.add(key)
            refs.append(_Ref(text.strip(), ci, role))

    for ci, cat in enumerate(pack.categories):
        for _, phrase in cat.examples.items():
            add(phrase, ci, _ROLE_EXAMPLE)
        for _, phrase in cat.counter_examples.items():
            add(phrase, ci, _ROLE_COUNTER)
    for _, phrase in pack.neutral.items():
        add(phrase, -1, _ROLE_NEUTRAL)
    return refs


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _cached_array(
    cache_dir: Path | None, name: str, compute: Callable[[], np.ndarray], shape: tuple[int, ...]
) -> np.ndarray:
    """`compute()`, or what an earlier run computed for the same `name` (which carries a digest of
    everything the result depends on). Written atomically, so concurrent processes are safe."""
    if cache_dir is None:
        return compute()
    path = Path(cache_dir) / "classifier" / f"{name}.npy"
    if path.is_file():
        try:
            cached = np.load(path)
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable cache %s: %s", path, exc)
        else:
            if cached.shape == shape:
                return cached
            logger.warning("ignoring cache %s with shape %s", path, cached.shape)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, value)
    tmp.replace(path)
    return value


def _strong(coverage: np.ndarray) -> np.ndarray:
    """0 below LEXICAL_STRONG, rising to 1 at full coverage."""
    return np.clip((coverage - LEXICAL_STRONG) / (1.0 - LEXICAL_STRONG), 0.0, 1.0)
