"""drp.metrics against values worked out by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from drp.metrics import (METRICS, aupr, auroc, evaluate_models, metric_values, pearson, rmse, score_pairs,
                         spearman, training_thresholds)

Y = [1, 2, 3, 4]
P = [1, 3, 2, 4]


# --- correlations and errors ------------------------------------------------------------------------

def test_pearson_by_hand():
    # deviations of both are (-1.5, -0.5, 0.5, 1.5) vs (-1.5, 0.5, -0.5, 1.5):
    # covariance sum 2.25 - 0.25 - 0.25 + 2.25 = 4, sums of squares 5 and 5 -> r = 4 / 5
    assert pearson(Y, P) == pytest.approx(0.8, abs=1e-12)
    assert pearson(Y, [2, 4, 6, 8]) == pytest.approx(1.0)
    assert pearson(Y, [4, 3, 2, 1]) == pytest.approx(-1.0)
    # y = (0, 0, 1, 1), p = (0, 1, 0, 1): deviations (-.5,-.5,.5,.5) and (-.5,.5,-.5,.5) -> r = 0
    assert pearson([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)


def test_spearman_by_hand():
    # ranks equal the values here, so Spearman = Pearson of ranks = 0.8
    assert spearman(Y, P) == pytest.approx(0.8, abs=1e-12)
    # monotone but not linear: Spearman 1, Pearson below 1
    assert spearman(Y, [1, 10, 100, 1000]) == pytest.approx(1.0)
    assert pearson(Y, [1, 10, 100, 1000]) < 0.95
    # ranks of p = (1, 2, 3, 4) reversed except a swap: p = (40, 30, 10, 20) -> ranks (4, 3, 1, 2)
    # d = (1-4, 2-3, 3-1, 4-2) = (-3, -1, 2, 2): rho = 1 - 6 * 18 / (4 * 15) = -0.8
    assert spearman(Y, [40, 30, 10, 20]) == pytest.approx(-0.8, abs=1e-12)


def test_rmse_by_hand():
    # differences (0, -1, 1, 0): sqrt(2 / 4)
    assert rmse(Y, P) == pytest.approx(math.sqrt(0.5), abs=1e-12)
    assert rmse(Y, Y) == 0.0
    assert rmse([0, 0], [3, 4]) == pytest.approx(math.sqrt(12.5))


@pytest.mark.parametrize("y, p", [
    ([1, 1, 1, 1], [1, 2, 3, 4]),  # constant observation
    ([1, 2, 3, 4], [5, 5, 5, 5]),  # constant prediction
    ([1, 2], [2, 1]),              # fewer than 3 points
])
def test_correlations_are_nan_when_undefined(y, p):
    assert math.isnan(pearson(y, p))
    assert math.isnan(spearman(y, p))


# --- ranking metrics ----------------------------------------------------------------------------------

def test_auroc_by_counting_pairs():
    sensitive = [True, False, True, False]
    score = [0.9, 0.8, 0.3, 0.1]
    # (positive, negative) pairs: (.9,.8) right, (.9,.1) right, (.3,.8) wrong, (.3,.1) right -> 3/4
    assert auroc(sensitive, score) == pytest.approx(0.75)
    # a tie counts one half: positives (.5, .9), negatives (.5, .1):
    # (.5,.5) 1/2, (.5,.1) 1, (.9,.5) 1, (.9,.1) 1 -> 3.5 / 4
    assert auroc([True, False, True, False], [0.5, 0.5, 0.9, 0.1]) == pytest.approx(0.875)
    assert auroc([True, False], [1.0, 0.0]) == 1.0
    assert auroc([True, False], [0.0, 1.0]) == 0.0


def test_aupr_by_hand():
    # ranked by score: T, F, T, F; precision at each positive: 1/1 and 2/3 -> AP = (1 + 2/3) / 2
    assert aupr([True, False, True, False], [0.9, 0.8, 0.3, 0.1]) == pytest.approx(5 / 6)
    # ranked: F, T, T -> precisions at positives 1/2 and 2/3 -> AP = 7/12
    assert aupr([False, True, True], [0.9, 0.5, 0.4]) == pytest.approx(7 / 12)
    assert aupr([True, False, False], [0.9, 0.5, 0.4]) == pytest.approx(1.0)


@pytest.mark.parametrize("sensitive", [[True, True, True], [False, False, False], []])
def test_ranking_metrics_are_nan_with_one_class(sensitive):
    score = list(range(len(sensitive)))
    assert math.isnan(auroc(sensitive, score))
    assert math.isnan(aupr(sensitive, score))


# --- thresholds from training pairs only --------------------------------------------------------------

def synthetic_fold_table():
    """One drug, three folds; fold 0 holds extreme responses."""
    response = pd.DataFrame({
        "cell_line": [f"SYN{i}" for i in range(9)],
        "drug": "DRUGA",
        "response": [100.0, 100.0, 100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    })
    splits = pd.DataFrame({"cell_line": response.cell_line, "drug": "DRUGA", "fold": [0, 0, 0, 1, 1, 1, 2, 2, 2]})
    return response, splits


def test_training_thresholds_exclude_the_test_fold():
    response, splits = synthetic_fold_table()
    thresholds = training_thresholds(response, splits).set_index("fold")["threshold"]
    # fold 0 is test: median(1..6) = 3.5 (with the test pairs it would be median(1..6, 100 x3) = 5)
    assert thresholds[0] == pytest.approx(3.5)
    # fold 1 is test: median(100, 100, 100, 4, 5, 6) = (6 + 100) / 2
    assert thresholds[1] == pytest.approx(53.0)
    # fold 2 is test: median(100, 100, 100, 1, 2, 3) = (3 + 100) / 2
    assert thresholds[2] == pytest.approx(51.5)
    assert np.median(response.response) == 5.0  # the leaky answer differs from all three


def test_training_thresholds_are_per_drug():
    response, splits = synthetic_fold_table()
    other = response.assign(drug="DRUGB", response=-response.response)
    table = training_thresholds(pd.concat([response, other]), pd.concat([splits, splits.assign(drug="DRUGB")]))
    assert set(table.columns) == {"drug", "threshold", "fold"}
    lookup = table.set_index(["fold", "drug"])["threshold"]
    assert len(lookup) == 6
    assert lookup[(0, "DRUGB")] == pytest.approx(-3.5)
    assert lookup[(0, "DRUGA")] == pytest.approx(3.5)


# --- scoring direction --------------------------------------------------------------------------------

def synthetic_predictions():
    return pd.DataFrame({"cell_line": ["C1", "C2", "C3"], "drug": "DRUGA", "fold": 0,
                         "y_true": [1.0, 5.0, 3.0], "y_pred": [2.0, 4.0, 3.5]})


def synthetic_thresholds():
    return pd.DataFrame({"drug": ["DRUGA"], "threshold": [3.0], "fold": [0]})


def test_score_pairs_lower_is_sensitive():
    predictions = synthetic_predictions()
    baseline = predictions.assign(y_pred=[0.0, 0.0, 0.0])
    scored = score_pairs(predictions, baseline, synthetic_thresholds(), lower_is_sensitive=True)
    assert list(scored["sensitive"]) == [True, False, False]  # below 3 (equal is not sensitive)
    assert list(scored["score"]) == [-2.0, -4.0, -3.5]  # a lower prediction ranks as more sensitive
    assert list(scored["y_baseline"]) == [0.0, 0.0, 0.0]
    assert list(scored["threshold"]) == [3.0, 3.0, 3.0]


def test_score_pairs_higher_is_sensitive():
    predictions = synthetic_predictions()
    scored = score_pairs(predictions, predictions, synthetic_thresholds(), lower_is_sensitive=False)
    assert list(scored["sensitive"]) == [False, True, False]
    assert list(scored["score"]) == [2.0, 4.0, 3.5]
    assert list(scored["y_baseline"]) == list(predictions["y_pred"])


def test_score_pairs_uses_p_sensitive_when_complete():
    predictions = synthetic_predictions().assign(p_sensitive=[0.9, 0.1, 0.5])
    scored = score_pairs(predictions, predictions, synthetic_thresholds(), lower_is_sensitive=True)
    assert list(scored["score"]) == [0.9, 0.1, 0.5]
    partial = predictions.assign(p_sensitive=[0.9, np.nan, 0.5])
    scored = score_pairs(partial, partial, synthetic_thresholds(), lower_is_sensitive=True)
    assert list(scored["score"]) == [-2.0, -4.0, -3.5]


def test_pearson_beyond_mean_effects_is_pearson_of_residuals_from_the_baseline():
    rng = np.random.default_rng(1)
    y, p, b, n = rng.normal(size=(4, 12))
    group = pd.DataFrame({"y_true": y, "y_pred": p, "y_baseline": b, "y_naive": n, "threshold": 0.0,
                          "sensitive": y > 0, "score": p})
    values = metric_values(group)
    assert values["pearson_beyond_mean_effects"] == pytest.approx(np.corrcoef(y - b, p - b)[0, 1], abs=1e-12)
    assert values["normalized_pearson"] == pytest.approx(np.corrcoef(y - n, p - n)[0, 1], abs=1e-12)
    assert values["pearson"] == pytest.approx(np.corrcoef(y, p)[0, 1], abs=1e-12)
    assert values["n"] == 12
    assert values["auroc"] == pytest.approx(auroc(y > 0, p))


def test_metric_values_ignore_pairs_without_a_threshold_for_ranking():
    group = pd.DataFrame({"y_true": [1.0, 2.0, 3.0, 4.0], "y_pred": [1.0, 2.0, 3.0, 0.0],
                          "y_baseline": 0.0, "y_naive": 0.0, "threshold": [2.5, 2.5, 2.5, np.nan],
                          "sensitive": [False, False, True, False], "score": [1.0, 2.0, 3.0, 0.0]})
    values = metric_values(group)
    assert values["auroc"] == 1.0  # the NaN-threshold pair would otherwise still give 1.0 ...
    group.loc[3, "score"] = 10.0   # ... so make it one that would break the ranking if it counted
    assert metric_values(group)["auroc"] == 1.0


# --- the whole evaluation -----------------------------------------------------------------------------

def synthetic_evaluation(seed: int = 0):
    rng = np.random.default_rng(seed)
    cells = [f"SYNCELL{i:02d}" for i in range(24)]
    drugs = [f"DRUG{j}" for j in range(4)]
    response = pd.DataFrame([(c, d) for c in cells for d in drugs], columns=["cell_line", "drug"])
    response["response"] = rng.normal(size=len(response)) + np.repeat(np.arange(24), 4) * 0.3
    splits = response[["cell_line", "drug"]].assign(fold=np.repeat(np.arange(24) % 3, 4))
    test = response.merge(splits).rename(columns={"response": "y_true"})
    drug_mean = response.groupby("drug")["response"].mean()
    baseline = test.assign(y_pred=test.drug.map(drug_mean) + rng.normal(scale=0.1, size=len(test)))
    good = test.assign(y_pred=test.y_true + rng.normal(scale=0.3, size=len(test)))
    return response, splits, {"mean_effects": baseline, "good": good}


def test_evaluate_models_tables():
    response, splits, predictions = synthetic_evaluation()
    per_drug, summary, per_cell_line, per_fold = evaluate_models(
        predictions, "mean_effects", training_thresholds(response, splits), lower_is_sensitive=True, min_pairs=4,
        per_cell_line=True)
    assert list(per_drug.columns) == ["model", "drug", "n", "folds", *METRICS]
    assert len(per_drug) == 2 * 4
    for model in predictions:
        assert sorted(per_drug.loc[per_drug.model == model, "drug"]) == [f"DRUG{j}" for j in range(4)]
    assert (per_drug["n"] == 24).all() and (per_drug["folds"] == 3).all()

    # each metric is computed within a test fold, then averaged over the three folds
    good = predictions["good"]
    row = per_drug[(per_drug.model == "good") & (per_drug.drug == "DRUG2")].iloc[0]
    folds = [g for _, g in good[good.drug == "DRUG2"].groupby("fold")]
    base = predictions["mean_effects"].set_index(["cell_line", "drug"])["y_pred"]
    assert row["pearson"] == pytest.approx(np.mean([np.corrcoef(f.y_true, f.y_pred)[0, 1] for f in folds]))
    assert row["rmse"] == pytest.approx(np.mean([np.sqrt(np.mean((f.y_true - f.y_pred) ** 2)) for f in folds]))
    expected = [pearson(f.y_true - b, f.y_pred - b)
                for f in folds for b in [base.loc[list(zip(f.cell_line, f.drug))].values]]
    assert row["pearson_beyond_mean_effects"] == pytest.approx(np.mean(expected))
    # the baseline compared with itself has nothing left to explain; no naive baseline: no normalized_pearson
    assert per_drug.loc[per_drug.model == "mean_effects", "pearson_beyond_mean_effects"].isna().all()
    assert per_drug["normalized_pearson"].isna().all()

    # per cell line: each cell line's Pearson over its 4 drugs in its (only) test fold
    assert list(per_cell_line.columns) == ["model", "cell_line", "n", "folds", *METRICS]
    cell = good[good.cell_line == "SYNCELL05"]
    assert per_cell_line.set_index(["model", "cell_line"]).loc[("good", "SYNCELL05"), "pearson"] == pytest.approx(
        np.corrcoef(cell.y_true, cell.y_pred)[0, 1])

    assert list(summary.columns) == ["model", "scope", "metric", "value", "n"]
    assert set(summary.scope) == {"per_drug_mean", "per_drug_median", "per_cell_line_mean", "per_cell_line_median",
                                  "pooled"}
    assert len(summary) == 2 * 5 * len(METRICS)
    assert not summary.duplicated(["model", "scope", "metric"]).any()
    table = summary.set_index(["model", "scope", "metric"])
    good_rows = per_drug[per_drug.model == "good"]
    assert table.loc[("good", "per_drug_mean", "pearson"), "value"] == pytest.approx(good_rows.pearson.mean())
    assert table.loc[("good", "per_drug_median", "rmse"), "value"] == pytest.approx(good_rows.rmse.median())
    assert table.loc[("good", "pooled", "pearson"), "value"] == pytest.approx(
        np.mean([np.corrcoef(f.y_true, f.y_pred)[0, 1] for _, f in good.groupby("fold")]))
    assert table.loc[("good", "pooled", "pearson"), "n"] == len(good)
    assert table.loc[("good", "per_drug_mean", "pearson"), "n"] == 4
    assert table.loc[("mean_effects", "per_drug_mean", "pearson_beyond_mean_effects"), "n"] == 0
    # per fold: the mean over drugs of the fold's per-drug values, and the fold's pooled value
    fold0 = good[good.fold == 0]
    row = per_fold[(per_fold.model == "good") & (per_fold.fold == 0)].iloc[0]
    assert row["drugs"] == 4 and row["pearson"] == pytest.approx(
        np.mean([np.corrcoef(g.y_true, g.y_pred)[0, 1] for _, g in fold0.groupby("drug")]))
    assert row["pooled_pearson"] == pytest.approx(np.corrcoef(fold0.y_true, fold0.y_pred)[0, 1])
    assert table.loc[("good", "per_cell_line_mean", "rmse"), "value"] == pytest.approx(
        per_cell_line[per_cell_line.model == "good"].rmse.mean())


def test_evaluate_models_min_pairs_drops_small_drugs():
    response, splits, predictions = synthetic_evaluation()
    # DRUG0 keeps 6 cell lines of fold 0 and 2 of each other fold; every other drug has 8 per fold
    keep = [f"SYNCELL{i:02d}" for i in (0, 3, 6, 9, 12, 15, 1, 4, 2, 5)]
    trimmed = {name: frame[(frame.drug != "DRUG0") | frame.cell_line.isin(keep)] for name, frame in predictions.items()}
    thresholds = training_thresholds(response, splits)
    per_drug = evaluate_models(trimmed, "mean_effects", thresholds, lower_is_sensitive=False, min_pairs=5).per_drug
    assert per_drug.loc[per_drug.drug == "DRUG0", "folds"].tolist() == [1, 1]  # only fold 0 has 5 pairs
    assert per_drug.loc[per_drug.drug == "DRUG0", "n"].tolist() == [6, 6]
    per_drug = evaluate_models(trimmed, "mean_effects", thresholds, lower_is_sensitive=False, min_pairs=7).per_drug
    assert "DRUG0" not in set(per_drug.drug)
    assert len(per_drug) == 2 * 3


def test_group_held_out_drug_mean_predictor_is_not_anticorrelated():
    """Synthetic LTO: each fold holds out one tissue and predicts the drug's mean over the other tissues.
    Pooled over folds this constant-per-fold prediction is anti-correlated with the truth (a sensitive
    held-out tissue raises its fold's training mean); within each fold it has no Pearson at all."""
    tissue_means = np.array([-2.0, 0.0, 2.0])
    rng = np.random.default_rng(3)
    rows = [(f"SYNCELL{t}{i}", "DRUG0", tissue_means[t] + rng.normal(scale=0.5), t) for t in range(3) for i in range(10)]
    test = pd.DataFrame(rows, columns=["cell_line", "drug", "y_true", "fold"])
    training_mean = {t: test.loc[test.fold != t, "y_true"].mean() for t in range(3)}
    drug_mean = test.assign(y_pred=test.fold.map(training_mean))
    assert np.corrcoef(drug_mean.y_true, drug_mean.y_pred)[0, 1] < -0.8  # the pooled artifact
    response = test.rename(columns={"y_true": "response"})[["cell_line", "drug", "response"]]
    per_drug, summary, _, _ = evaluate_models({"mean_effects": drug_mean}, "mean_effects",
                                        training_thresholds(response, test[["cell_line", "drug", "fold"]]),
                                        lower_is_sensitive=True, min_pairs=5)
    assert np.isnan(per_drug["pearson"].iloc[0]) and per_drug["folds"].iloc[0] == 3
    assert np.isnan(summary.set_index(["scope", "metric"]).loc[("pooled", "pearson"), "value"])


def test_numpy_metrics_equal_scipy_and_scikit_learn():
    """The per-group metrics are numpy re-implementations (the library calls cost most of an evaluation in input
    checks); on SYNTHETIC groups with ties in scores and responses they equal scipy's and scikit-learn's."""
    from scipy import stats
    from sklearn.metrics import average_precision_score, roc_auc_score

    from drp.metrics import aupr, auroc, pearson, spearman

    rng = np.random.default_rng(0)
    checked = 0
    for i in range(500):
        n = int(rng.integers(3, 200))
        y = rng.normal(size=n)
        p = y * rng.normal() + rng.normal(size=n)
        p = np.round(p, 1) if i % 2 else p  # ties in the scores
        y = np.round(y) if i % 3 == 0 else y  # and in the responses
        sensitive = rng.random(n) < rng.uniform(0.05, 0.95)
        if sensitive.all() or not sensitive.any() or np.ptp(y) == 0 or np.ptp(p) == 0:
            continue
        assert pearson(y, p) == pytest.approx(stats.pearsonr(y, p)[0], abs=1e-12)
        assert spearman(y, p) == pytest.approx(stats.spearmanr(y, p)[0], abs=1e-12)
        assert auroc(sensitive, p) == pytest.approx(roc_auc_score(sensitive, p), abs=1e-12)
        assert aupr(sensitive, p) == pytest.approx(average_precision_score(sensitive, p), abs=1e-12)
        checked += 1
    assert checked > 400


# --- drevalpy's normalized Pearson --------------------------------------------------------------------

def test_normalized_pearson_matches_a_hand_computation_as_drevalpy_does_it():
    """drevalpy (visualization/utils.py, _normalize_metrics_by_mean_effects): subtract the NaiveMeanEffects
    prediction of the same pair from observed and predicted, one Pearson over all test pairs of a CV split,
    then the mean over splits; a constant prediction scores 0 (evaluation.py). A small table by hand:
    two folds, two drugs, NaiveMeanEffects of a test cell line = the drug's training mean."""
    test = pd.DataFrame({
        "cell_line": ["C1", "C1", "C2", "C2", "C3", "C3", "C4", "C4"],
        "drug": ["D1", "D2"] * 4,
        "fold": [0, 0, 0, 0, 1, 1, 1, 1],
        "y_true": [1.0, 4.0, 2.0, 6.0, 0.5, 5.0, 3.0, 2.0],
    })
    naive = test.assign(y_pred=[1.5, 5.0, 1.5, 5.0, 2.0, 4.5, 2.0, 4.5])  # each fold's training drug means
    model = test.assign(y_pred=[1.0, 5.5, 2.5, 5.0, 1.0, 4.0, 2.5, 3.0])
    response = test.rename(columns={"y_true": "response"})[["cell_line", "drug", "response"]]
    thresholds = training_thresholds(response, test[["cell_line", "drug", "fold"]])
    summary = evaluate_models({"naive_mean_effects": naive, "model": model}, "naive_mean_effects", thresholds,
                                    lower_is_sensitive=True, min_pairs=2, naive_name="naive_mean_effects").summary
    table = summary.set_index(["model", "scope", "metric"])["value"]
    # by hand: fold 0 residuals y - n = [-0.5, -1, 0.5, 1], p - n = [-0.5, 0.5, 1, 0]
    #          fold 1 residuals y - n = [-1.5, 0.5, 1, -2.5], p - n = [-1, -0.5, 0.5, -1.5]
    by_hand = np.mean([np.corrcoef([-0.5, -1, 0.5, 1], [-0.5, 0.5, 1, 0])[0, 1],
                       np.corrcoef([-1.5, 0.5, 1, -2.5], [-1, -0.5, 0.5, -1.5])[0, 1]])
    assert table[("model", "pooled", "normalized_pearson")] == pytest.approx(by_hand, abs=1e-12)
    assert table[("naive_mean_effects", "pooled", "normalized_pearson")] == 0.0  # constant residual prediction


def test_drevalpy_pearson_conventions():
    from drp.metrics import drevalpy_pearson

    assert drevalpy_pearson([1.0, 2.0, 3.0], [5.0, 5.0, 5.0 + 1e-7]) == 0.0  # constant prediction
    assert np.isnan(drevalpy_pearson([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))  # constant target
    assert np.isnan(drevalpy_pearson([1.0], [2.0]))
    assert drevalpy_pearson([1.0, 2.0, 4.0], [1.0, 3.0, 2.0]) == pytest.approx(np.corrcoef([1, 2, 4], [1, 3, 2])[0, 1])
