"""drp.splits: every pair in exactly one test fold, the held-out unit never in two folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drp.splits import MODES, TEST, TRAIN, VALIDATION, fold_roles, make_splits, validation_fold

N_FOLDS = 5
TISSUE_SIZES = {"lung": 16, "skin": 14, "blood": 10, "breast": 8, "bone": 9, "eye": 3}  # 60 cell lines


def synthetic_tissue() -> pd.Series:
    cells = [(f"SYN{tissue.upper()}{i:02d}", tissue) for tissue, n in TISSUE_SIZES.items() for i in range(n)]
    return pd.Series(dict(cells), name="tissue").rename_axis("cell_line")


def synthetic_response(seed: int = 7, n_drugs: int = 15, density: float = 0.8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cells = synthetic_tissue().index
    grid = pd.MultiIndex.from_product([cells, [f"DRUG{j:02d}" for j in range(n_drugs)]],
                                      names=["cell_line", "drug"]).to_frame(index=False)
    response = grid[rng.random(len(grid)) < density].reset_index(drop=True)
    response["response"] = rng.normal(size=len(response))
    return response.sample(frac=1, random_state=seed).reset_index(drop=True)  # input order is arbitrary


@pytest.fixture(scope="module")
def response():
    return synthetic_response()


@pytest.fixture(scope="module")
def tissue():
    return synthetic_tissue()


@pytest.fixture(scope="module", params=MODES)
def split(request, response, tissue):
    return request.param, make_splits(response, tissue, request.param, N_FOLDS, seed=3)


def test_synthetic_response_shape(response):
    assert response.cell_line.nunique() == 60 and response.drug.nunique() == 15
    assert 0.75 < len(response) / (60 * 15) < 0.85


def test_every_pair_assigned_exactly_once(split, response):
    _, splits = split
    assert list(splits.columns) == ["cell_line", "drug", "fold"]
    assert len(splits) == len(response)
    assert not splits.duplicated(["cell_line", "drug"]).any()
    merged = response.merge(splits, on=["cell_line", "drug"], how="outer", indicator=True, validate="one_to_one")
    assert (merged["_merge"] == "both").all()
    assert splits["fold"].dtype.kind == "i"


def test_all_folds_used_and_non_empty(split):
    _, splits = split
    assert sorted(splits["fold"].unique()) == list(range(N_FOLDS))
    assert (splits.groupby("fold").size() > 0).all()


def _folds_per(splits, key):
    return splits.groupby(key)["fold"].nunique()


def test_held_out_unit_never_in_two_folds(split, tissue):
    mode, splits = split
    if mode == "LCO":
        assert (_folds_per(splits, "cell_line") == 1).all()
    elif mode == "LTO":
        assert (_folds_per(splits.assign(tissue=splits.cell_line.map(tissue)), "tissue") == 1).all()
    elif mode == "LDO":
        assert (_folds_per(splits, "drug") == 1).all()
    else:  # LPO: pairs are dealt per drug, so every drug and most cell lines are spread out
        assert (_folds_per(splits, "drug") == N_FOLDS).all()
        assert (_folds_per(splits, "cell_line") > 1).all()


def test_lco_balances_tissues_and_fold_sizes(response, tissue):
    splits = make_splits(response, tissue, "LCO", N_FOLDS, seed=3)
    cells = splits.drop_duplicates("cell_line").assign(tissue=lambda f: f.cell_line.map(tissue))
    for name, n in TISSUE_SIZES.items():
        folds = cells.loc[cells.tissue == name, "fold"]
        if n >= N_FOLDS:
            assert folds.nunique() == N_FOLDS, f"tissue {name} ({n} cell lines) misses a fold"
        counts = folds.value_counts().reindex(range(N_FOLDS), fill_value=0)
        assert counts.max() - counts.min() <= 1  # dealt round-robin within the tissue
    per_fold = cells.groupby("fold").size()
    assert per_fold.max() - per_fold.min() <= 1


def test_lpo_fold_sizes_are_near_equal(response, tissue):
    splits = make_splits(response, tissue, "LPO", N_FOLDS, seed=3)
    sizes = splits.groupby("fold").size()
    assert sizes.max() - sizes.min() <= 1
    per_drug = splits.groupby(["drug", "fold"]).size().unstack()
    assert (per_drug.max(axis=1) - per_drug.min(axis=1) <= 1).all()


def test_lto_puts_largest_tissues_in_different_folds(response, tissue):
    splits = make_splits(response, tissue, "LTO", N_FOLDS, seed=3)
    tissue_fold = splits.assign(tissue=splits.cell_line.map(tissue)).groupby("tissue")["fold"].first()
    pair_counts = splits.cell_line.map(tissue).value_counts()
    five_largest = pair_counts.index[:N_FOLDS]
    assert tissue_fold[five_largest].nunique() == N_FOLDS


def test_unknown_tissue_is_a_stratum_of_its_own(response, tissue):
    partial = tissue.drop(tissue.index[tissue == "eye"])  # eye cell lines have no tissue label
    splits = make_splits(response, partial, "LTO", N_FOLDS, seed=3)
    eye = splits.cell_line.isin(tissue.index[tissue == "eye"])
    assert splits.loc[eye, "fold"].nunique() == 1
    assert sorted(splits["fold"].unique()) == list(range(N_FOLDS))


@pytest.mark.parametrize("mode", MODES)
def test_deterministic_for_a_seed_and_different_for_another(mode, response, tissue):
    first = make_splits(response, tissue, mode, N_FOLDS, seed=11)
    again = make_splits(response, tissue, mode, N_FOLDS, seed=11)
    pd.testing.assert_frame_equal(first, again)
    # input order does not matter either
    shuffled = make_splits(response.iloc[::-1], tissue, mode, N_FOLDS, seed=11)
    pd.testing.assert_frame_equal(first, shuffled)
    others = [make_splits(response, tissue, mode, N_FOLDS, seed=s) for s in (12, 13, 14)]
    assert any(not np.array_equal(first["fold"], other["fold"]) for other in others)
    if mode != "LTO":  # with these tissue sizes the LTO grouping is forced; only the labels can change
        assert any(_partition(first) != _partition(other) for other in others)


def _partition(splits) -> frozenset:
    """The grouping of pairs into folds, whatever the fold labels."""
    keys = splits.cell_line + "|" + splits.drug
    return frozenset(frozenset(group) for group in keys.groupby(splits["fold"]).agg(list))


@pytest.mark.parametrize("test_fold", range(N_FOLDS))
def test_fold_roles(split, test_fold):
    _, splits = split
    roles = fold_roles(splits, test_fold)
    assert roles.index.equals(splits.index)
    assert set(roles) == {TRAIN, VALIDATION, TEST}
    by_role = splits.groupby(roles)["fold"].unique()
    assert list(by_role[TEST]) == [test_fold]
    assert list(by_role[VALIDATION]) == [(test_fold + 1) % N_FOLDS]
    assert validation_fold(test_fold, N_FOLDS) == (test_fold + 1) % N_FOLDS
    assert set(by_role[TRAIN]) == set(range(N_FOLDS)) - {test_fold, (test_fold + 1) % N_FOLDS}
    assert ((roles == TEST) == (splits["fold"] == test_fold)).all()


def test_each_pair_is_test_exactly_once_and_validation_exactly_once(split):
    _, splits = split
    roles = pd.concat([fold_roles(splits, k) for k in range(N_FOLDS)], axis=1)
    assert ((roles == TEST).sum(axis=1) == 1).all()
    assert ((roles == VALIDATION).sum(axis=1) == 1).all()


def test_lto_needs_as_many_tissues_as_folds(response, tissue):
    four = tissue[tissue.isin(["lung", "skin", "blood", "breast"])]
    small = response[response.cell_line.isin(four.index)]
    with pytest.raises(ValueError, match="LTO needs at least as many tissues as folds: 4 tissues, 5 folds"):
        make_splits(small, four, "LTO", N_FOLDS, seed=0)


def test_ldo_needs_as_many_drugs_as_folds(tissue):
    few = synthetic_response(n_drugs=3)
    with pytest.raises(ValueError, match="LDO needs at least as many drugs"):
        make_splits(few, tissue, "LDO", N_FOLDS, seed=0)


@pytest.mark.parametrize("n_folds", [2, 1, 0])
def test_too_few_folds(response, tissue, n_folds):
    with pytest.raises(ValueError, match="n_folds must be at least 3"):
        make_splits(response, tissue, "LCO", n_folds, seed=0)


@pytest.mark.parametrize("mode", ["LXO", "lco", ""])
def test_unknown_mode(response, tissue, mode):
    with pytest.raises(ValueError, match="unknown split mode"):
        make_splits(response, tissue, mode, N_FOLDS, seed=0)
