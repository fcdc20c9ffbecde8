"""The shared engines built from settings: the classifier (once per process) and the live-call engine."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

from audio.endpoint import EndpointConfig
from models.classifier import Detection, PhraseClassifier, Turn, TurnClassifier
from models.decoder_prompt import decoder_prompts
from models.encoders import get_encoder
from models.heard import load_heard
from models.packs import Category, load_pack
from server.config import Settings
from server.live.capacity import CALLS_PER_CORE, CALLS_PER_WORKER_CORE, Capacity
from server.live.metrics import LiveMetrics
from server.live.pool import TranscriptionPool
from server.live.store import Store

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_classifiers: dict[tuple[str, str, str], PhraseClassifier] = {}


def build_classifier(settings: Settings) -> PhraseClassifier:
    """The classifier for the configured pack and encoder; built on first use and kept."""
    pack_path: Path | None = settings.pack
    key = (str(pack_path or ""), settings.encoder, str(settings.cache_dir))
    with _lock:
        if key not in _classifiers:
            started = time.perf_counter()
            pack = load_pack(pack_path)
            encoder = get_encoder(settings.encoder, settings.cache_dir)
            heard = load_heard()  # what Whisper hears of the pack's phrases (models/heard.py)
            _classifiers[key] = PhraseClassifier(pack, encoder, cache_dir=settings.cache_dir, heard=heard)
            logger.info(
                "classifier for pack %s v%d ready in %.2f s",
                pack.name,
                pack.version,
                time.perf_counter() - started,
            )
        return _classifiers[key]


@dataclass(frozen=True)
class Judged:
    """A turn's alert detections and the version of the pack that judged it."""

    detections: list[Detection]
    pack_version: int


class LiveEngine:
    """What every live call shares: the store, the transcription pool, the classifier of the active pack.

    The classifier can be swapped while calls run (a trainer publishes a pack): turns judged after the
    swap use the new one, and each alert names the pack version that produced it.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        pool: TranscriptionPool,
        classifier: TurnClassifier,
        endpoint: EndpointConfig,
        capacity: Capacity | None = None,
    ) -> None:
        """``capacity``: calls admitted at once (:func:`measure_capacity`); None: no limit but
        ``settings.max_calls``."""
        self.settings = settings
        self.store = store
        self.pool = pool
        self.endpoint = endpoint
        self.capacity = capacity or Capacity.off()
        self.metrics = LiveMetrics()
        self._classifier = classifier
        self._classify_lock = threading.Lock()
        self._steer(classifier)

    @classmethod
    def start(cls, settings: Settings) -> LiveEngine:
        """Load the models and open the store (seconds on first start; the caches make later ones fast)."""
        started = time.perf_counter()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        _one_blas_thread()
        store = Store(settings.database)  # first, so an unreachable database fails before models load
        try:
            pool = transcription_pool(settings)
            capacity = measure_capacity(settings, pool)
            logger.info(capacity.describe())
            classifier = cluster_classifier(settings) if settings.ray else build_classifier(settings)
            engine = cls(settings, store, pool, classifier, endpoint_config(settings), capacity)
        except BaseException:
            store.close()
            raise
        logger.info("live engine ready in %.1f s (%d workers)", time.perf_counter() - started, pool.workers)
        return engine

    @property
    def shares_workers(self) -> bool:
        """The speech workers are the cluster's, shared with other front-ends (admission counts every
        front-end's calls), rather than this process's own."""
        return self.settings.ray is not None

    @property
    def models_here(self) -> list[str]:
        """The models loaded in this process: ``whisper`` unless the speech workers are the cluster's,
        ``encoder`` unless turns are judged by the cluster's classification workers (a front-end of a
        cluster holds none)."""
        here = [] if self.shares_workers else ["whisper"]
        return here + (["encoder"] if isinstance(self._classifier, PhraseClassifier) else [])

    def judge(self, turn: Turn, before: Turn | None = None, raised_before: Collection[str] = ()) -> Judged:
        """The alert categories (forbidden, trigger) found in a final turn.

        ``before``: the same speaker's previous turn, when it ended moments before this one began (a
        pause the endpointer took for the end of a turn; an audit hears the two as one). The two are
        judged together as well, and an alert of the pair whose words reach into this turn counts for it,
        unless the previous turn raised it already (``raised_before``)."""
        turns = (
            [turn] if before is None else [turn, Turn(f"{before.text} {turn.text}", turn.speaker, turn.lang)]
        )
        with self._classify_lock:
            classifier = self._classifier
        # outside the lock: on a cluster, turns of several calls are judged on several workers at once
        found = classifier.classify_batch(turns)
        alerts = [d for d in found[0] if d.kind.is_alert]
        if before is not None:
            offset = len(before.text) + 1
            have = {d.category for d in alerts} | set(raised_before)
            alerts += [
                replace(d, start=max(0, d.start - offset), end=d.end - offset)
                for d in found[1]
                if d.kind.is_alert and d.category not in have and d.end > offset
            ]
        return Judged(alerts, classifier.pack.version)

    def category(self, category_id: str) -> Category:
        return self._classifier.category(category_id)

    @property
    def classifier(self) -> TurnClassifier:
        """The classifier of the active pack (for audits; live turns go through :meth:`judge`)."""
        return self._classifier

    def use_classifier(self, classifier: TurnClassifier) -> None:
        """Judge turns from now on with `classifier` (a newly published pack), and hear them with its
        decoder prompt."""
        with self._classify_lock:
            self._classifier = classifier
        self._steer(classifier)

    def _steer(self, classifier: TurnClassifier) -> None:
        self.pool.use_prompts(decoder_prompts(classifier.pack) if self.settings.whisper_prompt else {})

    def close(self) -> None:
        self.pool.close()
        self.store.close()


def transcription_pool(settings: Settings) -> TranscriptionPool:
    """The pool every live call's turns go through: one Whisper model, `workers` threads of one core each,
    each turn in the short encoder window, up to `whisper_batch` waiting finals transcribed together.

    With ``settings.ray`` the same pool sends each turn to the cluster's speech workers instead
    (:mod:`server.cluster.speech_pool`), one thread per worker, and this process loads no Whisper model."""
    from models.transcriber import Transcriber
    from models.whisper_model import load_whisper

    if settings.ray:
        return cluster_pool(settings)
    model = load_whisper(
        settings.whisper_model, cpu_threads=1, num_workers=settings.workers, cache_dir=settings.cache_dir
    )
    transcriber = Transcriber(model, window=settings.whisper_window)
    return TranscriptionPool(
        lambda samples, lang: transcriber.transcribe(samples, language=lang),
        workers=settings.workers,
        capacity=settings.queue_capacity,
        transcribe_batch=transcriber.transcribe_batch,
        max_batch=settings.whisper_batch,
        set_prompts=transcriber.set_prompts,
    )


def cluster_pool(settings: Settings) -> TranscriptionPool:
    """The pool on the Ray cluster at ``settings.ray``: its turns go to the cluster's speech workers."""
    from server.cluster.actors import join_cluster
    from server.cluster.speech_pool import ClusterTranscription

    join_cluster(settings.ray or "auto")
    remote = ClusterTranscription(settings.whisper_model, settings.whisper_window)
    logger.info("live turns go to %d speech workers on the Ray cluster at %s", remote.slots, settings.ray)
    return TranscriptionPool(
        remote.transcribe,
        workers=remote.slots,
        capacity=settings.queue_capacity,
        set_prompts=remote.set_prompts,
        on_close=remote.close,
        worker_loads=remote.loads,
        retried=lambda: remote.retried,
    )


