"""The phrase classifier: which categories of the pack does one turn of speech show?

Hybrid, because neither half is enough. A multilingual sentence encoder catches the paraphrase that
shares no word with any example; lexical matching (:mod:`models.lexical`) is precise, negation-aware and
points at the exact words. A turn is judged whole and in pieces (:mod:`models.windows`): its sentences,
each on its own, and, when the whole comes near an alert it does not reach, its clauses or short word
windows, each fragment's score blended with the whole's; a turn of several sentences shows a category only
as far as one of its sentences does. Per window of a turn and per category:

1. a ridge probe over the embedding (:mod:`models.probe`), learned from the pack's examples against
   every other phrase of the pack, gives the semantic score;
2. a near-literal match of an example raises it, of a counter-example or neutral phrase lowers it (only
   when the two share words: a greeting matching a neutral phrase says nothing about the rest); a cue
   the pack ties to the category (a promised time, :mod:`models.time_cues`) raises or lowers it too;
3. for alert categories, a phrase known not to be the category (a neutral phrase, a good-practice example,
   one of the category's own counter-examples) that is nearer than any example lowers it too;
4. the category fires above its own threshold, calibrated on out-of-fold scores of the pack's phrases
   (:mod:`models.thresholds`), so each category's decision is learned from its examples and counter-examples;
5. and an alert category fires only for a window about as near one of its examples as the pack's own
   paraphrases lie to one another: far from every example the linear probe extrapolates.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import numpy as np

from models.encoders import Encoder
from models.lexical import LexicalHit, LexicalIndex
from models.loops import normalise
from models.packs import Category, Cue, CueEffect, Kind, PhrasePack, Side
from models.probe import fit_probe, out_of_fold
from models.text import Token, tokenize
from models.thresholds import THRESHOLD_BAND, calibrate_threshold
from models.time_cues import TimeCue, promised_times, when_questions
from models.windows import Window, split_windows

logger = logging.getLogger(__name__)

PROBE_ALPHA = 30.0  # ridge penalty on standardised embeddings
KNN_WEIGHT = 3.0  # how much a nearer benign phrase (by cosine) lowers an alert category's score
LEXICAL_WEIGHT = 0.3  # how far a near-literal (counter-)example moves the probe's score
LEXICAL_STRONG = 0.6  # lexical coverage below this is no evidence either way
CUE_WEIGHT = 0.25  # how far a cue the pack ties to a category (a promised time) moves its score
CONTEXT_WEIGHT = 0.3  # a clause or word window is judged with its context: its score, blended with the turn's
CLOSER_LOOK = 0.15  # a turn's pieces are judged when it comes this near a threshold it does not reach
SHORT_WORDS = 3  # a window of this many words or fewer is short: its embedding says little
SHORT_MARGIN = 0.05  # how far a short window must clear a threshold without a near-literal example
SCORE_SLOPE = 12.0  # maps the margin over a category's threshold to a 0-1 score (0.5 at the threshold)
# An alert needs an example of its category at least as near as this share of the pack's own alert
# examples have a sibling example (see PhraseClassifier._similarity_floor).
REACH_QUANTILE = 0.02
# A heard variant counts as half a phrase in the probe: at full weight the variants of neutral and
# apologetic turns pulled written paraphrases under their thresholds (stress set 0.852 -> 0.833 macro-F1),
# at half they keep the chain's gain (tune calls' turns as heard: 25 -> 29 of 72 alerts, false alarms
# 37 -> 25) and the written sets stay where they were (stress 0.849, check 0.893).
HEARD_WEIGHT = 0.5
# Calibrated thresholds depend on these and on the lexical matcher: bump the version when either changes.
_TUNED = (PROBE_ALPHA, KNN_WEIGHT, LEXICAL_WEIGHT, LEXICAL_STRONG, CUE_WEIGHT, REACH_QUANTILE, HEARD_WEIGHT)
_ALGORITHM = "v6-" + "-".join(map(str, (*_TUNED, *THRESHOLD_BAND)))
_ROLE_EXAMPLE, _ROLE_COUNTER, _ROLE_NEUTRAL = 0, 1, 2
# What finds each cue in a text: the spans it found (empty when absent).
_CUE_FINDERS: dict[Cue, Callable[[str], list[TimeCue]]] = {
    Cue.PROMISED_TIME: promised_times,
    Cue.WHEN_QUESTION: when_questions,
}


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
class _Judged:
    """One window's raw score per category, its embedding, its lexical hits, and per category the
    similarity of the category's nearest example (1 for practice categories, which are never gated)."""

    raw: np.ndarray
    vector: np.ndarray
    lexical: dict[int, LexicalHit]
    reach: np.ndarray
    cues: dict[Cue, list[TimeCue]]


