"""Per-drug ElasticNet on the preprocessed omics, its penalty and L1 share chosen per drug.

For each drug, the full regularization path (``n_alphas`` penalties from the drug's own alpha_max down to
``eps`` times it) is fitted for every ``l1_ratios`` value on the training cell lines, and the (alpha,
l1_ratio) with the lowest squared error on the drug's validation cell lines is kept: a drug with a diffuse
signal can pick a dense, strongly shrunk model and one with a single marker a sparse one, which one alpha
for all drugs cannot. Then, as every model is, it is refit on all non-test cell lines at that choice
(``refit_params``). A drug without validation pairs takes the most common (l1_ratio, path position) of the
others. With no validation pairs at all (``splits.validation_fraction: 0``) the choice is made per drug by
``inner_folds``-fold cross-validation on the training cell lines instead. With ``tissue: true`` the tissue
is a feature too (``TissueColumns``), as for the ridge.

Coordinate descent runs to ``tol`` or ``max_iter``; drugs whose fit did not converge are counted and logged
(``n_not_converged`` in the saved state), never silenced. A drug unseen in training (drug-blind splits)
falls back to the training mean.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, ElasticNetCV, enet_path

from .base import CellLineData, DrugResponseModel, TissueColumns, TrainingData, per_drug_linear_predictions

log = logging.getLogger(__name__)


class ElasticNetPerDrug(DrugResponseModel):
    uses_validation = True

    def __init__(self, views: list[str] | None = None, l1_ratios: list[float] = (0.1, 0.5, 0.9), n_alphas: int = 8,
                 eps: float = 0.05, max_iter: int = 1000, tol: float = 1e-3, min_cell_lines: int = 10,
                 inner_folds: int = 3, tissue: bool = False, chosen: dict | None = None):
        l1_ratios = [float(r) for r in l1_ratios]
        if not l1_ratios or not all(0 < r <= 1 for r in l1_ratios):
            raise ValueError(f"elastic_net: l1_ratios must lie in (0, 1], got {l1_ratios}")
        super().__init__(views=views, l1_ratios=l1_ratios, n_alphas=int(n_alphas), eps=float(eps), max_iter=max_iter,
                         tol=tol, min_cell_lines=min_cell_lines, inner_folds=inner_folds, tissue=tissue, chosen=chosen)
        self.drugs: list[str] = []
        self.coef = np.zeros((0, 0))
        self.intercept = np.zeros(0)
        self.alpha = np.zeros(0)
        self.l1_ratio = np.zeros(0)
        self.fallback = 0.0
        self.n_not_converged = 0
        self.tissue = TissueColumns()

    def _views(self, cells: CellLineData) -> list[str]:
        return self.params["views"] or sorted(cells.views)

    def _matrix(self, cells: CellLineData, cell_lines) -> np.ndarray:
        # float32: coordinate descent runs about twice as fast as in float64
        X = cells.matrix(self._views(cells), cell_lines).astype(np.float32)
        return self.tissue.append(X, cells, cell_lines) if self.params["tissue"] else X

    def fit(self, data: TrainingData) -> None:
        p = self.params
        cells = data.cells.cell_lines
        if p["tissue"]:
            self.tissue.fit(data.cells, data.cells.matrix(self._views(data.cells), cells))
        X_all = self._matrix(data.cells, cells)
        row = pd.Series(np.arange(len(cells)), index=cells)
        pairs, validation = data.train, data.validation
        self.fallback = float(pairs.response.mean())
        self.drugs = sorted(pairs.drug.unique())
        self.coef = np.zeros((len(self.drugs), X_all.shape[1]), dtype=np.float32)
        self.intercept = np.zeros(len(self.drugs))
        self.alpha = np.full(len(self.drugs), np.nan)
        self.l1_ratio = np.full(len(self.drugs), np.nan)
        self.n_not_converged = 0
        by_drug = pairs.groupby("drug")
        validation_by_drug = dict(tuple(validation.groupby("drug"))) if len(validation) else {}
        paths = {}  # drug -> (intercepts, coefs: l1_ratios x alphas x features, alphas, validation errors)
        for i, drug in enumerate(self.drugs):
            rows = by_drug.get_group(drug)
            X, y = X_all[row.loc[rows.cell_line].to_numpy()], rows.response.to_numpy(dtype=np.float32)
            if len(rows) < p["min_cell_lines"] or (p["chosen"] is not None and drug not in p["chosen"]):
                self.intercept[i] = y.mean()  # too few cell lines to fit (or to choose): predict the drug mean
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                if p["chosen"] is not None:  # the refit: the (alpha, l1_ratio) chosen on validation
                    alpha, l1_ratio = p["chosen"][drug]
                    fit = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, max_iter=p["max_iter"], tol=p["tol"]).fit(X, y)
                    self.coef[i], self.intercept[i], self.alpha[i], self.l1_ratio[i] = fit.coef_, fit.intercept_, alpha, l1_ratio
                elif len(validation):
                    paths[drug] = self._path(X, y, validation_by_drug.get(drug), X_all, row)
                else:
                    fit = ElasticNetCV(l1_ratio=p["l1_ratios"], alphas=p["n_alphas"], eps=p["eps"], cv=p["inner_folds"],
                                       max_iter=p["max_iter"], tol=p["tol"]).fit(X, y)
                    self.coef[i], self.intercept[i] = fit.coef_, fit.intercept_
                    self.alpha[i], self.l1_ratio[i] = fit.alpha_, fit.l1_ratio_
            self.n_not_converged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
        if paths:
            self._choose(paths)
        if self.n_not_converged:
            log.warning("elastic_net: %d of %d drugs did not converge in max_iter=%d iterations (tol %g)",
                        self.n_not_converged, len(self.drugs), p["max_iter"], p["tol"])
        if np.isfinite(self.alpha).any():
            log.info("elastic_net: per-drug l1_ratio %s, median alpha %.3g",
                     dict(Counter(self.l1_ratio[np.isfinite(self.l1_ratio)].tolist())), np.nanmedian(self.alpha))

    def _path(self, X, y, validation_rows, X_all, row):
        """The drug's regularization paths (one per l1_ratio) on its training cell lines and their squared
        errors on its validation cell lines (None without validation pairs)."""
        p = self.params
        x_mean, y_mean = X.mean(axis=0), y.mean()
        coefs, alphas = [], []
        for l1_ratio in p["l1_ratios"]:
            path_alphas, path_coefs, _ = enet_path(X - x_mean, y - y_mean, l1_ratio=l1_ratio, eps=p["eps"],
                                                   alphas=p["n_alphas"], max_iter=p["max_iter"], tol=p["tol"])
            coefs.append(path_coefs.T)  # alphas x features
            alphas.append(path_alphas)
        coefs, alphas = np.stack(coefs), np.stack(alphas)  # l1_ratios x alphas (x features)
        intercepts = y_mean - coefs @ x_mean
        errors = None
        if validation_rows is not None:
            X_val = X_all[row.loc[validation_rows.cell_line].to_numpy()]
            predicted = np.einsum("laf,vf->lav", coefs, X_val) + intercepts[..., None]
            errors = np.mean((predicted - validation_rows.response.to_numpy()) ** 2, axis=-1)
        return intercepts, coefs, alphas, errors

    def _choose(self, paths: dict) -> None:
        """Per drug the path point of lowest validation error; drugs without validation pairs take the most
        common (l1_ratio, path position) of the others."""
        choices = {drug: np.unravel_index(np.argmin(path[3]), path[3].shape)
                   for drug, path in paths.items() if path[3] is not None}
        common = Counter(choices.values()).most_common(1)[0][0] if choices else (0, self.params["n_alphas"] // 2)
        for drug, (intercepts, coefs, alphas, _) in paths.items():
            i, (l1, a) = self.drugs.index(drug), choices.get(drug, common)
            self.coef[i], self.intercept[i] = coefs[l1, a], intercepts[l1, a]
            self.alpha[i], self.l1_ratio[i] = alphas[l1, a], self.params["l1_ratios"][l1]

    def refit_params(self) -> dict:
        """Each drug's chosen (alpha, l1_ratio): the refit on all non-test pairs fits exactly that model."""
        chosen = {drug: [float(self.alpha[i]), float(self.l1_ratio[i])]
                  for i, drug in enumerate(self.drugs) if np.isfinite(self.alpha[i])}
        return {**self.params, "chosen": chosen}

    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        return per_drug_linear_predictions(pairs, lambda index: self._matrix(cells, index), self.coef, self.intercept,
                                           self.drugs, self.fallback)

    def state(self):
        return ({"drugs": self.drugs, "fallback": self.fallback, "n_not_converged": self.n_not_converged,
                 "tissues": self.tissue.tissues, "tissue_scale": self.tissue.scale},
                {"coef": self.coef, "intercept": self.intercept, "alpha": self.alpha, "l1_ratio": self.l1_ratio})

    def load_state(self, meta, arrays):
        self.drugs, self.fallback = meta["drugs"], meta["fallback"]
        self.n_not_converged = meta.get("n_not_converged", 0)
        self.tissue = TissueColumns(meta.get("tissues"), meta.get("tissue_scale", 1.0))
        self.coef, self.intercept = arrays["coef"], arrays["intercept"]
        self.alpha, self.l1_ratio = arrays["alpha"], arrays["l1_ratio"]
