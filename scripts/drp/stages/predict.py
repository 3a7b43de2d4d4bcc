"""Prediction of a fold's test pairs by its trained model, and view randomization (the same predictions
with one omics view shuffled across the test cell lines)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..io import write_table
from ..models.base import CellLineData
from ..splits import TEST

log = logging.getLogger(__name__)


def test_inputs(pairs: pd.DataFrame, cells: CellLineData) -> tuple[pd.DataFrame, CellLineData]:
    """The fold's test pairs (cell_line, drug, response), from its pairs with their roles
    (``train.fold_pairs``), and the test cell lines' data."""
    test = pairs.loc[pairs.role == TEST, ["cell_line", "drug", "response"]].reset_index(drop=True)
    return test, cells.subset(sorted(test.cell_line.unique()))


def prediction_table(pairs: pd.DataFrame, predicted: pd.DataFrame, fold: int) -> pd.DataFrame:
    """The predictions contract: the pairs with y_true, y_pred, fold (+ p_sensitive when the model has one)."""
    out = pairs.rename(columns={"response": "y_true"}).assign(y_pred=predicted["y_pred"].to_numpy(), fold=fold)
    if "p_sensitive" in predicted:
        out["p_sensitive"] = predicted["p_sensitive"].to_numpy()
    return out


def test_predictions(model, test: pd.DataFrame, cells: CellLineData, fold: int, spec: dict, output) -> None:
    predicted = model.predict(test[["cell_line", "drug"]], cells)
    if len(predicted) != len(test) or not np.isfinite(predicted["y_pred"]).all():
        raise ValueError(f"{spec['class']}: predictions must be finite, one per test pair")
    write_table(output, prediction_table(test, predicted, fold))


def view_ablation(model, test: pd.DataFrame, cells: CellLineData, fold: int, seed: int, output) -> None:
    """Test predictions with each view in turn shuffled across the fold's test cell lines (the same
    permutation for every drug), and with intact views (``shuffled_view`` = none)."""
    import anndata as ad

    rng = np.random.default_rng(seed + fold)
    frames = []
    for view in [None, *sorted(cells.views)]:
        views = dict(cells.views)
        if view is not None:
            original = cells.views[view]
            views[view] = ad.AnnData(X=np.asarray(original.X)[rng.permutation(original.n_obs)],
                                     obs=original.obs, var=original.var)
        predicted = model.predict(test[["cell_line", "drug"]], CellLineData(views, cells.tissue, cells.drug_features))
        frames.append(prediction_table(test, predicted, fold).assign(shuffled_view=view or "none"))
    write_table(output, pd.concat(frames, ignore_index=True))