def cluster_classifier(settings: Settings) -> TurnClassifier:
    """The configured pack's classifier on the Ray cluster at ``settings.ray``: this process keeps the pack
    (plain data) and loads no encoder; turns are judged by the cluster's classification workers."""
    from server.cluster.actors import join_cluster
    from server.cluster.judge_pool import ClusterClassifier, ClusterJudges

    join_cluster(settings.ray or "auto")
    started = time.perf_counter()
    classifier = ClusterClassifier(load_pack(settings.pack), ClusterJudges(settings.encoder))
    classifier.prepare()
    logger.info(
        "classifier for pack %s v%d ready on the cluster in %.2f s",
        classifier.pack.name,
        classifier.pack.version,
        time.perf_counter() - started,
    )
    return classifier


def measure_capacity(settings: Settings, pool: TranscriptionPool) -> Capacity:
    """The calls to admit at once: configured, off, or measured on the pool's workers (each one's time for
    the reference turn; a second or two at start-up in process, done by the workers on a cluster)."""
    if settings.capacity == "off":
        return Capacity.off()
    if isinstance(settings.capacity, int):
        return Capacity.configured(settings.capacity)
    per_core = CALLS_PER_WORKER_CORE if settings.ray else CALLS_PER_CORE  # a front-end shares the cores
    return Capacity.measured(pool.measure_speed(), per_core)


def _one_blas_thread() -> None:
    """NumPy's BLAS on one thread for the whole process: a server's matrix products are small (a turn
    against the pack), and OpenBLAS's extra threads spin between them on the cores the Whisper pool needs
    (measured: 4 % of the machine during 8 live calls)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def endpoint_config(settings: Settings) -> EndpointConfig:
    """Endpointing of live turns: the defaults tuned for 8 kHz telephone speech, the configured silence."""
    return EndpointConfig(min_silence_ms=int(settings.endpoint_silence * 1000))
