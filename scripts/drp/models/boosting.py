"""Gradient-boosted trees on (cell line omics, drug fingerprint) pairs: the tree-ensemble baseline.

One global model for all drugs (scikit-learn's histogram gradient boosting, LightGBM's algorithm), so it
also predicts for drugs unseen in training through their fingerprint. Early stopping inside a fit uses
a random 10% of the training pairs; the hyperparameter grid is chosen on the validation fold by the
pipeline. The fitted trees are saved as plain node arrays and predicted by ``predict_trees`` below
(checked equal to scikit-learn's own prediction), so no pickle is ever loaded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from .base import CellLineData, DrugResponseModel, TrainingData
from .pair_features import PairFeatures

_NODE_FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf")


def flatten_trees(model: HistGradientBoostingRegressor) -> dict[str, np.ndarray]:
    """Every tree's nodes in one set of arrays; child indices point into the concatenation."""
    trees = [predictors[0].nodes for predictors in model._predictors]
    offsets = np.cumsum([0] + [len(nodes) for nodes in trees[:-1]])
    arrays = {field: np.concatenate([nodes[field] for nodes in trees]) for field in _NODE_FIELDS}
    for child in ("left", "right"):
        arrays[child] = np.concatenate([nodes[child].astype(np.int64) + offset for nodes, offset in zip(trees, offsets)])
    arrays["roots"] = offsets.astype(np.int64)
    return arrays


def predict_trees(trees: dict[str, np.ndarray], baseline: float, X: np.ndarray) -> np.ndarray:
    """Sum of leaf values over trees plus the baseline, as HistGradientBoostingRegressor.predict."""
    total = np.full(len(X), baseline, dtype=np.float64)
    rows = np.arange(len(X))
    is_leaf = trees["is_leaf"].astype(bool)
    for root in trees["roots"]:
        node = np.full(len(X), root, dtype=np.int64)
        active = ~is_leaf[node]
        while active.any():
            current = node[active]
            values = X[rows[active], trees["feature_idx"][current]]
            go_left = np.where(np.isnan(values), trees["missing_go_to_left"][current].astype(bool),
                               values <= trees["num_threshold"][current])
            node[active] = np.where(go_left, trees["left"][current], trees["right"][current])
            active = ~is_leaf[node]
        total += trees["value"][node]
    return total


class GradientBoosting(DrugResponseModel):
    handles_unseen_drugs = True

    def __init__(self, views: list[str] | None = None, max_features_per_view: int | None = 256,
                 learning_rate: float = 0.1, max_leaf_nodes: int = 31, max_iter: int = 200,
                 min_samples_leaf: int = 20, l2_regularization: float = 0.0, max_bins: int = 63):
        super().__init__(views=views or ["expression"], max_features_per_view=max_features_per_view,
                         learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes, max_iter=max_iter,
                         min_samples_leaf=min_samples_leaf, l2_regularization=l2_regularization, max_bins=max_bins)
        self.features = PairFeatures(self.params["views"], max_features_per_view)
        self.trees: dict[str, np.ndarray] = {}
        self.baseline = 0.0

    def fit(self, data: TrainingData) -> None:
        p = self.params
        self.features.fit(data)
        X = self.features.pair_matrix(data.cells, data.train)
        model = HistGradientBoostingRegressor(
            learning_rate=p["learning_rate"], max_leaf_nodes=p["max_leaf_nodes"], max_iter=p["max_iter"],
            min_samples_leaf=p["min_samples_leaf"], l2_regularization=p["l2_regularization"], max_bins=p["max_bins"],
            early_stopping=True, validation_fraction=0.1, n_iter_no_change=10, random_state=data.seed)
        model.fit(X, data.train.response.to_numpy())
        self.trees = flatten_trees(model)
        self.baseline = float(np.ravel(model._baseline_prediction)[0])
        self.n_iterations = int(model.n_iter_)

    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        X = self.features.pair_matrix(cells, pairs)
        return pairs.assign(y_pred=predict_trees(self.trees, self.baseline, X))

    def state(self):
        meta, arrays = self.features.state()
        return {**meta, "baseline": self.baseline, "n_iterations": self.n_iterations}, {**arrays, **self.trees}

    def load_state(self, meta, arrays):
        self.features.load_state(meta, arrays)
        self.baseline, self.n_iterations = meta["baseline"], meta["n_iterations"]
        self.trees = {key: arrays[key] for key in (*_NODE_FIELDS, "roots")}
