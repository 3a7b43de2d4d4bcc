"""Per-drug ridge heads fitted in closed form on a trained encoder's latent space, alone or next to the genes.

The Dr.VAE-style model ends in per-drug linear heads trained by gradient descent together with the encoder.
Here the encoder (a config entry ``{class, params, grid}`` of a model with ``encode``, e.g. ``drvae``) is
trained as usual (its grid candidate and epochs chosen on the validation pairs), and its posterior means
become a view ``latent`` of every cell line, z-scored on the training cell lines. Per drug, a ridge
(``RidgePerDrug``: its penalty chosen by exact leave-one-out on the training cell lines) is fitted on:

- ``views: []``: the latent alone: closed-form heads against the gradient-trained ones;
- ``views: [expression, ...]``: the genes (and tissue) next to the latent, the latent block weighted so that
  its total variance is ``share`` times that of the genes. Per drug, ``share`` is chosen from ``shares`` by
  the squared error on the drug's validation cell lines, which the encoder never trained on (the latent of
  the training cell lines was fitted to their responses, so a leave-one-out choice on them would trust it
  too much). Share 0 is the per-drug ridge on the genes alone.

The refit fits the encoder again on all non-test pairs with its choices, then one ridge per chosen share,
each drug keeping its share. The test fold plays no part in any choice.
"""

from __future__ import annotations

import dataclasses

import anndata as ad
import numpy as np
import pandas as pd

from .base import CellLineData, DrugResponseModel, TrainingData, load_member, member_state
from .ridge import RidgePerDrug

LATENT = "latent"


