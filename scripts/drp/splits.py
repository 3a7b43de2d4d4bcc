"""Cross-validation splits: every (cell line, drug) pair gets exactly one test fold.

Modes hold out different things: LPO random pairs, LCO cell lines, LTO tissues, LDO drugs (the held-out
unit is the pair's ``group``). Each group also gets an ``inner`` fold (0 .. V-1, V = round(1 / validation_fraction)),
dealt round-robin through the groups of each outer fold in turn (within tissues for cell lines): for outer
fold k the validation set is the non-test groups of inner fold k mod V, about that fraction of the groups of
every other outer fold, and the training set is the rest. So the three roles follow from the table alone and nobody has to store them. A table without an
``inner`` column (one written by an older version) uses the next outer fold, (k + 1) mod K, as validation.

Repeated cross-validation: with R repeats the table holds every pair R times (``repeat`` 0 .. R-1), each
repeat a fold assignment of its own seed, and fold ids run on across repeats (repeat r has folds r*K ..
r*K + K - 1), so a fold id names one outer fold of one repeat everywhere downstream; ``fold_table`` gives
the rows of a fold's repeat. Repeat 0 is the assignment of the base seed, the same as without repeats.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

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


def make_splits(response: pd.DataFrame, tissue: pd.Series, mode: str, n_folds: int, seed: int,
                validation_fraction: float | None = 0.2, repeats: int = 1) -> pd.DataFrame:
    """Return ``cell_line, drug, group, fold, inner, repeat`` for every pair of ``response`` and repeat
    (without ``inner`` when ``validation_fraction`` is None: the next outer fold validates)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    tables = [_make_repeat(response, tissue, mode, n_folds, seed if r == 0 else [seed, 1000 + r],
                           validation_fraction).assign(repeat=r) for r in range(repeats)]
    for r, table in enumerate(tables):
        table["fold"] += r * n_folds
    return pd.concat(tables, ignore_index=True)


GROUP_COLUMNS = {"LCO": ["cell_line"], "LTO": ["tissue"], "LDO": ["drug"], "LPO": ["cell_line", "drug"]}


def splits_from_file(response: pd.DataFrame, tissue: pd.Series, mode: str, path, n_folds: int, seed: int,
                     validation_fraction: float | None = 0.2, repeats: int = 1) -> pd.DataFrame:
    """The split table from a user's table of test folds (another tool's folds, to compare on the same
    splits): columns ``fold`` (0 .. K-1), optional ``repeat`` (0 .. R-1), and the held-out unit of the mode:
    ``cell_line`` (LCO), ``tissue`` (LTO), ``drug`` (LDO) or ``cell_line`` and ``drug`` (LPO); tab- or
    comma-separated. Every pair of the data set must fall in exactly one fold per repeat, a group in one
    fold only; inner (validation) folds are dealt as for generated splits."""
    keys = GROUP_COLUMNS[mode]
    sep = "," if str(path).endswith(".csv") else "\t"
    try:
        # ids as text, never NA: a drug named "NA" is an id (the fold columns are checked as numbers below)
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read the split table ({error})") from error
    missing = [c for c in [*keys, "fold"] if c not in table]
    if missing:
        raise ValueError(f"{path}: a {mode} split table needs the columns {[*keys, 'fold']} (optional: repeat); "
                         f"missing {missing}, found {list(table.columns)}")
    if "repeat" not in table:
        table["repeat"] = 0
    for column in ("fold", "repeat"):
        values = pd.to_numeric(table[column], errors="coerce")
        if values.isna().any() or (values % 1 != 0).any() or (values < 0).any():
            bad = table.loc[values.isna() | (values % 1 != 0) | (values < 0), column].iloc[0]
            raise ValueError(f"{path}: column {column!r} must hold whole numbers from 0, found {bad!r}")
        table[column] = values.astype(int)
    empty = table[keys].apply(lambda column: column.str.strip() == "").any(axis=1)
    if empty.any():
        raise ValueError(f"{path}: empty {'/'.join(keys)} in row {int(empty.idxmax()) + 2}")
    if sorted(table["repeat"].unique()) != list(range(repeats)):
        raise ValueError(f"{path}: repeats {sorted(table['repeat'].unique())}, but splits.repeats is {repeats} "
                         f"(expected repeats 0 .. {repeats - 1})")
    twice = table[table.duplicated([*keys, "repeat"], keep=False)]
    if len(twice):
        raise ValueError(f"{path}: {'/'.join(keys)} {tuple(twice.iloc[0][keys])} has more than one row in repeat "
                         f"{twice.iloc[0]['repeat']}: a held-out unit belongs to one test fold")
    pairs = response[["cell_line", "drug"]].sort_values(["cell_line", "drug"]).reset_index(drop=True)
    pairs["tissue"] = pairs.cell_line.map(tissue).fillna("unknown").astype(str)
    tables = []
    for repeat in range(repeats):
        own = table[table["repeat"] == repeat]
        if sorted(own["fold"].unique()) != list(range(n_folds)):
            raise ValueError(f"{path}: repeat {repeat} has folds {sorted(own['fold'].unique())}, but splits.n_folds "
                             f"is {n_folds} (expected folds 0 .. {n_folds - 1}, each holding some pairs)")
        merged = pairs.merge(own[[*keys, "fold"]], on=keys, how="left")
        if merged["fold"].isna().any():
            lost = merged[merged["fold"].isna()].drop_duplicates(keys)
            raise ValueError(f"{path}: {len(lost)} {'/'.join(keys)} value(s) of the data set have no fold in "
                             f"repeat {repeat}, e.g. {[tuple(r) for r in lost[keys].head(3).to_numpy()]}")
        unknown = len(own) - len(own.merge(pairs[keys].drop_duplicates(), on=keys))
        if unknown:
            log.warning("%s: %d row(s) of repeat %d name %s not in the data set; ignored", path, unknown, repeat,
                        "/".join(keys))
        merged["group"] = merged[keys].astype(str).agg("|".join, axis=1)
        merged["fold"] = merged["fold"].astype(int)
        if validation_fraction is not None:
            n_inner = max(2, round(1 / validation_fraction))
            merged["inner"] = _assign_inner(merged, tissue, mode, n_inner, np.random.default_rng([seed, repeat, n_inner]))
            _check_roles(merged, mode, validation_fraction)
        merged["fold"] += repeat * n_folds
        tables.append(merged.drop(columns="tissue").assign(repeat=repeat))
    return pd.concat(tables, ignore_index=True)


