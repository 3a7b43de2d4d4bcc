"""drp.statistics and its plots on SYNTHETIC data: predictions built so that one model's errors are smaller,
equal or larger than the reference's by construction, and tiny per-drug tables whose ranks, corrections
and critical differences are worked out by hand or against published tables (Demšar 2006)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from drp.plots import critical_difference_diagram, per_drug_heatmap
from drp.statistics import (ERROR_SUMMARY_COLUMNS, ERROR_TEST_COLUMNS, LOWER_IS_BETTER, PAIRWISE_COLUMNS,
                            benjamini_hochberg, best_baseline, cliques, critical_difference, holm, nemenyi_cd,
                            nemenyi_q, pairwise_metric_tests, per_drug_error_tests, signed_rank_test,
                            summarize_error_tests)

P_VALUES = [0.01, 0.04, 0.03, 0.2]


# --- synthetic predictions --------------------------------------------------------------------------

def _predictions(n_cells: int = 30, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Reference noise e per pair. "good": 0.3 e on drugs d0-d3 (smaller errors on every pair), e on d4
    (identical errors), 2 e on d5 (larger errors). d6 has only 5 pairs (below min_pairs)."""
    rng = np.random.default_rng(seed)
    frames = {"reference": [], "good": []}
    for d, scale in enumerate([0.3, 0.3, 0.3, 0.3, 1.0, 2.0, 0.3]):
        cells = [f"c{i}" for i in range(n_cells if d < 6 else 5)]
        y = rng.normal(size=len(cells))
        noise = rng.normal(size=len(cells))
        base = pd.DataFrame({"cell_line": cells, "drug": f"d{d}", "y_true": y, "fold": 0})
        frames["reference"].append(base.assign(y_pred=y + noise))
        frames["good"].append(base.assign(y_pred=y + scale * noise))
    return {name: pd.concat(parts, ignore_index=True) for name, parts in frames.items()}


def test_error_tests_verdicts_follow_construction():
    predictions = _predictions()
    tests = per_drug_error_tests(predictions, "reference", min_pairs=10)
    assert list(tests.columns) == ERROR_TEST_COLUMNS
    assert set(tests["model"]) == {"good"}  # the reference is never compared with itself
    assert set(tests["reference"]) == {"reference"}
    verdict = tests.set_index("drug")["verdict"].to_dict()
    assert verdict == {"d0": "better", "d1": "better", "d2": "better", "d3": "better",
                       "d4": "no difference", "d5": "worse"}  # d6 has 5 < 10 pairs
    d4 = tests.set_index("drug").loc["d4"]
    assert d4["p_value"] == 1.0 and d4["rank_biserial"] == 0.0  # all-zero differences
    d0 = tests.set_index("drug").loc["d0"]
    assert d0["rank_biserial"] == -1.0 and d0["n"] == 30  # every error smaller
    assert d0["median_abs_error"] < d0["reference_median_abs_error"]


def test_error_tests_statistic_is_scipy_wilcoxon():
    predictions = _predictions()
    tests = per_drug_error_tests(predictions, "reference", min_pairs=10).set_index("drug")
    good, ref = (predictions[m][predictions[m].drug == "d5"] for m in ("good", "reference"))
    d = (good.y_true - good.y_pred).abs().to_numpy() - (ref.y_true - ref.y_pred).abs().to_numpy()
    expected = stats.wilcoxon(d)
    assert tests.loc["d5", "statistic"] == pytest.approx(expected.statistic)
    assert tests.loc["d5", "p_value"] == pytest.approx(expected.pvalue)


def test_error_tests_q_values_are_bh_within_each_model():
    predictions = _predictions()
    predictions["other"] = predictions["good"].assign(y_pred=lambda f: f.y_pred + 0.05)
    tests = per_drug_error_tests(predictions, "reference", min_pairs=10)
    for _, group in tests.groupby("model"):
        expected = multipletests(group["p_value"], method="fdr_bh")[1]
        np.testing.assert_allclose(group["q_value"], expected)


def test_benjamini_hochberg_known_vector():
    # sorted p: .01 .03 .04 .2 -> p * m / rank: .04 .06 .0533 .2 -> running minimum from the top
    expected = [0.04, 0.16 / 3, 0.16 / 3, 0.2]
    np.testing.assert_allclose(benjamini_hochberg(P_VALUES), expected)
    np.testing.assert_allclose(benjamini_hochberg(P_VALUES), multipletests(P_VALUES, method="fdr_bh")[1])
    np.testing.assert_allclose(benjamini_hochberg(P_VALUES), stats.false_discovery_control(P_VALUES))
    with_nan = benjamini_hochberg([*P_VALUES, np.nan])
    assert np.isnan(with_nan[-1])
    np.testing.assert_allclose(with_nan[:-1], expected)  # a NaN is not counted as a test


