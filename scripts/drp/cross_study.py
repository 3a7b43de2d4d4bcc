"""Cross-study evaluation: models trained on one data set predict another on the drugs they share.

The source's cell-blind (LCO) fold models are used, and every target cell line is predicted by a model
that never saw it: a cell line that the source also has goes to the fold whose test set holds it, one
the source lacks is dealt to the folds round-robin (sorted ids, so the choice is reproducible). The
target's omics are transformed with the feature selection and scaling fitted on that fold's training
cell lines of the source: nothing is fitted on the target.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def assign_target_cell_lines(target_cells, source_splits: pd.DataFrame, n_folds: int) -> pd.Series:
    """cell_line -> the source fold whose model predicts it."""
    source_fold = source_splits.drop_duplicates("cell_line").set_index("cell_line")["fold"]
    if source_splits.groupby("cell_line")["fold"].nunique().max() > 1:
        raise ValueError("cross-study needs cell-blind (LCO) source splits: a cell line spans several folds")
    target_cells = pd.Index(sorted(set(target_cells)))
    shared = target_cells.intersection(source_fold.index)
    new = target_cells.difference(source_fold.index)
    folds = pd.concat([source_fold.loc[shared], pd.Series(np.arange(len(new)) % n_folds, index=new)])
    return folds.astype(int).rename("fold")


def target_pairs(target_response: pd.DataFrame, source_response: pd.DataFrame, source_splits: pd.DataFrame,
                 n_folds: int, fold: int) -> pd.DataFrame:
    """The target's pairs of drugs the source also screened, for the cell lines assigned to ``fold``."""
    shared = target_response[target_response.drug.isin(set(source_response.drug))]
    folds = assign_target_cell_lines(shared.cell_line, source_splits, n_folds)
    pairs = shared[shared.cell_line.map(folds) == fold].reset_index(drop=True)
    return pairs.assign(in_source=pairs.cell_line.isin(set(source_response.cell_line)))