def fold_table(splits: pd.DataFrame, fold: int) -> pd.DataFrame:
    """The rows of the repeat that holds outer fold ``fold`` (all rows of a table without repeats)."""
    if "repeat" not in splits:
        return splits
    repeat = splits.loc[splits["fold"] == fold, "repeat"].unique()
    if len(repeat) != 1:
        raise ValueError(f"split table: fold {fold} {'does not exist' if len(repeat) == 0 else 'spans several repeats'}")
    return splits[splits["repeat"] == repeat[0]]


def repeat_folds(splits: pd.DataFrame) -> dict[int, list[int]]:
    """repeat -> its outer fold ids."""
    repeats = splits["repeat"] if "repeat" in splits else pd.Series(0, index=splits.index)
    return {int(r): sorted(int(f) for f in folds) for r, folds in splits.groupby(repeats)["fold"].unique().items()}


def _make_repeat(response: pd.DataFrame, tissue: pd.Series, mode: str, n_folds: int, seed,
                 validation_fraction: float | None) -> pd.DataFrame:
    if mode not in MODES:
        raise ValueError(f"unknown split mode {mode!r}; expected one of {', '.join(MODES)}")
    if n_folds < 3:
        raise ValueError(f"n_folds must be at least 3 (test, validation and training folds), got {n_folds}")
    rng = np.random.default_rng(seed)
    pairs = response[["cell_line", "drug"]].sort_values(["cell_line", "drug"]).reset_index(drop=True)
    pairs["group"] = {"LCO": pairs.cell_line, "LTO": pairs.cell_line.map(tissue).fillna("unknown"),
                      "LDO": pairs.drug, "LPO": pairs.index.astype(str)}[mode].astype(str).to_numpy()
    pairs["fold"] = _assign(pairs, tissue, mode, n_folds, rng)
    empty = sorted(set(range(n_folds)) - set(pairs["fold"]))
    if empty:  # every mode: a fold without test groups would leave a model nothing to test on
        unit = {"LCO": "cell lines", "LTO": "tissues", "LDO": "drugs", "LPO": "pairs"}[mode]
        raise ValueError(f"{mode} needs at least as many {unit} as folds: {pairs['group'].nunique()} {unit} for "
                         f"{n_folds} folds (splits.n_folds) leave fold(s) {empty} empty; use fewer folds")
    if validation_fraction is not None:
        n_inner = max(2, round(1 / validation_fraction))
        inner_seed = [seed, n_inner] if isinstance(seed, int) else [*seed, n_inner]
        pairs["inner"] = _assign_inner(pairs, tissue, mode, n_inner, np.random.default_rng(inner_seed))
        _check_roles(pairs, mode, validation_fraction)
    return pairs


