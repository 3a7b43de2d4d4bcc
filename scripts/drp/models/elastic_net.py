"""Per-drug ElasticNet on the preprocessed omics.

One linear model per drug with one penalty ``alpha`` for all drugs, a hyperparameter that the pipeline picks
from the model's ``grid`` on the validation groups (the ridge baseline chooses its penalty per drug). Drugs
whose fit did not converge within ``max_iter`` are counted and logged (``n_not_converged`` in the saved state),
not silenced. A drug unseen in training (drug-blind splits) falls back to the training mean.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet

from .base import CellLineData, DrugResponseModel, TrainingData, per_drug_linear_predictions

log = logging.getLogger(__name__)


class ElasticNetPerDrug(DrugResponseModel):
    def __init__(self, views: list[str] | None = None, alpha: float = 0.2, l1_ratio: float = 0.5,
                 max_iter: int = 1000, tol: float = 1e-3, min_cell_lines: int = 10):
        super().__init__(views=views, alpha=alpha, l1_ratio=l1_ratio, max_iter=max_iter, tol=tol,
                         min_cell_lines=min_cell_lines)
        self.drugs: list[str] = []
        self.coef = np.zeros((0, 0))
        self.intercept = np.zeros(0)
        self.fallback = 0.0
        self.n_not_converged = 0

    def _views(self, cells: CellLineData) -> list[str]:
        return self.params["views"] or sorted(cells.views)

    def fit(self, data: TrainingData) -> None:
        pairs = data.train
        X_all = pd.DataFrame(data.cells.matrix(self._views(data.cells), data.cells.cell_lines), index=data.cells.cell_lines)
        self.fallback = float(pairs.response.mean())
        self.drugs = sorted(pairs.drug.unique())
        self.coef = np.zeros((len(self.drugs), X_all.shape[1]), dtype=np.float32)
        self.intercept = np.zeros(len(self.drugs))
        by_drug = pairs.groupby("drug")
        self.n_not_converged = 0
        for i, drug in enumerate(self.drugs):
            rows = by_drug.get_group(drug)
            y = rows.response.to_numpy()
            if len(rows) < self.params["min_cell_lines"]:
                self.intercept[i] = y.mean()  # too few cell lines to fit: predict the drug mean
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                fit = ElasticNet(alpha=self.params["alpha"], l1_ratio=self.params["l1_ratio"],
                                 max_iter=self.params["max_iter"], tol=self.params["tol"], selection="random",
                                 random_state=data.seed)
                fit.fit(X_all.loc[rows.cell_line].to_numpy(), y)
            self.n_not_converged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
            self.coef[i], self.intercept[i] = fit.coef_, fit.intercept_
        if self.n_not_converged:
            log.warning("elastic_net (alpha %g): %d of %d drugs did not converge in max_iter=%d iterations (tol %g)",
                        self.params["alpha"], self.n_not_converged, len(self.drugs), self.params["max_iter"],
                        self.params["tol"])

    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        return per_drug_linear_predictions(pairs, lambda index: cells.matrix(self._views(cells), index), self.coef,
                                           self.intercept, self.drugs, self.fallback)

    def state(self):
        return ({"drugs": self.drugs, "fallback": self.fallback, "n_not_converged": self.n_not_converged},
                {"coef": self.coef, "intercept": self.intercept})

    def load_state(self, meta, arrays):
        self.drugs, self.fallback = meta["drugs"], meta["fallback"]
        self.n_not_converged = meta.get("n_not_converged", 0)
        self.coef, self.intercept = arrays["coef"], arrays["intercept"]
