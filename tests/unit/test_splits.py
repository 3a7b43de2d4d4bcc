"""drp.splits: every pair in exactly one test fold, the held-out unit never in two folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drp.splits import MODES, TEST, TRAIN, VALIDATION, fold_roles, fold_table, make_splits, validation_fold

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
    # LTO: six tissues in five folds leave too few for five inner folds (test_a_fold_without_validation_...)
    fraction = 0.5 if request.param == "LTO" else 0.2
    return request.param, make_splits(response, tissue, request.param, N_FOLDS, seed=3, validation_fraction=fraction)


def test_synthetic_response_shape(response):
    assert response.cell_line.nunique() == 60 and response.drug.nunique() == 15
    assert 0.75 < len(response) / (60 * 15) < 0.85


def test_every_pair_assigned_exactly_once(split, response):
    _, splits = split
    assert list(splits.columns) == ["cell_line", "drug", "group", "fold", "inner", "repeat"]
    assert len(splits) == len(response)
    assert not splits.duplicated(["cell_line", "drug"]).any()
    merged = response.merge(splits, on=["cell_line", "drug"], how="outer", indicator=True, validate="one_to_one")
    assert (merged["_merge"] == "both").all()
    assert splits["fold"].dtype.kind == "i" and splits["inner"].dtype.kind == "i"
    assert set(splits["inner"]) == set(range(2 if split[0] == "LTO" else 5))  # round(1 / validation_fraction)
    assert splits.groupby("group")[["fold", "inner"]].nunique().max().max() == 1  # whole groups only


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
    splits = make_splits(response, tissue, "LTO", N_FOLDS, seed=3, validation_fraction=0.5)
    tissue_fold = splits.assign(tissue=splits.cell_line.map(tissue)).groupby("tissue")["fold"].first()
    pair_counts = splits.cell_line.map(tissue).value_counts()
    five_largest = pair_counts.index[:N_FOLDS]
    assert tissue_fold[five_largest].nunique() == N_FOLDS


def test_unknown_tissue_is_a_stratum_of_its_own(response, tissue):
    partial = tissue.drop(tissue.index[tissue == "eye"])  # eye cell lines have no tissue label
    splits = make_splits(response, partial, "LTO", N_FOLDS, seed=3, validation_fraction=0.5)
    eye = splits.cell_line.isin(tissue.index[tissue == "eye"])
    assert splits.loc[eye, "fold"].nunique() == 1
    assert sorted(splits["fold"].unique()) == list(range(N_FOLDS))


@pytest.mark.parametrize("mode", MODES)
def test_deterministic_for_a_seed_and_different_for_another(mode, response, tissue):
    first = make_splits(response, tissue, mode, N_FOLDS, seed=11, validation_fraction=0.5)
    again = make_splits(response, tissue, mode, N_FOLDS, seed=11, validation_fraction=0.5)
    pd.testing.assert_frame_equal(first, again)
    # input order does not matter either
    shuffled = make_splits(response.iloc[::-1], tissue, mode, N_FOLDS, seed=11, validation_fraction=0.5)
    pd.testing.assert_frame_equal(first, shuffled)
    others = [make_splits(response, tissue, mode, N_FOLDS, seed=s, validation_fraction=0.5) for s in (12, 13, 14)]
    assert any(not np.array_equal(first["fold"], other["fold"]) for other in others)
    if mode != "LTO":  # with these tissue sizes the LTO grouping is forced; only the labels can change
        assert any(_partition(first) != _partition(other) for other in others)


def _partition(splits) -> frozenset:
    """The grouping of pairs into folds, whatever the fold labels."""
    keys = splits.cell_line + "|" + splits.drug
    return frozenset(frozenset(group) for group in keys.groupby(splits["fold"]).agg(list))


@pytest.mark.parametrize("test_fold", range(N_FOLDS))
def test_fold_roles(split, test_fold):
    """Validation: the non-test groups of inner fold k mod V, about a fraction 1 / V of them; never a test group."""
    mode, splits = split
    n_inner = splits["inner"].nunique()
    roles = fold_roles(splits, test_fold)
    assert roles.index.equals(splits.index)
    assert set(roles) == {TRAIN, VALIDATION, TEST}
    assert ((roles == TEST) == (splits["fold"] == test_fold)).all()
    assert ((roles == VALIDATION) == ((splits["inner"] == test_fold % n_inner) & (splits["fold"] != test_fold))).all()
    groups = splits.groupby("group").agg(role=("group", lambda g: set(roles[g.index])))
    assert (groups.role.map(len) == 1).all()  # a group is never split between roles
    if mode in ("LCO", "LPO", "LDO"):  # dealt units: close to the fraction (LTO: whole tissues, coarser)
        non_test = groups[groups.role.map(lambda r: TEST not in r)]
        share = non_test.role.map(lambda r: VALIDATION in r).mean()
        assert 0.1 < share < 0.3


def test_each_pair_is_test_exactly_once_and_validates_the_outer_folds_of_its_inner_fold(split):
    _, splits = split
    n_inner = splits["inner"].nunique()
    roles = pd.concat([fold_roles(splits, k) for k in range(N_FOLDS)], axis=1)
    assert ((roles == TEST).sum(axis=1) == 1).all()
    expected = [sum(1 for k in range(N_FOLDS) if k != f and k % n_inner == i) for f, i in zip(splits["fold"], splits["inner"])]
    assert ((roles == VALIDATION).sum(axis=1) == expected).all()


def test_outer_folds_do_not_depend_on_the_validation_fraction(response, tissue):
    with_inner = make_splits(response, tissue, "LCO", N_FOLDS, seed=3)
    without = make_splits(response, tissue, "LCO", N_FOLDS, seed=3, validation_fraction=None)
    assert "inner" not in without and with_inner["fold"].equals(without["fold"])
    assert with_inner["inner"].nunique() == 5
    assert make_splits(response, tissue, "LCO", N_FOLDS, seed=3, validation_fraction=0.25)["inner"].nunique() == 4


def test_a_table_without_inner_folds_validates_on_the_next_outer_fold(split):
    _, splits = split
    legacy = splits.drop(columns=["inner"])
    for test_fold in range(N_FOLDS):
        roles = fold_roles(legacy, test_fold)
        assert set(legacy.loc[roles == VALIDATION, "fold"]) == {validation_fold(test_fold, N_FOLDS)}


def test_a_fold_without_validation_groups_is_refused(response, tissue):
    """SYNTHETIC: 6 tissues, 5 outer and 2 inner folds under LTO leave some outer fold without validation."""
    with pytest.raises(ValueError, match="outer fold .* has no (validation|training) group"):
        for seed in range(20):
            make_splits(response, tissue, "LTO", N_FOLDS, seed=seed, validation_fraction=0.2)


def test_lto_needs_as_many_tissues_as_folds(response, tissue):
    four = tissue[tissue.isin(["lung", "skin", "blood", "breast"])]
    small = response[response.cell_line.isin(four.index)]
    with pytest.raises(ValueError, match="LTO needs at least as many tissues as folds: 4 tissues, 5 folds"):
        make_splits(small, four, "LTO", N_FOLDS, seed=0)


def test_ldo_needs_as_many_drugs_as_folds(tissue):
    few = synthetic_response(n_drugs=3)
    with pytest.raises(ValueError, match="LDO needs at least as many drugs"):
        make_splits(few, tissue, "LDO", N_FOLDS, seed=0)


@pytest.mark.parametrize("n_cells", [3, 4])
def test_lco_needs_as_many_cell_lines_as_folds(response, tissue, n_cells):
    """SYNTHETIC: fewer cell lines than folds was accepted with empty folds, and the fold count was then
    inferred (4 instead of 5), shifting every validation fold."""
    few = response[response.cell_line.isin(sorted(response.cell_line.unique())[:n_cells])]
    with pytest.raises(ValueError, match=rf"LCO needs at least as many cell lines as folds: {n_cells} cell lines for "
                                         r"5 folds \(splits.n_folds\) leave fold\(s\) \[.*\] empty"):
        make_splits(few, tissue, "LCO", N_FOLDS, seed=0, validation_fraction=0.2)


def test_fold_roles_refuse_a_table_with_a_missing_fold(response, tissue):
    """SYNTHETIC: a split table that skips a fold is refused, not read as fewer folds."""
    splits = make_splits(response, tissue, "LCO", N_FOLDS, seed=0, validation_fraction=0.2)
    with pytest.raises(ValueError, match=r"folds of a repeat must run without gaps, found \[0, 1, 2, 4\]"):
        fold_roles(splits[splits.fold != 3], 0)
    without_inner = splits.drop(columns="inner")
    with pytest.raises(ValueError, match="without gaps"):
        fold_roles(without_inner[without_inner.fold != 2], 0)


@pytest.mark.parametrize("n_folds", [2, 1, 0])
def test_too_few_folds(response, tissue, n_folds):
    with pytest.raises(ValueError, match="n_folds must be at least 3"):
        make_splits(response, tissue, "LCO", n_folds, seed=0)


@pytest.mark.parametrize("mode", ["LXO", "lco", ""])
def test_unknown_mode(response, tissue, mode):
    with pytest.raises(ValueError, match="unknown split mode"):
        make_splits(response, tissue, mode, N_FOLDS, seed=0)


def test_repeats_are_independent_assignments_with_running_fold_ids(response, tissue):
    from drp.splits import fold_table, repeat_folds

    splits = make_splits(response, tissue, "LCO", N_FOLDS, seed=3, repeats=3)
    single = make_splits(response, tissue, "LCO", N_FOLDS, seed=3)
    assert len(splits) == 3 * len(response) and set(splits["repeat"]) == {0, 1, 2}
    assert repeat_folds(splits) == {r: list(range(r * N_FOLDS, (r + 1) * N_FOLDS)) for r in range(3)}
    first = splits[splits.repeat == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, single)  # repeat 0 is the assignment of the base seed
    for repeat in (1, 2):
        table = fold_table(splits, repeat * N_FOLDS + 2)
        assert set(table["repeat"]) == {repeat} and len(table) == len(response)
        assert _partition(table.assign(fold=table.fold - repeat * N_FOLDS)) != _partition(first)
        roles = fold_roles(table, repeat * N_FOLDS + 2)
        assert ((roles == TEST) == (table.fold == repeat * N_FOLDS + 2)).all() and (roles == VALIDATION).any()
    with pytest.raises(ValueError, match="needs the rows of one repeat"):
        fold_roles(splits, 0)
    with pytest.raises(ValueError, match="fold 99 does not exist"):
        fold_table(splits, 99)


# --- splits from a user's file ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_a_split_table_round_trips_through_a_file(tmp_path, response, tissue, mode):
    """Export the held-out units' folds of a generated table, read them back: the same test folds."""
    from drp.splits import GROUP_COLUMNS, splits_from_file

    fraction = 0.5 if mode == "LTO" else 0.2
    generated = make_splits(response, tissue, mode, N_FOLDS, seed=3, validation_fraction=fraction, repeats=2)
    units = generated.assign(tissue=generated.cell_line.map(tissue))
    units = units.assign(fold=units.fold - units.repeat * N_FOLDS)[[*GROUP_COLUMNS[mode], "fold", "repeat"]]
    path = tmp_path / "folds.csv"
    units.drop_duplicates().to_csv(path, index=False)
    read = splits_from_file(response, tissue, mode, path, N_FOLDS, seed=3, validation_fraction=fraction, repeats=2)
    key = ["cell_line", "drug", "repeat"]
    merged = generated.merge(read, on=key, suffixes=("", "_read"), validate="one_to_one")
    assert len(merged) == len(generated) and (merged.fold == merged.fold_read).all()
    for fold in range(2 * N_FOLDS):
        roles = fold_roles(fold_table(read, fold), fold)
        assert (roles == VALIDATION).any() and (roles == TRAIN).any()


