"""Speech to text for short telephone turns with a faster-whisper model.

The caller does endpointing and hands over one turn at a time, so the defaults favour latency and
independence between turns: greedy decoding (``beam_size=1``), no conditioning on earlier text
(avoids repeating a previous turn's words), no built-in VAD, and Whisper's temperature fallback
kept for turns where greedy decoding degenerates. Hallucination filtering is left to a later stage.

Whisper's encoder always reads a 30 s window, padding a 3 s turn with 27 s of silence; on this class of
machine that costs ~1 s per turn, too slow for live prompts. With ``window`` set, a turn is encoded in a
window just longer than itself (at least ``window`` seconds). On an Intel machine with VNNI a 10 s
window took ~0.15 s, and 40 random Asterisk prompts per language at 8 kHz gave English CER 0.19 vs 0.19
(30 s), Russian 0.28 vs 0.23. On an AVX2 machine without VNNI, 42 turns per language (30 random Asterisk
prompts at 8 kHz mu-law, the 13 turns of a synthetic test call) gave mean CER ru 0.191 / 0.213 / 0.213 /
0.210 and en 0.284 / 0.242 / 0.255 / 0.313 for windows of 30 / 10 / 6 / 5 s, at 2.7 / 0.67 / 0.51 /
0.47 s per Russian turn; a window of just the turn + 1 s fell apart (ru 0.31, en 0.51). Live calls
default to 6 s; audits of recordings keep the full window.

Several turns can be transcribed at once (:meth:`Transcriber.transcribe_batch`): the decoder's cost per
token barely grows with the batch (four turns decode in 1.6x the time of one), though they wait for one
another's encoding.

A turn in a known language can be decoded after a prompt of that language (:meth:`Transcriber.set_prompts`,
built from the active phrase pack by :func:`models.vocabulary.decoder_prompts`): the text goes in
Whisper's "previous text" slot, as faster-whisper's ``hotwords``, and makes the words the product listens
for likelier where the audio allows them.
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from audio.decode import decode_file
from models.loops import find_loops

if TYPE_CHECKING:
    import faster_whisper

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DEFAULT_TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
FULL_WINDOW = 30.0  # seconds: Whisper's native encoder window
# faster-whisper's fallback rules: retry hotter when the text loops or the model is unsure.
COMPRESSION_RATIO_LIMIT = 2.4
LOG_PROB_LIMIT = -1.0
NO_SPEECH_LIMIT = 0.6
# (turn index in the batch, its segments): called as each turn of a batch is decided
TurnDone = Callable[[int, list["Segment"]], None]
TOKENS_PER_SECOND = 12  # generous: fast Russian speech is ~8 BPE tokens/s; stops runaway loops early
MAX_PROMPT_TOKENS = 96  # of a language's prompt; faster-whisper allows up to half of Whisper's 448


@dataclass(frozen=True)
class Segment:
    """One recognised stretch of speech; times in seconds from the start of the audio given."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float


