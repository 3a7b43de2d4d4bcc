"""A seed ensemble: the same model trained ``seeds`` times with different random seeds, predictions averaged.

A neural model's fit depends on its initialisation and the order of its mini-batches; averaging a few fits
removes part of that variance, which a per-drug linear model does not have. Member k trains with the fold's
seed + 1000 k, each choosing its own grid candidate and epochs on the validation pairs (as the pipeline does
for any model), in its own checkpoint folder; the refit (``refit_params``) fits every member again on all
non-test pairs with its own choices and the same seed. The test fold plays no part in any choice.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .base import CellLineData, DrugResponseModel, TrainingData, load_member, member_state

SEED_STEP = 1000  # member k's seed is the fold's seed + SEED_STEP * k: far from the seeds of other folds' runs


class SeedEnsemble(DrugResponseModel):
    uses_validation = True

    def __init__(self, model: dict, seeds: int = 3, chosen: list[dict] | None = None):
        if int(seeds) < 2:
            raise ValueError(f"ensemble: seeds must be at least 2, got {seeds}")
        if chosen is not None and len(chosen) != int(seeds):
            raise ValueError(f"ensemble: {len(chosen)} chosen member settings for {seeds} seeds")
        super().__init__(model=model, seeds=int(seeds), chosen=chosen)
        self.members: list[DrugResponseModel] = []
        self.history = None

    def _member_data(self, data: TrainingData, k: int, index="") -> TrainingData:
        checkpoint = data.checkpoint_dir / f"member{k}{index}" if data.checkpoint_dir else None
        return dataclasses.replace(data, seed=data.seed + SEED_STEP * k, checkpoint_dir=checkpoint)

    def fit(self, data: TrainingData) -> None:
        from . import create
        from .selection import fit_best

        p = self.params
        self.members = []
        for k in range(p["seeds"]):
            if p["chosen"] is not None:  # the refit: each member with what it chose, on all non-test pairs
                member = create({"class": p["model"]["class"], "params": p["chosen"][k]})
                np.random.seed(data.seed + SEED_STEP * k)
                member.fit(self._member_data(data, k))
            else:
                member = fit_best(p["model"], lambda index, k=k: self._member_data(data, k, f"_candidate{index}"),
                                  data.seed + SEED_STEP * k)
            self.members.append(member)
        if len(data.validation):
            predicted = self.predict(data.validation[["cell_line", "drug"]], data.cells).y_pred.to_numpy()
            self.validation_score = float(np.mean((predicted - data.validation.response.to_numpy()) ** 2))

    def refit_params(self) -> dict:
        return {**self.params, "chosen": [member.refit_params() for member in self.members]}

    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        pairs = pairs[["cell_line", "drug"]]
        predicted = [member.predict(pairs, cells) for member in self.members]
        out = pairs.assign(y_pred=np.mean([p.y_pred.to_numpy() for p in predicted], axis=0))
        if all("p_sensitive" in p for p in predicted):
            out["p_sensitive"] = np.mean([p.p_sensitive.to_numpy() for p in predicted], axis=0)
        return out

    def state(self):
        meta, arrays = {"members": []}, {}
        for k, member in enumerate(self.members):
            member_meta, member_arrays = member_state(member, f"member{k}.")
            meta["members"].append(member_meta)
            arrays.update(member_arrays)
        return meta, arrays

    def load_state(self, meta, arrays):
        self.members = [load_member(saved, arrays, f"member{k}.") for k, saved in enumerate(meta["members"])]
