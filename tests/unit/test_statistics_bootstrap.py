"""The bootstrap over cell lines of the comparison with the strongest baseline (drp.statistics.cell_line_bootstrap)
on SYNTHETIC predictions: cell lines tested once per repeat, models built to be as good as the reference, or
clearly better; the weighted Pearson checked by hand against repeated rows; and the README table printer's
formatting of the intervals (bench/results_tables.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drp.metrics import pearson
from drp.statistics import (BOOTSTRAP_COLUMNS, COMPARISON_COLUMNS, cell_line_bootstrap, compare_over_folds,
                            cross_study_comparison,
                            pearson_fold_means, weighted_pearson)

MIN_PAIRS = 10


def _synthetic(n_cells: int = 150, n_drugs: int = 12, repeats: int = 2, folds: int = 3,
               seed: int = 0) -> dict[str, pd.DataFrame]:
    """Every cell line tested once per repeat (folds 0-2 repeat 0, 3-5 repeat 1), 90% of the pairs measured.
    y = a cell line's drug-specific signal + noise; the reference predicts the signal + noise of sd 1, "noisy"
    the same with the noise drawn anew (the reference's equal, up to noise), "better" the signal + noise of
    sd 0.3, "constant" the drug's mean (no Pearson)."""
    rng = np.random.default_rng(seed)
    cells = np.array([f"c{i:03d}" for i in range(n_cells)])
    signal = rng.normal(size=(n_cells, n_drugs))
    y = signal + 0.5 * rng.normal(size=(n_cells, n_drugs))
    measured = rng.random((n_cells, n_drugs)) < 0.9
    cell, drug = np.nonzero(measured)
    base = pd.DataFrame({"cell_line": cells[cell], "drug": [f"d{d:02d}" for d in drug], "y_true": y[cell, drug]})
    truth = signal[cell, drug]
    reference = truth + rng.normal(size=len(base))
    predictions = {"reference": reference, "noisy": truth + rng.normal(size=len(base)),
                   "better": truth + 0.3 * rng.normal(size=len(base)),
                   "constant": base.groupby("drug")["y_true"].transform("mean").to_numpy()}
    parts = {name: [] for name in predictions}
    for repeat in range(repeats):
        fold_of = dict(zip(cells, repeat * folds + rng.permutation(np.arange(n_cells) % folds)))
        fold = base["cell_line"].map(fold_of).to_numpy()
        for name, values in predictions.items():  # the same prediction in every repeat keeps the test small
            parts[name].append(base.assign(y_pred=values, fold=fold))
    return {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}


# --- the weighted Pearson ----------------------------------------------------------------------------

def test_weighted_pearson_by_hand_equals_repeated_rows():
    """y = (0, 1, 2), p = (0, 2, 1), counts (2, 1, 1): the rows (0, 0), (0, 0), (1, 2), (2, 1). Means 3/4;
    deviations y: (-3/4, -3/4, 1/4, 5/4), p: (-3/4, -3/4, 5/4, 1/4); cross products 9/16 + 9/16 + 5/16 + 5/16 =
    28/16, squares 9/16 + 9/16 + 1/16 + 25/16 = 44/16 on both sides: r = 28/44 = 7/11."""
    assert weighted_pearson([0, 1, 2], [0, 2, 1], [2, 1, 1]) == pytest.approx(7 / 11)
    assert pearson([0, 0, 1, 2], [0, 0, 2, 1]) == pytest.approx(7 / 11)
    rng = np.random.default_rng(1)
    y, p = rng.normal(size=40), rng.normal(size=40)
    counts = rng.multinomial(40, np.full(40, 1 / 40))
    repeated = np.repeat(np.arange(40), counts)
    assert weighted_pearson(y, p, counts) == pytest.approx(pearson(y[repeated], p[repeated]), abs=1e-12)
    assert weighted_pearson(y, p, np.ones(40)) == pytest.approx(pearson(y, p), abs=1e-12)


def test_weighted_pearson_undefined_as_pearson():
    assert np.isnan(weighted_pearson([0, 1, 2], [0, 2, 1], [1, 1, 0]))  # two rows in the resample
    assert np.isnan(weighted_pearson([0, 1, 2, 3], [5, 5, 5, 1], [1, 2, 1, 0]))  # constant prediction where drawn
    assert not np.isnan(weighted_pearson([0, 1, 2], [0, 2, 1], [2, 0, 1]))  # 3 rows of 2 distinct pairs: +-1
    assert weighted_pearson([0, 1, 2], [0, 2, 1], [2, 0, 1]) == pytest.approx(1.0)


def test_fold_means_match_the_loop_over_drugs_and_the_unweighted_metric():
    """The vectorized sums give, per resample and fold, the mean over scored drugs of ``weighted_pearson``;
    with every count 1, the per-fold mean per-drug Pearson of drp.metrics."""
    frame = _synthetic(n_cells=60, n_drugs=5)["reference"]
    cells = pd.Index(sorted(frame["cell_line"].unique()))
    rng = np.random.default_rng(2)
    counts = np.vstack([np.ones(len(cells)), rng.multinomial(len(cells), np.full(len(cells), 1 / len(cells)), size=3)])
    means = pearson_fold_means(frame, cells, counts, MIN_PAIRS)
    assert list(means.columns) == sorted(frame["fold"].unique()) and means.shape == (4, 6)
    for fold, part in frame.groupby("fold"):
        groups = [g for _, g in part.groupby("drug") if len(g) >= MIN_PAIRS]
        assert means.loc[0, fold] == pytest.approx(np.mean([pearson(g.y_true, g.y_pred) for g in groups]), abs=1e-12)
        for b in range(1, 4):
            expected = np.nanmean([weighted_pearson(g.y_true, g.y_pred, counts[b, cells.get_indexer(g.cell_line)])
                                   for g in groups])
            assert means.loc[b, fold] == pytest.approx(expected, abs=1e-12)


# --- the interval ------------------------------------------------------------------------------------

def test_bootstrap_interval_covers_zero_for_noise_and_excludes_it_for_a_better_model():
    predictions = _synthetic()
    table = cell_line_bootstrap(predictions, "reference", MIN_PAIRS, samples=300, seed=0).set_index("model")
    assert list(table.columns) == BOOTSTRAP_COLUMNS
    low, high = table.loc["noisy"]
    assert low < 0 < high  # the reference's equal up to noise: no difference to find
    assert high - low < 0.1
    low, high = table.loc["better"]
    assert 0 < low < high  # less noise: clearly better
    assert tuple(table.loc["reference"]) == (0.0, 0.0)  # paired on the same resamples
    assert table.loc["constant"].isna().all()  # constant within every drug: no Pearson, no difference


def test_bootstrap_interval_holds_the_observed_difference():
    predictions = _synthetic()
    table = cell_line_bootstrap(predictions, "reference", MIN_PAIRS, samples=300, seed=0).set_index("model")
    cells = pd.Index(sorted(predictions["reference"]["cell_line"].unique()))
    ones = np.ones((1, len(cells)))
    observed = (pearson_fold_means(predictions["better"], cells, ones, MIN_PAIRS)
                - pearson_fold_means(predictions["reference"], cells, ones, MIN_PAIRS)).mean(axis=1).iloc[0]
    assert table.loc["better", "bootstrap_ci_low"] < observed < table.loc["better", "bootstrap_ci_high"]


def test_bootstrap_deterministic_under_a_seed():
    predictions = _synthetic(n_cells=60, n_drugs=4)
    first = cell_line_bootstrap(predictions, "reference", MIN_PAIRS, samples=50, seed=7)
    pd.testing.assert_frame_equal(first, cell_line_bootstrap(predictions, "reference", MIN_PAIRS, samples=50, seed=7))
    other = cell_line_bootstrap(predictions, "reference", MIN_PAIRS, samples=50, seed=8)
    assert not np.allclose(first.set_index("model").loc["better"], other.set_index("model").loc["better"])


def test_repeats_are_resampled_together():
    """The same cell lines counted the same way in every repeat: two identical repeats give the interval of
    one (resampling each repeat on its own would narrow it without any new cell line)."""
    one = _synthetic(n_cells=90, n_drugs=6, repeats=1, seed=3)
    two = {name: pd.concat([frame, frame.assign(fold=frame["fold"] + 3)], ignore_index=True)
           for name, frame in one.items()}
    single = cell_line_bootstrap(one, "reference", MIN_PAIRS, samples=200, seed=5)
    doubled = cell_line_bootstrap(two, "reference", MIN_PAIRS, samples=200, seed=5)
    pd.testing.assert_frame_equal(single, doubled, atol=1e-12, rtol=0)


def test_unknown_reference_raises():
    with pytest.raises(ValueError, match="reference"):
        cell_line_bootstrap(_synthetic(n_cells=30, n_drugs=2), "ridge", MIN_PAIRS, samples=5)


def test_comparison_table_carries_the_bootstrap_columns():
    folds = np.arange(6)
    per_fold = pd.concat([pd.DataFrame({"model": "ref", "fold": folds, "pearson": 0.5 + 0.01 * folds}),
                          pd.DataFrame({"model": "m", "fold": folds, "pearson": 0.55 + 0.01 * folds})])
    fold_repeat = {f: f // 3 for f in folds}
    bootstrap = pd.DataFrame({"model": ["m", "ref"], "bootstrap_ci_low": [0.04, 0.0], "bootstrap_ci_high": [0.06, 0.0]})
    table = compare_over_folds(per_fold, "ref", "pearson", fold_repeat, 0.25, bootstrap).set_index("model")
    assert list(table.reset_index().columns) == COMPARISON_COLUMNS
    assert COMPARISON_COLUMNS.index("bootstrap_ci_low") == COMPARISON_COLUMNS.index("ci_high") + 1
    assert tuple(table.loc["m", BOOTSTRAP_COLUMNS]) == (0.04, 0.06)
    without = compare_over_folds(per_fold, "ref", "pearson", fold_repeat, 0.25)
    assert without[BOOTSTRAP_COLUMNS].isna().all().all() and list(without.columns) == COMPARISON_COLUMNS


# --- the README table printer ------------------------------------------------------------------------

def _results_tables():
    path = Path(__file__).resolve().parents[2] / "bench" / "results_tables.py"
    spec = importlib.util.spec_from_file_location("results_tables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_cells_print_na_without_a_finite_difference():
    tables = _results_tables()
    assert tables.difference(0.0044, -0.0081, 0.017) == "+0.004 (-0.008, +0.017)"
    assert tables.difference(float("nan"), float("nan"), float("nan")) == "n/a"
    assert tables.difference(-0.1, float("nan"), float("nan")) == "-0.100"
    assert tables.interval(-0.0031, 0.0118) == "(-0.003, +0.012)"
    assert tables.interval(float("nan"), 0.1) == "n/a"


# --- the cross-study comparison over repeats ------------------------------------------------------------

def test_cross_study_comparison_per_repeat_means_and_interval():
    """Each repeat of the synthetic folds tests every cell line once, as a cross-study target is predicted once
    per repeat of the source's folds: a model's value per repeat is the per-drug Pearson over the repeat's pairs
    (all its folds pooled), averaged over drugs; the strongest baseline is the reference."""
    predictions = _synthetic(repeats=3)
    fold_repeat = {fold: fold // 3 for fold in range(9)}
    table = cross_study_comparison(predictions, fold_repeat, ["noisy", "reference"], MIN_PAIRS, samples=300,
                                   seed=0).set_index("model")
    by_hand = {name: [np.mean([pearson(d.y_true, d.y_pred) for _, d in frame[frame.fold // 3 == r].groupby("drug")])
                      for r in range(3)] for name, frame in predictions.items() if name != "constant"}
    reference = max(["noisy", "reference"], key=lambda name: np.mean(by_hand[name]))
    assert (table.reference == reference).all()
    for name, values in by_hand.items():
        assert table.loc[name, "mean"] == pytest.approx(np.mean(values))
        assert table.loc[name, "sd"] == pytest.approx(np.std(values, ddof=1))
        assert table.loc[name, "mean_difference"] == pytest.approx(np.mean(values) - np.mean(by_hand[reference]))
    better = table.loc["better"]
    assert better.bootstrap_ci_low > 0 and better.bootstrap_ci_low <= better.mean_difference <= better.bootstrap_ci_high
    other = "noisy" if reference == "reference" else "reference"
    assert table.loc[other, "bootstrap_ci_low"] < 0 < table.loc[other, "bootstrap_ci_high"]  # equal up to noise
    assert np.isnan(table.loc["constant", "mean"])  # no Pearson for a prediction constant within every drug
    with pytest.raises(ValueError, match="none of them has cross-study predictions"):
        cross_study_comparison(predictions, fold_repeat, ["ridge"], MIN_PAIRS)