class Transcriber:
    """Transcribes 16 kHz mono float32 audio into :class:`Segment` records with a WhisperModel."""

    def __init__(
        self,
        model: faster_whisper.WhisperModel,
        *,
        beam_size: int = 1,
        vad_filter: bool = False,
        temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
        window: float | None = None,
        prompts: Mapping[str, str] | None = None,
    ) -> None:
        """Wrap ``model`` (e.g. from :func:`models.whisper_model.load_whisper`) with decoding settings.

        ``window`` (seconds, 1-30) turns on the short encoder window for turns that fit in it; ``None``
        keeps Whisper's 30 s window for everything. ``prompts``: see :meth:`set_prompts`.
        """
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        if window is not None and not 1.0 <= window <= FULL_WINDOW:
            raise ValueError(f"window must be between 1 and {FULL_WINDOW:g} seconds, got {window}")
        self.model = model
        self.beam_size = beam_size
        self.vad_filter = vad_filter
        self.temperatures = tuple(temperatures)
        self.window = window
        self.set_prompts(prompts)

    def set_prompts(self, prompts: Mapping[str, str] | None) -> None:
        """Text the decoder reads before each turn of a language (``{"ru": "…", "en": "…"}``), or None for
        none; takes effect from the next turn, so a newly published pack steers calls already going."""
        self._prompts: dict[str, str] = {lang: text.strip() for lang, text in (prompts or {}).items()}

    def prompt(self, language: str | None) -> str | None:
        """The prompt of `language` (None when it has none or the language is not known yet)."""
        return self._prompts.get(language) if language else None

    def _prompt_tokens(self, tokenizer: object, language: str) -> list[int]:
        """``sot_prev`` and the language's prompt as tokens (at most ``MAX_PROMPT_TOKENS``); [] for none."""
        text = self.prompt(language)
        if not text:
            return []
        tokens = tokenizer.encode(" " + text)[:MAX_PROMPT_TOKENS]  # type: ignore[attr-defined]
        return [tokenizer.sot_prev, *tokens]  # type: ignore[attr-defined]

    def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> list[Segment]:
        """Transcribe one turn: 1-D float32 samples at 16 kHz in [-1, 1].

        ``language`` pins the language (e.g. ``"ru"``, ``"en"``); ``None`` lets Whisper detect it.
        Segments whose text is empty after stripping are dropped.
        """
        samples = self._checked(audio)
        if samples.size == 0:
            return []
        if self._window_for(samples.size / SAMPLE_RATE) is not None:
            return self._transcribe_short([samples], [language])[0]
        raw_segments, info = self.model.transcribe(
            samples,
            language=language,
            beam_size=self.beam_size,
            temperature=list(self.temperatures),
            condition_on_previous_text=False,
            vad_filter=self.vad_filter,
            hotwords=self.prompt(language),
        )
        segments = [
            Segment(
                start=float(s.start),
                end=float(s.end),
                text=s.text.strip(),
                avg_logprob=float(s.avg_logprob),
                no_speech_prob=float(s.no_speech_prob),
            )
            for s in raw_segments  # a lazy generator: decoding happens here
            if s.text.strip()
        ]
        logger.debug(
            "transcribed %.2f s (%s) into %d segments",
            samples.size / SAMPLE_RATE,
            info.language,
            len(segments),
        )
        return segments

    def transcribe_batch(
        self,
        audios: Sequence[np.ndarray],
        languages: Sequence[str | None],
        on_done: TurnDone | None = None,
    ) -> list[list[Segment]]:
        """Transcribe several turns at once: the same result as :meth:`transcribe` on each, for less work.

        Whisper's decoder reads all its weights for every token it writes, whatever the batch size, so on
        a CPU that is short of memory bandwidth decoding four turns together costs little more than
        decoding one (measured here: 4 turns in 1.6x the time of one). Turns that get the same short
        window are encoded together and decoded together, each with its own language and Whisper's
        temperature fallback applied turn by turn; a turn too long for a short window, or any turn
        without ``window``, goes through :meth:`transcribe` alone.

        ``on_done(index, segments)`` is called for each turn as soon as its text is decided, so a caller
        can pass on the turns that decoded at once while others of the batch are decoded again hotter.
        """
        if len(audios) != len(languages):
            raise ValueError(f"{len(audios)} turns but {len(languages)} languages")
        samples = [self._checked(a) for a in audios]
        results: list[list[Segment]] = [[] for _ in samples]
        groups: dict[float, list[int]] = {}
        for i, x in enumerate(samples):
            seconds = self._window_for(x.size / SAMPLE_RATE)
            if seconds is not None and x.size:
                groups.setdefault(seconds, []).append(i)
            else:
                results[i] = self.transcribe(x, language=languages[i])
                if on_done is not None:
                    on_done(i, results[i])
        for group in groups.values():

            def done(j: int, segments: list[Segment], group: list[int] = group) -> None:
                results[group[j]] = segments
                if on_done is not None:
                    on_done(group[j], segments)

            self._transcribe_short([samples[i] for i in group], [languages[i] for i in group], done)
        return results

    def _window_for(self, duration: float) -> float | None:
        """The short encoder window for a turn of `duration` seconds: ``window``, or just longer than the
        turn; None when the turn needs Whisper's own 30 s window (or ``window`` is off)."""
        if self.window is None or duration + 1.0 > FULL_WINDOW:
            return None
        return min(FULL_WINDOW, max(self.window, math.ceil(duration + 1.0)))

    def _transcribe_short(
        self, turns: list[np.ndarray], languages: list[str | None], on_done: TurnDone | None = None
    ) -> list[list[Segment]]:
        """Turns in a window just longer than the longest of them: encoded at once, decoded at once with
        Whisper's fallback; each turn's segments go to ``on_done`` as soon as they are decided."""
        from faster_whisper.tokenizer import Tokenizer

        durations = [x.size / SAMPLE_RATE for x in turns]
        seconds = self._window_for(max(durations)) or FULL_WINDOW
        frames = int(seconds * 100)  # the feature extractor's hop is 10 ms
        features = np.stack(
            [
                self.model.feature_extractor(np.pad(x, (0, int(seconds * SAMPLE_RATE) - x.size)))[:, :frames]
                for x in turns
            ]
        )
        encoded = self.model.encode(features)
        if any(lang is None for lang in languages):
            detected = self.model.model.detect_language(encoded)
            languages = [lang or detected[i][0][0].strip("<|>") for i, lang in enumerate(languages)]
        tokenizers = [
            Tokenizer(self.model.hf_tokenizer, True, task="transcribe", language=lang) for lang in languages
        ]
        prompts = [
            [*self._prompt_tokens(tok, lang), *tok.sot_sequence, tok.no_timestamps]
            for tok, lang in zip(tokenizers, languages, strict=True)
        ]
        limits = [len(p) + int(TOKENS_PER_SECOND * d) + 8 for p, d in zip(prompts, durations, strict=True)]
        results: list[list[Segment]] = [[] for _ in turns]

        def decided(i: int, heard: _Try) -> None:
            logger.debug(
                "transcribed %.2f s (%s) in a %g s window: %r",
                durations[i],
                languages[i],
                seconds,
                heard.text,
            )
            if heard.text:
                results[i] = [Segment(0.0, round(durations[i], 3), *heard.as_result())]
            if on_done is not None:
                on_done(i, results[i])

        encoded = np.asarray(encoded)
        by_length: dict[int, list[int]] = {}  # CTranslate2 decodes a batch of prompts of one length
        for i, prompt in enumerate(prompts):
            by_length.setdefault(len(prompt), []).append(i)
        for group in by_length.values():
            self._decode(
                encoded[group],
                [prompts[i] for i in group],
                tokenizers[0],
                [limits[i] for i in group],
                lambda j, heard, group=group: decided(group[j], heard),
            )
        return results

    def _decode(
        self,
        encoded: np.ndarray,
        prompts: list[list[int]],
        tokenizer: object,
        limits: list[int],
        decided: Callable[[int, _Try], None],
    ) -> None:
        """Decode each encoded turn and hand its chosen decoding to ``decided`` (turn index, decoding):
        greedy first, then hotter sampling for the turns whose text loops or whose model is unsure (as
        faster-whisper), the turns still open at each temperature decoded together. ``tokenizer`` only
        needs the shared special tokens."""
        import ctranslate2
        from faster_whisper.transcribe import get_suppressed_tokens

        suppress = get_suppressed_tokens(tokenizer, [-1])
        tried: list[list[_Try]] = [[] for _ in prompts]
        open_turns = list(range(len(prompts)))
        for temperature in self.temperatures:
            if not open_turns:
                return
            options: dict[str, object] = (
                {"beam_size": 1, "sampling_topk": 0, "sampling_temperature": temperature}
                if temperature > 0
                else {"beam_size": self.beam_size}
            )
            batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded[open_turns]))
            results = self.model.model.generate(
                batch,
                [prompts[i] for i in open_turns],
                max_length=max(limits[i] for i in open_turns),
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=suppress,
                **options,
            )
            still_open = []
            for i, result in zip(open_turns, results, strict=True):
                attempt = _Try.of(result, tokenizer, limits[i] - len(prompts[i]))
                tried[i].append(attempt)
                if attempt.silent or attempt.good:
                    decided(i, attempt)
                else:
                    still_open.append(i)
            open_turns = still_open
        for i in open_turns:
            decided(i, _Try.best(tried[i]))

    @staticmethod
    def _checked(audio: np.ndarray) -> np.ndarray:
        """1-D float32 samples, or ValueError naming what is wrong."""
        samples = np.asarray(audio)
        if samples.ndim != 1:
            raise ValueError(f"expected 1-D mono audio, got shape {samples.shape}")
        if not np.issubdtype(samples.dtype, np.floating):
            raise ValueError(f"expected float samples in [-1, 1], got dtype {samples.dtype}")
        return samples.astype(np.float32, copy=False)

    def transcribe_file(self, path: str | os.PathLike[str], language: str | None = None) -> list[Segment]:
        """Decode ``path`` to 16 kHz mono (all channels mixed) and transcribe it.

        Raises :class:`audio.decode.AudioDecodeError` if the file cannot be decoded.
        """
        decoded = decode_file(path, sample_rate=SAMPLE_RATE, mono=True)
        return self.transcribe(decoded.samples[0], language=language)


