"""Evaluation metrics. Per-drug metrics are the headline: pooled ones are inflated by drug means.

Definitions (also in the README):
- pearson, spearman, rmse: between observed and predicted response.
- normalized_pearson: drevalpy's normalized Pearson: Pearson of (y - n) and (prediction - n), n the
  NaiveMeanEffects prediction of the same pair (training means: overall + cell line + drug, no tissue), with
  drevalpy's conventions (0 for constant predictions, NaN for a constant target). drevalpy's headline is its
  ``pooled`` value: over all test pairs of a fold, averaged over folds.
- pearson_beyond_mean_effects: Pearson of (y - b) and (prediction - b), b the tissue-aware mean-effects
  prediction (``evaluation.baseline``): how much a model explains beyond the drug, tissue and cell-line means.
- auroc, aupr: how well the prediction ranks sensitive above resistant pairs; a pair is sensitive when
  its response is beyond the drug's median over the fold's training pairs (below it when lower means
  more sensitive). Needs both classes among the drug's test pairs.

Every metric is computed within one outer test fold and then averaged over folds: each fold's model is
fitted on different training data, so pooling folds would mix their offsets. When whole groups are held
out (tissues in LTO) that mix is anti-correlated with the truth (a held-out sensitive tissue raises the
training mean its fold predicts), which gave a drug-mean predictor a per-drug Pearson of -0.17 on GDSC2 LTO.
Groups: per drug (the headline), per cell line (drevalpy's grouping under cell-blind splits) and pooled.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .splits import TEST, fold_roles, fold_table

METRICS = ("pearson", "spearman", "rmse", "normalized_pearson", "pearson_beyond_mean_effects", "auroc", "aupr")


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


def drevalpy_pearson(y, p) -> float:
    """Pearson with drevalpy's conventions (drevalpy/evaluation.py, ``evaluate`` and ``pearson``): NaN with fewer
    than 2 pairs, then 0.0 when the predictions are constant (all within 1e-6 of the first), NaN when the
    observed values are."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    if len(y) < 2:
        return np.nan
    if np.all(np.isclose(p, p[0], atol=1e-6)):
        return 0.0
    if np.all(np.isclose(y, y[0], atol=1e-6)):
        return np.nan
    return _pearson(y, p)


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
    rows = []
    for fold in sorted(splits["fold"].unique()):
        pairs = response.merge(fold_table(splits, fold), on=["cell_line", "drug"])
        training = pairs[fold_roles(pairs, fold).to_numpy() != TEST]
        rows.append(training.groupby("drug")["response"].median().rename("threshold").reset_index().assign(fold=fold))
    return pd.concat(rows, ignore_index=True)


