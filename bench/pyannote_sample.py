"""pyannote's 30 s two-speaker sample call with its reference turns, and how well a diarization matches
them: shared by ``bench/bench_diarization.py`` and ``tests/models/test_diarization.py``.

The sample ships inside the ``pyannote.audio`` wheel; it is fetched once with ``pip download --no-deps``
into ``~/.cache/callbuffer-tests`` (nothing is installed, pyannote's heavy dependencies are not pulled).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from models.diarization import Diarization

PYANNOTE = "pyannote.audio==3.3.2"  # its wheel ships a 30 s two-speaker call with reference turns
CACHE = Path.home() / ".cache" / "callbuffer-tests" / "pyannote-3.3.2"
SAMPLE = ("pyannote/audio/sample/sample.wav", "pyannote/audio/sample/sample.rttm")

Reference = list[tuple[float, float, str]]  # (start, end, speaker) in seconds


class SampleUnavailable(RuntimeError):
    """The pyannote.audio wheel could not be downloaded (no registry access)."""


def fetch() -> tuple[Path, Reference]:
    """sample.wav and its reference turns from the wheel (downloaded on first use)."""
    wav, rttm = (CACHE / Path(name).name for name in SAMPLE)
    if not (wav.exists() and rttm.exists()):
        CACHE.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", PYANNOTE, "--no-deps", "-q", "-d", str(CACHE)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        wheels = sorted(CACHE.glob("pyannote_audio-*.whl"))
        if done.returncode != 0 or not wheels:
            raise SampleUnavailable(
                f"cannot download the {PYANNOTE} wheel for its sample call: {done.stderr.strip()[-300:]}"
            )
        with zipfile.ZipFile(wheels[-1]) as wheel:
            for name, target in zip(SAMPLE, (wav, rttm), strict=True):
                target.write_bytes(wheel.read(name))
    turns = []
    for line in rttm.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            turns.append((start, start + duration, fields[7]))
    return wav, turns


def attributed(result: Diarization, reference: Reference, duration: float) -> float:
    """The fraction of reference time where exactly one speaker talks that the diarization gives to that
    speaker, under the best mapping of reference speakers to voices (1 - a DER without overlap,
    missed speech counting as wrong)."""
    grid = np.arange(0.0, duration, 0.01)
    truth = np.full(grid.size, "", dtype=object)
    talkers = np.zeros(grid.size, int)
    for start, end, who in reference:
        inside = (grid >= start) & (grid < end)
        talkers += inside
        truth[inside] = who
    hyp = np.full(grid.size, -1)
    for turn in result.turns:
        hyp[(grid >= turn.start) & (grid < turn.end)] = turn.speaker
    single = talkers == 1
    names = sorted({who for _, _, who in reference})
    best = 0.0
    for order in (names, names[::-1]):
        expected = np.array([order.index(t) if t in order else -2 for t in truth[single]])
        best = max(best, float(np.mean(hyp[single] == expected)))
    return best
