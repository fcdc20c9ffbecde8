"""Who spoke when in a mono recording: at most two voices told apart by Resemblyzer's voice encoder.

A call centre's mono recording holds an agent and a customer on one channel. Their voices are told apart
with the d-vector network of `Resemblyzer <https://github.com/resemble-ai/Resemblyzer>`_ (a 3-layer LSTM
over 40 mel bands, 256-dimensional L2-normed embeddings of 1.6 s of speech), whose weights ship inside its
PyPI wheel (``pip install 'callbuffer[diarization]'``), so nothing is downloaded at run time.

How a recording is diarized (:meth:`Diarizer.diarize`):

* only speech is looked at: the spans the caller gives (the audit passes Whisper's word times), else the
  10 ms frames within ``ENERGY_FLOOR_DB`` of the loudest ones and above ``SILENCE_DBFS``. The speech
  frames are put end to end, brought to Resemblyzer's -30 dBFS, and the encoder embeds ``WINDOW`` frames
  (1.6 s, what it was trained on) every ``STEP`` frames, in batches on the CPU;
* the windows are split into two clusters by cosine similarity (the principal direction of the
  embeddings, then spherical 2-means). When the two centroids are more alike than ``SAME_VOICE``, or the
  smaller cluster holds fewer than ``MIN_WINDOWS`` windows, there is one voice: a second speaker is never
  invented. Less than ``MIN_SPEECH`` seconds of speech is one voice too;
* each frame gets the mean, over the windows covering it, of how much closer the window is to one centroid
  than the other (this is the smoothing), and the sign decides its speaker;
* speakers are numbered in order of appearance: speaker 0 is the one heard first (the audit takes it as
  the agent, whose greeting opens a call).

The encoder is loaded on first use, once per process (:func:`load_encoder`). Without the ``resemblyzer``
package, :class:`DiarizationUnavailable` is raised and the audit falls back to ``unknown`` speakers.

Resemblyzer's network is rebuilt here (the same ``torch`` modules, its shipped ``pretrained.pt``) and its
mel spectrogram (librosa's, Slaney mel scale) is computed with numpy: importing the ``resemblyzer``
package imports ``webrtcvad``, whose 2.0.10 release needs ``pkg_resources`` (gone from setuptools 81), and
librosa's first call JIT-compiles for ~20 s. ``tests/models/test_diarization.py`` checks both against the
originals when they import.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP = 160  # samples: 10 ms mel frames
N_FFT = 400  # samples: 25 ms windows
N_MELS = 40
WINDOW = 160  # frames: 1.6 s of speech per embedding, Resemblyzer's partial utterance
STEP = 40  # frames: one embedding every 0.4 s of speech
BATCH = 64  # windows per forward pass
TARGET_DBFS = -30.0  # speech level Resemblyzer normalises its input to
ENERGY_FLOOR_DB = 40.0  # without spans: frames this far below the loud ones are silence
SILENCE_DBFS = -55.0  # without spans: quieter frames are silence whatever the loud ones (line noise)
# Cosine similarity of the two clusters' centroids above which they are one voice. Measured on this
# module's windows: one voice 0.94-0.97 (espeak-ng, festival's Russian voice, an asterisk prompt), two
# voices 0.87-0.90 (pyannote's sample call; festival against its own voice pitch-shifted down 3
# semitones). Resemblyzer puts telephone voices close together, so the margin is narrow on both sides.
SAME_VOICE = 0.91
MIN_WINDOWS = 3  # a voice needs at least this many windows (~2.4 s of speech) to count
# Less speech than this is one voice: two short utterances of one espeak-ng voice (5 s) split apart.
MIN_SPEECH = 8.0
KMEANS_ROUNDS = 20


class DiarizationUnavailable(RuntimeError):
    """The voice encoder cannot be loaded (``resemblyzer`` is not installed, or its weights are missing)."""


@dataclass(frozen=True)
class SpeakerTurn:
    """A stretch of speech by one speaker (0 = heard first), in seconds."""

    start: float
    end: float
    speaker: int


@dataclass(frozen=True)
class Diarization:
    """The speakers of a recording: ``speakers`` heard (0, 1 or 2), their ``turns`` in time order, and
    ``similarity``, the cosine similarity of the two voices' centroids (``None`` below two clusters)."""

    speakers: int
    turns: tuple[SpeakerTurn, ...]
    similarity: float | None = None

    def speaker_of(self, start: float, end: float) -> int | None:
        """The speaker who talks most between ``start`` and ``end`` (the nearest turn's when none
        overlaps); ``None`` when nobody was heard."""
        if not self.turns:
            return None
        talk: dict[int, float] = {}
        for turn in self.turns:
            overlap = min(end, turn.end) - max(start, turn.start)
            if overlap > 0:
                talk[turn.speaker] = talk.get(turn.speaker, 0.0) + overlap
        if talk:
            return max(sorted(talk), key=talk.__getitem__)
        middle = (start + end) / 2
        return min(self.turns, key=lambda t: min(abs(middle - t.start), abs(middle - t.end))).speaker