def _check_roles(pairs: pd.DataFrame, mode: str, validation_fraction: float) -> None:
    """Every outer fold of one repeat has training and validation groups."""
    for k in sorted(pairs["fold"].unique()):
        roles = fold_roles(pairs, k)
        if not (roles == VALIDATION).any() or not (roles == TRAIN).any():
            raise ValueError(f"{mode} with {pairs['fold'].nunique()} folds and validation_fraction {validation_fraction}: "
                             f"outer fold {k} has no {'validation' if not (roles == VALIDATION).any() else 'training'} "
                             "group; use fewer folds or another fraction")


def _assign_inner(pairs: pd.DataFrame, tissue: pd.Series, mode: str, n_inner: int, rng: np.random.Generator) -> np.ndarray:
    """An inner fold for each pair's group: groups dealt round-robin stratum after stratum, the strata being
    the outer folds (and within them tissues for LCO, drugs for LPO), so each outer fold spreads its groups
    evenly over the inner folds."""
    units = pairs.drop_duplicates("group").assign(
        stratum=lambda u: u.cell_line.map(tissue).fillna("unknown") if mode == "LCO" else u.drug if mode == "LPO" else "")
    strata = units.groupby(["fold", "stratum"], sort=True)["group"].agg(list)
    assignment = _deal([strata[key] for key in sorted(strata.index, key=lambda k: (k[0], -len(strata[k]), k[1]))],
                       n_inner, rng)
    return pairs["group"].map(assignment).astype(int).to_numpy()


def _assign(pairs: pd.DataFrame, tissue: pd.Series, mode: str, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold (0 .. n_folds - 1) for each pair, whole groups together, balanced as each mode needs."""
    pairs = pairs[["cell_line", "drug"]].copy()
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
    return pairs["fold"].astype(int).to_numpy()


def read_splits(path) -> pd.DataFrame:
    """A split table with its ids as text, exactly as written: ids such as COSMIC numbers must not turn into
    integers, nor ids such as ``NA``, ``None`` or ``nan`` into missing values (``keep_default_na=False``;
    the other columns, ``fold``, ``inner`` and ``repeat``, are whole numbers on every row)."""
    return pd.read_csv(path, sep="\t", dtype={"cell_line": str, "drug": str, "tissue": str, "group": str},
                       keep_default_na=False)


def validation_fold(test_fold: int, n_folds: int) -> int:
    return (test_fold + 1) % n_folds


def fold_roles(splits: pd.DataFrame, test_fold: int) -> pd.Series:
    """train / validation / test for each pair of ``splits`` (one repeat: see ``fold_table``) under outer fold
    ``test_fold``."""
    if "repeat" in splits and splits["repeat"].nunique() > 1:
        raise ValueError("fold_roles needs the rows of one repeat (splits.fold_table)")
    # the outer fold count is read off the table; a table that skips a fold would shift every validation
    # fold, so it is refused (make_splits and splits_from_file refuse empty folds up front)
    folds = np.sort(splits["fold"].unique())
    if len(folds) == 0 or not np.array_equal(folds, np.arange(folds[0], folds[0] + len(folds))):
        raise ValueError(f"split table: the folds of a repeat must run without gaps, found {folds.tolist()}")
    if "inner" in splits:
        # inner folds may go unused when there are fewer groups than inner folds (4 tissues for 5); the count
        # read here is the one make_splits checked every outer fold's roles with, so all readers agree
        n_inner = int(splits["inner"].max()) + 1
        validation = splits["inner"] == test_fold % n_inner
    else:
        first, n_folds = int(folds[0]), len(folds)
        validation = splits["fold"] == first + validation_fold(test_fold - first, n_folds)
    roles = np.where(splits["fold"] == test_fold, TEST, np.where(validation, VALIDATION, TRAIN))
    return pd.Series(roles, index=splits.index, name="role")
