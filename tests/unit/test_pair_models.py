"""The pair models of issue #5 on the REAL fixture (tests/data: 150 GDSC cell lines x 12 drugs, Morgan
fingerprints of their SMILES): PairFeatures, the tree flattening of GradientBoosting, PairMLP, selection
by validation MSE in drp.stages.train and the label-permutation control.

Fits are small (<= 30 trees, one hidden layer of 32, 20 epochs) and single-threaded. Synthetic data only
for edge cases, named as such.
"""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from drp.models.selection import permute_within_drug
from drp.stages.evaluate import tuning_table
from drp.stages.prepare import preprocess_views
from drp.stages.train import fit_fold, fold_pairs, train
from drp.drug_features import morgan_fingerprints
from drp.io import write_h5ad, write_table
from drp.metrics import pearson
from drp.models import CellLineData, DrugResponseModel, TrainingData
from drp.models.boosting import GradientBoosting, RandomForest, flatten_trees, predict_trees
from drp.models.mlp import PairMLP
from drp.models.pair_features import PairFeatures
from drp.splits import TEST, TRAIN, VALIDATION, make_splits
from fixture_fold import FixtureFold

pytestmark = pytest.mark.usefixtures("torch_single_thread")

N_FEATURES = 200  # preprocessed expression features; the models take the 64 most variable
HELD_OUT_DRUG = "Cisplatin"  # the only platinum drug: some of its fingerprint bits are set in no other drug
N_FOLDS = 3
SEED = 5
BOOSTING = dict(views=["expression"], max_features_per_view=64, max_iter=30, learning_rate=0.1, max_leaf_nodes=15)
FOREST = dict(views=["expression"], max_features_per_view=64, n_trees=30, max_leaf_nodes=31, min_samples_leaf=10)
MLP = dict(views=["expression"], max_features_per_view=64, hidden=[32], dropout=0.1, max_epochs=20, patience=1000,
           learning_rate=3e-3, checkpoint_every=1000, device="cpu", progress=False)


# --- the real fixture, split by cell line (FixtureFold), with fingerprints; one drug also held out ----------

@pytest.fixture(scope="module")
def fold():
    fold = FixtureFold(["expression"], N_FEATURES)
    fold.cells = CellLineData(fold.cells.views, fold.cells.tissue, morgan_fingerprints(fold.drugs))
    return fold


def without_held_out_drug(fold, seed: int = 0) -> TrainingData:
    """An LDO-like training set: the fold's training cell lines, every drug but HELD_OUT_DRUG."""
    return fold.training_data(train=fold.train[fold.train.drug != HELD_OUT_DRUG].reset_index(drop=True),
                              validation=fold.validation[fold.validation.drug != HELD_OUT_DRUG].reset_index(drop=True),
                              seed=seed)


def fit(model, data: TrainingData):
    with threadpool_limits(1):  # OpenMP on a shared 2-core machine is many times slower than one thread
        model.fit(data)
    return model


@pytest.fixture(scope="module")
def fitted(fold):
    return {"boosting": fit(GradientBoosting(**BOOSTING), without_held_out_drug(fold)),
            "forest": fit(RandomForest(**FOREST), without_held_out_drug(fold)),
            "mlp": fit(PairMLP(**MLP), without_held_out_drug(fold))}


def held_out_test_pairs(fold) -> pd.DataFrame:
    """Every test pair (test cell lines; HELD_OUT_DRUG included though no model saw it)."""
    return fold.test[["cell_line", "drug"]]



def per_drug_pearson(predicted: pd.DataFrame, y_true) -> pd.Series:
    table = predicted.assign(y_true=np.asarray(y_true))
    return table.groupby("drug")[["y_true", "y_pred"]].apply(lambda g: pearson(g.y_true, g.y_pred))


# --- PairFeatures -------------------------------------------------------------------------------------------

