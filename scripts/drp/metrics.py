"""Evaluation metrics. Per-drug metrics are the headline: pooled ones are inflated by drug means.

Definitions (also in the README):
- pearson, spearman, rmse: between observed and predicted response.
- normalized_pearson: Pearson of (y - b) and (prediction - b), b the mean-effects prediction for the
  same pair: how much a model explains beyond the drug, tissue and cell-line means.
- auroc, aupr: how well the prediction ranks sensitive above resistant pairs; a pair is sensitive when
  its response is beyond the drug's median over the fold's training pairs (below it when lower means
  more sensitive). Needs both classes among the drug's test pairs.

Every metric is computed within one outer test fold and then averaged over folds: each fold's model is
fitted on different training data, so pooling folds would mix their offsets. When whole groups are held
out (tissues in LTO) that mix is anti-correlated with the truth (a held-out sensitive tissue raises the
training mean its fold predicts), which gave a drug-mean predictor a per-drug Pearson of -0.17 on GDSC2 LTO.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .splits import TEST, fold_roles

METRICS = ("pearson", "spearman", "rmse", "normalized_pearson", "auroc", "aupr")


# The metrics are computed for every (model, drug, fold), tens of thousands of small groups per evaluation:
# scipy's pearsonr and scikit-learn's roc_auc_score / average_precision_score spend most of their time
# validating inputs there, so the same formulas are written in numpy below (tested equal to them).

def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    am, bm = a - a.mean(), b - b.mean()
    return float(np.clip(np.dot(am, bm) / (np.linalg.norm(am) * np.linalg.norm(bm)), -1.0, 1.0))


def _correlation(a: np.ndarray, b: np.ndarray, ranked: bool) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return np.nan
    return _pearson(rankdata(a), rankdata(b)) if ranked else _pearson(a, b)


def pearson(y, p) -> float:
    return _correlation(np.asarray(y, float), np.asarray(p, float), ranked=False)


def spearman(y, p) -> float:
    """Pearson of the ranks (ties get their average rank), as scipy's spearmanr."""
    return _correlation(np.asarray(y, float), np.asarray(p, float), ranked=True)


def rmse(y, p) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(p, float)) ** 2)))


def _both_classes(sensitive) -> np.ndarray | None:
    sensitive = np.asarray(sensitive, bool)
    return None if sensitive.all() or not sensitive.any() else sensitive


