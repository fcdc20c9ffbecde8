"""A classification worker: the sentence encoder in a Ray actor, judging turns of every call on the cluster.

With ``serve --ray`` front-ends hold no model: each final turn's text goes to one of these workers, which
answers with the pack's detections, exactly as :class:`models.classifier.PhraseClassifier` would in the
front-end's own process. The encoder loads once per worker; the classifier is built once per pack content
(the first turn of a pack, or :meth:`JudgeWorker.prepare` when a trainer publishes one) and the last
:data:`KEPT_PACKS` are kept, so calls judged by the old version while the new one is built go on at speed.

The pack travels as a Ray object of its YAML text, named by its SHA-256: a turn carries the digest and the
object's reference (wrapped, so Ray does not fetch it for every turn); a worker that has not built that
pack yet (new, or restarted by Ray after a crash) fetches the text once and builds it. Its cache directory
(embeddings of the pack's phrases) is the worker machine's own. This module imports no Ray at import time:
:mod:`server.cluster.judge_pool` makes the class an actor.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from models.classifier import Detection, PhraseClassifier, Turn

if TYPE_CHECKING:
    from models.encoders import Encoder

logger = logging.getLogger(__name__)

KEPT_PACKS = 4  # classifiers of distinct pack contents a worker keeps


class JudgeSetupError(RuntimeError):
    """The worker could not load the encoder or build the pack: no turn can be judged with it."""


def pack_digest(pack_yaml: str) -> str:
    """The name of a pack's content on the cluster."""
    return hashlib.sha256(pack_yaml.encode("utf-8")).hexdigest()


class JudgeWorker:
    """Judges turns with the encoder ``encoder`` and the classifier of each pack sent to it."""

    def __init__(self, encoder: str) -> None:
        self._encoder_spec = encoder
        self._encoder: Encoder | None = None
        self._built: OrderedDict[str, PhraseClassifier] = OrderedDict()
        self._lock = threading.Lock()  # a publication's build runs beside turns (its own thread)
        self._turns = 0
        self._busy = 0.0
        logger.info("classification worker on %s (pid %d)", socket.gethostname(), os.getpid())

    def classify(self, digest: str, pack: Sequence[Any], turns: Sequence[Turn]) -> list[list[Detection]]:
        """The detections of each turn by the pack named `digest`; ``pack[0]`` is the reference to its
        YAML text, fetched only when this worker has not built it yet."""
        classifier = self._classifier(digest, pack)
        started = time.perf_counter()
        try:
            return classifier.classify_batch(list(turns))
        finally:
            self._turns += len(turns)
            self._busy += time.perf_counter() - started

    def prepare(self, digest: str, pack: Sequence[Any]) -> float:
        """Build the pack's classifier now (a publication, before live turns need it); the seconds it took
        (0 when it was built already)."""
        started = time.perf_counter()
        self._classifier(digest, pack)
        return round(time.perf_counter() - started, 3)

    def where(self) -> dict[str, object]:
        """Host, Ray node, process, turns judged, seconds spent on them and the packs built: for
        ``/metrics`` and tests."""
        import ray

        return {
            "host": socket.gethostname(),
            "node": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "turns": self._turns,
            "busy_seconds": round(self._busy, 3),
            "packs": [f"{c.pack.name} v{c.pack.version}" for c in list(self._built.values())],
        }

    def _classifier(self, digest: str, pack: Sequence[Any]) -> PhraseClassifier:
        with self._lock:
            if digest in self._built:
                self._built.move_to_end(digest)
                return self._built[digest]
        import ray

        started = time.perf_counter()
        pack_yaml = ray.get(pack[0])
        if pack_digest(pack_yaml) != digest:
            raise JudgeSetupError(f"the pack sent is not the one named {digest[:12]}")
        built = self._build(pack_yaml)
        with self._lock:
            self._built[digest] = built
            while len(self._built) > KEPT_PACKS:
                self._built.popitem(last=False)
        logger.info(
            "classification worker: pack %s v%d ready in %.1f s",
            built.pack.name,
            built.pack.version,
            time.perf_counter() - started,
        )
        return built

    def _build(self, pack_yaml: str) -> PhraseClassifier:
        from models.encoders import EncoderError, get_encoder
        from models.heard import load_heard
        from models.packs import PackError, parse_pack
        from server.config import Settings

        settings = Settings(encoder=self._encoder_spec)  # this machine's own cache directory
        try:
            if self._encoder is None:
                self._encoder = get_encoder(settings.encoder, settings.cache_dir)
            pack = parse_pack(pack_yaml, source="the pack sent to the classification worker")
            return PhraseClassifier(pack, self._encoder, cache_dir=settings.cache_dir, heard=load_heard())
        except (PackError, EncoderError, OSError) as exc:
            raise JudgeSetupError(f"cannot build the classifier on {socket.gethostname()}: {exc}") from None