# ------------------------------------------------------------------------------------------- encoder


def resemblyzer_weights() -> Path:
    """Where the installed ``resemblyzer`` package keeps ``pretrained.pt`` (found without importing it);
    :class:`DiarizationUnavailable` when the package is not installed."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise DiarizationUnavailable(
            "the 'resemblyzer' package is not installed (pip install 'callbuffer[diarization]')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


class VoiceEncoder:
    """Resemblyzer's speaker encoder on the CPU: (n, frames, 40) mel windows -> (n, 256) L2-normed
    embeddings. Build it with :func:`load_encoder`."""

    def __init__(self, weights: Path) -> None:
        import torch
        from torch import nn

        self._torch = torch
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        try:
            checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise DiarizationUnavailable(f"voice encoder weights not found: {weights}") from exc
        except Exception as exc:  # a corrupt or foreign file: torch raises many kinds
            raise DiarizationUnavailable(f"cannot load voice encoder weights {weights}: {exc}") from exc
        state = checkpoint.get("model_state", {}) if isinstance(checkpoint, dict) else {}
        try:
            self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
            self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        except RuntimeError as exc:
            raise DiarizationUnavailable(f"{weights} is not a Resemblyzer voice encoder: {exc}") from exc
        self.lstm.eval()
        self.linear.eval()

    def embed(self, mels: np.ndarray) -> np.ndarray:
        """Embeddings of equally long mel windows, ``BATCH`` at a time."""
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(mels), BATCH):
                out.append(self._forward(torch.from_numpy(np.ascontiguousarray(mels[i : i + BATCH]))))
        if not out:
            return np.zeros((0, 256), np.float32)
        return np.concatenate(out)

    def _forward(self, mels: torch.Tensor) -> np.ndarray:
        _, (hidden, _) = self.lstm(mels)
        raw = self._torch.relu(self.linear(hidden[-1]))
        return (raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()


_encoders: dict[Path, VoiceEncoder] = {}
_lock = threading.Lock()


def load_encoder(weights: str | Path | None = None) -> VoiceEncoder:
    """The voice encoder with ``weights`` (default: those shipped with ``resemblyzer``), loaded once per
    process and path; :class:`DiarizationUnavailable` when it cannot be."""
    path = Path(weights) if weights is not None else resemblyzer_weights()
    with _lock:
        if path not in _encoders:
            try:
                import torch  # noqa: F401
            except ImportError as exc:
                raise DiarizationUnavailable("torch is not installed") from exc
            started = time.perf_counter()
            _encoders[path] = VoiceEncoder(path)
            logger.info("loaded the voice encoder %s in %.2f s", path, time.perf_counter() - started)
        return _encoders[path]


# ----------------------------------------------------------------------------------------- features


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    mel = hz / (200.0 / 3)
    log = hz >= 1000.0
    mel[log] = 15.0 + np.log(hz[log] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    hz = mel * (200.0 / 3)
    log = mel >= 15.0
    hz[log] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log] - 15.0))
    return hz


def mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """``librosa.filters.mel(sr, n_fft, n_mels)``: Slaney-normalised triangles, shape (n_mels, n_fft//2+1)."""
    fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_hz = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([sample_rate / 2]))[0], n_mels + 2)
    )
    ramps = mel_hz[:, None] - fft_hz[None, :]
    widths = np.diff(mel_hz)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.cache