def test_drug_bits_vary_among_training_drugs_only(fold):
    features = PairFeatures(["expression"], 64).fit(without_held_out_drug(fold))
    fingerprints = fold.cells.drug_features
    training_drugs = sorted(set(fold.drugs.drug) - {HELD_OUT_DRUG})
    train_bits = np.asarray(fingerprints[training_drugs].X)
    np.testing.assert_array_equal(features.drug_bits, np.flatnonzero(train_bits.min(axis=0) != train_bits.max(axis=0)))
    # bits that vary among all 12 drugs only through the held-out drug are not selected
    every = np.asarray(fingerprints.X)
    only_through_held_out = np.setdiff1d(np.flatnonzero(every.min(axis=0) != every.max(axis=0)), features.drug_bits)
    assert len(only_through_held_out) > 0
    assert not np.isin(only_through_held_out, features.drug_bits).any()
    # with every drug in training they would be
    assert np.isin(only_through_held_out, PairFeatures(["expression"], 64).fit(fold.training_data()).drug_bits).all()


def synthetic_fingerprint_data() -> tuple[TrainingData, ad.AnnData]:
    """Synthetic: 4 drugs x 6 bits, drug D never in training.
    bit 0 varies among training drugs; bit 1 constant 0 in training, 1 only in D; bit 2 all zero; bit 3 all one;
    bit 4 constant 1 in training, 0 in D; bit 5 varies among training drugs."""
    bits = np.array([[1, 0, 0, 1, 1, 0],   # A
                     [0, 0, 0, 1, 1, 1],   # B
                     [1, 0, 0, 1, 1, 1],   # C
                     [0, 1, 0, 1, 0, 1]],  # D (held out)
                    dtype=np.float32)
    drugs = pd.Index(["SYN_A", "SYN_B", "SYN_C", "SYN_D"], name="drug")
    fingerprints = ad.AnnData(X=bits, obs=pd.DataFrame(index=drugs))
    cells = pd.Index([f"SYNCELL{i}" for i in range(4)], name="cell_line")
    view = ad.AnnData(X=np.arange(12, dtype=np.float32).reshape(4, 3), obs=pd.DataFrame(index=cells),
                      var=pd.DataFrame({"train_variance": [1.0, 3.0, 2.0]}, index=["G0", "G1", "G2"]))
    train = pd.DataFrame([(c, d, 0.0) for c in cells for d in ("SYN_A", "SYN_B", "SYN_C")],
                         columns=["cell_line", "drug", "response"])
    data = TrainingData(CellLineData({"expression": view}, pd.Series("lung", index=cells), fingerprints), train,
                        train.iloc[:0], pd.DataFrame({"drug": fingerprints.obs_names, "smiles": ""}), True)
    return data, fingerprints


def test_pair_features_synthetic_edge_cases():
    data, _ = synthetic_fingerprint_data()
    features = PairFeatures(["expression"], 2).fit(data)
    assert list(features.drug_bits) == [0, 5]
    assert features.cell_features == {"expression": ["G1", "G2"]}  # the two most variable, in their order
    assert PairFeatures(["expression"], None).fit(data).cell_features == {"expression": ["G0", "G1", "G2"]}
    matrix = features.pair_matrix(data.cells, pd.DataFrame({"cell_line": ["SYNCELL3", "SYNCELL0"],
                                                            "drug": ["SYN_D", "SYN_A"]}))
    np.testing.assert_array_equal(matrix, [[10, 11, 0, 1], [1, 2, 1, 0]])  # [G1, G2, bit 0, bit 5]
    with pytest.raises(ValueError, match="SYN_UNKNOWN"):
        features.drug_matrix(data.cells, ["SYN_A", "SYN_UNKNOWN"])
    no_fingerprints = CellLineData(data.cells.views, data.cells.tissue)
    with pytest.raises(ValueError, match="fingerprints"):
        PairFeatures(["expression"], 2).fit(
            TrainingData(no_fingerprints, data.train, data.validation, data.drugs, True))
    with pytest.raises(ValueError, match="fingerprints"):
        features.drug_matrix(no_fingerprints, ["SYN_A"])


def test_cell_features_are_the_most_variable_among_training_cells(fold):
    features = PairFeatures(["expression"], 64).fit(without_held_out_drug(fold))
    var = fold.cells.views["expression"].var
    expected = var["train_variance"].sort_values(ascending=False, kind="stable").index[:64]
    assert sorted(features.cell_features["expression"]) == sorted(expected)
    assert features.cell_features["expression"] == [v for v in var.index if v in set(expected)]
    pairs = held_out_test_pairs(fold).iloc[[0, 7, 100]]
    matrix = features.pair_matrix(fold.cells, pairs)
    assert matrix.shape == (3, 64 + len(features.drug_bits)) and matrix.dtype == np.float32
    for row, (cell, drug) in zip(matrix, pairs.itertuples(index=False)):
        cell_part = np.asarray(fold.cells.views["expression"][[cell], features.cell_features["expression"]].X).ravel()
        drug_part = np.asarray(fold.cells.drug_features[[drug]].X).ravel()[features.drug_bits]
        np.testing.assert_array_equal(row, np.concatenate([cell_part, drug_part]))


