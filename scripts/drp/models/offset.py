"""Any model on the residual over the mean-effects baseline: ``over_mean_effects: true`` in a model's config.

On weak omics (a few hundred mutation calls, say) a per-drug or multi-task model that sees only the omics
falls below the mean-effects baseline, because most of what is predictable about a held-out cell line is its
drug's and its tissue's typical response, which the omics barely encode. Here the baseline's drug and tissue
effects (``MeanEffects``, fitted on the training pairs only) are the offset: the wrapped model is fitted on
the responses minus that offset and predicts offset + its own prediction. The offset is what the baseline
predicts for a cell line it never saw (overall mean + drug effect + tissue effect, no cell-line effect), for
training and held-out cell lines alike, so the wrapped model still learns the cell lines' overall sensitivity
from their omics. A wrapped model whose omics carry nothing learns a residual near zero and scores as the
baseline does instead of below it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .base import CellLineData, DrugResponseModel, TrainingData, arrays_under
from .mean_effects import MeanEffects


class OverMeanEffects(DrugResponseModel):
    wraps_models = True  # DrugResponseModel.load of the wrapped class returns this wrapper

    def __init__(self, model: dict, shrinkage: float = 0.0, iterations: int = 20):
        from . import create

        super().__init__(model=model, shrinkage=shrinkage, iterations=iterations)
        self.inner = create(model)
        self.offset = MeanEffects(iterations=iterations, shrinkage=shrinkage)

    def offset_of(self, pairs: pd.DataFrame, cells: CellLineData) -> np.ndarray:
        """The baseline's prediction for ``pairs`` as if their cell lines were unseen: mean + drug + tissue."""
        effects = self.offset.effects
        tissue = cells.tissue.reindex(pairs.cell_line).values
        return (self.offset.mean + effects["drug"].reindex(pairs.drug.values).fillna(0.0).to_numpy()
                + effects["tissue"].reindex(tissue).fillna(0.0).to_numpy())

    def fit(self, data: TrainingData) -> None:
        self.offset.fit(data)  # the training pairs only, never the validation ones
        residual = {name: pairs.assign(response=pairs.response.to_numpy() - self.offset_of(pairs, data.cells))
                    for name, pairs in (("train", data.train), ("validation", data.validation))}
        self.inner.fit(dataclasses.replace(data, **residual))
        self.validation_score = self.inner.validation_score
        self.history = getattr(self.inner, "history", None)

    def refit_params(self) -> dict:
        return {**self.params, "model": {"class": self.params["model"]["class"], "params": self.inner.refit_params()}}

    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        # the inner model's sensitivity probability would be of the residual: not passed on
        predicted = self.inner.predict(pairs[["cell_line", "drug"]], cells)
        return pairs.assign(y_pred=predicted.y_pred.to_numpy() + self.offset_of(pairs, cells))

    def encode(self, cells: CellLineData) -> np.ndarray:
        return self.inner.encode(cells)

    def state(self):
        inner_meta, inner_arrays = self.inner.state()
        offset_meta, offset_arrays = self.offset.state()
        return ({"inner": inner_meta, "offset": offset_meta},
                {**{f"inner.{k}": v for k, v in inner_arrays.items()}, **{f"offset.{k}": v for k, v in offset_arrays.items()}})

    def load_state(self, meta, arrays):
        self.inner.load_state(meta["inner"], arrays_under(arrays, "inner."))
        self.offset.load_state(meta["offset"], arrays_under(arrays, "offset."))