def _filters_and_window() -> tuple[np.ndarray, np.ndarray]:
    """The mel filter bank (transposed) and the periodic Hann window, built on first use."""
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    return np.ascontiguousarray(mel_filters().T), hann.astype(np.float32)


def mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """Resemblyzer's features: librosa's power mel spectrogram (centred 25 ms Hann frames every 10 ms,
    zero-padded), shape (frames, 40) float32; ``len(samples) // 160 + 1`` frames."""
    filters, hann = _filters_and_window()
    x = np.pad(np.asarray(samples, np.float32), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * hann, axis=1)) ** 2
    return (power.astype(np.float32) @ filters).astype(np.float32)


# ---------------------------------------------------------------------------------------- diarizer


class Diarizer:
    """Tells at most two voices apart in 16 kHz mono audio (see the module docstring).

    ``weights``: the encoder's weights (default: Resemblyzer's); a path that does not exist makes
    :meth:`diarize` raise :class:`DiarizationUnavailable`, which is how the fallback is exercised.
    ``same_voice``: the centroid cosine similarity above which two clusters are one voice."""

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        same_voice: float = SAME_VOICE,
        window: int = WINDOW,
        step: int = STEP,
        loader: Callable[[str | Path | None], VoiceEncoder] = load_encoder,
    ) -> None:
        self.weights = weights
        self.same_voice = same_voice
        self.window = window
        self.step = step
        self._loader = loader

    @property
    def encoder(self) -> VoiceEncoder:
        """The loaded encoder (loading it on first use); :class:`DiarizationUnavailable` if it cannot be."""
        return self._loader(self.weights)

    def diarize(
        self, samples: np.ndarray, speech: Sequence[tuple[float, float]] | None = None
    ) -> Diarization:
        """Who speaks when in ``samples`` (16 kHz mono float32). ``speech``: (start, end) seconds where
        someone talks (e.g. word times); ``None`` finds speech by energy."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        encoder = self.encoder
        mels = mel_spectrogram(samples)
        mask = _speech_mask(samples, len(mels), speech)
        frames = np.flatnonzero(mask)
        if frames.size == 0:
            return Diarization(0, ())
        level = _speech_gain(samples, frames)
        feats = mels[frames] * np.float32(level**2)
        starts = self._window_starts(frames.size)
        if len(starts) < 2 * MIN_WINDOWS or frames.size < MIN_SPEECH * 100:
            return Diarization(1, _turns(frames, np.zeros(frames.size, np.int8)))
        windows = np.stack([_padded(feats, s, self.window) for s in starts])
        embeddings = encoder.embed(windows)
        labels, centroids = _two_means(embeddings)
        similarity = float(centroids[0] @ centroids[1])
        counts = np.bincount(labels, minlength=2)
        logger.debug(
            "diarization: %d windows, clusters %s, centroid similarity %.3f", len(labels), counts, similarity
        )
        if similarity > self.same_voice or counts.min() < MIN_WINDOWS:
            return Diarization(1, _turns(frames, np.zeros(frames.size, np.int8)), similarity)
        # per frame: mean over covering windows of (closeness to voice 1 - closeness to voice 0)
        margin = embeddings @ centroids[1] - embeddings @ centroids[0]
        total = np.zeros(frames.size + 1, np.float64)
        cover = np.zeros(frames.size + 1, np.float64)
        for s, m in zip(starts, margin, strict=True):
            end = min(s + self.window, frames.size)
            total[s] += m
            total[end] -= m
            cover[s] += 1
            cover[end] -= 1
        score = np.cumsum(total)[:-1] / np.maximum(np.cumsum(cover)[:-1], 1)
        frame_labels = (score > 0).astype(np.int8)
        if frame_labels[: self.window].mean() > 0.5:  # number voices by appearance
            frame_labels = 1 - frame_labels
        turns = _turns(frames, frame_labels)
        heard = len({t.speaker for t in turns})
        return Diarization(heard, turns, similarity)

    def _window_starts(self, n: int) -> list[int]:
        """Window starts over ``n`` speech frames; the last window ends at the last frame."""
        if n <= self.window:
            return [0]
        starts = list(range(0, n - self.window + 1, self.step))
        if starts[-1] + self.window < n:
            starts.append(n - self.window)
        return starts


def _speech_mask(samples: np.ndarray, n: int, speech: Sequence[tuple[float, float]] | None) -> np.ndarray:
    """Which of the ``n`` 10 ms frames hold speech: inside the given spans, else loud enough."""
    if speech is None:
        blocks = _blocks(samples)
        level = 10 * np.log10(np.mean(np.square(blocks, dtype=np.float64), axis=1) + 1e-12)
        mask = np.zeros(n, bool)
        if level.size:
            floor = max(float(np.percentile(level, 95)) - ENERGY_FLOOR_DB, SILENCE_DBFS)
            mask[: level.size] = (level > floor)[:n]
        return mask
    mask = np.zeros(n, bool)
    for start, end in speech:
        a, b = max(0, int(round(start * 100))), min(n, int(round(end * 100)))
        if b > a:
            mask[a:b] = True
    return mask


def _speech_gain(samples: np.ndarray, frames: np.ndarray) -> float:
    """Gain that brings the speech frames to ``TARGET_DBFS`` RMS, as Resemblyzer's preprocessing does."""
    blocks = _blocks(samples)
    picked = blocks[frames[frames < len(blocks)]]
    rms = float(np.sqrt(np.mean(np.square(picked, dtype=np.float64)))) if picked.size else 0.0
    return 10 ** (TARGET_DBFS / 20) / rms if rms > 1e-6 else 1.0


