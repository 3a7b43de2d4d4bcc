"""Cross-validation splits: every (cell line, drug) pair gets exactly one test fold.

Modes hold out different things: LPO random pairs, LCO cell lines, LTO tissues, LDO drugs. For outer
fold k the validation fold is fold (k + 1) mod K and the training set is the rest, so the three roles
follow from the table alone and nobody has to store them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MODES = ("LPO", "LCO", "LTO", "LDO")
TRAIN, VALIDATION, TEST = "train", "validation", "test"


def _deal(groups: list[list], n_folds: int, rng: np.random.Generator) -> dict:
    """Shuffle each stratum and deal its members round-robin, continuing where the last stratum
    stopped, so every fold gets a near-equal share of every stratum and of the total."""
    assignment, next_fold = {}, int(rng.integers(n_folds))
    for members in groups:
        for member in rng.permutation(np.array(members, dtype=object)):
            assignment[member] = next_fold
            next_fold = (next_fold + 1) % n_folds
    return assignment


def _assign_tissues(sizes: pd.Series, n_folds: int, rng: np.random.Generator) -> dict:
    """Whole tissues to folds, largest first onto the currently smallest fold (ties broken at random)."""
    if len(sizes) < n_folds:
        raise ValueError(f"LTO needs at least as many tissues as folds: {len(sizes)} tissues, {n_folds} folds")
    load = np.zeros(n_folds)
    assignment = {}
    order = sizes.sample(frac=1, random_state=int(rng.integers(2**31))).sort_values(ascending=False, kind="stable")
    for tissue, size in order.items():
        fold = int(rng.choice(np.flatnonzero(load == load.min())))
        assignment[tissue] = fold
        load[fold] += size
    return assignment


def make_splits(response: pd.DataFrame, tissue: pd.Series, mode: str, n_folds: int, seed: int) -> pd.DataFrame:
    """Return ``cell_line, drug, fold`` for every pair of ``response``."""
    if mode not in MODES:
        raise ValueError(f"unknown split mode {mode!r}; expected one of {', '.join(MODES)}")
    if n_folds < 3:
        raise ValueError(f"n_folds must be at least 3 (test, validation and training folds), got {n_folds}")
    rng = np.random.default_rng(seed)
    pairs = response[["cell_line", "drug"]].sort_values(["cell_line", "drug"]).reset_index(drop=True)
    if mode == "LCO":
        cells = pd.Series(sorted(pairs.cell_line.unique()))
        strata = cells.groupby(cells.map(tissue).fillna("unknown").values).agg(list)
        folds = _deal([strata[t] for t in sorted(strata.index, key=lambda t: (-len(strata[t]), t))], n_folds, rng)
        pairs["fold"] = pairs.cell_line.map(folds)
    elif mode == "LTO":
        pair_tissue = pairs.cell_line.map(tissue).fillna("unknown")
        folds = _assign_tissues(pair_tissue.value_counts().sort_index(), n_folds, rng)
        pairs["fold"] = pair_tissue.map(folds)
    elif mode == "LDO":
        drugs = sorted(pairs.drug.unique())
        if len(drugs) < n_folds:
            raise ValueError(f"LDO needs at least as many drugs as folds: {len(drugs)} drugs, {n_folds} folds")
        pairs["fold"] = pairs.drug.map(_deal([drugs], n_folds, rng))
    else:  # LPO: pairs dealt per drug, so each drug is spread over all folds
        index_by_drug = pairs.groupby("drug").groups
        folds = _deal([list(index_by_drug[d]) for d in sorted(index_by_drug)], n_folds, rng)
        pairs["fold"] = pairs.index.map(folds)
    pairs["fold"] = pairs["fold"].astype(int)
    return pairs


def read_splits(path) -> pd.DataFrame:
    """A split table with its ids as strings (ids such as COSMIC numbers must not turn into integers)."""
    return pd.read_csv(path, sep="\t", dtype={"cell_line": str, "drug": str})


def validation_fold(test_fold: int, n_folds: int) -> int:
    return (test_fold + 1) % n_folds


def fold_roles(splits: pd.DataFrame, test_fold: int) -> pd.Series:
    """train / validation / test for each pair of ``splits`` under outer fold ``test_fold``."""
    n_folds = int(splits["fold"].max()) + 1
    roles = np.where(splits["fold"] == test_fold, TEST,
                     np.where(splits["fold"] == validation_fold(test_fold, n_folds), VALIDATION, TRAIN))
    return pd.Series(roles, index=splits.index, name="role")