def score_pairs(predictions: pd.DataFrame, baseline: pd.DataFrame, thresholds: pd.DataFrame,
                lower_is_sensitive: bool, naive: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add the baseline's and the naive baseline's predictions, the sensitivity label and the ranking score
    to each test pair (``y_naive`` is NaN without a naive baseline)."""
    keys = ["cell_line", "drug", *(["fold"] if "fold" in predictions and "fold" in baseline else [])]  # repeats
    scored = predictions.merge(baseline[[*keys, "y_pred"]].rename(columns={"y_pred": "y_baseline"}),
                               on=keys, how="left", validate="one_to_one")
    if naive is not None:
        scored = scored.merge(naive[[*keys, "y_pred"]].rename(columns={"y_pred": "y_naive"}), on=keys, how="left",
                              validate="one_to_one")
    else:
        scored["y_naive"] = np.nan
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
    y, p, b, n = (np.asarray(group[c], float) for c in ("y_true", "y_pred", "y_baseline", "y_naive"))
    valid = ~np.isnan(np.asarray(group["threshold"], float))
    sensitive, score = np.asarray(group["sensitive"], bool)[valid], np.asarray(group["score"], float)[valid]
    return {
        "n": len(y),
        "pearson": pearson(y, p),
        "spearman": spearman(y, p),
        "rmse": rmse(y, p),
        "normalized_pearson": np.nan if np.isnan(n).any() else drevalpy_pearson(y - n, p - n),
        "pearson_beyond_mean_effects": pearson(y - b, p - b),
        "auroc": auroc(sensitive, score),
        "aupr": aupr(sensitive, score),
    }


def per_group_and_fold(pairs: pd.DataFrame, values_of, min_pairs: int, by: str = "drug") -> pd.DataFrame:
    """``values_of(group)`` within each (``by``, fold) group of at least ``min_pairs`` pairs: one row each.
    A group is handed over as {column: numpy array}: slicing arrays costs a fraction of building a DataFrame
    per group."""
    columns = {name: pairs[name].to_numpy() for name in pairs.columns}
    rows = [{by: key, "fold": fold, **values_of({name: values[index] for name, values in columns.items()})}
            for (key, fold), index in sorted(pairs.groupby([by, "fold"], sort=True).indices.items())
            if len(index) >= min_pairs]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=[by, "fold", "n"])


def fold_averaged(pairs: pd.DataFrame, values_of, min_pairs: int, by: str = "drug") -> pd.DataFrame:
    """``values_of(group)`` (a dict with "n" and metrics) within each (``by``, fold) group of at least
    ``min_pairs`` pairs, then each metric's mean over a ``by`` value's folds (NaN folds skipped); n is the
    sum of pairs, folds the number of folds."""
    return average_over_folds(per_group_and_fold(pairs, values_of, min_pairs, by), by)


def average_over_folds(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """A ``per_group_and_fold`` table averaged over each ``by`` value's folds (see ``fold_averaged``)."""
    if table.empty:
        return pd.DataFrame(columns=[by, "n", "folds"])
    metrics = table.columns.drop([by, "fold", "n"])
    return (table.groupby(by, sort=True).agg(n=("n", "sum"), folds=("fold", "size"), **{m: (m, "mean") for m in metrics})
            .reset_index())


def per_fold_metrics(by_drug_and_fold: pd.DataFrame, pooled_by_fold: pd.DataFrame) -> pd.DataFrame:
    """Per outer fold: each metric's mean over the drugs tested in that fold (``drugs``), and the pooled
    metrics over all the fold's test pairs (``pooled_<metric>``: drevalpy's per-split values). The unit of
    the comparisons over folds and repeats (drp.statistics.corrected_resampled_t). Built from the
    ``per_group_and_fold`` tables by drug and pooled that the other summaries use too."""
    means = by_drug_and_fold.groupby("fold")[list(METRICS)].mean().assign(drugs=by_drug_and_fold.groupby("fold").size())
    means = means.join(pooled_by_fold.set_index("fold")[list(METRICS)].add_prefix("pooled_"), how="outer")
    return means.reset_index().reindex(columns=["fold", "drugs", *METRICS, *[f"pooled_{m}" for m in METRICS]])


def per_cell_line_metrics(scored: pd.DataFrame, min_pairs: int) -> pd.DataFrame:
    """Each cell line's metrics over its drugs, within a fold, then averaged over folds."""
    return fold_averaged(scored, metric_values, min_pairs, by="cell_line").reindex(
        columns=["cell_line", "n", "folds", *METRICS])


def summarize(per_drug: pd.DataFrame, pooled: dict, per_cell_line: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy table: one row per (statistic, metric) for one model."""
    groups = {"per_drug": per_drug, **({"per_cell_line": per_cell_line} if per_cell_line is not None else {})}
    rows = []
    for metric in METRICS:
        for name, table in groups.items():
            values = table[metric].dropna()
            rows += [{"scope": f"{name}_mean", "metric": metric, "value": values.mean() if len(values) else np.nan,
                      "n": len(values)},
                     {"scope": f"{name}_median", "metric": metric,
                      "value": values.median() if len(values) else np.nan, "n": len(values)}]
        rows.append({"scope": "pooled", "metric": metric, "value": pooled[metric], "n": pooled["n"]})
    return pd.DataFrame(rows)


class Evaluation(NamedTuple):
    per_drug: pd.DataFrame  # model, drug, n, folds, metrics (averaged over folds)
    summary: pd.DataFrame  # model, scope, metric, value, n
    per_cell_line: pd.DataFrame | None  # model, cell_line, n, folds, metrics (when asked for)
    per_fold: pd.DataFrame  # model, fold, drugs, mean per-drug metrics, pooled_<metric>


def evaluate_models(predictions: dict[str, pd.DataFrame], baseline_name: str, thresholds: pd.DataFrame,
                    lower_is_sensitive: bool, min_pairs: int, naive_name: str | None = None,
                    per_cell_line: bool = False) -> Evaluation:
    """Every model's metrics per drug, per fold, per cell line (with ``per_cell_line``) and the tidy summary;
    ``thresholds`` (fold, drug, threshold) are the sensitivity cut-offs from each fold's training pairs;
    ``naive_name`` the model that normalizes drevalpy's Pearson."""
    naive = predictions[naive_name] if naive_name else None
    tables: dict[str, list] = {"per_drug": [], "per_cell_line": [], "per_fold": [], "summary": []}
    for name, frame in predictions.items():
        scored = score_pairs(frame, predictions[baseline_name], thresholds, lower_is_sensitive, naive)
        by_drug_and_fold = per_group_and_fold(scored, metric_values, min_pairs)  # each group's metrics once
        pooled_by_fold = per_group_and_fold(scored.assign(scope="pooled"), metric_values, 1, by="scope")
        per_drug = average_over_folds(by_drug_and_fold, "drug").reindex(columns=["drug", "n", "folds", *METRICS])
        per_cell = per_cell_line_metrics(scored, min_pairs) if per_cell_line else None
        pooled = average_over_folds(pooled_by_fold, "scope").iloc[0]
        tables["per_drug"].append(per_drug.assign(model=name))
        tables["per_fold"].append(per_fold_metrics(by_drug_and_fold, pooled_by_fold).assign(model=name))
        tables["summary"].append(summarize(per_drug, pooled, per_cell).assign(model=name))
        if per_cell is not None:
            tables["per_cell_line"].append(per_cell.assign(model=name))

    def long(parts):
        if not parts:
            return None
        table = pd.concat(parts, ignore_index=True)
        return table[["model", *table.columns.drop("model")]]

    return Evaluation(long(tables["per_drug"]), long(tables["summary"]), long(tables["per_cell_line"]),
                      long(tables["per_fold"]))
