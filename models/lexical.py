"""Lexical matching of a turn against many example phrases, robust to speech-recognition noise.

A phrase matches a turn by weighted coverage of its words: each word of the phrase is looked for in
the turn by lemma, by spelling, by a small misspelling (rapidfuzz), or glued/split across a word
boundary («бух галтерия», «незанимаюсь»). Negation must agree: a phrase word under «не»/"not" only
counts when the turn's word is negated too, and the other way round, so «я этим займусь» and
«это не ваша вина» do not match «я этим не занимаюсь» and «это ваша вина». Word order is free, as it
is in Russian, but the matched words must lie close together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from rapidfuzz import fuzz, process

from models.text import Token, tokenize

STOPWORD_WEIGHT = 0.35


@dataclass(frozen=True)
class LexicalHit:
    """How well one phrase is found in a turn, and where (character offsets into the turn)."""

    phrase: int
    score: float
    start: int
    end: int


@dataclass(frozen=True)
class _Word:
    key: str
    lemma: str
    negated: bool
    weight: float


class _Candidate(NamedTuple):
    """A turn word (or two glued) that may stand for a phrase word (a tuple: ~30 are made a window, and a
    frozen dataclass takes three times as long to build)."""

    start: int
    end: int
    first: int
    last: int
    negated: bool
    similarity: float


def _fuzzy_cutoff(length: int) -> float | None:
    """Misspellings are only tolerated in long enough words; short ones must match exactly."""
    if length >= 8:
        return 80.0
    if length >= 5:
        return 86.0
    return None


class LexicalIndex:
    """An inverted index over phrases for fast, noise-tolerant coverage matching."""

    def __init__(self, phrases: Sequence[str]) -> None:
        self.phrases = list(phrases)
        self._words: list[list[_Word]] = []
        self._postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._glued: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        # content words by key, with their negation, for the hot loop of match(); function words by key,
        # then by phrase: match() looks them up only in phrases a content word brought in
        self._content_postings: dict[str, list[tuple[int, int, bool]]] = defaultdict(list)
        self._function_postings: dict[str, dict[int, list[tuple[int, _Word]]]] = defaultdict(dict)
        for index, phrase in enumerate(self.phrases):
            words = [
                _Word(t.norm, t.lemma, t.negated, STOPWORD_WEIGHT if t.is_stopword else 1.0)
                for t in tokenize(phrase)
                if not t.is_negation
            ]
            self._words.append(words)
            for pos, word in enumerate(words):
                keys = (word.key,) if word.lemma == word.key else (word.key, "=" + word.lemma)
                for key in keys:
                    self._postings[key].append((index, pos))
                    if word.weight == 1.0:
                        self._content_postings[key].append((index, pos, word.negated))
                    else:
                        self._function_postings[key].setdefault(index, []).append((pos, word))
            for pos in range(len(words) - 1):
                self._glued[words[pos].key + words[pos + 1].key].append((index, pos, pos + 1))
        self._totals = [sum(w.weight for w in words) for words in self._words]  # per phrase, for _score
        self._surfaces = [k for k in self._postings if not k.startswith("=") and len(k) >= 5]
        # per query length, the surfaces whose length lets them reach that length's fuzzy cutoff
        self._surfaces_by_length: dict[tuple[int, float], list[str]] = {}
        self._memo: dict[tuple[str, str | None, bool], list[tuple[str, float]]] = {}

    def match(self, tokens: Sequence[Token], min_score: float = 0.0) -> dict[int, LexicalHit]:
        """Best hit per phrase that shares at least one content word with the turn; with `min_score`,
        only hits that may reach it (phrases that cannot are skipped before scoring: most candidates
        share one word with the turn and could never be near-literal)."""
        found: dict[int, dict[int, tuple[_Candidate, float]]] = defaultdict(dict)
        candidates = list(self._candidates(tokens))
        self._match_content(candidates, found)
        self._match_function_words(candidates, found)
        for i in range(len(tokens)):
            # a phrase's two words glued into one turn word («незанимаюсь» was split by the tokenizer,
            # but «бухгалтерияошиблась» was not)
            tok = tokens[i]
            for phrase, pos_a, pos_b in self._glued.get(tok.norm, ()):
                cand = _Candidate(tok.start, tok.end, i, i, tok.negated, 1.0)
                self._keep(found[phrase], pos_a, cand, 1.0, self._words[phrase][pos_a].negated)
                self._keep(found[phrase], pos_b, cand, 1.0, self._words[phrase][pos_b].negated)
        weights = [0.0 if t.is_negation else STOPWORD_WEIGHT if t.is_stopword else 1.0 for t in tokens]
        turn_total = sum(weights)
        hits = {}
        for phrase, matched in self._reachable(found, turn_total, min_score):
            hit = self._score(phrase, matched, weights, turn_total)
            if hit is not None and hit.score >= min_score:
                hits[phrase] = hit
        return hits

    def _match_content(
        self,
        candidates: list[tuple[_Candidate, list[tuple[str, float]]]],
        found: dict[int, dict[int, tuple[_Candidate, float]]],
    ) -> None:
        """Each phrase word that is a content word, matched by its best turn word (see :meth:`_keep`,
        inlined: this is the innermost loop of classification, ~100 postings a window)."""
        content = self._content_postings
        for cand, keys in candidates:
            negated = cand.negated
            for key, sim in keys:
                for phrase, pos, word_negated in content.get(key, ()):
                    slot = found[phrase]
                    old = slot.get(pos)
                    if old is None:
                        slot[pos] = (cand, sim)
                        continue
                    agrees, old_agrees = negated == word_negated, old[0].negated == word_negated
                    if agrees > old_agrees or (agrees == old_agrees and sim > old[1]):
                        slot[pos] = (cand, sim)

    def _match_function_words(
        self,
        candidates: list[tuple[_Candidate, list[tuple[str, float]]]],
        found: dict[int, dict[int, tuple[_Candidate, float]]],
    ) -> None:
        """«я», «это», "the" only add to a phrase that a content word already brought in: on their own
        they would make every phrase a candidate, so they are looked up in those phrases only.

        Only the turn's keys that are some phrase's function word are looked at, each through the
        shorter of its phrase postings and the brought-in phrases: a phrase's slot sees the same
        updates in the same order either way (phrases do not share slots)."""
        brought_in = list(found)
        function = self._function_postings
        keep = self._keep
        for cand, keys in candidates:
            for key, sim in keys:
                by_phrase = function.get(key)
                if by_phrase is None:
                    continue
                if len(by_phrase) < len(brought_in):
                    pairs = [(found[p], words) for p, words in by_phrase.items() if p in found]
                else:
                    pairs = [(found[p], by_phrase[p]) for p in brought_in if p in by_phrase]
                for slot, words in pairs:
                    for pos, word in words:
                        keep(slot, pos, cand, sim, word.negated)

    def _reachable(
        self, found: dict[int, dict[int, tuple[_Candidate, float]]], turn_total: float, min_score: float
    ) -> list[tuple[int, dict[int, tuple[_Candidate, float]]]]:
        """The phrases of `found`, with their matched words, whose :meth:`_score` may reach `min_score`.

        The bound comes from counts alone: each matched phrase word weighs at most 1, each candidate
        covers at most two turn words of weight at most 1. It is computed inline, as it runs for every
        phrase that shares a word with the turn (~75 a window; most cannot reach a near-literal score)."""
        if min_score <= 0:
            return list(found.items())
        totals = self._totals
        reachable = []
        for phrase, matched in found.items():
            total = totals[phrase]
            if total == 0:
                continue
            n_matched = len(matched)
            of_phrase = min(1.0, n_matched / total)
            of_turn = min(1.0, 2 * n_matched / turn_total) if turn_total > 0 else 0.0
            if max(of_phrase, (of_phrase + of_turn) / 2) >= min_score:
                reachable.append((phrase, matched))
        return reachable

    def _candidates(self, tokens: Sequence[Token]) -> Iterator[tuple[_Candidate, list[tuple[str, float]]]]:
        """Each turn word, and each pair of neighbours glued, with the index keys it may stand for."""
        neg_start: int | None = None
        for i, tok in enumerate(tokens):
            if tok.is_negation:
                neg_start = tok.start
                continue
            # a negated word's span reaches back to its negation, so the alert shows «не занимаюсь»
            start = neg_start if tok.negated and neg_start is not None else tok.start
            if not tok.negated:
                neg_start = None
            cand = _Candidate(start, tok.end, i, i, tok.negated, 1.0)
            yield cand, self._keys(tok.norm, tok.lemma)
            if i + 1 < len(tokens) and not tokens[i + 1].is_negation:
                nxt = tokens[i + 1]
                glued = tok.norm + nxt.norm
                pair = _Candidate(tok.start, nxt.end, i, i + 1, tok.negated or nxt.negated, 1.0)
                yield pair, self._keys(glued, None, fuzzy_only_long=True)

    def _keys(
        self, norm: str, lemma: str | None, *, fuzzy_only_long: bool = False
    ) -> list[tuple[str, float]]:
        """Index keys a turn word may stand for; remembered, since calls repeat the same words."""
        memo_key = (norm, lemma, fuzzy_only_long)
        keys = self._memo.get(memo_key)
        if keys is None:
            if len(self._memo) > 100_000:
                self._memo.clear()
            keys = self._memo[memo_key] = self._lookup(norm, lemma, fuzzy_only_long)
        return keys

    def _lookup(self, norm: str, lemma: str | None, fuzzy_only_long: bool) -> list[tuple[str, float]]:
        keys: list[tuple[str, float]] = []
        if norm in self._postings:
            keys.append((norm, 1.0))
        if lemma is not None and "=" + lemma in self._postings:
            keys.append(("=" + lemma, 1.0))
        cutoff = _fuzzy_cutoff(len(norm))
        if cutoff is not None and not (fuzzy_only_long and len(norm) < 8):
            for key, score, _ in process.extract(
                norm,
                self._reachable_surfaces(len(norm), cutoff),
                scorer=fuzz.ratio,
                score_cutoff=cutoff,
                limit=8,
            ):
                if key != norm:
                    keys.append((key, score / 100.0))
        return keys

    def _reachable_surfaces(self, length: int, cutoff: float) -> list[str]:
        """The surfaces a word of `length` characters may match at `cutoff`, in index order.

        ``fuzz.ratio`` is at most ``200 * min(a, b) / (a + b)`` for lengths a and b (at least the
        length difference must be inserted or deleted), so a surface beyond that bound cannot reach the
        cutoff; the one-point margin leaves rapidfuzz's own rounding to decide the borderline ones. The
        kept surfaces stay in order, so rapidfuzz ranks ties as before. With the default pack this skips
        20-80% of the index (by length), making a new word's fuzzy lookup ~1.7x cheaper."""
        surfaces = self._surfaces_by_length.get((length, cutoff))
        if surfaces is None:
            surfaces = self._surfaces_by_length[length, cutoff] = [
                s for s in self._surfaces if 200 * min(length, len(s)) >= (cutoff - 1) * (length + len(s))
            ]
        return surfaces

    @staticmethod
    def _keep(
        slot: dict[int, tuple[_Candidate, float]], pos: int, cand: _Candidate, sim: float, negated: bool
    ) -> None:
        """Keep the best turn word (and its similarity) for a phrase word whose negation is `negated`:
        agreeing negation first, then similarity. Stores a (candidate, similarity) pair, not a new
        candidate: ~100 calls a turn."""
        old = slot.get(pos)
        if old is None or (cand.negated == negated, sim) > (old[0].negated == negated, old[1]):
            slot[pos] = (cand, sim)

    def _score(
        self,
        phrase: int,
        matched: dict[int, tuple[_Candidate, float]],
        turn_weights: list[float],
        turn_total: float,
    ) -> LexicalHit | None:
        """Coverage of the phrase by the turn; a turn that is itself a fragment of a longer phrase
        («Вы мне сорвали сделку» of «Вы мне сорвали сделку, клиент ушёл») counts its own coverage too.
        ``turn_total`` is ``sum(turn_weights)``, computed once per turn (this runs for every candidate)."""
        words = self._words[phrase]
        total = self._totals[phrase]
        if total == 0:
            return None
        gained = 0.0
        content = False
        used: list[_Candidate] = []
        for pos, (cand, sim) in matched.items():
            word = words[pos]
            if cand.negated != word.negated:
                gained -= word.weight  # the meaning is reversed: worse than a missing word
                continue
            gained += word.weight * sim
            content = content or word.weight == 1.0
            used.append(cand)
        # A negation the phrase has but the turn lacks altogether (or the reverse) also reverses it.
        if not content or not used:
            return None
        score = max(0.0, gained / total)
        first, last = used[0].first, used[0].last
        start, end = used[0].start, used[0].end
        covered = set()
        for c in used:  # a candidate is one turn word or two neighbours (first, first + 1)
            covered.add(c.first)
            covered.add(c.last)
            first, last = min(first, c.first), max(last, c.last)
            start, end = min(start, c.start), max(end, c.end)
        if turn_total > 0:
            of_turn = sum(turn_weights[i] for i in sorted(covered)) / turn_total
            score = max(score, (score + of_turn) / 2)
        if last - first + 1 > 2 * len(words) + 2:
            score *= 0.7  # the words are scattered over the turn, not one utterance of the phrase
        return LexicalHit(phrase, score, start, end)
