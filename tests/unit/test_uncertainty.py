"""Conformal intervals, p(sensitive), percentiles and the OOD score (drp.uncertainty), on synthetic residuals
and profiles (named as such) with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from drp.uncertainty import (NeighbourDistance, conformal_halfwidth, fold_coverage, halfwidths, out_of_fold_residuals,
                             probability_sensitive, training_percentile)


def synthetic_residuals(n_cells=400, drugs=("a", "b"), scales=(1.0, 3.0), folds=5, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = [pd.DataFrame({"cell_line": [f"c{i}" for i in range(n_cells)], "drug": drug,
                            "fold": np.arange(n_cells) % folds, "residual": rng.normal(0, scale, n_cells)})
              for drug, scale in zip(drugs, scales)]
    return pd.concat(frames, ignore_index=True)


def test_halfwidth_is_the_finite_sample_quantile():
    residuals = np.arange(1, 20, dtype=float)  # 19 residuals: rank ceil(20 * 0.9) = 18
    assert conformal_halfwidth(residuals, 0.9) == 18.0
    assert conformal_halfwidth(-residuals, 0.9) == 18.0  # absolute values
    assert math.isinf(conformal_halfwidth(np.arange(1, 9, dtype=float), 0.9))  # 8 residuals: rank 9 > 8


def test_halfwidth_counts_cell_lines_once_over_repeats():
    residuals = np.arange(1, 20, dtype=float)
    repeated = np.repeat(residuals, 3)  # 19 cell lines, 3 repeats each: the same quantile, same finite-sample rank
    assert conformal_halfwidth(repeated, 0.9, n=19) == 18.0
    assert math.isinf(conformal_halfwidth(np.repeat(np.arange(1, 9, dtype=float), 3), 0.9, n=8))
    assert conformal_halfwidth(np.arange(1, 101, dtype=float), 0.55) == 56.0  # ceil(101 * 0.55) = 56, not 57


def test_halfwidths_follow_each_drugs_own_spread():
    widths = halfwidths(synthetic_residuals(), 0.9)
    assert widths["a"] == pytest.approx(1.645, rel=0.15)
    assert widths["b"] == pytest.approx(3 * 1.645, rel=0.15)


def test_fold_coverage_is_near_nominal_on_exchangeable_residuals():
    coverage = fold_coverage(synthetic_residuals(n_cells=1000), 0.9)
    assert len(coverage) == 5 and (coverage.pairs == 400).all()
    pooled = coverage.covered.sum() / coverage.pairs.sum()
    assert abs(pooled - 0.9) < 0.02


def test_fold_coverage_uses_only_other_folds():
    residuals = synthetic_residuals(n_cells=500)
    residuals.loc[residuals.fold == 0, "residual"] *= 10  # fold 0 is far noisier than the others
    coverage = fold_coverage(residuals, 0.9).set_index("fold")
    assert coverage.loc[0, "coverage"] < 0.5  # its own large residuals did not widen its intervals
    assert coverage.loc[1, "coverage"] > 0.9  # the others' intervals widened by fold 0's


def test_fold_coverage_keeps_repeats_apart():
    first, second = synthetic_residuals(seed=1), synthetic_residuals(seed=2)
    second["fold"] += 5
    second["residual"] *= 100  # repeat 1: a different scale; mixing repeats would wreck repeat 0's coverage
    coverage = fold_coverage(pd.concat([first, second]), 0.9, {0: [0, 1, 2, 3, 4], 1: [5, 6, 7, 8, 9]})
    assert len(coverage) == 10 and coverage.coverage.between(0.8, 0.98).all()


def test_probability_sensitive_is_the_residual_distribution_beyond_the_threshold():
    residuals = pd.DataFrame({"drug": "a", "residual": np.arange(-49.5, 50.5, 1.0)})  # 100 residuals, symmetric
    thresholds = pd.Series({"a": 0.0})
    p = probability_sensitive(np.array([0.0, 100.0, -100.0]), np.array(["a", "a", "a"]), residuals, thresholds, True)
    assert p[0] == pytest.approx(51 / 102)  # half the residuals below 0
    assert p[1] == pytest.approx(1 / 102) and p[2] == pytest.approx(101 / 102)
    higher = probability_sensitive(np.array([100.0]), np.array(["a"]), residuals, thresholds, False)
    assert higher[0] == pytest.approx(101 / 102)
    assert np.isnan(probability_sensitive(np.array([0.0]), np.array(["b"]), residuals, thresholds, True)[0])


def test_training_percentile():
    training = pd.DataFrame({"drug": "a", "response": np.arange(1.0, 11.0)})
    assert training_percentile(np.array([0.0, 5.0, 10.0, 11.0]), np.array(["a"] * 4), training).tolist() == \
        [0.0, 50.0, 100.0, 100.0]


def test_out_of_fold_residuals_are_observed_minus_predicted():
    predictions = pd.DataFrame({"cell_line": ["x", "y"], "drug": ["a", "a"], "y_true": [1.0, 2.0],
                                "y_pred": [0.5, 3.0], "fold": [0, 1], "model": ["m", "other"]})
    residuals = out_of_fold_residuals(predictions, "m")
    assert residuals.residual.tolist() == [0.5] and residuals.cell_line.tolist() == ["x"]
    with pytest.raises(ValueError, match="no cross-validation predictions of model 'missing'"):
        out_of_fold_residuals(predictions, "missing")


def synthetic_profiles(n, p=50, rank=3, seed=0):
    """Profiles on a low-dimensional structure plus noise, like correlated gene programmes."""
    rng = np.random.default_rng(seed)
    loadings = np.random.default_rng(99).normal(size=(rank, p))
    return rng.normal(size=(n, rank)) @ loadings + 0.1 * rng.normal(size=(n, p))


def test_ood_flags_about_the_quantile_of_new_draws_and_every_shuffled_profile():
    ood = NeighbourDistance(k=5, threshold_quantile=0.95).fit(synthetic_profiles(600))
    assert np.mean(ood.flag(ood.training_scores)) == pytest.approx(0.05, abs=0.01)
    new = synthetic_profiles(1000, seed=1)
    assert 0.02 <= np.mean(ood.flag(ood.score(new))) <= 0.10
    rng = np.random.default_rng(2)
    shuffled = np.array([rng.permutation(row) for row in new])  # the same values, no structure
    # a profile near the centre stays near it when shuffled (about a tenth here): most, not all, are flagged
    assert np.mean(ood.flag(ood.score(shuffled))) > 0.85


def test_ood_refuses_too_few_training_lines():
    with pytest.raises(ValueError, match="needs more than k = 5"):
        NeighbourDistance(k=5).fit(np.zeros((5, 3)))
