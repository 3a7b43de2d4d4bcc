"""How far to trust a final model's prediction for a new sample: a conformal interval, a probability of
sensitivity, the prediction's place among the training cell lines, and an out-of-distribution score.

Calibration comes from data the final model's user already has and that never includes the samples:
- **Intervals** are split-conformal per drug, from the out-of-fold residuals (observed - predicted) of the
  model's cell-blind (LCO) cross-validation: every residual is of a cell line that the fold's model never
  saw, as a new sample is to the final model. The half-width for level 1 - a is the ceil((n + 1)(1 - a))-th
  smallest |residual| of the drug (n residuals); a drug with too few residuals for the level gets an
  infinite interval, never a made-up one. The final model trains on all cell lines (CV models on 80%), so
  its errors are, if anything, smaller: the intervals are slightly conservative for samples like the
  training panel. ``fold_coverage`` checks the level empirically: each CV fold's pairs against half-widths
  from the other folds' residuals only.
- **p(sensitive)** is the probability that the response lies beyond the drug's sensitivity threshold (the
  median training response, as in the evaluation) under the same residual distribution: P(y_pred + R <
  threshold) for lower-is-sensitive measures, with R drawn from the drug's out-of-fold residuals.
- **OOD score**: the mean Euclidean distance to the k nearest training cell lines in the final features of
  the OOD views (``final.ood_views``, default expression; each view scaled by 1 / sqrt(its feature count), so
  each weighs alike). Expression alone, because it is what says which kind of cell a sample is: on GDSC2, with
  copy number and mutation calls (sparse binary, heavy-tailed once z-scored) added, a tissue the panel lacks
  (skin) was flagged for 4% of its cell lines instead of 56% (bench/ood_views.py; README, "Predict for new
  samples").
  The flag threshold is a quantile (default 0.95) of the training cell lines' leave-one-out scores (each
  against the others), which stand in for held-out cell lines of the same population: about 5% of new cell
  lines like the panel are flagged. A profile whose genes are scrambled lies far from every real line.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def out_of_fold_residuals(predictions: pd.DataFrame, model: str | None = None) -> pd.DataFrame:
    """``cell_line, drug, fold, residual`` (observed - predicted) of one model's cross-validation predictions
    (the evaluation's predictions table: y_true, y_pred, fold and model)."""
    if model is not None:
        predictions = predictions[predictions.model == model]
    if predictions.empty:
        raise ValueError(f"no cross-validation predictions of model {model!r} to calibrate on")
    residual = predictions.y_true.to_numpy(dtype=np.float64) - predictions.y_pred.to_numpy(dtype=np.float64)
    return pd.DataFrame({"cell_line": predictions.cell_line.astype(str).to_numpy(),
                         "drug": predictions.drug.astype(str).to_numpy(),
                         "fold": predictions.fold.to_numpy(), "residual": residual})


def conformal_halfwidth(residuals: np.ndarray, level: float, n: int | None = None) -> float:
    """The split-conformal half-width at ``level``: the ceil((n + 1) level)-th smallest of n |residuals|;
    infinite when n is too small for the level (fewer than level / (1 - level) residuals). With repeated
    cross-validation a cell line has a residual per repeat: ``n`` is then the number of cell lines, and the
    half-width the same quantile, ceil((n + 1) level) / n, of all the residuals."""
    values = np.sort(np.abs(np.asarray(residuals, dtype=np.float64)))
    n = len(values) if n is None else n
    rank = math.ceil((n + 1) * level - 1e-9)  # the tolerance keeps e.g. 101 * 0.55 from rounding up past 55.55
    if not 0 < rank <= n:
        return math.inf
    return float(values[-(-rank * len(values) // n) - 1])  # the ceil(rank / n * len)-th, in integers


def halfwidths(residuals: pd.DataFrame, level: float) -> pd.Series:
    """drug -> conformal half-width at ``level`` from its residuals (n: its cell lines, counted once over repeats)."""
    return pd.Series({drug: conformal_halfwidth(group.residual.to_numpy(), level, group.cell_line.nunique())
                      for drug, group in residuals.groupby("drug")}, dtype=float)


def fold_coverage(residuals: pd.DataFrame, level: float, folds_of_repeat: dict[int, list[int]] | None = None
                  ) -> pd.DataFrame:
    """The empirical coverage of the intervals per CV fold: the fold's pairs against half-widths computed
    from the other folds of its repeat only (``folds_of_repeat``: repeat -> folds; default one repeat).
    Columns fold, pairs, covered, coverage, nominal."""
    folds_of_repeat = folds_of_repeat or {0: sorted(residuals.fold.unique())}
    rows = []
    for folds in folds_of_repeat.values():
        for fold in folds:
            held = residuals[residuals.fold == fold]
            others = residuals[residuals.fold.isin(folds) & (residuals.fold != fold)]
            width = halfwidths(others, level).reindex(held.drug).to_numpy()
            covered = int((np.abs(held.residual.to_numpy()) <= width).sum())
            rows.append({"fold": int(fold), "pairs": len(held), "covered": covered,
                         "coverage": covered / len(held) if len(held) else np.nan, "nominal": level})
    return pd.DataFrame(rows)


def probability_sensitive(y_pred: np.ndarray, drugs: np.ndarray, residuals: pd.DataFrame, thresholds: pd.Series,
                          lower_is_sensitive: bool) -> np.ndarray:
    """P(response beyond the drug's threshold) with the response y_pred + R, R from the drug's out-of-fold
    residuals; (count + 1) / (n + 2), so never exactly 0 or 1 from a finite sample. NaN for a drug without
    residuals or threshold."""
    y_pred, drugs = np.asarray(y_pred, dtype=np.float64), np.asarray(drugs, dtype=object)
    by_drug = {drug: np.sort(r.to_numpy()) for drug, r in residuals.groupby("drug")["residual"]}
    out = np.full(len(y_pred), np.nan)
    for drug in pd.unique(drugs):
        rows = np.flatnonzero(drugs == drug)
        if drug not in by_drug or drug not in thresholds.index:
            continue
        sorted_residuals, margin = by_drug[drug], thresholds[drug] - y_pred[rows]
        below = np.searchsorted(sorted_residuals, margin, side="left")  # residuals r < threshold - y_pred
        count = below if lower_is_sensitive else len(sorted_residuals) - np.searchsorted(sorted_residuals, margin,
                                                                                          side="right")
        out[rows] = (count + 1) / (len(sorted_residuals) + 2)
    return out


def training_percentile(y_pred: np.ndarray, drugs: np.ndarray, training_response: pd.DataFrame) -> np.ndarray:
    """The prediction's percentile among the drug's observed training responses (0-100: the share of training
    cell lines with a response at or below it); NaN for a drug without training responses."""
    y_pred, drugs = np.asarray(y_pred, dtype=np.float64), np.asarray(drugs, dtype=object)
    by_drug = {drug: np.sort(r.to_numpy(dtype=np.float64)) for drug, r in training_response.groupby("drug")["response"]}
    out = np.full(len(y_pred), np.nan)
    for drug in pd.unique(drugs):
        if drug in by_drug:
            rows = np.flatnonzero(drugs == drug)
            out[rows] = 100.0 * np.searchsorted(by_drug[drug], y_pred[rows], side="right") / len(by_drug[drug])
    return out


def ood_view_names(available, configured) -> list[str]:
    """The configured OOD views that the data set has; all its views when it has none of them."""
    chosen = [name for name in configured if name in available]
    return chosen or sorted(available)


def ood_matrix(views: dict, names: list[str] | None = None) -> np.ndarray:
    """The views (preprocessed AnnData, the same cell lines in the same order) side by side, each divided by
    the square root of its feature count, so that every view weighs alike in a distance."""
    names = names or sorted(views)
    return np.hstack([np.asarray(views[name].X, dtype=np.float64) / np.sqrt(max(1, views[name].n_vars))
                      for name in names])


class NeighbourDistance:
    """Mean distance to the k nearest training cell lines, with a threshold from the training lines'
    leave-one-out distances (``threshold_quantile`` of them)."""

    def __init__(self, k: int = 5, threshold_quantile: float = 0.95):
        if k < 1:
            raise ValueError(f"ood neighbours: k must be at least 1, got {k}")
        self.k, self.threshold_quantile = k, threshold_quantile
        self.reference = np.zeros((0, 0))
        self.threshold = math.nan
        self.training_scores = np.zeros(0)

    def fit(self, reference: np.ndarray) -> "NeighbourDistance":
        reference = np.asarray(reference, dtype=np.float64)
        if len(reference) <= self.k:
            raise ValueError(f"ood: {len(reference)} training cell lines; the score needs more than k = {self.k}")
        self.reference = reference
        self.training_scores = self._scores(reference, leave_one_out=True)
        self.threshold = float(np.quantile(self.training_scores, self.threshold_quantile))
        return self

    def _scores(self, X: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
        from sklearn.neighbors import NearestNeighbors

        k = self.k + 1 if leave_one_out else self.k
        distances, _ = NearestNeighbors(n_neighbors=k).fit(self.reference).kneighbors(np.asarray(X, dtype=np.float64))
        return distances[:, 1:].mean(axis=1) if leave_one_out else distances.mean(axis=1)

    def score(self, X: np.ndarray) -> np.ndarray:
        return self._scores(X)

    def flag(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) > self.threshold