# --- the flattened trees predict exactly as LightGBM ------------------------------------------------------

@pytest.mark.parametrize("missing", ["none", "at_predict_only", "in_training_too", "zero_as_missing"])
def test_predict_trees_equals_lightgbm(fold, missing):
    import lightgbm as lgb

    features = PairFeatures(["expression"], 64).fit(fold.training_data())
    X_train = features.pair_matrix(fold.cells, fold.train)
    X_test = features.pair_matrix(fold.cells, fold.test)
    rng = np.random.default_rng(3)
    if missing != "none":  # NaN in a tenth of the cell-feature entries
        X_test[:, :64][rng.random((len(X_test), 64)) < 0.1] = np.nan
    if missing in ("in_training_too", "zero_as_missing"):
        X_train[:, :64][rng.random((len(X_train), 64)) < 0.1] = np.nan
    params = {**GradientBoosting(max_leaf_nodes=15, min_samples_leaf=5).lightgbm_params(seed=0),
              "num_threads": 1, "zero_as_missing": missing == "zero_as_missing"}
    booster = lgb.train(params, lgb.Dataset(X_train, fold.train.response.to_numpy(), params=params), num_boost_round=30)
    expected = booster.predict(X_test)
    trees = flatten_trees(booster)
    np.testing.assert_array_equal(predict_trees(trees, 0.0, X_test), expected)
    assert len(trees["roots"]) == 30
    internal = ~trees["is_leaf"].astype(bool)
    assert np.isin(np.unique(trees["feature_idx"][internal]), np.arange(64)).any()  # omics and
    assert (trees["feature_idx"][internal] >= 64).any()  # fingerprint bits are both used
    if missing == "at_predict_only":  # features without NaN in training read NaN as 0.0
        assert set(trees["missing_type"][internal]) == {0}
        np.testing.assert_array_equal(predict_trees(trees, 0.0, np.nan_to_num(X_test, nan=0.0)), expected)
    if missing in ("in_training_too", "zero_as_missing"):  # NaN (or 0 too) go to the side learned in training
        assert set(trees["missing_type"][internal & (trees["feature_idx"] < 64)]) == {2 if missing == "in_training_too" else 1}
        flipped = {**trees, "missing_go_to_left": 1 - trees["missing_go_to_left"]}
        assert not np.array_equal(predict_trees(flipped, 0.0, X_test), expected)
        assert set(trees["missing_go_to_left"][internal & (trees["missing_type"] > 0)]) == {0, 1}


def test_early_stopping_on_validation_cell_lines(fold):
    """The validation pairs (other cell lines) stop the boosting: the kept trees are those of the best
    validation MSE; without validation pairs all max_iter trees are kept."""
    data = without_held_out_drug(fold)
    params = {**BOOSTING, "max_iter": 400, "learning_rate": 0.5}
    model = fit(GradientBoosting(**params), data)
    assert 0 < model.n_iterations < 400 and len(model.trees["roots"]) == model.n_iterations
    validation = data.validation
    predicted = model.predict(validation[["cell_line", "drug"]], data.cells).y_pred
    assert np.mean((predicted - validation.response) ** 2) == pytest.approx(model.validation_score, rel=1e-6)
    no_validation = fold.training_data(train=data.train_and_validation, validation=data.validation.iloc[:0], seed=0)
    assert fit(GradientBoosting(**{**params, "max_iter": 40}), no_validation).n_iterations == 40


