"""Voice diarization cost and accuracy: encoder load time, seconds of compute per minute of audio, and
the share of pyannote's sample call attributed to the right speaker.

The sample (a 30 s two-speaker English call and its reference turns) comes from the ``pyannote.audio``
wheel, fetched with ``pip download --no-deps`` into ``~/.cache/callbuffer-tests`` as the tests do
(nothing is installed). Compute is timed on the sample tiled to ``--minutes`` of audio, after a warm-up.

    python bench/bench_diarization.py --minutes 5
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from audio.decode import decode_file
from models.diarization import Diarization, Diarizer, load_encoder

PYANNOTE = "pyannote.audio==3.3.2"
CACHE = Path.home() / ".cache" / "callbuffer-tests" / "pyannote-3.3.2"
SAMPLE = ("pyannote/audio/sample/sample.wav", "pyannote/audio/sample/sample.rttm")


def sample() -> tuple[Path, list[tuple[float, float, str]]]:
    """pyannote's sample.wav and its reference turns (start, end, speaker)."""
    wav, rttm = (CACHE / Path(name).name for name in SAMPLE)
    if not (wav.exists() and rttm.exists()):
        CACHE.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", PYANNOTE, "--no-deps", "-q", "-d", str(CACHE)]
        subprocess.run(command, check=True, timeout=300)
        with zipfile.ZipFile(sorted(CACHE.glob("pyannote_audio-*.whl"))[-1]) as wheel:
            for name, target in zip(SAMPLE, (wav, rttm), strict=True):
                target.write_bytes(wheel.read(name))
    turns = []
    for line in rttm.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            turns.append((float(fields[3]), float(fields[3]) + float(fields[4]), fields[7]))
    return wav, turns


def attributed(result: Diarization, reference: list[tuple[float, float, str]], duration: float) -> float:
    """Share of single-speaker reference time given to the right voice under the best mapping."""
    grid = np.arange(0.0, duration, 0.01)
    names = sorted({who for _, _, who in reference})
    truth = np.full(grid.size, -1)
    talkers = np.zeros(grid.size, int)
    for start, end, who in reference:
        inside = (grid >= start) & (grid < end)
        talkers += inside
        truth[inside] = names.index(who)
    hyp = np.full(grid.size, -2)
    for turn in result.turns:
        hyp[(grid >= turn.start) & (grid < turn.end)] = turn.speaker
    single = talkers == 1
    return max(float(np.mean(hyp[single] == truth[single])), float(np.mean(hyp[single] == 1 - truth[single])))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="audio to time compute on")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    started = time.perf_counter()
    load_encoder()
    print(f"encoder load: {time.perf_counter() - started:.2f} s (torch import included)")

    path, reference = sample()
    samples = decode_file(path, sample_rate=16000).samples[0]
    diarizer = Diarizer()
    diarizer.diarize(samples[: 16000 * 10])  # warm-up
    found = diarizer.diarize(samples)
    oracle = diarizer.diarize(samples, [(a, b) for a, b, _ in reference])
    print(
        f"pyannote sample: {found.speakers} voices (centroid similarity {found.similarity:.3f}); "
        f"{attributed(found, reference, 30.0):.1%} of single-speaker time to the right voice "
        f"(speech by energy), {attributed(oracle, reference, 30.0):.1%} with the reference speech"
    )

    tiled = np.tile(samples, int(np.ceil(args.minutes * 60 / 30.0)))[: int(args.minutes * 60 * 16000)]
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        diarizer.diarize(tiled)
        times.append(time.perf_counter() - started)
    per_minute = min(times) / args.minutes
    print(
        f"compute: {per_minute:.2f} s per minute of audio (best of {args.repeats}, "
        f"{args.minutes:g} min tiled from the sample; {60 / per_minute:.0f}x real time)"
    )


if __name__ == "__main__":
    main()
