"""The ridge probe's out-of-fold scores: what calibrates every category's threshold."""

from __future__ import annotations

import numpy as np
import pytest

from models.probe import fit_probe, out_of_fold


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 8))
    y = (x[:, :3] > 0.3).astype(float)  # three "categories", each read off one direction
    keys = [f"phrase {i}" for i in range(len(x))]
    return x, y, keys


def test_order_of_phrases_does_not_change_any_score(data):
    """A trainer who reorders the pack's phrases gets the same scores, so the same thresholds."""
    x, y, keys = data
    order = np.random.default_rng(1).permutation(len(x))
    again = out_of_fold(x[order], y[order], 1.0, [keys[i] for i in order])
    np.testing.assert_allclose(again, out_of_fold(x, y, 1.0, keys)[order])


def test_a_phrase_never_scores_itself(data):
    """Flipping one phrase's label leaves its own held-out score as it was."""
    x, y, keys = data
    flipped = y.copy()
    flipped[5] = 1.0 - flipped[5]
    np.testing.assert_allclose(out_of_fold(x, flipped, 1.0, keys)[5], out_of_fold(x, y, 1.0, keys)[5])


def test_adding_a_phrase_keeps_every_other_phrases_folds(data):
    """With one phrase more, the others are held out with the same companions: their scores move only
    by what the new phrase teaches, far less than a reshuffle of folds would move them."""
    x, y, keys = data
    base = out_of_fold(x[:-1], y[:-1], 1.0, keys[:-1])
    grown = out_of_fold(x, y, 1.0, keys)[:-1]
    shifted = out_of_fold(x[:-1], y[:-1], 1.0, [f"other {k}" for k in keys[:-1]])
    assert np.abs(grown - base).mean() < np.abs(shifted - base).mean()


def test_held_out_scores_track_the_targets(data):
    """Out-of-fold scores still separate the categories (a probe, not noise)."""
    x, y, keys = data
    oof = out_of_fold(x, y, 1.0, keys)
    for c in range(y.shape[1]):
        assert oof[y[:, c] == 1, c].mean() > oof[y[:, c] == 0, c].mean() + 0.3
    assert fit_probe(x, y, 1.0).scores(x).shape == y.shape


def test_keys_must_match_rows(data):
    x, y, keys = data
    with pytest.raises(ValueError, match="59 keys for 60 rows"):
        out_of_fold(x, y, 1.0, keys[:-1])


def test_a_row_of_weight_two_counts_as_that_row_twice(data):
    """Weights (heard variants count as half a phrase) weigh a row's error as if it were repeated:
    weight 2 on a row gives the probe that row written twice, weights of one give the plain probe."""
    x, y, _ = data
    probe = np.random.default_rng(3).normal(size=(5, 8))
    plain = fit_probe(x, y, 1.0).scores(probe)
    np.testing.assert_allclose(fit_probe(x, y, 1.0, np.ones(len(x))).scores(probe), plain)
    weights = np.ones(len(x))
    weights[4] = 2.0
    twice = fit_probe(np.vstack([x, x[4:5]]), np.vstack([y, y[4:5]]), 1.0).scores(probe)
    np.testing.assert_allclose(fit_probe(x, y, 1.0, weights).scores(probe), twice)
    assert not np.allclose(twice, plain)
