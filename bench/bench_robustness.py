"""How the classifier holds up when the text is not written the way the pack is.

For each labelled set: macro-F1 and false alarms on the rows as written, and on the same rows as a
recogniser that writes no case and no punctuation would give them («Это возмутительно!» -> «это
возмутительно»). Then the false alarms on text that should raise nothing: every prompt of Asterisk's
Russian and English sound sets (Debian's asterisk-core-sounds-ru/-en transcripts), judged as said by
the agent and by the customer. With ``--audio N``, also N of those prompts per language as recordings
(Debian's asterisk-core-sounds-{ru,en}-wav, 8 kHz): heard by the bundled Whisper with the audit's
settings, silence hallucinations dropped, the text judged the same two ways. Prints its figures; it is
not a test.

    python bench/bench_robustness.py [EVAL.jsonl ...] [--encoder e5] [--audio 60]
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
import tempfile
from dataclasses import replace
from pathlib import Path

from models.classifier import PhraseClassifier, Speaker, Turn
from models.encoders import get_encoder
from models.evaluation import EvalRow, evaluate, load_eval
from models.heard import load_heard
from models.packs import load_pack
from models.text import normalise

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SETS = [
    REPO.parent / "shared" / "eval" / "classify-dev.jsonl",
    REPO / "bench" / "data" / "heldout-ru-en.jsonl",
    REPO / "bench" / "data" / "stress-ru-en.jsonl",
    REPO / "bench" / "data" / "check-ru-en.jsonl",
]
PROMPTS = Path("/usr/share/doc/asterisk-core-sounds-{lang}/core-sounds-{lang}.txt.gz")
RECORDINGS = {
    "ru": Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU"),
    "en": Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
}
_PUNCTUATION = re.compile(r"[^\w\s'-]+")


def unpunctuated(text: str) -> str:
    """Lower case, «е» for «ё», punctuation gone, spaces collapsed."""
    return " ".join(_PUNCTUATION.sub(" ", normalise(text)).split())


def prompts(lang: str) -> list[str]:
    """The prompt texts of one Asterisk sound set (``name: text`` lines), two words or more."""
    path = Path(str(PROMPTS).format(lang=lang))
    if not path.is_file():
        return []
    texts = []
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            name, sep, text = line.partition(":")
            if sep and not name.startswith(";") and len(text.split()) >= 2:
                texts.append(text.strip())
    return texts


def report(classifier: PhraseClassifier, name: str, rows: list[EvalRow]) -> None:
    plain = [replace(r, text=unpunctuated(r.text)) for r in rows]
    for form, variant in (("written", rows), ("no case/punct", plain)):
        got = evaluate(classifier, variant)
        print(
            f"  {name:<24} {form:<14} macro-F1 {got.macro_f1:.3f}  "
            f"false alarms {got.false_alarms}/{got.clean_rows}"
        )


def flagged(classifier: PhraseClassifier, texts: list[str], lang: str) -> dict[Speaker, list[str]]:
    """Per side, the texts that raise an alert when that side says them."""
    alerts = set(classifier.pack.alert_ids)
    found = {}
    for speaker in (Speaker.AGENT, Speaker.CUSTOMER):
        judged = classifier.classify_batch([Turn(t, speaker, lang) for t in texts])
        found[speaker] = [
            t for t, dets in zip(texts, judged, strict=True) if {d.category for d in dets} & alerts
        ]
    return found


def show(classifier: PhraseClassifier, name: str, texts: list[str], lang: str, listed: bool = True) -> None:
    """Print how many of `texts` raise an alert said by each side (and, if `listed`, which)."""
    if not texts:
        print(f"  {name}: not installed, skipped")
        return
    for speaker, hits in flagged(classifier, texts, lang).items():
        print(f"  {name} as {speaker.value:<8} with an alert: {len(hits)}/{len(texts)}")
        for text in hits if listed else ():
            print(f"      {text}")


def heard_prompts(lang: str, count: int, seed: int = 0) -> list[str]:
    """What Whisper hears in `count` randomly chosen prompt recordings of one language (none if the
    sound set is not installed): the audit's long-form settings, hallucinations dropped."""
    from audio.decode import AudioDecodeError, decode_file
    from models.audit import transcribe_channel
    from models.hallucinations import HallucinationFilter
    from models.whisper_model import load_whisper

    files = sorted(RECORDINGS[lang].glob("*.wav")) if RECORDINGS[lang].is_dir() else []
    if not files:
        return []
    chosen = random.Random(seed).sample(files, min(count, len(files)))
    model, keep = load_whisper(), HallucinationFilter()
    texts = []
    for path in chosen:
        try:
            samples = decode_file(path, sample_rate=16000, mono=True).samples[0]
        except AudioDecodeError as exc:  # a few prompt files of the sound sets hold no audio
            print(f"  skipped {exc}")
            continue
        heard, _ = transcribe_channel(model, samples, lang)
        text = " ".join(s.text for s in keep.keep(h.segment for h in heard))
        if text:
            texts.append(text)
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", type=Path, default=DEFAULT_SETS)
    parser.add_argument("--encoder", default="e5")
    parser.add_argument("--audio", type=int, default=0, help="prompt recordings per language to transcribe")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        encoder = get_encoder(args.encoder)
        classifier = PhraseClassifier(load_pack(), encoder, cache_dir=Path(cache), heard=load_heard())
        print(f"encoder {classifier.encoder.name}, {classifier.phrase_count} pack phrases")
        for path in args.sets:
            if path.is_file():
                report(classifier, path.name, load_eval(path))
            else:
                print(f"  {path}: not found, skipped")
        for lang in ("ru", "en"):
            show(classifier, f"asterisk prompts ({lang})", prompts(lang), lang, listed=False)
        for lang in ("ru", "en") if args.audio else ():
            show(classifier, f"asterisk recordings ({lang}) heard", heard_prompts(lang, args.audio), lang)


if __name__ == "__main__":
    main()
