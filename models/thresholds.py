"""Per-category decision thresholds, calibrated on held-out scores of the pack's own phrases.

Categories differ in how tightly their examples cluster, so one global cut-off is wrong for some of them.
Each category's threshold is the cut that best separates its examples from every other phrase of the pack
(F1 on out-of-fold scores), kept inside a band so that a pack with few or very uniform examples cannot
push it to a degenerate value.
"""

from __future__ import annotations

import numpy as np

THRESHOLD_BAND = (0.3, 0.5)


def calibrate_threshold(
    scores: np.ndarray, positive: np.ndarray, band: tuple[float, float] = THRESHOLD_BAND
) -> float:
    """The cut with the best F1 of `positive` on `scores`, clipped to `band`."""
    low, high = band
    best, best_f1 = (low + high) / 2, -1.0
    n_pos = int(positive.sum())
    if n_pos == 0:
        return high
    for cut in np.arange(low, high + 1e-9, 0.01):
        predicted = scores >= cut
        tp = int((predicted & positive).sum())
        f1 = 2 * tp / (int(predicted.sum()) + n_pos)
        if f1 > best_f1 + 1e-9:
            best, best_f1 = float(cut), f1
    return best
