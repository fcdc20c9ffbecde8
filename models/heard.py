"""What Whisper hears of a pack's phrases over a phone line: extra evidence for the classifier.

The classifier learns from written phrases, but on a call it judges what Whisper base makes of 8 kHz
speech: «Позовите руководителя» arrives as «Позавите руководителя», "it's the billing team's fault" as
"it's the milling team, old". Each pack phrase is spoken once by the TTS voices here (festival's Russian
voice; festival's and espeak-ng's English ones), put through the telephone band, and transcribed with the
live engine's settings; what was heard, where it differs from what was said, is kept
(``models/data/heard_phrases.jsonl``, rebuilt by ``bench/hear_pack.py``) and learned by the classifier as
the same phrase heard (:class:`models.classifier.PhraseClassifier`, ``heard=``). Only pack phrases are ever
spoken for this, never the labelled calls the chain is measured on.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from models.loops import normalise, without_loops

logger = logging.getLogger(__name__)

HEARD_FILE = "heard_phrases.jsonl"
# (16 kHz samples, language) -> text
Hear = Callable[[np.ndarray, str], str]
# (text, language, voice index) -> 16 kHz telephone-band samples, or None for a phrase the voice
# cannot say (festival's Russian voice stops at digits and signs: «скидку 20%»)
Say = Callable[[str, str, int], "np.ndarray | None"]


@dataclass(frozen=True)
class HeardPhrase:
    """A pack phrase, the voice that said it, and what the recogniser heard."""

    text: str
    lang: str
    voice: str
    heard: str


def heard_path() -> Path:
    """The heard phrases that ship with callbuffer (made from the default pack)."""
    return Path(str(resources.files("models") / "data" / HEARD_FILE))


def load_heard(path: str | Path | None = None) -> dict[str, list[str]]:
    """What was heard of each phrase, by the phrase's normalised text; variants equal to the phrase (once
    normalised) are left out. A missing file gives {} (the classifier then learns from written phrases
    only); a malformed line is skipped with a warning."""
    path = Path(path) if path is not None else heard_path()
    if not path.is_file():
        logger.info("no heard phrases at %s", path)
        return {}
    heard: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, variant = str(row["text"]), without_loops(str(row["heard"]))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("%s:%d: skipped, not a heard phrase: %s", path, number, exc)
            continue
        key = normalise(text)
        if normalise(variant) and normalise(variant) != key and variant not in heard.get(key, []):
            heard.setdefault(key, []).append(variant)
    return heard


def hear_phrases(
    phrases: Iterable[tuple[str, str]], say: Say, hear: Hear, voices: Mapping[str, int]
) -> Iterator[HeardPhrase]:
    """Speak each (text, lang) with one of the language's ``voices[lang]`` voices (picked by a hash of the
    phrase, so a phrase keeps its voice when others are added) and hear it back; a phrase the voice
    cannot say is left out."""
    for text, lang in phrases:
        count = voices.get(lang, 0)
        if not count:
            continue
        index = zlib.crc32(text.encode()) % count
        spoken = say(text, lang, index)
        if spoken is None:
            continue
        yield HeardPhrase(text, lang, f"{lang}-{index}", hear(spoken, lang).strip())


def write_heard(rows: Iterable[HeardPhrase], path: str | Path) -> int:
    """Write heard phrases as JSON lines; returns how many."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
            count += 1
    return count
