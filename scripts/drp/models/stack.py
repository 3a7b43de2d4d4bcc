"""A per-drug stack of two models, its weights chosen on the validation cell lines only.

Each member (a config entry ``{class, params, grid}``, e.g. the ridge and the Dr.VAE-style model) is fitted on
the training pairs (a member with a grid chooses its candidate on the validation pairs, as the pipeline
does for any model); then, per drug, the weight w of the first member (1 - w for the second) is chosen from
``weights`` by the squared error of w * a + (1 - w) * b on the drug's validation pairs; a drug without
validation pairs takes the median weight of the others. The refit (``refit_params``) fits both members again
on all non-test pairs with what they chose (epochs, trees, candidate) and keeps the weights. The test fold
plays no part in any choice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import CellLineData, DrugResponseModel, TrainingData, load_member, member_state


class StackedPair(DrugResponseModel):
    uses_validation = True

    def __init__(self, members: dict, weights: list[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
                 chosen: dict | None = None):
        if len(members) != 2:
            raise ValueError(f"stack: members must name exactly two models, got {list(members)}")
        weights = [float(w) for w in weights]
        if not weights or not all(0.0 <= w <= 1.0 for w in weights):
            raise ValueError(f"stack: weights must lie in [0, 1], got {weights}")
        super().__init__(members=members, weights=weights, chosen=chosen)
        self.names = list(members)
        self.fitted: dict[str, DrugResponseModel] = {}
        self.weight = pd.Series(dtype=float)  # drug -> weight of the first member
        self.history = None

    def fit(self, data: TrainingData) -> None:
        from . import create
        from .selection import fit_best

        p = self.params
        if p["chosen"] is not None:  # the refit: members with their chosen settings, the weights as chosen
            for name in self.names:
                self.fitted[name] = create(p["members"][name])
                self.fitted[name].fit(data)
            self.weight = pd.Series(p["chosen"], dtype=float)
            return
        if not len(data.validation):
            raise ValueError("stack: the weights are chosen on validation pairs; this fold has none "
                             "(set splits.validation_fraction)")
        for name in self.names:  # a member with a grid chooses its candidate on the validation pairs too
            self.fitted[name] = fit_best(p["members"][name], lambda index: data, data.seed)
        pairs = data.validation[["cell_line", "drug"]]
        a, b = (self.fitted[name].predict(pairs, data.cells).y_pred.to_numpy() for name in self.names)
        y = data.validation.response.to_numpy()
        weights = np.asarray(p["weights"])
        errors = (weights[:, None] * a[None, :] + (1 - weights[:, None]) * b[None, :] - y[None, :]) ** 2
        per_drug = pd.DataFrame(errors.T, columns=weights).groupby(data.validation.drug.to_numpy()).mean()
        self.weight = pd.Series(weights[np.argmin(per_drug.to_numpy(), axis=1)], index=per_drug.index)
        w = self.weight.reindex(data.validation.drug.to_numpy()).to_numpy()
        self.validation_score = float(np.mean((w * a + (1 - w) * b - y) ** 2))

    def refit_params(self) -> dict:
        members = {name: {"class": self.params["members"][name]["class"], "params": self.fitted[name].refit_params()}
                   for name in self.names}
        return {**self.params, "members": members, "chosen": {str(d): float(w) for d, w in self.weight.items()}}

    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        a, b = (self.fitted[name].predict(pairs[["cell_line", "drug"]], cells).y_pred.to_numpy() for name in self.names)
        default = float(self.weight.median()) if len(self.weight) else 0.5
        w = self.weight.reindex(pairs.drug.to_numpy()).fillna(default).to_numpy()
        return pairs.assign(y_pred=w * a + (1 - w) * b)

    def state(self):
        # the member order says which one the weight belongs to; model.json sorts its keys, so it is kept here
        meta, arrays = {"order": self.names, "weight_drugs": [str(d) for d in self.weight.index], "members": {}}, {
            "weight": self.weight.to_numpy(dtype=float)}
        for name in self.names:
            meta["members"][name], member_arrays = member_state(self.fitted[name], f"{name}.")
            arrays.update(member_arrays)
        return meta, arrays

    def load_state(self, meta, arrays):
        self.names = list(meta["order"])
        self.weight = pd.Series(arrays["weight"], index=meta["weight_drugs"], dtype=float)
        self.fitted = {name: load_member(meta["members"][name], arrays, f"{name}.") for name in self.names}
