"""The QA scorecard of a live call, computed once the call has ended, so trends can show the share of
live calls that passed and the good practices agents used, as they do for audited recordings.

During a call only alerts are kept (the live engine drops practice categories); at the end every stored
turn is judged again with the active pack's classifier (the same :func:`models.scorecard.score_call` an
audit uses) and the score and the practices heard are written on the call
(:meth:`server.live.store.Store.set_scorecard`).

:class:`LiveScorer` does it in the background: every few seconds it scores the calls that ended
(``completed`` or ``disconnected``) without a score, a few at a time, oldest first. That also scores calls
that ended before calls were scored (after an upgrade) and calls of a server that stopped before it could;
a call resumed after a disconnect loses its score and is scored again when it ends. Several servers
sharing PostgreSQL may score the same call at once: they write the same result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from models.classifier import Speaker, Turn, TurnClassifier
from models.packs import Kind
from models.scorecard import JudgedTurn, Scorecard, score_call
from server.live.store import Store, StoreError

logger = logging.getLogger(__name__)

BATCH = 20  # calls scored per look


def score_live_call(store: Store, classifier: TurnClassifier, call_id: str) -> Scorecard | None:
    """Judge the stored turns of an ended call, store its scorecard score and practices, return the
    scorecard (None when the call is unknown or active again)."""
    call = store.get_call(call_id)
    if call is None or call.status == "active":
        return None
    turns = store.list_turns(call_id)
    found = classifier.classify_batch([Turn(t.text, _speaker(t.speaker), call.language) for t in turns])
    judged = [
        JudgedTurn(i, t.speaker, t.start, t.end, t.text, frozenset(d.category for d in detections))
        for i, (t, detections) in enumerate(zip(turns, found, strict=True))
    ]
    card = score_call(judged, forbidden=frozenset(classifier.pack.ids_of(Kind.FORBIDDEN)))
    practices = {d.category for detections in found for d in detections if d.kind is Kind.PRACTICE}
    if not store.set_scorecard(call_id, card.score, sorted(practices)):
        return None
    logger.debug("call %s scored %.3f; practices: %s", call_id, card.score, ", ".join(sorted(practices)))
    return card


def _speaker(value: str) -> Speaker:
    try:
        return Speaker(value)
    except ValueError:
        return Speaker.UNKNOWN


class LiveScorer:
    """A background thread that scores ended live calls (see the module docstring); ``stop()`` ends it."""

    def __init__(self, store: Store, classifier: Callable[[], TurnClassifier], every: float) -> None:
        self._store, self._classifier, self._every = store, classifier, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-scorer", daemon=True)

    def start(self) -> LiveScorer:
        self._thread.start()
        return self

    def score_pending(self) -> int:
        """Score up to BATCH ended calls without a score now; returns how many were scored."""
        scored = 0
        for call_id in self._store.unscored_calls(BATCH):
            if self._stop.is_set():
                break
            if score_live_call(self._store, self._classifier(), call_id) is not None:
                scored += 1
        return scored

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                while self.score_pending() == BATCH:
                    pass
            except StoreError as exc:  # the database went away for a moment: try again next time
                logger.warning("scoring ended calls failed, will retry: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
