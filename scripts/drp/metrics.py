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
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from .splits import TEST, fold_roles

METRICS = ("pearson", "spearman", "rmse", "normalized_pearson", "auroc", "aupr")


def _correlation(kind, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return np.nan
    return float(kind(a, b)[0])


def pearson(y, p) -> float:
    return _correlation(stats.pearsonr, np.asarray(y, float), np.asarray(p, float))


def spearman(y, p) -> float:
    return _correlation(stats.spearmanr, np.asarray(y, float), np.asarray(p, float))


def rmse(y, p) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(p, float)) ** 2)))


def _ranking(kind, sensitive, score) -> float:
    sensitive = np.asarray(sensitive, bool)
    if sensitive.all() or not sensitive.any():
        return np.nan
    return float(kind(sensitive, score))


def auroc(sensitive, score) -> float:
    return _ranking(roc_auc_score, sensitive, score)


def aupr(sensitive, score) -> float:
    return _ranking(average_precision_score, sensitive, score)


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


def metric_values(group: pd.DataFrame) -> dict:
    y, p, b = group["y_true"].to_numpy(), group["y_pred"].to_numpy(), group["y_baseline"].to_numpy()
    valid = ~np.isnan(group["threshold"].to_numpy())
    return {
        "n": len(group),
        "pearson": pearson(y, p),
        "spearman": spearman(y, p),
        "rmse": rmse(y, p),
        "normalized_pearson": pearson(y - b, p - b),
        "auroc": auroc(group["sensitive"].to_numpy()[valid], group["score"].to_numpy()[valid]),
        "aupr": aupr(group["sensitive"].to_numpy()[valid], group["score"].to_numpy()[valid]),
    }


def fold_averaged(pairs: pd.DataFrame, values_of, min_pairs: int, by: str = "drug") -> pd.DataFrame:
    """``values_of(group)`` (a dict with "n" and metrics) within each (``by``, fold) group of at least
    ``min_pairs`` pairs, then each metric's mean over a ``by`` value's folds (NaN folds skipped); n is the
    sum of pairs, folds the number of folds."""
    rows = [{by: key, "fold": fold, **values_of(group)}
            for (key, fold), group in pairs.groupby([by, "fold"], sort=True) if len(group) >= min_pairs]
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