def test_holm_known_vector():
    # sorted p: .01 .03 .04 .2 -> p * (m - rank + 1): .04 .09 .08 .2 -> running maximum: .04 .09 .09 .2
    np.testing.assert_allclose(holm(P_VALUES), [0.04, 0.09, 0.09, 0.2])


def test_pair_mismatch_raises_naming_the_model():
    predictions = _predictions()
    predictions["good"] = predictions["good"].iloc[1:]
    with pytest.raises(ValueError, match=r"'good'.*1 only in 'reference'"):
        per_drug_error_tests(predictions, "reference", min_pairs=10)


def test_duplicated_pairs_and_unknown_reference_raise():
    predictions = _predictions()
    predictions["good"] = pd.concat([predictions["good"], predictions["good"].iloc[:1]])
    with pytest.raises(ValueError, match="'good': duplicated"):
        per_drug_error_tests(predictions, "reference", min_pairs=10)
    with pytest.raises(ValueError, match="'nope' is not among"):
        per_drug_error_tests(_predictions(), "nope", min_pairs=10)


def test_summary_counts_and_alpha():
    tests = per_drug_error_tests(_predictions(), "reference", min_pairs=10)
    summary = summarize_error_tests(tests)
    assert list(summary.columns) == ERROR_SUMMARY_COLUMNS
    assert summary.iloc[0].to_dict() == {"model": "good", "reference": "reference", "drugs_tested": 6,
                                         "better": 4, "worse": 1, "no_difference": 1}
    strict = summarize_error_tests(tests, alpha=1e-30)  # nothing is that significant
    assert strict.iloc[0][["better", "worse", "no_difference"]].tolist() == [0, 0, 6]


def test_signed_rank_direction_and_zeros():
    statistic, p, r = signed_rank_test([0.0, 0.0, 0.0])
    assert (statistic, p, r) == (0.0, 1.0, 0.0)
    # zeros dropped; ranks of |d| = (1, 2, 3): R+ = 1 + 2, R- = 3 -> r = 0; R+ = 5, R- = 1 -> r = 4 / 6
    assert signed_rank_test([0.0, 1.0, 2.0, -3.0])[2] == pytest.approx(0.0)
    assert signed_rank_test([-1.0, 2.0, 3.0])[2] == pytest.approx(4 / 6)


# --- tests across drugs -----------------------------------------------------------------------------

# Pearson per drug, hand-ranked (rank 1 = highest):
#   d1: A .5  B .3  C .1 -> A 1,   B 2,   C 3
#   d2: A .2  B .2  C .4 -> A 2.5, B 2.5, C 1
#   d3: A .6  B .1  C .6 -> A 1.5, B 3,   C 1.5
# averages: A 5/3, B 7.5/3 = 2.5, C 5.5/3
TABLE = {"d1": (0.5, 0.3, 0.1), "d2": (0.2, 0.2, 0.4), "d3": (0.6, 0.1, 0.6)}


def _per_drug(table: dict, metric: str = "pearson") -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "drug": d, metric: v} for d, values in table.items()
                         for m, v in zip("ABC", values)])


def test_average_ranks_by_hand_with_ties():
    result = critical_difference(_per_drug(TABLE), "pearson")
    assert result["average_ranks"] == pytest.approx({"A": 5 / 3, "B": 2.5, "C": 5.5 / 3})
    assert result["models"] == ["A", "C", "B"]  # best average rank first
    assert result["n_drugs"] == 3 and result["n_models"] == 3


def test_rmse_lower_is_better_ranks_first():
    assert "rmse" in LOWER_IS_BETTER
    result = critical_difference(_per_drug(TABLE, "rmse"), "rmse")
    # ranks reverse: 4 - rank under "higher is better"
    assert result["average_ranks"] == pytest.approx({"A": 4 - 5 / 3, "B": 1.5, "C": 4 - 5.5 / 3})
    assert result["models"][0] == "B"


def test_friedman_matches_scipy():
    result = critical_difference(_per_drug(TABLE), "pearson")
    expected = stats.friedmanchisquare([0.5, 0.2, 0.6], [0.3, 0.2, 0.1], [0.1, 0.4, 0.6])
    assert result["friedman_statistic"] == pytest.approx(expected.statistic)
    assert result["friedman_p_value"] == pytest.approx(expected.pvalue)
    two = critical_difference(_per_drug(TABLE), "pearson", models=["A", "B"])
    assert math.isnan(two["friedman_p_value"])  # Friedman needs three models


