"""Per-drug ridge regression with its penalty chosen per drug by exact leave-one-out on training cell lines.

The baseline to beat: drug response signal in omics is diffuse, and a dense L2 model with a strong,
per-drug penalty is hard to beat on cell-blind splits. For each drug, on the training cell lines that have
a response for it (centred features and response, so the intercept is unpenalized):

    beta = X'(K + lambda I)^-1 y,  K = X X'  (kernel form: one n x n eigendecomposition per drug, n <= cells)

and with K = U S U', the leave-one-out residuals of every lambda come in closed form,
r_i = (y_i - yhat_i) / (1 - h_ii) with h_ii = 1/n + sum_k U_ik^2 s_k / (s_k + lambda), so every penalty of the
grid is scored exactly for the cost of one decomposition. Penalties are relative: lambda = alpha * tr(K) / n,
the mean squared norm of a centred cell line, so one ``alphas`` grid suits any number of features.

The choice uses the model's own training cell lines only, so the pipeline hands the ridge training and
validation pairs together (``uses_validation`` is false). With ``tissue: true`` the cell line's tissue is
a feature like any other (``TissueColumns``). A drug unseen in training (drug-blind splits) gets the training mean.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .base import CellLineData, DrugResponseModel, TissueColumns, TrainingData, per_drug_linear_predictions

log = logging.getLogger(__name__)

DEFAULT_ALPHAS = [float(a) for a in np.logspace(-3, 3, 25)]


class RidgePerDrug(DrugResponseModel):
    def __init__(self, views: list[str] | None = None, alphas: list[float] | None = None, tissue: bool = False,
                 min_cell_lines: int = 10):
        alphas = [float(a) for a in (alphas or DEFAULT_ALPHAS)]
        if not alphas or min(alphas) <= 0:
            raise ValueError(f"ridge: alphas must be positive numbers, got {alphas}")
        super().__init__(views=views, alphas=alphas, tissue=tissue, min_cell_lines=min_cell_lines)
        self.drugs: list[str] = []
        self.coef = np.zeros((0, 0))
        self.intercept = np.zeros(0)
        self.chosen_alpha = np.zeros(0)
        self.tissue = TissueColumns()
        self.fallback = 0.0

    def _views(self, cells: CellLineData) -> list[str]:
        return self.params["views"] or sorted(cells.views)

    def _matrix(self, cells: CellLineData, cell_lines) -> np.ndarray:
        X = cells.matrix(self._views(cells), cell_lines).astype(np.float64)
        return self.tissue.append(X, cells, cell_lines) if self.params["tissue"] else X

    def fit(self, data: TrainingData) -> None:
        pairs = data.train
        cells = data.cells.cell_lines
        if self.params["tissue"]:
            self.tissue.fit(data.cells, data.cells.matrix(self._views(data.cells), cells))
        X = self._matrix(data.cells, cells)
        row = pd.Series(np.arange(len(cells)), index=cells)
        kernel = X @ X.T
        alphas = np.asarray(self.params["alphas"])
        self.fallback = float(pairs.response.mean())
        self.drugs = sorted(pairs.drug.unique())
        self.coef = np.zeros((len(self.drugs), X.shape[1]), dtype=np.float32)
        self.intercept = np.zeros(len(self.drugs))
        self.chosen_alpha = np.full(len(self.drugs), np.nan)
        # drugs screened on the same training cell lines share one decomposition (in GDSC2, 228 drugs have
        # 127 distinct sets of cell lines); a drug's responses are a column of that set's response matrix
        position = {drug: i for i, drug in enumerate(self.drugs)}
        response = pairs.pivot(index="cell_line", columns="drug", values="response")
        measured = response.notna()
        sets: dict[tuple, list[str]] = {}
        for drug in self.drugs:
            sets.setdefault(tuple(np.flatnonzero(measured[drug].to_numpy())), []).append(drug)
        for members, drugs in sets.items():
            index = np.asarray(members)
            targets = [position[d] for d in drugs]
            Y = response[drugs].to_numpy(dtype=np.float64)[index]
            if len(index) < self.params["min_cell_lines"]:
                self.intercept[targets] = Y.mean(axis=0)  # too few cell lines to fit: predict the drug mean
                continue
            rows = row.loc[response.index[index]].to_numpy()
            self.coef[targets], self.intercept[targets], self.chosen_alpha[targets] = self._fit_set(
                X[rows], kernel[np.ix_(rows, rows)], Y, alphas)
        at_edge = np.isin(self.chosen_alpha, alphas[[0, -1]]).sum()
        log.info("ridge: %d drugs on %d sets of cell lines, median alpha %.3g; %d at an edge of the grid [%g, %g]",
                 len(self.drugs), len(sets), np.nanmedian(self.chosen_alpha), at_edge, alphas[0], alphas[-1])

    @staticmethod
    def _fit_set(X: np.ndarray, kernel: np.ndarray, Y: np.ndarray, alphas: np.ndarray):
        """Ridge fits of the drugs (columns of ``Y``) measured on the same cell lines (rows of ``X``), each
        with the penalty of lowest leave-one-out error; returns coefficients, intercepts and alphas."""
        n = len(Y)
        x_mean, y_mean = X.mean(axis=0), Y.mean(axis=0)
        row_mean = kernel.mean(axis=1)
        centred_kernel = kernel - row_mean[:, None] - row_mean[None, :] + row_mean.mean()  # (X - mean)(X - mean)'
        s, U = np.linalg.eigh(centred_kernel)
        s = np.clip(s, 0.0, None)
        Yc = Y - y_mean
        UtY = U.T @ Yc  # components x drugs
        penalties = alphas * max(float(s.sum()) / n, 1e-12)
        shrink = s[:, None] / (s[:, None] + penalties[None, :])  # components x penalties
        leverage = (U**2) @ shrink + 1.0 / n  # cells x penalties
        scores = np.empty((len(alphas), Y.shape[1]))
        for j in range(len(alphas)):
            fitted = U @ (shrink[:, j:j + 1] * UtY)  # cells x drugs, centred
            scores[j] = np.mean(((Yc - fitted) / np.clip(1.0 - leverage[:, j:j + 1], 1e-12, None)) ** 2, axis=0)
        best = np.argmin(scores, axis=0)
        dual = U @ (UtY / (s[:, None] + penalties[best][None, :]))  # cells x drugs
        beta = (X - x_mean).T @ dual  # features x drugs
        return beta.T, y_mean - x_mean @ beta, alphas[best]

    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        return per_drug_linear_predictions(pairs, lambda index: self._matrix(cells, index),
                                           self.coef.astype(np.float64), self.intercept, self.drugs, self.fallback)

    def state(self):
        meta = {"drugs": self.drugs, "fallback": self.fallback, "tissues": self.tissue.tissues,
                "tissue_scale": self.tissue.scale}
        return meta, {"coef": self.coef, "intercept": self.intercept, "chosen_alpha": self.chosen_alpha}

    def load_state(self, meta, arrays):
        self.drugs, self.fallback = meta["drugs"], meta["fallback"]
        self.tissue = TissueColumns(meta["tissues"], meta["tissue_scale"])
        self.coef, self.intercept, self.chosen_alpha = arrays["coef"], arrays["intercept"], arrays["chosen_alpha"]