@dataclass(frozen=True)
class _Try:
    """One decoding of one turn at one temperature, and what Whisper's fallback rules make of it."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float

    @classmethod
    def of(cls, result: object, tokenizer: object, max_new: int) -> _Try:
        """From a CTranslate2 WhisperGenerationResult; tokens past ``max_new`` (a turn decoded in a batch
        that allows longer ones) are dropped, as a decode of that turn alone would have stopped there."""
        tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot][:max_new]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        text = tokenizer.decode(tokens).strip()
        ratio = len(text.encode()) / max(1, len(zlib.compress(text.encode())))
        return cls(text, avg_logprob, result.no_speech_prob, ratio)

    @property
    def silent(self) -> bool:
        return self.no_speech_prob > NO_SPEECH_LIMIT and self.avg_logprob < LOG_PROB_LIMIT

    @property
    def loops(self) -> bool:
        """Whether the text loops: too compressible (faster-whisper's rule, for long texts), or a phrase
        written twice in a row (:mod:`models.loops`; a short turn's loop barely compresses)."""
        return self.compression_ratio > COMPRESSION_RATIO_LIMIT or bool(find_loops(self.text.split()))

    @property
    def good(self) -> bool:
        return not self.loops and self.avg_logprob >= LOG_PROB_LIMIT

    @staticmethod
    def best(tried: list[_Try]) -> _Try:
        """When no temperature satisfied the rules: the surest decoding that does not loop."""
        not_looping = [t for t in tried if not t.loops] or tried
        return max(not_looping, key=lambda t: t.avg_logprob)

    def as_result(self) -> tuple[str, float, float]:
        return self.text, self.avg_logprob, self.no_speech_prob
