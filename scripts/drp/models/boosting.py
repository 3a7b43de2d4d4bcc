"""Gradient-boosted trees on (cell line omics, drug fingerprint) pairs: the tree-ensemble baseline.

One global model for all drugs (LightGBM), so it also predicts for drugs unseen in training through their
fingerprint. Early stopping uses the validation fold's pairs, whose cell lines are disjoint from the
training cell lines (not a random share of the training pairs, which would hold the same cell lines); the
hyperparameter grid is then chosen on the same validation fold by the pipeline.

LightGBM rather than scikit-learn's HistGradientBoostingRegressor because of the fingerprint bits: about
a thousand binary columns, each set in ~5% of the pairs. scikit-learn builds a dense histogram of every
column at every split (~0.8 s per tree here on one core), LightGBM stores them as sparse bins and spends
its time on the ~128 expression columns (~0.04 s per tree), which buys more, smaller steps with early
stopping in a fraction of the time (measured on GDSC2 LCO folds, see the config).

The fitted trees are saved as plain node arrays and predicted by ``predict_trees`` below (checked equal to
LightGBM's own prediction), so no pickle or library model file is ever loaded.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from .base import CellLineData, DrugResponseModel, TrainingData
from .pair_features import PairFeatures

_NODE_FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "missing_type", "left", "right", "is_leaf")
# LightGBM's missing_type of a split: None (NaN is read as 0.0), Zero (0 and NaN take the default side),
# NaN (NaN takes the default side)
_MISSING_TYPES = {"None": 0, "Zero": 1, "NaN": 2}
_ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold: |x| <= this counts as zero


def flatten_trees(booster, num_iteration: int | None = None) -> dict[str, np.ndarray]:
    """Every tree of a LightGBM regression booster (the first ``num_iteration``) as one set of node arrays;
    child indices point into the concatenation, ``roots`` holds each tree's first node."""
    nodes: list[tuple] = []
    roots = []

    def add(node: dict) -> int:
        index = len(nodes)
        nodes.append(None)
        if "leaf_value" in node:
            nodes[index] = (node["leaf_value"], 0, 0.0, 0, 0, -1, -1, 1)
        else:
            if node["decision_type"] != "<=":
                raise ValueError(f"unsupported LightGBM split {node['decision_type']!r} (categorical features?)")
            left, right = add(node["left_child"]), add(node["right_child"])
            nodes[index] = (0.0, node["split_feature"], float(node["threshold"]), int(node["default_left"]),
                            _MISSING_TYPES[node["missing_type"]], left, right, 0)
        return index

    for tree in booster.dump_model(num_iteration=num_iteration)["tree_info"]:
        roots.append(add(tree["tree_structure"]))
    dtypes = (np.float64, np.int64, np.float64, np.uint8, np.uint8, np.int64, np.int64, np.uint8)
    arrays = {field: np.array([node[i] for node in nodes], dtype=dtype)
              for i, (field, dtype) in enumerate(zip(_NODE_FIELDS, dtypes))}
    arrays["roots"] = np.array(roots, dtype=np.int64)
    return arrays


def predict_trees(trees: dict[str, np.ndarray], baseline: float, X: np.ndarray) -> np.ndarray:
    """Sum of leaf values over trees plus the baseline, as LightGBM's Booster.predict (whose first tree
    already holds the mean response, so the baseline of a LightGBM model is 0); trees are added in order,
    as LightGBM does, so the sum is the same to the last bit."""
    X = np.asarray(X, dtype=np.float64)
    total = np.full(len(X), baseline, dtype=np.float64)
    rows = np.arange(len(X))
    is_leaf = trees["is_leaf"].astype(bool)
    default_left = trees["missing_go_to_left"].astype(bool)
    for root in trees["roots"]:
        node = np.full(len(X), root, dtype=np.int64)
        active = ~is_leaf[node]
        while active.any():
            current = node[active]
            values = X[rows[active], trees["feature_idx"][current]]
            missing_type = trees["missing_type"][current]
            nan = np.isnan(values)
            values = np.where(nan & (missing_type != 2), 0.0, values)  # None: NaN is read as 0.0
            default = ((missing_type == 1) & (np.abs(values) <= _ZERO_THRESHOLD)) | ((missing_type == 2) & nan)
            go_left = np.where(default, default_left[current], values <= trees["num_threshold"][current])
            node[active] = np.where(go_left, trees["left"][current], trees["right"][current])
            active = ~is_leaf[node]
        total += trees["value"][node]
    return total


