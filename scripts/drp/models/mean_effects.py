"""Mean-effects baseline: response = overall mean + drug effect + tissue effect + cell-line effect.

All effects are fitted on training pairs by backfitting (alternating group means of the residual,
which converges to the least-squares additive fit on an unbalanced table). A cell line unseen in
training has no cell-line effect, so its tissue effect stands in for it: under cell-blind splits this
is what makes the baseline strong. Unseen tissues and drugs contribute zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import CellLineData, DrugResponseModel, TrainingData

_FACTORS = ("drug", "tissue", "cell_line")


class MeanEffects(DrugResponseModel):
    handles_unseen_drugs = True  # an unseen drug gets the overall mean plus the cell line's and tissue's effects

    def __init__(self, iterations: int = 20, shrinkage: float = 0.0):
        super().__init__(iterations=iterations, shrinkage=shrinkage)
        self.mean = 0.0
        self.effects: dict[str, pd.Series] = {}

    def fit(self, data: TrainingData) -> None:
        pairs = data.train
        table = pd.DataFrame({"drug": pairs.drug.values, "cell_line": pairs.cell_line.values,
                              "tissue": data.cells.tissue.loc[pairs.cell_line].values})
        y = pairs.response.to_numpy(dtype=np.float64)
        self.mean = float(y.mean())
        self.effects = {factor: pd.Series(0.0, index=pd.Index(sorted(table[factor].unique()))) for factor in _FACTORS}
        for _ in range(self.params["iterations"]):
            for factor in _FACTORS:
                others = sum(self.effects[f].loc[table[f]].to_numpy() for f in _FACTORS if f != factor)
                residual = pd.Series(y - self.mean - others).groupby(table[factor].values)
                # shrinkage > 0 pulls small groups towards zero (a ridge penalty on the effect)
                self.effects[factor] = residual.sum() / (residual.count() + self.params["shrinkage"])

    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        lookup = {"drug": pairs.drug, "cell_line": pairs.cell_line,
                  "tissue": cells.tissue.reindex(pairs.cell_line)}
        y_pred = self.mean + sum(self.effects[f].reindex(lookup[f].values).fillna(0.0).to_numpy() for f in _FACTORS)
        return pairs.assign(y_pred=y_pred)

    def state(self):
        arrays = {f"{f}_effect": self.effects[f].to_numpy() for f in _FACTORS}
        meta = {"mean": self.mean, **{f"{f}_ids": [str(i) for i in self.effects[f].index] for f in _FACTORS}}
        return meta, arrays

    def load_state(self, meta, arrays):
        self.mean = meta["mean"]
        self.effects = {f: pd.Series(arrays[f"{f}_effect"], index=meta[f"{f}_ids"]) for f in _FACTORS}


class NaiveMeanEffects(DrugResponseModel):
    """drevalpy's NaiveMeanEffectsPredictor: overall training mean + (cell line mean - overall mean) +
    (drug mean - overall mean), each a plain mean of the training responses; an effect unseen in training is 0.
    No tissue: a test cell line of a cell-blind split gets its drug's training mean. drevalpy normalizes its
    Pearson by this model's predictions (``drp.metrics``), so it runs beside the tissue-aware MeanEffects."""

    handles_unseen_drugs = True  # an unseen drug gets the cell line's training mean

    def __init__(self):
        super().__init__()
        self.mean = 0.0
        self.effects: dict[str, pd.Series] = {}

    def fit(self, data: TrainingData) -> None:
        pairs = data.train
        self.mean = float(pairs.response.mean())
        self.effects = {factor: pairs.groupby(factor, sort=True)["response"].mean() - self.mean
                        for factor in ("drug", "cell_line")}

    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        y_pred = self.mean + sum(self.effects[f].reindex(pairs[f].values).fillna(0.0).to_numpy() for f in self.effects)
        return pairs.assign(y_pred=y_pred)

    def state(self):
        meta = {"mean": self.mean, **{f"{f}_ids": [str(i) for i in e.index] for f, e in self.effects.items()}}
        return meta, {f"{f}_effect": e.to_numpy() for f, e in self.effects.items()}

    def load_state(self, meta, arrays):
        self.mean = meta["mean"]
        self.effects = {f: pd.Series(arrays[f"{f}_effect"], index=meta[f"{f}_ids"]) for f in ("drug", "cell_line")}
