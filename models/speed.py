"""How fast this machine's recogniser is: the time it takes to transcribe a reference turn.

Capacity (how many live calls a core holds at the latency goal) is measured on a bench once
(``bench/bench_capacity.py``) and carried to other machines by this one figure: a worker that transcribes
the reference turn in half the time holds about twice the calls. The reference turn is four seconds of
Russian («Давайте вместе разберёмся, что случилось с заказом.», festival's voice) through the telephone
band at 8 kHz, as a live turn arrives.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import numpy as np

from audio.decode import decode_file

logger = logging.getLogger(__name__)

REFERENCE_LANGUAGE = "ru"


def reference_turn_path() -> Path:
    return Path(str(files("models") / "data" / "reference_turn.wav"))


def reference_turn() -> np.ndarray:
    """The reference turn as the recogniser takes audio: 16 kHz mono float32."""
    return decode_file(reference_turn_path(), sample_rate=16000, mono=True).samples[0]


def time_reference_turn(transcribe: Callable[[np.ndarray, str | None], object], runs: int = 3) -> float:
    """Median seconds `transcribe(samples, language)` takes for the reference turn, after one run to warm
    up (the first run of a model allocates its buffers)."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    samples = reference_turn()
    transcribe(samples, REFERENCE_LANGUAGE)
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        transcribe(samples, REFERENCE_LANGUAGE)
        took.append(time.perf_counter() - started)
    seconds = statistics.median(took)
    logger.info("reference turn (%.1f s of speech) transcribed in %.3f s", samples.size / 16000, seconds)
    return seconds