def tree_params(p: dict, seed: int) -> dict:
    """LightGBM settings of the trees and the binning, shared by the boosting and the forest."""
    # num_threads 0: OpenMP's default, which the pipeline limits with threadpoolctl (lightgbm is imported
    # with this module, before that limit is set: a library loaded inside threadpool_limits escapes it,
    # and 2 OpenMP threads on a busy 2-core machine are ~10x slower than 1); row-wise histograms
    # and deterministic=True so a fit does not depend on a timing-based choice
    return {"objective": "regression", "num_leaves": p["max_leaf_nodes"], "min_data_in_leaf": p["min_samples_leaf"],
            "max_bin": p["max_bins"], "bin_construct_sample_cnt": p["bin_sample"], "seed": seed,
            "deterministic": True, "force_row_wise": True, "num_threads": 0, "verbose": -1}


class _PairTrees(DrugResponseModel):
    """What the gradient boosting and the random forest share: the pairs' features, LightGBM's binned pairs,
    the saved trees and the prediction. ``params`` holds ``views`` and ``max_features_per_view``."""

    handles_unseen_drugs = True
    average_trees = False  # a forest predicts the mean of its trees, a boosting their sum

    def __init__(self, **params):
        super().__init__(**params)
        self.features = PairFeatures(self.params["views"], self.params["max_features_per_view"])
        self.trees: dict[str, np.ndarray] = {}
        self.baseline = 0.0
        self.n_iterations = 0

    def _datasets(self, data: TrainingData, params: dict):
        """LightGBM's binned training and validation pairs. They depend on the chosen features and the binning
        settings, not on the learning rate or the trees' shape, so a fold's grid candidates share one binned
        copy (building it and the pairs' matrix is ~3.5 s of a ~15 s fit)."""
        binning = [params[k] for k in ("max_bin", "bin_construct_sample_cnt", "min_data_in_leaf", "seed")]
        key = ("lightgbm_datasets", repr(self.features.cell_features), self.features.drug_bits.tobytes(), repr(binning))
        if key not in data.shared:
            train = lgb.Dataset(self.features.pair_matrix(data.cells, data.train), data.train.response.to_numpy(),
                                params=params, free_raw_data=True)
            validation = None
            if len(data.validation):
                validation = lgb.Dataset(self.features.pair_matrix(data.cells, data.validation),
                                         data.validation.response.to_numpy(), reference=train)
            data.shared[key] = (train, validation)
        return data.shared[key]

    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        X = self.features.pair_matrix(cells, pairs)
        booster = getattr(self, "_booster", None)
        if booster is not None:
            # Fitted in this process (the training job's validation, test and view-randomization predictions):
            # LightGBM's own prediction, which predict_trees equals to the last bit (tested), in a fraction of
            # the time. A loaded model has no booster: no library model file is ever read.
            return pairs.assign(y_pred=booster.predict(X, num_iteration=self.n_iterations))
        total = predict_trees(self.trees, self.baseline, X)
        return pairs.assign(y_pred=total / max(1, self.n_iterations) if self.average_trees else total)

    def state(self):
        meta, arrays = self.features.state()
        return {**meta, "baseline": self.baseline, "n_iterations": self.n_iterations}, {**arrays, **self.trees}

    def load_state(self, meta, arrays):
        self.features.load_state(meta, arrays)
        self.baseline, self.n_iterations = meta["baseline"], meta["n_iterations"]
        self.trees = {key: arrays[key] for key in (*_NODE_FIELDS, "roots")}