def test_nan_drugs_are_dropped():
    with_nan = _per_drug({**TABLE, "d4": (0.9, np.nan, 0.0)})
    with_gap = pd.concat([_per_drug(TABLE), pd.DataFrame({"model": ["A"], "drug": ["d5"], "pearson": [0.9]})])
    for frame in (with_nan, with_gap):
        result = critical_difference(frame, "pearson")
        assert result["n_drugs"] == 3 and result["n_drugs_dropped"] == 1
        assert result["average_ranks"] == pytest.approx({"A": 5 / 3, "B": 2.5, "C": 5.5 / 3})


def test_model_without_any_value_is_left_out_not_every_drug(tmp_path):
    """Mean effects under LTO has no per-drug Pearson anywhere: the others are still ranked on every drug."""
    frame = pd.concat([_per_drug(TABLE), pd.DataFrame({"model": "D", "drug": list(TABLE), "pearson": np.nan})])
    result = critical_difference(frame, "pearson")
    assert result["models_without_values"] == ["D"] and result["n_models"] == 3 and result["n_drugs"] == 3
    assert result["average_ranks"] == pytest.approx({"A": 5 / 3, "B": 2.5, "C": 5.5 / 3})
    per_drug_heatmap(frame, "pearson", tmp_path / "heatmap.png", "synthetic")
    assert _is_png(tmp_path / "heatmap.png")


@pytest.mark.parametrize("k, q", [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850)])
def test_nemenyi_q_matches_demsar_table(k, q):
    assert nemenyi_q(k, 0.05) == pytest.approx(q, abs=1e-3)


def test_critical_difference_value_k4():
    # Demšar 2006: CD = 2.569 * sqrt(4 * 5 / (6 * 20)) for k = 4 models on N = 20 data sets
    assert nemenyi_cd(4, 20) == pytest.approx(2.569 * math.sqrt(20 / 120), abs=1e-3)
    rng = np.random.default_rng(1)
    per_drug = pd.DataFrame([{"model": m, "drug": f"d{i}", "pearson": rng.normal()}
                             for i in range(20) for m in "ABCD"])
    result = critical_difference(per_drug, "pearson")
    assert result["critical_difference"] == pytest.approx(1.0488, abs=1e-3)
    assert result["q_alpha"] == pytest.approx(2.569, abs=1e-3)


def test_cliques_are_maximal_runs_below_cd():
    ranks = pd.Series({"a": 1.0, "b": 1.5, "c": 2.0, "d": 3.0})
    assert cliques(ranks, 1.0) == [["a", "b"], ["b", "c"]]  # c - a = d - c = 1.0 is not below CD
    assert cliques(ranks, 1.25) == [["a", "b", "c"], ["c", "d"]]  # [b, c] lies inside [a, b, c]
    assert cliques(ranks, 0.4) == []
    assert cliques(ranks, 5.0) == [["a", "b", "c", "d"]]


def test_pairwise_tests_and_holm():
    rng = np.random.default_rng(2)
    per_drug = pd.DataFrame([{"model": m, "drug": f"d{i}", "pearson": shift + rng.normal(0, 0.1)}
                             for i in range(25) for m, shift in (("A", 0.0), ("B", 0.3), ("C", 0.02))])
    per_drug.loc[(per_drug.model == "C") & (per_drug.drug == "d0"), "pearson"] = np.nan
    table = pairwise_metric_tests(per_drug, "pearson")
    assert list(table.columns) == PAIRWISE_COLUMNS
    assert list(zip(table.model_a, table.model_b)) == [("A", "B"), ("A", "C"), ("B", "C")]
    assert table["n_drugs"].tolist() == [25, 24, 24]
    np.testing.assert_allclose(table["mean_difference"], table["mean_a"] - table["mean_b"])
    np.testing.assert_allclose(table["p_holm"], multipletests(table["p_value"], method="holm")[1])
    wide = per_drug.pivot(index="drug", columns="model", values="pearson").dropna()
    assert table.loc[1, "p_value"] == pytest.approx(stats.wilcoxon(wide.A - wide.C).pvalue)
    assert table.loc[0, "p_holm"] < 0.01 and table.loc[0, "mean_difference"] < 0