def test_grid_candidates_share_binned_pairs_and_fit_as_if_alone(fold):
    """A fold's candidates share LightGBM's binned pairs (TrainingData.shared): a candidate fitted after
    another has the same trees as one fitted alone; other binning settings or features get their own copy."""
    data = without_held_out_drug(fold)
    first = fit(GradientBoosting(**BOOSTING), data)
    assert len(data.shared) == 1
    after = fit(GradientBoosting(**{**BOOSTING, "learning_rate": 0.3}), data)
    alone = fit(GradientBoosting(**{**BOOSTING, "learning_rate": 0.3}), without_held_out_drug(fold))
    assert len(data.shared) == 1 and after.n_iterations == alone.n_iterations
    assert all(np.array_equal(after.trees[k], alone.trees[k]) for k in alone.trees)
    assert not np.array_equal(first.trees["value"][:50], after.trees["value"][:50])
    fit(GradientBoosting(**{**BOOSTING, "max_bins": 15}), data)
    fit(GradientBoosting(**{**BOOSTING, "max_features_per_view": 32}), data)
    assert len(data.shared) == 3


# --- GradientBoosting and PairMLP -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["boosting", "forest", "mlp"])
def test_predicts_test_pairs_and_a_drug_unseen_in_training(fold, fitted, name):
    pairs = held_out_test_pairs(fold)
    predicted = fitted[name].predict(pairs, fold.test_cell_data())  # the test cell lines' omics only
    assert len(predicted) == len(pairs) and predicted.index.equals(pairs.index)
    assert predicted[["cell_line", "drug"]].equals(pairs)
    assert np.isfinite(predicted.y_pred).all()
    unseen = predicted[predicted.drug == HELD_OUT_DRUG]
    assert len(unseen) > 20
    assert unseen.y_pred.std() > 1e-3  # described by the cell line's omics and the drug's fingerprint
    assert not np.allclose(unseen.y_pred.to_numpy(), predicted[predicted.drug == "Docetaxel"].y_pred.mean())


@pytest.mark.parametrize("name", ["boosting", "forest", "mlp"])
def test_beats_chance_on_held_out_cell_lines(fold, fitted, name):
    """Mean per-drug Pearson on the test cell lines (seen drugs): about 0.4 for both; chance is 0."""
    seen = fold.test[fold.test.drug != HELD_OUT_DRUG]
    r = per_drug_pearson(fitted[name].predict(seen[["cell_line", "drug"]], fold.test_cell_data()), seen.response)
    assert len(r) == 11
    assert r.mean() > 0.2, r.round(2).to_dict()


@pytest.mark.parametrize("name", ["boosting", "forest", "mlp"])
def test_save_load_round_trip_without_pickle(tmp_path, fold, fitted, name):
    model = fitted[name]
    model.save(tmp_path / "model")
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert {"model.json", "arrays.npz"} <= set(files)
    assert set(files) - {"model.json", "arrays.npz"} <= {"history.tsv"}  # tables only, no pickles
    with np.load(tmp_path / "model" / "arrays.npz", allow_pickle=False) as arrays:
        assert all(arrays[key].dtype != object for key in arrays.files)
    saved = json.loads((tmp_path / "model" / "model.json").read_text())
    assert saved["class"] == f"{type(model).__module__}:{type(model).__qualname__}"
    loaded = type(model).load(tmp_path / "model")
    pairs = held_out_test_pairs(fold)
    np.testing.assert_array_equal(loaded.predict(pairs, fold.test_cell_data()).y_pred,
                                  model.predict(pairs, fold.test_cell_data()).y_pred)


def test_mlp_is_deterministic_on_cpu_for_a_seed(fold, fitted):
    pairs = held_out_test_pairs(fold)
    again = fit(PairMLP(**MLP), without_held_out_drug(fold, seed=0))
    np.testing.assert_array_equal(again.predict(pairs, fold.test_cell_data()).y_pred,
                                  fitted["mlp"].predict(pairs, fold.test_cell_data()).y_pred)
    pd.testing.assert_frame_equal(again.history.drop(columns="seconds", errors="ignore"),
                                  fitted["mlp"].history.drop(columns="seconds", errors="ignore"))
    other = fit(PairMLP(**MLP), without_held_out_drug(fold, seed=1))
    assert not np.allclose(other.predict(pairs, fold.test_cell_data()).y_pred,
                           fitted["mlp"].predict(pairs, fold.test_cell_data()).y_pred)


# --- drp.stages.train: selection by validation MSE; the label-permutation control ---------------------------