def auroc(sensitive, score) -> float:
    """Area under the ROC curve: the Mann-Whitney U of the scores of sensitive against resistant pairs, ties
    counted as one half (scikit-learn's roc_auc_score)."""
    sensitive = _both_classes(sensitive)
    if sensitive is None:
        return np.nan
    n_pos, n_neg = int(sensitive.sum()), int((~sensitive).sum())
    rank_sum = rankdata(np.asarray(score, float))[sensitive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def aupr(sensitive, score) -> float:
    """Average precision: sum over the distinct score thresholds, highest first, of the gain in recall times
    the precision there (scikit-learn's average_precision_score, no interpolation)."""
    sensitive = _both_classes(sensitive)
    if sensitive is None:
        return np.nan
    score = np.asarray(score, float)
    order = np.argsort(-score, kind="mergesort")
    score, hits = score[order], sensitive[order]
    last_of_each_value = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    true_positives = np.cumsum(hits)[last_of_each_value]
    precision = true_positives / (last_of_each_value + 1)
    recall_gain = np.diff(np.r_[0, true_positives]) / true_positives[-1]
    return float(np.sum(recall_gain * precision))


def training_thresholds(response: pd.DataFrame, splits: pd.DataFrame) -> pd.DataFrame:
    """Per outer fold and drug, the median response over that fold's non-test (training) pairs."""
    pairs = response.merge(splits, on=["cell_line", "drug"])
    rows = []
    for fold in sorted(pairs["fold"].unique()):
        training = pairs[fold_roles(pairs, fold).to_numpy() != TEST]
        rows.append(training.groupby("drug")["response"].median().rename("threshold").reset_index().assign(fold=fold))
    return pd.concat(rows, ignore_index=True)


def score_pairs(predictions: pd.DataFrame, baseline: pd.DataFrame, thresholds: pd.DataFrame,
                lower_is_sensitive: bool) -> pd.DataFrame:
    """Add the baseline prediction, the sensitivity label and the ranking score to each test pair."""
    scored = predictions.merge(baseline[["cell_line", "drug", "y_pred"]].rename(columns={"y_pred": "y_baseline"}),
                               on=["cell_line", "drug"], how="left", validate="one_to_one")
    scored = scored.merge(thresholds, on=["fold", "drug"], how="left")
    direction = -1.0 if lower_is_sensitive else 1.0
    scored["sensitive"] = direction * (scored["y_true"] - scored["threshold"]) > 0
    if "p_sensitive" in scored and scored["p_sensitive"].notna().all():
        scored["score"] = scored["p_sensitive"]
    else:
        scored["score"] = direction * scored["y_pred"]
    return scored


def metric_values(group) -> dict:
    """The metrics of one group of pairs (a DataFrame, or a mapping of column -> array)."""
    y, p, b = (np.asarray(group[c], float) for c in ("y_true", "y_pred", "y_baseline"))
    valid = ~np.isnan(np.asarray(group["threshold"], float))
    sensitive, score = np.asarray(group["sensitive"], bool)[valid], np.asarray(group["score"], float)[valid]
    return {
        "n": len(y),
        "pearson": pearson(y, p),
        "spearman": spearman(y, p),
        "rmse": rmse(y, p),
        "normalized_pearson": pearson(y - b, p - b),
        "auroc": auroc(sensitive, score),
        "aupr": aupr(sensitive, score),
    }


def fold_averaged(pairs: pd.DataFrame, values_of, min_pairs: int, by: str = "drug") -> pd.DataFrame:
    """``values_of(group)`` (a dict with "n" and metrics) within each (``by``, fold) group of at least
    ``min_pairs`` pairs, then each metric's mean over a ``by`` value's folds (NaN folds skipped); n is the
    sum of pairs, folds the number of folds. A group is handed over as {column: numpy array}: slicing arrays
    costs a fraction of building a DataFrame per group."""
    columns = {name: pairs[name].to_numpy() for name in pairs.columns}
    rows = [{by: key, "fold": fold, **values_of({name: values[index] for name, values in columns.items()})}
            for (key, fold), index in sorted(pairs.groupby([by, "fold"], sort=True).indices.items())
            if len(index) >= min_pairs]
    if not rows:
        return pd.DataFrame(columns=[by, "n", "folds"])
    table = pd.DataFrame(rows)
    metrics = table.columns.drop([by, "fold", "n"])
    return (table.groupby(by, sort=True).agg(n=("n", "sum"), folds=("fold", "size"), **{m: (m, "mean") for m in metrics})
            .reset_index())


def per_drug_metrics(scored: pd.DataFrame, min_pairs: int) -> pd.DataFrame:
    return fold_averaged(scored, metric_values, min_pairs).reindex(columns=["drug", "n", "folds", *METRICS])


def summarize(per_drug: pd.DataFrame, pooled: dict) -> pd.DataFrame:
    """Tidy table: one row per (statistic, metric) for one model."""
    rows = []
    for metric in METRICS:
        values = per_drug[metric].dropna()
        rows += [
            {"scope": "per_drug_mean", "metric": metric, "value": values.mean() if len(values) else np.nan, "n": len(values)},
            {"scope": "per_drug_median", "metric": metric, "value": values.median() if len(values) else np.nan, "n": len(values)},
            {"scope": "pooled", "metric": metric, "value": pooled[metric], "n": pooled["n"]},
        ]
    return pd.DataFrame(rows)


def evaluate_models(predictions: dict[str, pd.DataFrame], baseline_name: str, thresholds: pd.DataFrame,
                    lower_is_sensitive: bool, min_pairs: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-drug metrics (long over models) and the tidy summary table for every model; ``thresholds``
    (fold, drug, threshold) are the sensitivity cut-offs from each fold's training pairs."""
    per_drug_tables, summaries = [], []
    for name, frame in predictions.items():
        scored = score_pairs(frame, predictions[baseline_name], thresholds, lower_is_sensitive)
        per_drug = per_drug_metrics(scored, min_pairs)
        per_drug_tables.append(per_drug.assign(model=name))
        pooled = fold_averaged(scored.assign(scope="pooled"), metric_values, min_pairs=1, by="scope").iloc[0]
        summaries.append(summarize(per_drug, pooled).assign(model=name))
    per_drug_all = pd.concat(per_drug_tables, ignore_index=True)
    summary = pd.concat(summaries, ignore_index=True)
    return (per_drug_all[["model", *per_drug_all.columns.drop("model")]],
            summary[["model", "scope", "metric", "value", "n"]])
