"""Inputs of the global baselines that see a (cell line, drug) pair as omics + drug structure.

The cell part is the fold's preprocessed views (optionally only the most variable features of each,
ranked by the variance among training cell lines that features.py stored in ``var``); the drug part is
the drug's Morgan fingerprint, restricted to the bits that vary among the training drugs. Both choices
are made on training data only, and a drug unseen in training (drug-blind splits) is described by
its fingerprint alone, so these models predict for new drugs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import CellLineData, TrainingData


class PairFeatures:
    def __init__(self, views: list[str], max_features_per_view: int | None):
        self.views = list(views)
        self.max_features_per_view = max_features_per_view
        self.cell_features: dict[str, list[str]] = {}
        self.drug_bits = np.zeros(0, dtype=np.int64)

    def fit(self, data: TrainingData) -> "PairFeatures":
        if data.cells.drug_features is None:
            raise ValueError("this model needs drug fingerprints (results/<dataset>/data/drug_fingerprints.h5ad)")
        for view in self.views:
            var = data.cells.views[view].var
            order = np.argsort(-var["train_variance"].to_numpy(), kind="stable")[: self.max_features_per_view]
            self.cell_features[view] = list(var.index[np.sort(order)])
        training_drugs = sorted(data.train.drug.unique())
        bits = np.asarray(data.cells.drug_features[training_drugs].X)
        self.drug_bits = np.flatnonzero(bits.min(axis=0) != bits.max(axis=0))
        return self

    @property
    def n_cell_features(self) -> int:
        return sum(len(columns) for columns in self.cell_features.values())

    def cell_matrix(self, cells: CellLineData, cell_lines) -> np.ndarray:
        cell_lines = pd.Index(cell_lines)
        return np.hstack([np.asarray(cells.views[v][cell_lines, self.cell_features[v]].X, dtype=np.float32)
                          for v in self.views])

    def drug_matrix(self, cells: CellLineData, drugs) -> np.ndarray:
        if cells.drug_features is None:
            raise ValueError("this model needs drug fingerprints to predict")
        unknown = sorted(set(drugs) - set(cells.drug_features.obs_names))
        if unknown:
            raise ValueError(f"no fingerprint for drugs {unknown[:5]}")
        return np.asarray(cells.drug_features[pd.Index(drugs)].X, dtype=np.float32)[:, self.drug_bits]

    def pair_matrix(self, cells: CellLineData, pairs: pd.DataFrame) -> np.ndarray:
        """One row per pair: [cell features, drug bits] (float32)."""
        cell_index, drug_index = pd.Index(sorted(pairs.cell_line.unique())), pd.Index(sorted(pairs.drug.unique()))
        cell_part = self.cell_matrix(cells, cell_index)[cell_index.get_indexer(pairs.cell_line)]
        drug_part = self.drug_matrix(cells, drug_index)[drug_index.get_indexer(pairs.drug)]
        return np.hstack([cell_part, drug_part])

    def state(self) -> tuple[dict, dict]:
        return {"cell_features": self.cell_features}, {"drug_bits": self.drug_bits}

    def load_state(self, meta: dict, arrays: dict) -> None:
        self.cell_features = meta["cell_features"]
        self.drug_bits = arrays["drug_bits"]