class GradientBoosting(_PairTrees):
    uses_validation = True  # early stopping on the validation cell lines

    def __init__(self, views: list[str] | None = None, max_features_per_view: int | None = 128,
                 learning_rate: float = 0.1, max_leaf_nodes: int = 63, max_iter: int = 300,
                 min_samples_leaf: int = 50, l2_regularization: float = 0.0, max_bins: int = 31,
                 n_iter_no_change: int = 10, bin_sample: int = 20000):
        super().__init__(views=views or ["expression"], max_features_per_view=max_features_per_view,
                         learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes, max_iter=max_iter,
                         min_samples_leaf=min_samples_leaf, l2_regularization=l2_regularization, max_bins=max_bins,
                         n_iter_no_change=n_iter_no_change, bin_sample=bin_sample)

    def lightgbm_params(self, seed: int) -> dict:
        p = self.params
        return {**tree_params(p, seed), "learning_rate": p["learning_rate"], "lambda_l2": p["l2_regularization"]}

    def fit(self, data: TrainingData) -> None:
        p = self.params
        self.features.fit(data)
        params = self.lightgbm_params(data.seed)
        train, validation = self._datasets(data, params)
        if validation is not None:
            booster = lgb.train(params, train, num_boost_round=p["max_iter"], valid_sets=[validation],
                                callbacks=[lgb.early_stopping(p["n_iter_no_change"], verbose=False)])
            self.n_iterations = int(booster.best_iteration or booster.current_iteration())
            self.validation_score = float(booster.best_score["valid_0"]["l2"])
        else:  # no validation pairs (e.g. a one-fold run): no early stopping, all max_iter trees
            booster = lgb.train(params, train, num_boost_round=p["max_iter"])
            self.n_iterations = int(booster.current_iteration())
        self.trees = flatten_trees(booster, num_iteration=self.n_iterations)
        self.baseline = 0.0
        self._booster = booster

    def refit_params(self) -> dict:
        return {**self.params, "max_iter": self.n_iterations}  # without validation pairs: exactly that many trees


class RandomForest(_PairTrees):
    """A random forest on the same (cell line omics, drug fingerprint) pairs: LightGBM's ``rf`` mode, i.e.
    ``n_trees`` deep trees, each on a ``bagging_fraction`` of the pairs (drawn without replacement), each
    split choosing among a random ``feature_fraction`` of the features, the prediction their average. A fixed
    number of trees, no early stopping: more trees do not overfit a forest, they only cost time. It shares
    LightGBM's binned pairs, the saved-tree format and the predictions with the gradient boosting."""

    uses_validation = False  # no early stopping; a grid is still chosen on the validation cell lines
    average_trees = True

    def __init__(self, views: list[str] | None = None, max_features_per_view: int | None = 256, n_trees: int = 300,
                 max_leaf_nodes: int = 1023, min_samples_leaf: int = 20, feature_fraction: float = 0.33,
                 bagging_fraction: float = 0.632, max_bins: int = 31, bin_sample: int = 20000):
        super().__init__(views=views or ["expression"], max_features_per_view=max_features_per_view, n_trees=n_trees,
                         max_leaf_nodes=max_leaf_nodes, min_samples_leaf=min_samples_leaf,
                         feature_fraction=feature_fraction, bagging_fraction=bagging_fraction, max_bins=max_bins,
                         bin_sample=bin_sample)

    def lightgbm_params(self, seed: int) -> dict:
        p = self.params
        return {**tree_params(p, seed), "boosting": "rf", "bagging_fraction": p["bagging_fraction"], "bagging_freq": 1,
                "feature_fraction_bynode": p["feature_fraction"]}

    def fit(self, data: TrainingData) -> None:
        self.features.fit(data)
        params = self.lightgbm_params(data.seed)
        train, _ = self._datasets(data, params)
        self._booster = lgb.train(params, train, num_boost_round=self.params["n_trees"])
        self.n_iterations = int(self._booster.current_iteration())
        self.trees = flatten_trees(self._booster)
        self.baseline = 0.0
