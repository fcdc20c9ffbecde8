"""Build ``models/data/heard_phrases.jsonl``: every phrase of a pack spoken over a phone line and heard by
the live engine's Whisper (:mod:`models.heard`).

Russian phrases are spoken by festival's Russian voice; English ones by festival's kal_diphone and
cmu_us_slt_arctic_hts and espeak-ng's en-us, one voice per phrase (by a hash of the phrase). Each is band
limited to 300-3400 Hz at 8 kHz (as :func:`audio.synth.build_call` does), padded with 0.2 s before and
0.1 s after (the endpointer's pre- and post-roll), and transcribed in the live 6 s window with the
language pinned. espeak-ng's Russian voices are left out: Whisper base hears nothing of them (its text is
noise, and learning noise as a phrase would teach the classifier noise).

    python bench/hear_pack.py [--pack FILE] [--out models/data/heard_phrases.jsonl] [--jobs 2]

About 15 minutes for the default pack's 1 923 phrases on one core of the 2-core machine; it prints how
many were heard differently from what was said.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from models.heard import HeardPhrase, hear_phrases, heard_path, write_heard
from models.loops import normalise
from models.packs import load_pack

VOICES = {
    "ru": [("festival", "msu_ru_nsh_clunits")],
    "en": [("festival", "kal_diphone"), ("festival", "cmu_us_slt_arctic_hts"), ("espeak-ng", "en-us")],
}
_hear = None


def _say(text: str, lang: str, index: int) -> np.ndarray | None:
    from audio.resample import resample
    from audio.synth import MissingToolError, SynthError, Voice, speak, telephone_band

    try:
        spoken = speak(text, lang, Voice(*VOICES[lang][index]))
    except MissingToolError:
        raise
    except SynthError as exc:
        print(f"left out, the voice cannot say it: {exc}", file=sys.stderr)
        return None
    line = resample(telephone_band(spoken, 16000), 8000, 16000)
    return np.concatenate([np.zeros(3200, np.float32), line, np.zeros(1600, np.float32)])


def _hear_with_whisper(samples: np.ndarray, lang: str) -> str:
    global _hear
    if _hear is None:
        from models.transcriber import Transcriber
        from models.whisper_model import load_whisper
        from server.config import Settings

        settings = Settings()
        model = load_whisper(settings.whisper_model, cpu_threads=1, cache_dir=settings.cache_dir)
        _hear = Transcriber(model, window=settings.whisper_window)
    return " ".join(s.text for s in _hear.transcribe(samples, language=lang))


def _work(phrases: list[tuple[str, str]]) -> list[HeardPhrase]:
    counts = {lang: len(v) for lang, v in VOICES.items()}
    return list(hear_phrases(phrases, _say, _hear_with_whisper, counts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=heard_path())
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    pack = load_pack(args.pack)
    phrases = sorted(
        {
            (text, lang)
            for category in pack.categories
            for phrases in (category.examples, category.counter_examples)
            for lang, text in phrases.items()
        }
        | {(text, lang) for lang, text in pack.neutral.items()}
    )
    started = time.perf_counter()
    chunks = [phrases[i :: args.jobs] for i in range(args.jobs)]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = [row for part in pool.map(_work, chunks) for row in part]
    rows.sort(key=lambda r: (r.lang, r.text))
    write_heard(rows, args.out)
    differ = sum(normalise(r.heard) != normalise(r.text) for r in rows)
    print(f"{len(rows)} phrases heard in {time.perf_counter() - started:.0f} s; {differ} heard otherwise")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