@pytest.fixture(scope="module")
def workspace(fold, tmp_path_factory):
    """The fixture written as the pipeline's files, LCO split into 3 folds, each fold preprocessed."""
    root = tmp_path_factory.mktemp("pair_models")
    dataset = fold.dataset
    dataset.write(root / "data")
    write_h5ad(root / "data" / "drug_fingerprints.h5ad", morgan_fingerprints(dataset.drugs))
    write_table(root / "LCO.tsv", make_splits(dataset.response, dataset.tissue, "LCO", N_FOLDS, SEED))
    for k in range(N_FOLDS):
        preprocess_views({"expression": root / "data" / "expression.h5ad"}, root / "LCO.tsv", k,
                         {"expression": {"n_features": N_FEATURES, "scale": True}},
                         {"expression": root / f"fold{k}" / "expression.h5ad"})
    return root


def fold_inputs(root, k: int) -> dict:
    return {"meta": root / "data" / "dataset.json", "response": root / "data" / "response.parquet",
            "drugs": root / "data" / "drugs.tsv", "drug_features": root / "data" / "drug_fingerprints.h5ad",
            "splits": root / "LCO.tsv", "features_expression": root / f"fold{k}" / "expression.h5ad"}


def test_grid_is_chosen_by_validation_mse(workspace, tmp_path):
    spec = {"class": "gradient_boosting", "params": {**BOOSTING, "max_iter": 20},
            "grid": {"learning_rate": [0.01, 0.3]}}
    output = tmp_path / "gradient_boosting" / "model"
    fit_fold(fold_inputs(workspace, 0), 0, spec, SEED, 1, output, refit=False)
    selection = pd.read_csv(output / "selection.tsv", sep="\t")
    assert list(selection.columns) == ["learning_rate", "validation_mse", "seconds", "chosen"]
    assert list(selection.learning_rate) == [0.01, 0.3]
    assert selection.chosen.sum() == 1
    assert selection.validation_mse.nunique() == 2  # the choice matters
    chosen = selection[selection.chosen].iloc[0]
    assert chosen.validation_mse == selection.validation_mse.min()
    # the saved model is that candidate, and its recorded score is its MSE on the validation pairs
    saved = json.loads((output / "model.json").read_text())
    assert saved["params"]["learning_rate"] == chosen.learning_rate
    pairs = fold_pairs(fold_inputs(workspace, 0), 0)
    validation = pairs[pairs.role == VALIDATION].reset_index(drop=True)
    features = ad.read_h5ad(workspace / "fold0" / "expression.h5ad")
    cells = CellLineData({"expression": features}, features.obs["tissue"].astype(str),
                         ad.read_h5ad(workspace / "data" / "drug_fingerprints.h5ad"))
    predicted = GradientBoosting.load(output).predict(validation[["cell_line", "drug"]], cells).y_pred
    assert np.mean((predicted - validation.response) ** 2) == pytest.approx(chosen.validation_mse, rel=1e-9)
    # the tuning table reports both candidates and the one chosen
    tuning = tuning_table({"gradient_boosting": {0: output}})
    assert list(tuning.candidates) == [2, 2] and list(tuning.chosen) == list(selection.chosen)
    assert [json.loads(c) for c in tuning.candidate] == [{"learning_rate": 0.01}, {"learning_rate": 0.3}]

    # with refit (the default): the chosen candidate again on all non-test pairs, with as many trees as it
    # kept when it stopped early on the validation pairs
    refit = tmp_path / "gradient_boosting_refit" / "model"
    fit_fold(fold_inputs(workspace, 0), 0, spec, SEED, 1, refit)
    record = pd.read_csv(refit / "selection.tsv", sep="\t")
    assert list(record.refit) == [False, False, True] and record.validation_mse.iloc[:2].tolist() == selection.validation_mse.tolist()
    trees = saved["state"]["n_iterations"]
    refitted = json.loads((refit / "model.json").read_text())
    assert refitted["params"]["max_iter"] == trees and refitted["state"]["n_iterations"] == trees
    assert refitted["params"]["learning_rate"] == chosen.learning_rate
    assert list(tuning_table({"gradient_boosting": {0: refit}}).candidates) == [2, 2, 2]


def test_single_candidate_without_validation_is_the_chosen_one(workspace, tmp_path):
    output = tmp_path / "mean_effects" / "model"
    fit_fold(fold_inputs(workspace, 0), 0, {"class": "mean_effects"}, SEED, 1, output)
    selection = pd.read_csv(output / "selection.tsv", sep="\t")
    assert len(selection) == 1
    assert selection.chosen.all()