def test_a_bad_split_file_names_the_file_and_the_problem(tmp_path, response, tissue):
    from drp.splits import splits_from_file

    cells = sorted(response.cell_line.unique())
    good = pd.DataFrame({"cell_line": cells, "fold": np.arange(len(cells)) % N_FOLDS})

    def error(table, **kwargs) -> str:
        path = tmp_path / "folds.tsv"
        table.to_csv(path, sep="\t", index=False)
        with pytest.raises(ValueError) as caught:
            splits_from_file(response, tissue, "LCO", path, kwargs.get("n_folds", N_FOLDS), seed=0)
        assert str(path) in str(caught.value)
        return str(caught.value)

    assert "needs the columns ['cell_line', 'fold']" in error(good.rename(columns={"fold": "split"}))
    assert "have no fold" in error(good.iloc[5:])
    assert "more than one row" in error(pd.concat([good, good.iloc[:1].assign(fold=1)]))
    assert "whole numbers" in error(good.assign(fold=good.fold.astype(float) + 0.5))
    assert "splits.n_folds is 4" in error(good, n_folds=4)


def test_a_split_file_keeps_ids_that_look_like_missing_values(tmp_path, response, tissue):
    """SYNTHETIC: a drug named "NA" in a user's fold table was read as missing ("empty drug in row ...")."""
    from drp.splits import splits_from_file

    renamed = response.assign(drug=response.drug.replace({response.drug.iloc[0]: "NA"}))
    drugs = sorted(renamed.drug.unique())
    path = tmp_path / "folds.tsv"
    pd.DataFrame({"drug": drugs, "fold": [i % N_FOLDS for i in range(len(drugs))]}).to_csv(path, sep="\t", index=False)
    read = splits_from_file(renamed, tissue, "LDO", path, N_FOLDS, seed=0)
    assert "NA" in set(read.drug) and len(read) == len(renamed)
