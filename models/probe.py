"""A ridge linear probe over sentence embeddings: which directions of meaning make a category.

Nearest-example similarity alone is blunt with small multilingual encoders: every short sentence is
0.9-similar to every other. A linear map learned from the pack's examples picks out the directions that
separate categories. Ridge regression onto one-hot targets has a closed form (one linear solve for all
categories), so it trains in milliseconds at start-up; out-of-fold predictions feed the per-category heads
without leaking an example into its own score.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FOLDS = 5
REPEATS = 4  # fold assignments averaged: one assignment's luck moved a threshold by up to 0.09


@dataclass(frozen=True)
class RidgeProbe:
    """scores = ((x - mean) / scale) @ weights + bias, one column per category."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray

    def scores(self, x: np.ndarray) -> np.ndarray:
        return ((np.atleast_2d(x) - self.mean) / self.scale) @ self.weights + self.bias


def fit_probe(x: np.ndarray, y: np.ndarray, alpha: float, weights: np.ndarray | None = None) -> RidgeProbe:
    """Closed-form ridge regression of targets `y` (n, categories) on embeddings `x` (n, dim); `weights`
    (n,), if given, weigh each row's squared error (a row of weight 0.5 counts as half a phrase)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    share = w / w.sum()
    mean, y_mean = share @ x, share @ y
    # Sentence embeddings are anisotropic: a few directions carry most of the variance and the
    # meaning that separates categories hides in the quiet ones. Standardising each dimension lets
    # the ridge penalty treat them alike.
    scale = np.sqrt(share @ (x - mean) ** 2) + 1e-6
    xc = (x - mean) / scale
    wxc = xc * w[:, None]
    gram = xc.T @ wxc + alpha * np.eye(x.shape[1])
    coef = np.linalg.solve(gram, wxc.T @ (y - y_mean))
    return RidgeProbe(mean, scale, coef, y_mean)


def out_of_fold(
    x: np.ndarray,
    y: np.ndarray,
    alpha: float,
    keys: Sequence[str],
    folds: int = FOLDS,
    repeats: int = REPEATS,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Each row scored by probes that never saw it, averaged over `repeats` assignments of folds.

    A row's fold is read off a hash of its key (the phrase), not off its position: a trainer who reorders
    a pack's phrases gets the same thresholds, and one who adds a phrase moves no other phrase to another
    fold. (Interleaved folds by position made the thresholds depend on the order phrases were written in.)
    """
    if len(keys) != len(x):
        raise ValueError(f"{len(keys)} keys for {len(x)} rows")
    oof = np.zeros(y.shape, dtype=np.float64)
    for repeat in range(repeats):
        fold = np.array([zlib.crc32(f"{repeat}|{key}".encode()) % folds for key in keys])
        for k in range(folds):
            held = fold == k
            if held.any() and (~held).any():
                w = None if weights is None else weights[~held]
                oof[held] += fit_probe(x[~held], y[~held], alpha, w).scores(x[held])
    return oof / repeats
