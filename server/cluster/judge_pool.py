"""Live turns judged by classification workers on a Ray cluster, so a front-end holds no model.

:class:`ClusterClassifier` is the front-end's classifier of a pack with ``serve --ray``: it has the pack
(plain data: categories, titles, responses) and sends each batch of turns to an idle classification worker
(:mod:`server.cluster.judge_worker`), where the sentence encoder lives. Workers are named detached actors
(``judge-0``, ``judge-1``… in the ``callbuffer`` namespace), one per worker machine (its
``callbuffer_judge`` resource), shared by every front-end. A worker that dies mid-turn costs the turn a
retry on another (:class:`server.cluster.actors.WorkerLine`); Ray restarts it, and it builds the pack again
on its first turn.

Publishing a pack (:meth:`ClusterClassifier.prepare`) builds the new version on every worker before the
front-end swaps it in, so the first turns judged by it are as fast as any.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from models.classifier import Detection, Turn
from models.packs import Category, PhrasePack, dump_pack
from server.cluster.actors import (
    JUDGE_RESOURCE,
    NAMESPACE,
    STATUS_GROUP,
    WorkerLine,
    cluster_resource,
)
from server.cluster.judge_worker import JudgeWorker, pack_digest

logger = logging.getLogger(__name__)

BUILD_GROUP = "build"  # a publication's build runs beside the old pack's turns, not in front of them
BUILD_TIMEOUT_S = 600.0  # building a pack embeds every phrase: a minute or two on a cold cache


class ClusterJudges:
    """The cluster's classification workers, as this front-end reaches them.

    ``workers``: how many (default: one per ``callbuffer_judge`` the cluster offers; at least one: a
    cluster whose machines joined with plain ``ray start`` and no such resource gets one worker wherever
    Ray puts it)."""

    def __init__(
        self, encoder: str, *, workers: int | None = None, attempts: int = 4, timeout: float = 60.0
    ) -> None:
        import ray

        offered = cluster_resource(JUDGE_RESOURCE)
        count = workers if workers is not None else max(1, offered)
        if not offered:
            logger.warning(
                "the Ray cluster has no %s resource (machines joined without `callbuffer worker`): "
                "one classification worker goes wherever Ray has room",
                JUDGE_RESOURCE,
            )
        actor = ray.remote(concurrency_groups={STATUS_GROUP: 1, BUILD_GROUP: 1})(JudgeWorker)
        actors = [
            actor.options(
                name=f"judge-{i}",
                namespace=NAMESPACE,
                get_if_exists=True,
                lifetime="detached",
                num_cpus=0,  # beside the machine's speech workers: a turn takes milliseconds
                resources={JUDGE_RESOURCE: 1} if offered else {},
                max_restarts=-1,
                max_concurrency=1,
            ).remote(encoder)
            for i in range(count)
        ]
        self._line = WorkerLine(actors, "classification worker", attempts=attempts, timeout=timeout)

    @property
    def retried(self) -> int:
        """Turns sent again after their worker died."""
        return self._line.retried

    def classify(self, digest: str, pack_ref: Any, turns: Sequence[Turn]) -> list[list[Detection]]:
        """Each turn's detections by the pack named `digest` (its YAML text in the object store at
        `pack_ref`), on an idle worker."""
        # wrapped in a list, so Ray hands the worker the reference, not the text, with every turn
        return self._line.call(lambda judge: judge.classify.remote(digest, [pack_ref], list(turns)))

    def prepare(self, digest: str, pack_ref: Any) -> list[float]:
        """Build the pack on every answering worker, all at once; the seconds each took."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        asked = [
            judge.prepare.options(concurrency_group=BUILD_GROUP).remote(digest, [pack_ref])
            for judge in self._line.actors
        ]
        took = []
        for answer in asked:
            try:
                took.append(ray.get(answer, timeout=BUILD_TIMEOUT_S))
            except (RayActorError, GetTimeoutError) as exc:  # it builds the pack on its first turn instead
                logger.warning("a classification worker did not build the pack: %s", exc)
        return took

    def where(self) -> list[dict[str, object]]:
        """Each answering worker's name, host, turns judged and packs built."""
        return [{"name": f"judge-{found.pop('index')}", **found} for found in self._line.where()]

    def close(self) -> None:
        self._line.close()


class ClusterClassifier:
    """The classifier of `pack` (a :class:`models.classifier.TurnClassifier`) whose model is on the
    cluster's classification workers `judges`."""

    def __init__(self, pack: PhrasePack, judges: ClusterJudges) -> None:
        import ray

        self.pack = pack
        self.judges = judges
        text = dump_pack(pack)
        self._digest = pack_digest(text)
        self._ref = ray.put(text)

    def classify_batch(self, turns: Sequence[Turn]) -> list[list[Detection]]:
        """Each turn's detections (as :meth:`models.classifier.PhraseClassifier.classify_batch`)."""
        if not turns:
            return []
        return self.judges.classify(self._digest, self._ref, turns)

    def category(self, category_id: str) -> Category:
        return self.pack.category(category_id)

    def for_pack(self, pack: PhrasePack) -> ClusterClassifier:
        """The classifier of `pack` on the same workers, built there before it returns."""
        built = ClusterClassifier(pack, self.judges)
        built.prepare()
        return built

    def prepare(self) -> None:
        """Build this pack on every classification worker now (before it judges live turns)."""
        took = self.judges.prepare(self._digest, self._ref)
        logger.info(
            "pack %s v%d built on %d classification workers (%s s)",
            self.pack.name,
            self.pack.version,
            len(took),
            ", ".join(f"{t:.1f}" for t in took),
        )
