"""Voice diarization cost and accuracy: encoder load time, seconds of compute per minute of audio, and
the share of pyannote's sample call attributed to the right speaker.

The sample (a 30 s two-speaker English call and its reference turns) comes from the ``pyannote.audio``
wheel, fetched by ``bench/pyannote_sample.py`` as the tests do (nothing is installed). Compute is timed
on the sample tiled to ``--minutes`` of audio, after a warm-up.

    python bench/bench_diarization.py --minutes 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from pyannote_sample import attributed, fetch

from audio.decode import decode_file
from models.diarization import Diarizer, load_encoder


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

    path, reference = fetch()
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