def synthetic_pairs() -> pd.DataFrame:
    """Synthetic: 3 drugs x 40 cell lines, response = cell effect + drug effect, rows in shuffled order
    with a non-default index (the permutation must be positional)."""
    rng = np.random.default_rng(0)
    cells = [f"SYNCELL{i:02d}" for i in range(40)]
    cell_effect = pd.Series(rng.normal(size=40), index=cells)
    pairs = pd.DataFrame([(c, d) for c in cells for d in ("SYN_A", "SYN_B", "SYN_C")], columns=["cell_line", "drug"])
    pairs["response"] = pairs.cell_line.map(cell_effect) + pairs.drug.map({"SYN_A": 0.0, "SYN_B": 5.0, "SYN_C": -5.0})
    pairs = pairs.sample(frac=1, random_state=1)
    pairs.index = rng.permutation(len(pairs)) * 10 + 7
    return pairs


def test_permute_within_drug_keeps_each_drugs_responses_and_breaks_the_cell_lines():
    pairs = synthetic_pairs()
    before = pairs.copy()
    shuffled = permute_within_drug(pairs, seed=0)
    pd.testing.assert_frame_equal(pairs, before)  # the input is not modified
    pd.testing.assert_frame_equal(shuffled[["cell_line", "drug"]], pairs[["cell_line", "drug"]])
    for drug, group in pairs.groupby("drug"):
        permuted = shuffled.loc[group.index, "response"]
        np.testing.assert_array_equal(np.sort(permuted), np.sort(group.response))  # the same multiset
        assert (permuted != group.response).mean() > 0.8  # most cell lines got another one's response
        assert abs(np.corrcoef(permuted, group.response)[0, 1]) < 0.5
    pd.testing.assert_frame_equal(permute_within_drug(pairs, seed=0), shuffled)
    assert not permute_within_drug(pairs, seed=1).response.equals(shuffled.response)


def test_permute_within_drug_single_pair_drug_is_unchanged():
    pairs = pd.DataFrame({"cell_line": ["SYNCELL0", "SYNCELL1", "SYNCELL2"], "drug": ["SYN_A", "SYN_A", "SYN_B"],
                          "response": [1.0, 2.0, 3.0]}, index=[5, 3, 9])  # synthetic
    shuffled = permute_within_drug(pairs, seed=0)
    assert shuffled.loc[9, "response"] == 3.0
    assert sorted(shuffled.loc[[5, 3], "response"]) == [1.0, 2.0]


def test_permuted_labels_score_at_chance(workspace, tmp_path):
    """mlp trained on labels permuted within drug (spec permute_labels) vs on the real labels; test
    predictions of all three LCO folds pooled (150 cell lines per drug; on one fold of 50 the null mean
    per-drug Pearson spreads too much). Observed: real ~0.31-0.36, permuted |mean| <= 0.08 over 6 seeds."""
    means = {}
    for permute in (False, True):
        spec = {"class": "mlp", "permute_labels": permute, "params": MLP}
        frames = []
        for k in range(N_FOLDS):
            inputs = fold_inputs(workspace, k)
            model_dir = tmp_path / f"permute{permute}" / f"fold{k}" / "model"
            train(inputs, k, spec, SEED, 1, {"model": model_dir, "predictions": model_dir.parent / "predictions.parquet",
                                             "view_ablation": model_dir.parent / "view_ablation.parquet"})
            frames.append(pd.read_parquet(model_dir.parent / "predictions.parquet"))
        predictions = pd.concat(frames, ignore_index=True)
        assert predictions.cell_line.nunique() == 150 and set(predictions.fold) == {0, 1, 2}
        means[permute] = per_drug_pearson(predictions, predictions.y_true).mean()
    assert abs(means[True]) < 0.15, means
    assert means[False] > 0.2 and means[False] - means[True] > 0.15, means


