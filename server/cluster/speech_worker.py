"""A speech worker: one Whisper model in a Ray actor, transcribing turns of every call sent to it.

It runs on a machine that joined the cluster with ``callbuffer worker`` (or Ray's own ``ray start`` with
the ``callbuffer_speech`` resource), one core each; front-ends hold no Whisper model and send it a turn's
samples, its language and the decoder prompt of that language with every turn, so a worker restarted by
Ray after a crash needs nothing re-sent. Its cache directory (the converted model) is the worker
machine's own: ``CALLBUFFER_CACHE_DIR`` there, or the default.

This module imports no Ray: :mod:`server.cluster.speech_pool` makes the class an actor.
"""

from __future__ import annotations

import logging
import os
import socket
import time

import numpy as np

from models.speed import time_reference_turn
from models.transcriber import Segment, Transcriber

logger = logging.getLogger(__name__)


class SpeechWorker:
    """Whisper ``whisper_model`` with live turns' encoder ``window``, on one core of this machine."""

    def __init__(self, whisper_model: str, window: float) -> None:
        from models.whisper_model import load_whisper
        from server.config import Settings

        settings = Settings()  # this machine's own cache directory (CALLBUFFER_CACHE_DIR)
        model = load_whisper(whisper_model, cpu_threads=1, num_workers=1, cache_dir=settings.cache_dir)
        self._transcriber = Transcriber(model, window=window)
        self._turns = 0
        self._busy = 0.0
        # what this core holds is measured once, on the reference turn (models/speed.py)
        self._turn_seconds = time_reference_turn(
            lambda samples, lang: self._transcriber.transcribe(samples, language=lang)
        )
        logger.info(
            "speech worker ready on %s (pid %d): reference turn in %.3f s",
            socket.gethostname(),
            os.getpid(),
            self._turn_seconds,
        )

    def transcribe(self, samples: np.ndarray, language: str | None, prompt: str | None) -> list[Segment]:
        """One turn's segments, the decoder reading `prompt` first (None: no prompt)."""
        self._transcriber.set_prompts({language: prompt} if language and prompt else None)
        started = time.perf_counter()
        try:
            return self._transcriber.transcribe(samples, language=language)
        finally:
            self._turns += 1
            self._busy += time.perf_counter() - started

    def where(self) -> dict[str, object]:
        """Host, Ray node, process, turns done, seconds spent on them, and the reference turn's time: for
        admission, ``/metrics`` and tests."""
        import ray

        node = ray.get_runtime_context().get_node_id()
        return {
            "host": socket.gethostname(),
            "node": node,
            "pid": os.getpid(),
            "turns": self._turns,
            "busy_seconds": round(self._busy, 3),
            "turn_seconds": self._turn_seconds,
        }
