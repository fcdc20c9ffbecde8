"""Phrase packs at work on the server: classifiers for any stored version, and publishing without a restart.

Building a classifier embeds and calibrates a pack (seconds; cached on disk by content, so a version seen
before is fast), in this process or, with ``serve --ray``, on every classification worker of the cluster
(:mod:`server.cluster.judge_pool`), the same way the active one was built. Publishing builds the new
version's classifier on a worker thread while calls go on with the old one, then swaps it in for the turns
that follow; every alert names the pack version that judged it.
With several front-ends on one PostgreSQL database, the others hear of the publication through
:mod:`server.live.relay` and swap the same stored version in (:meth:`PackService.adopt`).
Drafts are built on demand for the trainer's "try a phrase" and evaluation, a few kept in memory.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from models.classifier import TurnClassifier
from models.packs import PhrasePack
from server.live.engine import LiveEngine
from server.packs.store import PackStore

logger = logging.getLogger(__name__)

KEPT_CLASSIFIERS = 3


class PackService:
    """The pack store plus the classifiers built from it; thread-safe."""

    def __init__(self, store: PackStore, engine: LiveEngine) -> None:
        self.store = store
        self.engine = engine
        self._lock = threading.Lock()
        self._built: OrderedDict[tuple[str, int], TurnClassifier] = OrderedDict()
        self._publish_lock = threading.Lock()
        # tells the other front-ends on the same database (server.live.relay); returns at once
        self.on_publish: Callable[[str, int], None] | None = None

    def classifier(self, name: str, version: int) -> TurnClassifier:
        """The classifier of a stored version (built once, a few kept)."""
        key = (name, version)
        with self._lock:
            if key in self._built:
                self._built.move_to_end(key)
                return self._built[key]
        pack = self.store.get(name, version)
        built = self._build(pack)
        with self._lock:
            self._built[key] = built
            while len(self._built) > KEPT_CLASSIFIERS:
                self._built.popitem(last=False)
        return built

    def activate_stored(self) -> None:
        """Make the live engine use the store's active version (at start-up)."""
        with self._publish_lock:  # a publish here must not be undone by an older read of the store
            name, version = self.store.active() or (None, None)
            if name is None:
                return
            current = self.engine.classifier.pack
            if (current.name, current.version) != (name, version):
                self.engine.use_classifier(self.classifier(name, version))
                logger.info("live calls now use the stored active pack %s v%d", name, version)

    def publish(self, name: str, version: int) -> PhrasePack:
        """Make `name` v`version` the active pack: built first (live calls keep the old one meanwhile),
        then recorded as active and swapped in. Blocking: call it on a worker thread."""
        with self._publish_lock:
            classifier = self.classifier(name, version)
            self.store.publish(name, version)
            self.engine.use_classifier(classifier)
            if self.on_publish is not None:  # under the lock, so other front-ends hear of them in order
                self.on_publish(name, version)
        logger.info("published pack %s v%d to live calls and audits", name, version)
        return classifier.pack

    def adopt(self, name: str, version: int) -> bool:
        """Another front-end published `name` v`version`: judge with it here too, unless the store's
        active version is no longer that one (a later publish overtook this news; its own follows), so
        news arriving late never rolls a front-end back. Blocking: call it on a worker thread."""
        with self._publish_lock:
            if self.store.active() != (name, version):
                logger.info("pack %s v%d was published elsewhere but is active no more", name, version)
                return False
            current = self.engine.classifier.pack
            if (current.name, current.version) != (name, version):
                self.engine.use_classifier(self.classifier(name, version))
        logger.info("pack %s v%d, published on another front-end, judges live calls here", name, version)
        return True

    def _build(self, pack: PhrasePack) -> TurnClassifier:
        return self.engine.classifier.for_pack(pack)
