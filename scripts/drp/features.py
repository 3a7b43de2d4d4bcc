"""Per-fold preprocessing: feature selection and scaling fitted on the fold's training cell lines only.

The fitted statistics (variance used for selection, mean and std used for scaling) are kept in ``var``
of the output, so anyone can check that they come from training cells: the leakage test does.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .splits import TEST, fold_roles, fold_table


def training_cell_lines(splits: pd.DataFrame, test_fold: int) -> pd.Index:
    """Cell lines with at least one training or validation pair (never a test-only cell line)."""
    splits = fold_table(splits, test_fold)
    roles = fold_roles(splits, test_fold)
    return pd.Index(sorted(splits.loc[roles != TEST, "cell_line"].unique()), name="cell_line")


def scaling_statistics(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (unbiased, n - 1) of training cell lines, computed as
    scanpy's ``pp.scale`` does (mean of squares minus squared mean), with a zero std replaced by 1; in numpy,
    because importing scanpy costs a job seconds for a few lines of arithmetic."""
    mean = X.mean(axis=0, dtype=np.float64)
    var = (X * X).mean(axis=0, dtype=np.float64) - mean**2
    if len(X) > 1:
        var *= len(X) / (len(X) - 1)
    std = np.sqrt(var)
    std[std == 0] = 1
    return mean, std


def fit_transform_view(view: ad.AnnData, train_cells: pd.Index, n_features: int | None = None, scale: bool = True,
                       clip: float | None = None) -> ad.AnnData:
    """Select the ``n_features`` most variable features and z-score them, both on ``train_cells``.

    Features constant among training cells are never selected. Returns every cell line of ``view``
    (test cell lines transformed with the training statistics), with ``obs["in_training"]``.
    """
    train = view[train_cells].to_memory() if view.isbacked else view[train_cells].copy()
    variance = np.asarray(train.X, dtype=np.float64).var(axis=0)
    candidates = np.flatnonzero(variance > 1e-12)
    keep = candidates[np.argsort(-variance[candidates], kind="stable")][: n_features or len(candidates)]
    keep = np.sort(keep)

    if scale:  # float32 variance loses precision for large means
        mean, std = scaling_statistics(np.asarray(train.X[:, keep], dtype=np.float64))
    else:
        mean, std = np.zeros(len(keep)), np.ones(len(keep))

    X = (np.asarray(view.X[:, keep], dtype=np.float64) - mean) / std
    if clip is not None:
        X = np.clip(X, -clip, clip)
    out = ad.AnnData(
        X=X.astype(np.float32),
        obs=view.obs.copy(),
        var=pd.DataFrame({"train_variance": variance[keep], "train_mean": mean, "train_std": std},
                         index=view.var_names[keep]),
    )
    out.obs["in_training"] = out.obs_names.isin(train_cells)
    out.uns["clip"] = clip if clip is not None else "none"
    return out


def apply_fitted_view(view: ad.AnnData, fitted: ad.AnnData) -> ad.AnnData:
    """Transform another data set's raw view with the selection and scaling fitted on a fold
    (``fitted.var``): the cross-study path, where the target's cell lines are all unseen."""
    missing = fitted.var_names.difference(view.var_names)
    if len(missing):
        raise ValueError(f"the target view lacks {len(missing)} of the {fitted.n_vars} features the models were "
                         f"trained on, e.g. {list(missing[:5])}")
    X = (np.asarray(view[:, fitted.var_names].X, dtype=np.float64) - fitted.var["train_mean"].to_numpy()) \
        / fitted.var["train_std"].to_numpy()
    clip = fitted.uns.get("clip", "none")
    if clip != "none":
        X = np.clip(X, -clip, clip)
    out = ad.AnnData(X=X.astype(np.float32), obs=view.obs.copy(), var=fitted.var.copy())
    out.obs["in_training"] = False
    return out