def _blocks(samples: np.ndarray) -> np.ndarray:
    """The samples as 10 ms rows (the last one zero-padded)."""
    count = -(-samples.size // HOP)
    return np.pad(samples, (0, count * HOP - samples.size)).reshape(count, HOP)


def _padded(feats: np.ndarray, start: int, length: int) -> np.ndarray:
    """``length`` frames from ``start``; a short recording's only window is zero-padded."""
    piece = feats[start : start + length]
    if len(piece) < length:
        piece = np.pad(piece, ((0, length - len(piece)), (0, 0)))
    return piece


def _two_means(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two clusters of unit vectors: split along the principal direction, then spherical 2-means.
    Returns the labels and the two unit centroids."""
    centred = embeddings - embeddings.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    labels = (centred @ vt[0] > 0).astype(np.int8)
    centroids = np.zeros((2, embeddings.shape[1]), np.float32)
    for _ in range(KMEANS_ROUNDS):
        for k in (0, 1):
            members = embeddings[labels == k]
            mean = members.mean(axis=0) if len(members) else embeddings.mean(axis=0)
            centroids[k] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        new = np.argmax(embeddings @ centroids.T, axis=1).astype(np.int8)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels, centroids


def _turns(frames: np.ndarray, labels: np.ndarray) -> tuple[SpeakerTurn, ...]:
    """Runs of one speaker's speech frames as turns in seconds (a pause keeps the speaker's turn going)."""
    turns: list[SpeakerTurn] = []
    run_start = 0
    for i in range(1, frames.size + 1):
        if i == frames.size or labels[i] != labels[run_start] or frames[i] - frames[i - 1] > 1:
            turns.append(
                SpeakerTurn(
                    float(frames[run_start]) / 100, float(frames[i - 1] + 1) / 100, int(labels[run_start])
                )
            )
            run_start = i
    merged: list[SpeakerTurn] = []
    for turn in turns:
        if merged and merged[-1].speaker == turn.speaker:
            merged[-1] = SpeakerTurn(merged[-1].start, turn.end, turn.speaker)
        else:
            merged.append(turn)
    return tuple(merged)


def describe(result: Diarization) -> dict[str, Any]:
    """A JSON-ready summary of a diarization (for logs and the bench)."""
    return {
        "speakers": result.speakers,
        "similarity": None if result.similarity is None else round(result.similarity, 3),
        "turns": [(round(t.start, 2), round(t.end, 2), t.speaker) for t in result.turns],
    }