class PairRecorder(DrugResponseModel):
    """Keeps the training and validation pairs it is handed (in its saved state) and predicts their mean."""

    uses_validation = True

    def __init__(self):
        super().__init__()
        self.pairs: dict = {}

    def fit(self, data: TrainingData) -> None:
        self.pairs = {part: frame[["cell_line", "drug", "response"]].values.tolist()
                      for part, frame in (("train", data.train), ("validation", data.validation))}

    def predict(self, pairs, cells):
        return pairs.assign(y_pred=float(np.mean([r for *_, r in self.pairs["train"]])))

    def state(self):
        return {"pairs": self.pairs}, {}

    def load_state(self, meta, arrays):
        self.pairs = meta["pairs"]


def test_permute_labels_shuffles_all_non_test_pairs_together_within_drug(workspace, tmp_path):
    """One permutation within each drug over training and validation pairs together: permuting the two apart
    would keep the difference between their groups' responses, which a refit on both would learn."""
    output = tmp_path / "recorder" / "model"
    spec = {"class": f"{__name__}:{PairRecorder.__qualname__}", "permute_labels": True}
    fit_fold(fold_inputs(workspace, 1), 1, spec, SEED, 1, output, refit=False)  # the fit that sees both parts apart
    recorded = PairRecorder.load(output).pairs
    pairs = fold_pairs(fold_inputs(workspace, 1), 1)
    real = pairs.loc[pairs.role != TEST, ["cell_line", "drug", "response", "role"]]
    seen = pd.concat([pd.DataFrame(recorded[part], columns=["cell_line", "drug", "response"]).assign(part=part)
                      for part in ("train", "validation")])
    merged = seen.merge(real, on=["cell_line", "drug"], suffixes=("", "_real"), validate="one_to_one")
    assert len(merged) == len(real) and (merged.part == merged.role).all()  # the roles are the real ones
    for drug, group in merged.groupby("drug"):  # each drug keeps its responses over the non-test pairs
        np.testing.assert_array_equal(np.sort(group.response), np.sort(group.response_real))
    assert (merged.response != merged.response_real).mean() > 0.8
    # responses cross between the parts: some validation pair carries a training pair's response
    crossed = merged[merged.part == "validation"].groupby("drug").apply(
        lambda g: not set(g.response) <= set(merged.loc[(merged.drug == g.name) & (merged.part == "validation"), "response_real"]),
        include_groups=False)
    assert crossed.mean() > 0.5
    assert not set(seen.cell_line) & set(pairs.loc[pairs.role == TEST, "cell_line"])  # LCO


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_fast_dropout_drops_a_share_p_and_keeps_the_expectation(p):
    """FastDropout (16 random bits per unit): on SYNTHETIC ones, the dropped share is p (within 4 standard
    errors), kept units are scaled by 1 / (1 - p), every bit lane is used (no position is always kept),
    and evaluation is the identity."""
    import torch

    from drp.models.mlp import FastDropout

    torch.manual_seed(0)
    layer = FastDropout(p)
    x = torch.ones(400, 1001)  # an odd size: the last 64-bit word is only partly used
    out = layer(x)
    dropped = (out == 0).double()
    assert abs(dropped.mean().item() - p) < 4 * (p * (1 - p) / x.numel()) ** 0.5
    assert torch.allclose(out[out != 0], torch.tensor(1 / (1 - p)), rtol=1e-3)
    lanes = dropped.flatten()[: 4 * (x.numel() // 4)].view(-1, 4).mean(0)  # the four 16-bit lanes of each word
    assert torch.all((lanes - p).abs() < 4 * (p * (1 - p) / (x.numel() / 4)) ** 0.5)
    assert abs(out.mean().item() - 1.0) < 0.01
    layer.eval()
    assert torch.equal(layer(x), x)


def test_responses_that_overflow_when_squared_are_refused_by_the_training_job(workspace, tmp_path):
    """SYNTHETIC change of the real fixture: one response of 1e308 made every candidate's validation error
    infinite and predictions reach 6e306 without a word."""
    response = pd.read_parquet(workspace / "data" / "response.parquet")
    response.loc[5, "response"] = 1e308
    response.to_parquet(tmp_path / "response.parquet")
    inputs = {**fold_inputs(workspace, 0), "response": tmp_path / "response.parquet"}
    spec = {"class": "mean_effects", "params": {}}
    with pytest.raises(ValueError, match=r"response.parquet: response 1e\+308 of \(.*\) and 0 more cannot be squared"):
        fit_fold(inputs, 0, spec, SEED, 1, tmp_path / "model")
    assert not (tmp_path / "model").exists()