@dataclass(frozen=True)
class _Ref:
    text: str
    category: int  # index into pack.categories, -1 for neutral
    role: int


class TurnClassifier(Protocol):
    """What judging turns needs of a classifier: :class:`PhraseClassifier` here, or one whose model lives
    elsewhere (the server's classification workers on a cluster) behind the same three members."""

    @property
    def pack(self) -> PhrasePack: ...

    def classify_batch(self, turns: Sequence[Turn]) -> list[list[Detection]]: ...

    def category(self, category_id: str) -> Category: ...

    def for_pack(self, pack: PhrasePack) -> TurnClassifier:
        """A classifier of another pack (a version being published), built the same way and ready to
        judge when it returns."""
        ...


class PhraseClassifier:
    """Built from a pack and an encoder; classifies turns in batches."""

    def __init__(
        self,
        pack: PhrasePack,
        encoder: Encoder,
        *,
        cache_dir: Path | None = None,
        heard: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``heard``: what a recogniser made of pack phrases on a phone line, by the phrase's normalised
        text (:func:`models.heard.load_heard`); each variant is learned by the probe and weighed in the
        thresholds as the phrase it was heard from (never matched literally, never an example to point
        at). None or {}: written phrases only."""
        self.pack = pack
        self.encoder = encoder
        self._cache_dir = cache_dir
        self._heard = heard
        self.categories: list[Category] = list(pack.categories)
        self._refs = _collect_refs(pack)
        self._variants = _collect_variants(self._refs, heard or {})
        self._heard_of = np.array([source for source, _ in self._variants], dtype=np.intp)
        self._ref_category = np.array([r.category for r in self._refs])
        self._ref_role = np.array([r.role for r in self._refs])
        # plain-list copies for the per-hit loops of inference (NumPy scalar indexing is slow there)
        self._ref_category_list = [r.category for r in self._refs]
        self._ref_role_list = [r.role for r in self._refs]
        self._lexical = LexicalIndex([r.text for r in self._refs])
        self._cues = [cue for cue in Cue if any(cue in c.cues for c in self.categories)]
        self._cue_effect = self._cue_effect_matrix()
        texts = [r.text for r in self._refs] + [text for _, text in self._variants]
        pack_key = _digest(
            encoder.name,
            *(f"{r.category}|{r.role}|{r.text}" for r in self._refs),
            *(f"heard|{source}|{text}" for source, text in self._variants),
        )
        every = _cached_array(
            cache_dir, f"embeddings-{pack_key}", lambda: encoder.encode(texts), (len(texts), encoder.dim)
        )
        self._embeddings, self._heard_embeddings = every[: len(self._refs)], every[len(self._refs) :]
        self._examples = self._example_index()
        self._alert_examples = self._alert_example_index()
        self._is_alert = [c.kind.is_alert for c in self.categories]
        self._benign = self._benign_index()
        self._targets = self._target_matrix()
        self._probe = fit_probe(every, self._with_heard(self._targets), PROBE_ALPHA, self._row_weights())
        self._floor = self._similarity_floor()
        cue_key = _digest(*(f"{c.id}|{cue}|{how}" for c in self.categories for cue, how in c.cues.items()))
        self._thresholds = _cached_array(
            cache_dir,
            f"thresholds-{pack_key}-{cue_key}-{_ALGORITHM}",
            self._calibrate,
            (len(self.categories),),
        )

    # ----------------------------------------------------------------- public
    def classify(
        self, text: str, speaker: Speaker | str = Speaker.UNKNOWN, lang: str | None = None
    ) -> list[Detection]:
        """Detections for one turn, best first."""
        return self.classify_batch([Turn(text, Speaker(speaker), lang)])[0]

    def classify_batch(self, turns: Sequence[Turn]) -> list[list[Detection]]:
        """Detections for many turns; the encoder runs once over all their first-look windows, and once
        more over the pieces of the turns that need a closer look."""
        windows = [split_windows(t.text) for t in turns]
        allowed = [self._allowed(t.speaker) for t in turns]
        # first look: each turn whole (a long one in its sentences and word windows), and each sentence
        # of a short turn of several
        judged: list[dict[tuple[int, int], _Judged]] = [{} for _ in turns]
        first = [(ti, w) for ti, ws in enumerate(windows) for w in ws if w.context is None or w.sentence]
        self._score_windows(first, judged)
        for ti, ws in enumerate(windows):
            self._cap_by_sentences(ws, judged[ti])
        # closer look, for a turn whose whole leans towards an alert category it does not reach: its
        # clauses and word windows, each judged with the whole as context
        closer = [
            (ti, w)
            for ti, ws in enumerate(windows)
            for w in ws
            if w.context is not None
            and not w.sentence
            and self._leans(judged[ti].get(w.context), allowed[ti])
        ]
        self._score_windows(closer, judged)
        results = []
        for ti, turn_windows in enumerate(windows):
            best: dict[int, Detection] = {}
            for window in turn_windows:
                got = judged[ti].get((window.start, window.end))
                if got is None:
                    continue
                raw = got.raw
                context = judged[ti].get(window.context) if window.context is not None else None
                categories = allowed[ti]
                if context is not None and not window.sentence:
                    # a sentence stands on its own; a clause or word window is a fragment of its turn
                    raw = (raw + CONTEXT_WEIGHT * context.raw) / (1.0 + CONTEXT_WEIGHT)
                    categories = self._near(context, categories)
                for ci, det in self._judge(window, raw, got, categories):
                    if ci not in best or det.score > best[ci].score:
                        best[ci] = det
            results.append(sorted(best.values(), key=lambda d: -d.score))
        return results

    def _score_windows(
        self, windows: list[tuple[int, Window]], judged: list[dict[tuple[int, int], _Judged]]
    ) -> None:
        """Raw scores of `windows` ((turn index, window) pairs) into `judged`, one encoder call for all."""
        if not windows:
            return
        vectors = self.encoder.encode([w.text for _, w in windows])
        # one array operation each for every window's probe scores, pack similarities, margins and raw
        # scores (per window, these small NumPy calls cost more in overhead than in arithmetic)
        probe = self._probe.scores(vectors)
        margins, reach = self._nearest_margins(vectors @ self._embeddings.T)
        tokens = [tokenize(w.text) for _, w in windows]
        lexes = [self._lexical.match(words, LEXICAL_STRONG) for words in tokens]
        cues = [self._find_cues(w.text) for _, w in windows]
        raws = self._combine(
            probe, np.stack([self._lexical_best(lex) for lex in lexes]), margins, self._cue_evidence(cues)
        )
        raws -= SHORT_MARGIN * self._brevity(tokens, lexes)
        for i, (ti, window) in enumerate(windows):
            judged[ti][window.start, window.end] = _Judged(raws[i], vectors[i], lexes[i], reach[i], cues[i])

    def _brevity(self, tokens: list[list[Token]], lexes: list[dict[int, LexicalHit]]) -> np.ndarray:
        """(n_windows, n_categories): 1 where a window is short (SHORT_WORDS words or fewer) and no
        example of the category matches it near-literally, else 0.

        Two or three words give the encoder little to go on, and their embeddings lie near many things: a
        menu fragment («других участников», "You entered.", "Do not disturb.") came within a few hundredths
        of a threshold as often as a real two-word alert. A short text is still an alert when it is said
        the way an example is («Сами виноваты.»), or when it clears the threshold by SHORT_MARGIN
        («Кошмар какой-то!»). Inference only: the thresholds are calibrated on the scores without it."""
        short = np.zeros((len(tokens), len(self.categories)))
        for i, (words, lex) in enumerate(zip(tokens, lexes, strict=True)):
            if len(words) > SHORT_WORDS:
                continue
            short[i] = 1.0
            for ref, hit in lex.items():
                if self._ref_role_list[ref] == _ROLE_EXAMPLE and hit.score >= LEXICAL_STRONG:
                    short[i, self._ref_category_list[ref]] = 0.0
        return short

    @staticmethod
    def _cap_by_sentences(windows: list[Window], judged: dict[tuple[int, int], _Judged]) -> None:
        """A turn of several sentences shows a category only as far as one of its sentences does: the
        embedding of the whole is an average, and an average of a refusal and a misheard sentence can
        land on a third category («That's not my department. You will have to draw a hundred home.»
        is no excuse)."""
        sentences = [judged[w.start, w.end].raw for w in windows if w.sentence and (w.start, w.end) in judged]
        if not sentences:
            return
        context = next(w.context for w in windows if w.sentence)
        whole = judged.get(context)
        if whole is not None:
            capped = np.minimum(whole.raw, np.max(sentences, axis=0))
            judged[context] = replace(whole, raw=capped)

    def _leans(self, context: _Judged | None, allowed: list[int]) -> bool:
        """Whether a window's raw scores come near an alert threshold they do not reach: its pieces may
        then hold what the rest of it drowned out."""
        if context is None:
            return False
        near = [ci for ci in self._near(context, allowed) if self._is_alert[ci]]
        return bool((context.raw[near] < self._thresholds[near]).any())

    def _near(self, context: _Judged, allowed: list[int]) -> list[int]:
        """The allowed categories whose threshold `context` reaches or comes within CLOSER_LOOK of: the
        only ones a piece of it may show. A clause or word window is looked at because its whole leaned
        towards something; a fragment that scores for a category its whole never came near is an
        accident of where the window was cut («I will call you back to maybe for 3PM» out of a
        misheard promise is no "call another number")."""
        return [ci for ci in allowed if context.raw[ci] >= self._thresholds[ci] - CLOSER_LOOK]

    def category(self, category_id: str) -> Category:
        return self.pack.category(category_id)

    def for_pack(self, pack: PhrasePack) -> PhraseClassifier:
        """A classifier of `pack` with this one's encoder, cache directory and heard variants."""
        return PhraseClassifier(pack, self.encoder, cache_dir=self._cache_dir, heard=self._heard)

    @property
    def phrase_count(self) -> int:
        """How many distinct pack phrases (examples, counter-examples, neutral) it learned from."""
        return len(self._refs)

    @property
    def heard_count(self) -> int:
        """How many heard variants of them it learned from too."""
        return len(self._variants)

    # -------------------------------------------------------------- features
    def _example_index(self) -> list[np.ndarray]:
        """Per category, the indices of its example phrases."""
        is_example = self._ref_role == _ROLE_EXAMPLE
        return [np.flatnonzero((self._ref_category == ci) & is_example) for ci in range(len(self.categories))]

    def _alert_example_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(alert categories with examples, their example indices concatenated, each one's start in it):
        lets _nearest_margins take every category's nearest example in one ``maximum.reduceat``."""
        cats = [ci for ci, ex in enumerate(self._examples) if self.categories[ci].kind.is_alert and len(ex)]
        lists = [self._examples[ci] for ci in cats]
        starts = np.cumsum([0] + [len(ex) for ex in lists[:-1]]).astype(np.intp)
        flat = np.concatenate(lists) if lists else np.zeros(0, dtype=np.intp)
        return np.array(cats, dtype=np.intp), flat, starts

    def _benign_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What is known not to be each alert category: phrases that are no alert at all (neutral turns,
        good-practice examples), shared by every category, and the category's own counter-examples
        (ordered as ``_alert_examples``, concatenated, with each one's start; empty lists allowed).

        A counter-example of one category says nothing about another: «Это склад напутал, а не мы» is a
        counter-example of not_my_job and an example of blame_shifting, and the counter-examples of a
        good practice are mostly forbidden phrases (what the practice is not)."""
        practice = np.array([c.kind is Kind.PRACTICE for c in self.categories])
        of_practice = practice[self._ref_category.clip(0)] & (self._ref_category >= 0)
        shared = np.flatnonzero(
            (self._ref_role == _ROLE_NEUTRAL) | ((self._ref_role == _ROLE_EXAMPLE) & of_practice)
        )
        cats = self._alert_examples[0]
        own = [np.flatnonzero((self._ref_category == ci) & (self._ref_role == _ROLE_COUNTER)) for ci in cats]
        has_own = np.array([len(o) > 0 for o in own], dtype=bool)
        lists = [o for o in own if len(o)]
        starts = np.cumsum([0] + [len(o) for o in lists[:-1]]).astype(np.intp)
        flat = np.concatenate(lists) if lists else np.zeros(0, dtype=np.intp)
        return shared, has_own, flat, starts

    def _nearest_margins(self, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row of ``sims`` (similarities to every pack phrase) and category: (the similarity of the
        nearest example minus that of the nearest phrase known not to be the category, the similarity
        of the nearest example). Practice categories, which are never alerts, get (0, 1)."""
        shared, has_own, own_flat, own_starts = self._benign
        margin = np.zeros((len(sims), len(self.categories)))
        reach = np.ones((len(sims), len(self.categories)))
        cats, flat, starts = self._alert_examples
        if len(cats):
            benign = np.empty((len(sims), len(cats)))
            benign[:] = sims[:, shared].max(axis=1, keepdims=True) if len(shared) else -1.0
            if len(own_flat):
                nearest_own = np.maximum.reduceat(sims[:, own_flat], own_starts, axis=1)
                benign[:, has_own] = np.maximum(benign[:, has_own], nearest_own)
            nearest = np.maximum.reduceat(sims[:, flat], starts, axis=1).astype(np.float64)
            margin[:, cats] = nearest - benign
            reach[:, cats] = nearest
        return margin, reach

    def _similarity_floor(self) -> float:
        """How near an example of an alert category a text must come for the category to fire.

        The probe is linear: far from every example it extrapolates, and a menu prompt or a flight time
        can score above a threshold for a category none of whose examples it resembles. The floor is read
        off the pack itself, so it suits any encoder's scale of similarities: the REACH_QUANTILE quantile,
        over every example of an alert category, of its similarity to the nearest other example of the
        same category (how far apart the pack's own paraphrases of one thing lie)."""
        _, flat, starts = self._alert_examples
        if len(flat) < 2:
            return -1.0
        vectors = self._embeddings[flat]
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -1.0)
        ends = [*starts[1:], len(flat)]
        nearest = [sims[a:b, a:b].max(axis=1) for a, b in zip(starts, ends, strict=True) if b - a > 1]
        return float(np.quantile(np.concatenate(nearest), REACH_QUANTILE))

    def _lexical_best(self, lex: dict[int, LexicalHit]) -> np.ndarray:
        """(n_categories, 2): the best lexical coverage by an example, and by a counter-example or a
        neutral phrase (neutral phrases are counter-examples of every category).

        A counter-example or neutral phrase only speaks against a near-literal example it shares words
        with: in «алло здравствуйте когда уже почините интернет» the greeting matches a neutral phrase,
        which says nothing about the question in the other words."""
        n = len(self.categories)
        example, counter = [0.0] * n, [0.0] * n
        spans: list[tuple[int, int]] = [(0, 0)] * n
        against: list[tuple[int, LexicalHit]] = []
        neutral = 0.0
        for ref, hit in lex.items():
            ci, role = self._ref_category_list[ref], self._ref_role_list[ref]
            if role == _ROLE_EXAMPLE:
                if hit.score > example[ci]:
                    example[ci], spans[ci] = hit.score, (hit.start, hit.end)
            else:
                against.append((ci, hit))
                if role == _ROLE_NEUTRAL:
                    neutral = max(neutral, hit.score)
                else:
                    counter[ci] = max(counter[ci], hit.score)
        best = np.array([example, counter]).T
        best[:, 1] = np.maximum(best[:, 1], neutral)
        for ci in range(n):
            if example[ci] < LEXICAL_STRONG or best[ci, 1] < LEXICAL_STRONG:
                continue  # no near-literal example, or nothing near-literal against it
            start, end = spans[ci]
            best[ci, 1] = max(
                (h.score for c, h in against if c in (ci, -1) and h.start < end and start < h.end),
                default=0.0,
            )
        return best

    @staticmethod
    def _combine(probe: np.ndarray, lexical: np.ndarray, margin: np.ndarray, cues: np.ndarray) -> np.ndarray:
        """One raw score per category (per row, for rows of windows): the probe, raised by a
        near-literal example, lowered by a near-literal counter-example (which is how «я этим займусь»
        escapes «я этим не занимаюсь»), lowered when a known-benign phrase is nearer than any example of
        an alert category, and moved by the cues the pack ties to the category (``cues``, -1 to 1).
        ``lexical`` is ``(..., n_categories, 2)`` (:meth:`_lexical_best`)."""
        lexical_evidence = _strong(lexical[..., 0]) - _strong(lexical[..., 1])
        knn = KNN_WEIGHT * np.minimum(margin, 0.0)
        return probe + LEXICAL_WEIGHT * lexical_evidence + knn + CUE_WEIGHT * cues

    def _cue_effect_matrix(self) -> np.ndarray:
        """(n_cues used by the pack, n_categories): +1 where a cue is evidence for a category, -1 against."""
        effect = np.zeros((len(self._cues), len(self.categories)))
        for ci, category in enumerate(self.categories):
            for cue, how in category.cues.items():
                effect[self._cues.index(cue), ci] = 1.0 if how is CueEffect.FOR else -1.0
        return effect

    def _find_cues(self, text: str) -> dict[Cue, list[TimeCue]]:
        """The pack's cues found in `text`, with where they are."""
        return {cue: found for cue in self._cues if (found := _CUE_FINDERS[cue](text))}

    def _cue_evidence(self, found: Sequence[dict[Cue, list[TimeCue]]]) -> np.ndarray:
        """(len(found), n_categories): each text's cue evidence per category."""
        present = np.array([[cue in f for cue in self._cues] for f in found], dtype=np.float64)
        return present.reshape(len(found), len(self._cues)) @ self._cue_effect

    # -------------------------------------------------------------- training
    def _target_matrix(self) -> np.ndarray:
        """(n_refs, n_categories): 1 where a phrase is an example of the category."""
        targets = np.zeros((len(self._refs), len(self.categories)))
        for ci, examples in enumerate(self._examples):
            targets[examples, ci] = 1.0
        return targets

    def _row_weights(self) -> np.ndarray:
        """The probe's weight of each phrase (1) and of each heard variant (HEARD_WEIGHT)."""
        return np.concatenate([np.ones(len(self._refs)), np.full(len(self._heard_of), HEARD_WEIGHT)])

    def _with_heard(self, rows: np.ndarray) -> np.ndarray:
        """Per-phrase `rows` followed by each heard variant's copy of its phrase's row."""
        return np.concatenate([rows, rows[self._heard_of]]) if len(self._heard_of) else rows

    def _calibrate(self) -> np.ndarray:
        """Each category's threshold, from held-out scores of every pack phrase and of every heard
        variant (held out with the phrase it was heard from); the slow part of a build, so it is cached
        with the embeddings."""
        targets = self._with_heard(self._targets)
        n, texts = len(self._refs), [r.text for r in self._refs] + [text for _, text in self._variants]
        # a phrase in two roles is held out once, whole; a heard variant with its phrase
        keys = [self._refs[i].text.lower() for i in [*range(n), *self._heard_of]]
        every = np.concatenate([self._embeddings, self._heard_embeddings])
        held_out = out_of_fold(every, targets, PROBE_ALPHA, keys, weights=self._row_weights())
        sims_all = every @ self._embeddings.T
        sims_all[np.arange(n), np.arange(n)] = -1.0  # a phrase is not its own neighbour
        sims_all[n + np.arange(len(self._heard_of)), self._heard_of] = -1.0  # nor its source's
        sources = [*range(n), *self._heard_of]
        lexical = np.stack(
            [self._lexical_best(self._loo_lexical(text, r)) for text, r in zip(texts, sources, strict=True)]
        )
        margins, reach = self._nearest_margins(sims_all)
        cues = self._cue_evidence([self._find_cues(text) for text in texts])
        scores = self._combine(held_out, lexical, margins, cues)
        scores[reach < self._floor] = -np.inf  # as inference: out of reach of every example, no alert
        return np.array(
            [calibrate_threshold(scores[:, ci], targets[:, ci] > 0.5) for ci in range(len(self.categories))]
        )

    def _loo_lexical(self, text: str, r: int) -> dict[int, LexicalHit]:
        """The lexical hits of `text` (phrase `r`, or a variant heard of it) but for phrase `r` itself."""
        lex = self._lexical.match(tokenize(text), LEXICAL_STRONG)
        lex.pop(r, None)  # a phrase does not vote for itself
        return lex

    # ------------------------------------------------------------- inference
    def _allowed(self, speaker: Speaker) -> list[int]:
        if speaker is Speaker.UNKNOWN:
            return list(range(len(self.categories)))
        side = Side(speaker.value)
        return [ci for ci, c in enumerate(self.categories) if c.speaker is side]

    def _judge(
        self, window: Window, raw: np.ndarray, got: _Judged, allowed: list[int]
    ) -> list[tuple[int, Detection]]:
        """The allowed categories `raw` reaches the threshold of, with a window near enough one of the
        category's examples (:meth:`_similarity_floor`)."""
        found = []
        for ci in allowed:
            if raw[ci] < self._thresholds[ci] or got.reach[ci] < self._floor:
                continue
            score = 1.0 / (1.0 + np.exp(-SCORE_SLOPE * (raw[ci] - self._thresholds[ci])))
            found.append((ci, self._detection(ci, float(score), window, got)))
        return found

    def _detection(self, ci: int, score: float, window: Window, got: _Judged) -> Detection:
        """Point at the words: the best lexical hit of the category if it is a real match, else the
        cues found for it (the promised time of a timeline), else the window."""
        examples = self._examples[ci]
        nearest = int(examples[np.argmax(self._embeddings[examples] @ got.vector)])
        start, end, example = window.start, window.end, self._refs[nearest].text
        category, role = self._ref_category_list, self._ref_role_list
        hits = [
            h
            for ref, h in got.lexical.items()
            if category[ref] == ci and role[ref] == _ROLE_EXAMPLE and h.score >= 0.6
        ]
        cat = self.categories[ci]
        supporting = [
            found for cue, how in cat.cues.items() if how is CueEffect.FOR for found in got.cues.get(cue, [])
        ]
        if hits:
            hit = max(hits, key=lambda h: h.score)
            start, end = window.start + hit.start, window.start + hit.end
            example = self._refs[hit.phrase].text
        elif supporting:
            start = window.start + min(c.start for c in supporting)
            end = window.start + max(c.end for c in supporting)
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


def _collect_variants(refs: Sequence[_Ref], heard: Mapping[str, Sequence[str]]) -> list[tuple[int, str]]:
    """(phrase index, text heard) for each heard variant of a phrase, once per distinct text; a variant
    that reads as some pack phrase is that phrase, not a variant."""
    known = {normalise(r.text) for r in refs}
    variants: list[tuple[int, str]] = []
    seen: set[tuple[int, str]] = set()
    for i, ref in enumerate(refs):
        for text in heard.get(normalise(ref.text), ()):
            key = (i, normalise(text))
            if key[1] and key[1] not in known and key not in seen:
                seen.add(key)
                variants.append((i, text.strip()))
    return variants


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
