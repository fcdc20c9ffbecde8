"""What Whisper reads before each turn: a short text per language, from the active phrase pack.

Whisper's decoder takes text before the start-of-transcript token (the "previous text" slot, which
faster-whisper fills with ``hotwords``) as what was said just before, and writes what follows in its
words and style. On the labelled call set (``bench/data/calls``, tune split, each turn cut as the
endpointer cuts it and heard in the live 6 s window) three prompts were measured against none
(72 expected alerts; 37 false alarms with no prompt):

- the pack's listening words (the words its alert examples share most, comma-separated): Whisper wrote
  every turn as a comma-separated word list and the pack's words leaked in («мать» from «у него мать
  сдохла»): 23 alerts raised instead of 25, 29 false alarms;
- one short example of each alert category, as sentences: 29 raised, 38 false alarms, but on speech it
  could not make out Whisper wrote the prompt's own phrases («Это тупик.» for a greeting): an alert
  invented out of nothing, the one thing a buffer-response tool must never do;
- the pack's everyday call-centre turns (its ``neutral`` phrases: a greeting, asking for the contract
  number, the address): 25 raised, 26 false alarms, the transcripts nearer to what was said ("you're
  right to question it" instead of "you write the question it"), and nothing from the prompt could ever
  raise an alert if it leaked, since every phrase in it is one the pack knows to be no alert.

So the prompt is the last: the pack's first neutral phrases of three words or more in that language (no
numbers: Whisper would copy their spelling), until they hold ``MAX_WORDS`` words. It is rebuilt when a pack
is published, so a trainer's everyday phrases steer it too.

It is off by default (``CALLBUFFER_WHISPER_PROMPT``): once the classifier also learned what Whisper hears
of the pack's phrases without a prompt (:mod:`models.heard`), the same turns gave 29 alerts and 25 false
alarms unprompted, 28 and 24 prompted; the difference is within one call's worth, and a prompted recogniser
hears the pack's phrases otherwise than the one the classifier learned from.
"""

from __future__ import annotations

from models.packs import LANGUAGES, PhrasePack

MAX_WORDS = 30
MIN_PHRASE_WORDS = 3


def decoder_prompts(pack: PhrasePack) -> dict[str, str]:
    """The prompt of each language the pack has neutral phrases in: ``{"ru": "Здравствуйте, …"}``."""
    prompts = {}
    for lang in LANGUAGES:
        chosen, words = [], 0
        for phrase in pack.neutral.get(lang):
            size = len(phrase.split())
            if size < MIN_PHRASE_WORDS or any(ch.isdigit() for ch in phrase):
                continue
            chosen.append(phrase.strip())
            words += size
            if words >= MAX_WORDS:
                break
        if chosen:
            prompts[lang] = " ".join(chosen)
    return prompts