def test_best_baseline_direction_and_ties():
    per_drug = pd.DataFrame({"model": ["x", "x", "y", "y", "z", "z"], "drug": ["a", "b"] * 3,
                             "pearson": [0.25, 0.75, 0.5, 0.5, 0.1, np.nan],
                             "rmse": [1.0, 2.0, 1.5, 1.0, 3.0, 0.5]})
    assert best_baseline(per_drug, ["x", "y"], "pearson") == "x"  # tie at 0.5: list order
    assert best_baseline(per_drug, ["y", "x"], "pearson") == "y"
    assert best_baseline(per_drug, ["x", "y", "z"], "rmse") == "y"  # lowest mean rmse: 1.25
    with pytest.raises(ValueError, match="'w'"):
        best_baseline(per_drug, ["x", "w"], "pearson")


# --- plots ------------------------------------------------------------------------------------------

def _is_png(path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_write_png(tmp_path):
    rng = np.random.default_rng(3)
    per_drug = pd.DataFrame([{"model": m, "drug": f"d{i:03d}", "pearson": shift + rng.normal(0, 0.1)}
                             for i in range(200) for m, shift in (("A", 0.0), ("B", 0.1), ("C", 0.05), ("D", 0.3))])
    critical_difference_diagram(critical_difference(per_drug, "pearson"), tmp_path / "cd.png", "synthetic")
    per_drug_heatmap(per_drug, "pearson", tmp_path / "heatmap.png", "synthetic")
    per_drug_heatmap(per_drug.assign(rmse=per_drug.pearson), "rmse", tmp_path / "few.png", "synthetic",
                     max_drugs=20)
    for name in ("cd.png", "heatmap.png", "few.png"):
        assert _is_png(tmp_path / name), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cd.png", "few.png", "heatmap.png"]  # no partials


# --- comparison over folds and repeats ------------------------------------------------------------------

def test_corrected_resampled_t_by_hand():
    """Nadeau & Bengio: t = mean / sqrt((1/J + n_test/n_train) s^2), J - 1 degrees of freedom."""
    from drp.statistics import corrected_resampled_t

    d = np.array([0.02, 0.035, 0.01, 0.04, 0.025, 0.015, 0.03, 0.02, 0.045, 0.005, 0.03, 0.02, 0.01, 0.04, 0.025])
    ratio = 0.25  # five folds: a test fold is a quarter of the training folds
    result = corrected_resampled_t(d, ratio)
    se = np.sqrt((1 / 15 + 0.25) * d.var(ddof=1))
    assert result["t"] == pytest.approx(d.mean() / se)
    assert result["p_value"] == pytest.approx(2 * stats.t.sf(d.mean() / se, 14))
    half = stats.t.ppf(0.975, 14) * se
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    # the correction widens the naive interval: the folds' training sets overlap
    naive_half = stats.t.ppf(0.975, 14) * d.std(ddof=1) / np.sqrt(15)
    assert result["ci_high"] - result["ci_low"] > 2 * naive_half
    assert np.isnan(corrected_resampled_t([0.1], ratio)["t"])


def test_compare_over_folds_pairs_by_fold_and_counts_repeats():
    from drp.statistics import compare_over_folds, repeat_summary

    rng = np.random.default_rng(0)
    folds = np.arange(6)  # two repeats of three folds
    fold_repeat = {f: f // 3 for f in folds}
    reference = rng.normal(0.5, 0.02, size=6)
    per_fold = pd.concat([pd.DataFrame({"model": "ref", "fold": folds, "pearson": reference, "rmse": 1.0}),
                          pd.DataFrame({"model": "better", "fold": folds, "pearson": reference + 0.05, "rmse": 0.9})])
    table = compare_over_folds(per_fold, "ref", "pearson", fold_repeat, 0.5).set_index("model")
    assert table.loc["better", "mean_difference"] == pytest.approx(0.05)
    assert table.loc["better", "folds"] == 6 and table.loc["better", "repeats"] == 2
    assert table.loc["ref", "mean_difference"] == 0.0
    rmse = compare_over_folds(per_fold, "ref", "rmse", fold_repeat, 0.5).set_index("model")
    assert rmse.loc["better", "mean_difference"] == pytest.approx(0.1)  # lower RMSE reads as better
    summary = repeat_summary(per_fold, fold_repeat, ["pearson"]).set_index("model")
    repeat_means = [reference[:3].mean() + 0.05, reference[3:].mean() + 0.05]
    assert summary.loc["better", "mean"] == pytest.approx(np.mean(repeat_means))
    assert summary.loc["better", "sd"] == pytest.approx(np.std(repeat_means, ddof=1))
    assert summary.loc["better", "repeats"] == 2