class LatentRidge(DrugResponseModel):
    uses_validation = True

    def __init__(self, encoder: dict, views: list[str] | None = None, shares: list[float] = (0.0, 0.25, 1.0),
                 tissue: bool = True, alphas: list[float] | None = None, chosen: dict | None = None):
        views = list(views or [])
        if LATENT in views:
            raise ValueError(f"latent_ridge: views name the genes' views; {LATENT!r} is the encoder's own")
        shares = [float(s) for s in shares] if views else [1.0]  # the latent alone: nothing to weigh it against
        if not shares or min(shares) < 0:
            raise ValueError(f"latent_ridge: shares must be non-negative numbers, got {shares}")
        super().__init__(encoder=encoder, views=views, shares=shares, tissue=tissue, alphas=alphas, chosen=chosen)
        self.encoder: DrugResponseModel | None = None
        self.latent_mean = self.latent_std = np.zeros(0)
        self.gene_variance = 0.0  # total variance of the genes' block on the training cell lines
        self.ridges: dict[float, RidgePerDrug] = {}
        self.share = pd.Series(dtype=float)  # drug -> chosen share
        self.history = None

    def _cells(self, cells: CellLineData, share: float) -> CellLineData:
        """``cells`` with the view ``latent``: the encoder's z-scored posterior means, weighted by ``share``."""
        z = (self.encoder.encode(cells) - self.latent_mean) / self.latent_std
        weight = np.sqrt(share * self.gene_variance / z.shape[1]) if self.params["views"] else 1.0
        latent = ad.AnnData(X=(z * weight).astype(np.float32), obs=pd.DataFrame(index=cells.cell_lines))
        return dataclasses.replace(cells, views={**cells.views, LATENT: latent})

    def _ridge(self, share: float, data: TrainingData, pairs: pd.DataFrame) -> RidgePerDrug:
        views = self.params["views"] + ([LATENT] if share > 0 or not self.params["views"] else [])
        ridge = RidgePerDrug(views=views, alphas=self.params["alphas"], tissue=self.params["tissue"])
        cells = self._cells(data.cells.subset(sorted(set(pairs.cell_line))), share)
        ridge.fit(dataclasses.replace(data, cells=cells, train=pairs, validation=pairs.iloc[:0]))
        return ridge

    def fit(self, data: TrainingData) -> None:
        from . import create
        from .selection import fit_best

        p = self.params
        if p["chosen"] is None:
            if not len(data.validation):
                raise ValueError("latent_ridge: the encoder and the shares are chosen on validation pairs; this "
                                 "fold has none (set splits.validation_fraction)")
            self.encoder = fit_best(p["encoder"], lambda index: data, data.seed)
        else:  # the refit: the encoder with what it chose, on all non-test pairs
            self.encoder = create({"class": p["encoder"]["class"], "params": p["chosen"]["encoder"]})
            self.encoder.fit(data)
        z = self.encoder.encode(data.cells)
        self.latent_mean, self.latent_std = z.mean(axis=0), z.std(axis=0) + 1e-8
        self.gene_variance = (float(np.var(data.cells.matrix(p["views"], data.cells.cell_lines), axis=0).sum())
                              if p["views"] else 0.0)
        if p["chosen"] is not None:
            self.share = pd.Series(p["chosen"]["share"], dtype=float)
            self.ridges = {share: self._ridge(share, data, data.train) for share in sorted(set(self.share))}
            return
        self.ridges = {share: self._ridge(share, data, data.train) for share in p["shares"]}
        pairs = data.validation[["cell_line", "drug"]]
        errors = pd.DataFrame({share: (ridge.predict(pairs, self._cells(data.cells, share)).y_pred.to_numpy()
                                       - data.validation.response.to_numpy()) ** 2
                               for share, ridge in self.ridges.items()})
        per_drug = errors.groupby(data.validation.drug.to_numpy()).mean()
        self.share = pd.Series(per_drug.columns[np.argmin(per_drug.to_numpy(), axis=1)].astype(float),
                               index=per_drug.index)
        predicted = self.predict(pairs, data.cells).y_pred.to_numpy()
        self.validation_score = float(np.mean((predicted - data.validation.response.to_numpy()) ** 2))

    def refit_params(self) -> dict:
        return {**self.params, "chosen": {"encoder": self.encoder.refit_params(),
                                          "share": {str(d): float(s) for d, s in self.share.items()}}}

    def _share_of(self, drugs: np.ndarray) -> np.ndarray:
        """Each drug's share; a drug without validation pairs takes the most often chosen one."""
        default = float(self.share.mode().min()) if len(self.share) else min(self.ridges)
        return self.share.reindex(drugs).fillna(default).to_numpy()

    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        pairs = pairs[["cell_line", "drug"]].reset_index(drop=True)
        share = self._share_of(pairs.drug.to_numpy())
        y_pred = np.full(len(pairs), np.nan)
        for value, ridge in self.ridges.items():
            rows = np.flatnonzero(share == value)
            if len(rows):
                y_pred[rows] = ridge.predict(pairs.iloc[rows], self._cells(cells, value)).y_pred.to_numpy()
        return pairs.assign(y_pred=y_pred)

    def state(self):
        encoder_meta, arrays = member_state(self.encoder, "encoder.")
        meta = {"encoder": encoder_meta, "gene_variance": self.gene_variance,
                "share_drugs": [str(d) for d in self.share.index], "ridges": {}}
        arrays.update(latent_mean=self.latent_mean, latent_std=self.latent_std, share=self.share.to_numpy(dtype=float))
        for k, (value, ridge) in enumerate(self.ridges.items()):
            ridge_meta, ridge_arrays = member_state(ridge, f"ridge{k}.")
            meta["ridges"][str(k)] = {**ridge_meta, "share": value}
            arrays.update(ridge_arrays)
        return meta, arrays

    def load_state(self, meta, arrays):
        self.encoder = load_member(meta["encoder"], arrays, "encoder.")
        self.latent_mean, self.latent_std = arrays["latent_mean"], arrays["latent_std"]
        self.gene_variance = meta["gene_variance"]
        self.share = pd.Series(arrays["share"], index=meta["share_drugs"], dtype=float)
        self.ridges = {float(saved["share"]): load_member(saved, arrays, f"ridge{k}.")
                       for k, saved in meta["ridges"].items()}
