"""drp.models: the mean-effects and ElasticNet baselines, save/load, the registry, TrainingData."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from drp import models
from drp.models import CellLineData, DrugResponseModel, TrainingData
from drp.models.elastic_net import ElasticNetPerDrug
from drp.models.mean_effects import MeanEffects

TISSUES = ["lung", "skin", "blood", "breast"]


def synthetic_cells(n_cells: int, n_features: int = 6, seed: int = 0, prefix: str = "SYNCELL") -> CellLineData:
    rng = np.random.default_rng(seed)
    cells = pd.Index([f"{prefix}{i:02d}" for i in range(n_cells)], name="cell_line")
    tissue = pd.Series([TISSUES[i % len(TISSUES)] for i in range(n_cells)], index=cells, name="tissue")
    view = ad.AnnData(X=rng.normal(size=(n_cells, n_features)).astype(np.float32),
                      obs=pd.DataFrame({"tissue": tissue}),
                      var=pd.DataFrame(index=[f"GENE{j}" for j in range(n_features)]))
    return CellLineData({"expression": view}, tissue)


def synthetic_additive_response(cells: CellLineData, n_drugs: int = 8, seed: int = 1):
    """y = mu + drug + tissue + cell effects, no noise; returns the full grid and the true effects."""
    rng = np.random.default_rng(seed)
    drugs = [f"DRUG{j}" for j in range(n_drugs)]
    effects = {
        "mu": 2.0,
        "drug": pd.Series(rng.normal(scale=2.0, size=n_drugs), index=drugs),
        "tissue": pd.Series(rng.normal(scale=1.5, size=len(TISSUES)), index=TISSUES),
        "cell_line": pd.Series(rng.normal(scale=0.5, size=len(cells.cell_lines)), index=cells.cell_lines),
    }
    grid = pd.DataFrame([(c, d) for c in cells.cell_lines for d in drugs], columns=["cell_line", "drug"])
    grid["response"] = (effects["mu"] + grid.drug.map(effects["drug"]).to_numpy()
                        + grid.cell_line.map(cells.tissue).map(effects["tissue"]).to_numpy()
                        + grid.cell_line.map(effects["cell_line"]).to_numpy())
    return grid, effects


def _training_data(cells: CellLineData, pairs: pd.DataFrame, seed: int = 0) -> TrainingData:
    drugs = pd.DataFrame({"drug": sorted(pairs.drug.unique()), "smiles": ""})
    return TrainingData(cells.subset(sorted(pairs.cell_line.unique())), pairs.reset_index(drop=True),
                        pairs.iloc[:0].reset_index(drop=True), drugs, lower_is_sensitive=True, seed=seed)


# --- MeanEffects ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def additive():
    cells = synthetic_cells(24)
    grid, effects = synthetic_additive_response(cells)
    rng = np.random.default_rng(2)
    observed = rng.random(len(grid)) < 0.75  # unbalanced: a quarter of the pairs are missing
    train_cells = cells.cell_lines[:20]  # the last 4 cell lines (one per tissue) are never seen
    train = grid[observed & grid.cell_line.isin(train_cells)]
    return cells, grid, effects, train, train_cells


@pytest.fixture(scope="module")
def mean_effects(additive):
    cells, _, _, train, _ = additive
    model = MeanEffects()  # the default 20 backfitting sweeps
    model.fit(_training_data(cells, train))
    return model


def test_mean_effects_reproduces_training_pairs(additive, mean_effects):
    cells, _, _, train, _ = additive
    predicted = mean_effects.predict(train[["cell_line", "drug"]], cells)
    np.testing.assert_allclose(predicted["y_pred"], train["response"], atol=1e-6)


def test_mean_effects_recovers_unobserved_pairs_of_seen_cells(additive, mean_effects):
    cells, grid, _, train, train_cells = additive
    seen = grid[grid.cell_line.isin(train_cells)]
    missing = seen.merge(train[["cell_line", "drug"]], how="left", indicator=True)
    missing = missing[missing["_merge"] == "left_only"].drop(columns="_merge")
    assert len(missing) > 20
    predicted = mean_effects.predict(missing[["cell_line", "drug"]], cells)
    np.testing.assert_allclose(predicted["y_pred"], missing["response"], atol=1e-6)


def test_mean_effects_recovers_drug_effect_differences(additive, mean_effects):
    _, _, effects, _, _ = additive
    fitted, true = mean_effects.effects["drug"], effects["drug"]
    # effects are identified up to a constant shared with the mean
    np.testing.assert_allclose((fitted - fitted.iloc[0]).to_numpy(), (true - true.iloc[0]).to_numpy(), atol=1e-6)


def test_mean_effects_unseen_cell_line_gets_its_tissue_effect(additive, mean_effects):
    cells, grid, _, _, train_cells = additive
    unseen = grid[~grid.cell_line.isin(train_cells)]
    assert set(unseen.cell_line.map(cells.tissue)) == set(TISSUES)
    predicted = mean_effects.predict(unseen[["cell_line", "drug"]], cells)
    fitted = mean_effects.effects
    expected = (mean_effects.mean + unseen.drug.map(fitted["drug"]).to_numpy()
                + unseen.cell_line.map(cells.tissue).map(fitted["tissue"]).to_numpy())
    np.testing.assert_allclose(predicted["y_pred"], expected, atol=1e-12)
    assert not set(unseen.cell_line) & set(fitted["cell_line"].index)


def test_mean_effects_unseen_cell_on_a_complete_table_is_mu_drug_tissue():
    """On a complete table with effects centred (cell lines within tissue), the fit is the truth."""
    cells = synthetic_cells(24)
    grid, effects = synthetic_additive_response(cells)
    tissue_of = cells.tissue
    cell_effect = effects["cell_line"] - effects["cell_line"].groupby(tissue_of).transform("mean")
    drug_effect, tissue_effect = effects["drug"] - effects["drug"].mean(), effects["tissue"]
    grid["response"] = (effects["mu"] + grid.drug.map(drug_effect).to_numpy()
                        + grid.cell_line.map(tissue_of).map(tissue_effect).to_numpy()
                        + grid.cell_line.map(cell_effect).to_numpy())
    train_cells = cells.cell_lines[:20]
    model = MeanEffects()
    model.fit(_training_data(cells, grid[grid.cell_line.isin(train_cells)]))
    unseen = grid[~grid.cell_line.isin(train_cells)]
    predicted = model.predict(unseen[["cell_line", "drug"]], cells)
    # the 20 training cell lines have 5 per tissue; centring over the 6 per tissue is not the same, so
    # compute the true tissue effect over the training cell lines
    train_tissue = (tissue_effect + cell_effect[train_cells].groupby(tissue_of[train_cells]).mean())
    mu = effects["mu"] + train_tissue.mean()
    expected = (mu + unseen.drug.map(drug_effect).to_numpy()
                + unseen.cell_line.map(tissue_of).map(train_tissue - train_tissue.mean()).to_numpy())
    np.testing.assert_allclose(predicted["y_pred"], expected, atol=1e-6)


def test_mean_effects_unseen_drug_and_tissue_contribute_zero(additive, mean_effects):
    cells, _, _, _, _ = additive
    pairs = pd.DataFrame({"cell_line": [cells.cell_lines[0]], "drug": ["NEWDRUG"]})
    predicted = mean_effects.predict(pairs, cells)
    fitted = mean_effects.effects
    expected = (mean_effects.mean + fitted["tissue"][cells.tissue.iloc[0]]
                + fitted["cell_line"][cells.cell_lines[0]])
    assert predicted["y_pred"].iloc[0] == pytest.approx(expected)
    stranger = CellLineData(cells.views, cells.tissue.replace({"lung": "kidney"}))
    unseen_cell = cells.cell_lines[-4]  # a lung cell line never seen in training
    assert cells.tissue[unseen_cell] == "lung"
    predicted = mean_effects.predict(pd.DataFrame({"cell_line": [unseen_cell], "drug": ["DRUG0"]}), stranger)
    assert predicted["y_pred"].iloc[0] == pytest.approx(mean_effects.mean + fitted["drug"]["DRUG0"])


def test_mean_effects_save_load_round_trip(tmp_path, additive, mean_effects):
    cells, grid, _, _, _ = additive
    mean_effects.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["arrays.npz", "model.json"]
    loaded = MeanEffects.load(tmp_path / "model")
    assert loaded.params == mean_effects.params
    pairs = pd.concat([grid[["cell_line", "drug"]],
                       pd.DataFrame({"cell_line": [cells.cell_lines[0]], "drug": ["NEWDRUG"]})])
    np.testing.assert_array_equal(loaded.predict(pairs, cells)["y_pred"], mean_effects.predict(pairs, cells)["y_pred"])


def test_mean_effects_shrinkage_pulls_effects_towards_zero(additive):
    cells, _, _, train, _ = additive
    plain, shrunk = MeanEffects(), MeanEffects(shrinkage=50.0)
    plain.fit(_training_data(cells, train))
    shrunk.fit(_training_data(cells, train))
    assert shrunk.effects["cell_line"].abs().sum() < plain.effects["cell_line"].abs().sum()


# --- ElasticNetPerDrug --------------------------------------------------------------------------------

def synthetic_linear_response(cells: CellLineData, drugs=("DRUGA", "DRUGB", "DRUGC"), seed: int = 3):
    """y depends linearly on features 0 and 1 (different weights per drug), plus a little noise."""
    rng = np.random.default_rng(seed)
    X = np.asarray(cells.views["expression"].X, dtype=np.float64)
    rows = []
    for j, drug in enumerate(drugs):
        y = 1.0 + j + (2.0 - 0.5 * j) * X[:, 0] - (1.5 + 0.3 * j) * X[:, 1] + rng.normal(scale=0.1, size=len(X))
        rows.append(pd.DataFrame({"cell_line": cells.cell_lines, "drug": drug, "response": y}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def elastic_net_setup():
    cells = synthetic_cells(60, n_features=8, seed=4)
    response = synthetic_linear_response(cells)
    train_cells = cells.cell_lines[:45]
    train = response[response.cell_line.isin(train_cells)]
    model = ElasticNetPerDrug(eps=0.001, max_iter=2000)  # no validation pairs: inner cross-validation
    model.fit(_training_data(cells, train, seed=0))
    return cells, response, train_cells, train, model


def test_elastic_net_learns_held_out_cells(elastic_net_setup):
    cells, response, train_cells, _, model = elastic_net_setup
    held_out = response[~response.cell_line.isin(train_cells)]
    test_cells = cells.subset(sorted(held_out.cell_line.unique()))  # only the test cells' omics
    predicted = model.predict(held_out[["cell_line", "drug"]], test_cells)
    assert len(predicted) == len(held_out) and predicted.index.equals(held_out[["cell_line", "drug"]].index)
    for drug, group in predicted.assign(y=held_out.response).groupby("drug"):
        assert np.corrcoef(group.y, group.y_pred)[0, 1] > 0.9, drug
    assert model.drugs == ["DRUGA", "DRUGB", "DRUGC"]
    # the two informative features carry the weight
    assert (np.abs(model.coef[:, :2]).min(axis=1) > 5 * np.abs(model.coef[:, 2:]).max(axis=1)).all()


def test_elastic_net_unseen_drug_falls_back_to_training_mean(elastic_net_setup):
    cells, _, _, train, model = elastic_net_setup
    pairs = pd.DataFrame({"cell_line": [cells.cell_lines[50], cells.cell_lines[51], cells.cell_lines[50]],
                          "drug": ["NEWDRUG", "DRUGA", "OTHERNEW"]})
    predicted = model.predict(pairs, cells)
    assert model.fallback == pytest.approx(train.response.mean())
    assert predicted["y_pred"].iloc[0] == pytest.approx(train.response.mean())
    assert predicted["y_pred"].iloc[2] == pytest.approx(train.response.mean())
    assert predicted["y_pred"].iloc[1] != pytest.approx(train.response.mean())


def test_elastic_net_too_few_cell_lines_predicts_the_drug_mean():
    cells = synthetic_cells(30, seed=6)
    response = synthetic_linear_response(cells, drugs=("DRUGA", "RARE"))
    train = response[(response.drug == "DRUGA") | response.cell_line.isin(cells.cell_lines[:5])]
    model = ElasticNetPerDrug(min_cell_lines=10)
    model.fit(_training_data(cells, train))
    rare = train[train.drug == "RARE"]
    predicted = model.predict(pd.DataFrame({"cell_line": cells.cell_lines[20:25], "drug": "RARE"}), cells)
    np.testing.assert_allclose(predicted["y_pred"], rare.response.mean())


def test_elastic_net_save_load_round_trip(tmp_path, elastic_net_setup):
    cells, response, _, _, model = elastic_net_setup
    model.save(tmp_path / "enet")
    loaded = ElasticNetPerDrug.load(tmp_path / "enet")
    assert loaded.params == model.params
    pairs = pd.concat([response[["cell_line", "drug"]],
                       pd.DataFrame({"cell_line": [cells.cell_lines[0]], "drug": ["NEWDRUG"]})], ignore_index=True)
    np.testing.assert_array_equal(loaded.predict(pairs, cells)["y_pred"], model.predict(pairs, cells)["y_pred"])


def test_saved_models_contain_no_pickles(tmp_path, elastic_net_setup):
    *_, model = elastic_net_setup
    model.save(tmp_path / "enet")
    with np.load(tmp_path / "enet" / "arrays.npz", allow_pickle=False) as arrays:
        assert all(arrays[key].dtype != object for key in arrays.files)


# --- registry -----------------------------------------------------------------------------------------

def test_resolve_registry_names_and_module_paths():
    assert models.resolve("mean_effects") is MeanEffects
    assert models.resolve("elastic_net") is ElasticNetPerDrug
    assert models.resolve("drp.models.mean_effects:MeanEffects") is MeanEffects
    assert models.resolve("drp.models.elastic_net:ElasticNetPerDrug") is ElasticNetPerDrug


def test_resolve_unknown_name():
    with pytest.raises(ValueError, match=r"unknown model class 'nope'.*elastic_net.*mean_effects"):
        models.resolve("nope")


def test_resolve_rejects_objects_that_are_not_models():
    with pytest.raises(ValueError, match=r"'os:path' is not a subclass of drp.models.DrugResponseModel"):
        models.resolve("os:path")
    with pytest.raises(ValueError, match="not a subclass"):
        models.resolve("collections:OrderedDict")


@pytest.mark.parametrize("name", ["no_such_module_xyz:Model", "drp.models.mean_effects:Nope"])
def test_resolve_unimportable(name):
    with pytest.raises(ValueError, match="cannot be imported"):
        models.resolve(name)


def test_create_passes_params_and_reports_bad_ones():
    model = models.create({"class": "mean_effects", "params": {"iterations": 3}})
    assert isinstance(model, MeanEffects) and isinstance(model, DrugResponseModel)
    assert model.params == {"iterations": 3, "shrinkage": 0.0}
    with pytest.raises(ValueError, match="bad params"):
        models.create({"class": "mean_effects", "params": {"not_a_param": 1}})


# --- TrainingData -------------------------------------------------------------------------------------

def test_training_data_refuses_cell_lines_without_training_pairs():
    cells = synthetic_cells(6)
    pairs = pd.DataFrame({"cell_line": cells.cell_lines[:4], "drug": "DRUGA", "response": 1.0})
    drugs = pd.DataFrame({"drug": ["DRUGA"], "smiles": [""]})
    with pytest.raises(ValueError, match=r"2 cell lines without training pairs.*SYNCELL04"):
        TrainingData(cells, pairs, pairs.iloc[:0], drugs, lower_is_sensitive=True)
    # validation pairs count as seen
    validation = pd.DataFrame({"cell_line": cells.cell_lines[4:], "drug": "DRUGA", "response": 2.0})
    data = TrainingData(cells, pairs, validation, drugs, lower_is_sensitive=True)
    assert len(data.train_and_validation) == 6
    TrainingData(cells.subset(cells.cell_lines[:4]), pairs, pairs.iloc[:0], drugs, lower_is_sensitive=True)


def test_elastic_net_counts_drugs_that_did_not_converge():
    """Non-convergence is reported, not silenced (SYNTHETIC data, one iteration allowed)."""
    cells = synthetic_cells(30)
    grid, _ = synthetic_additive_response(cells, n_drugs=3)
    chosen = {drug: [0.001, 0.5] for drug in grid.drug.unique()}
    model = ElasticNetPerDrug(max_iter=1, tol=1e-12, chosen=chosen)
    model.fit(_training_data(cells, grid))
    assert model.n_not_converged == 3
    converged = ElasticNetPerDrug(max_iter=5000, tol=1e-4, chosen={d: [0.1, 0.5] for d in chosen})
    converged.fit(_training_data(cells, grid))
    assert converged.n_not_converged == 0


def test_elastic_net_chooses_each_drugs_penalty_on_its_validation_cell_lines_and_refits_it():
    """Per drug, the (alpha, l1_ratio) of lowest validation error among every path point, checked against
    scikit-learn fits at each point; the refit fits exactly that ElasticNet on all pairs (SYNTHETIC data: one
    drug with one strong feature, one with a weak diffuse signal)."""
    from sklearn.linear_model import ElasticNet

    cells = synthetic_cells(80, n_features=12, seed=5)
    X = np.asarray(cells.views["expression"].X, dtype=np.float64)
    rng = np.random.default_rng(6)
    responses = {"SPARSE": 3.0 * X[:, 0] + rng.normal(scale=0.3, size=80),
                 "DIFFUSE": X @ rng.normal(scale=0.15, size=12) + rng.normal(scale=1.0, size=80)}
    pairs = pd.concat([pd.DataFrame({"cell_line": cells.cell_lines, "drug": d, "response": y}) for d, y in responses.items()],
                      ignore_index=True)
    is_train = pairs.cell_line.isin(cells.cell_lines[:60])
    train, validation = pairs[is_train].reset_index(drop=True), pairs[~is_train].reset_index(drop=True)
    drugs = pd.DataFrame({"drug": ["DIFFUSE", "SPARSE"], "smiles": ""})
    data = TrainingData(cells, train, validation, drugs, lower_is_sensitive=True)
    model = ElasticNetPerDrug(l1_ratios=[0.2, 0.9], n_alphas=6, eps=0.01, max_iter=5000, tol=1e-6)
    model.fit(data)
    for i, drug in enumerate(model.drugs):
        rows, held = train[train.drug == drug], validation[validation.drug == drug]
        X_train, X_held = X[cells.cell_lines.get_indexer(rows.cell_line)], X[cells.cell_lines.get_indexer(held.cell_line)]
        alpha_max = lambda l1: np.abs((X_train - X_train.mean(0)).T @ (rows.response - rows.response.mean())).max() / (len(rows) * l1)  # noqa: E731
        errors = {(a, l1): np.mean((ElasticNet(alpha=a, l1_ratio=l1, max_iter=5000, tol=1e-6).fit(X_train, rows.response)
                                    .predict(X_held) - held.response) ** 2)
                  for l1 in (0.2, 0.9) for a in np.geomspace(alpha_max(l1), 0.01 * alpha_max(l1), 6)}
        best_alpha, best_l1 = min(errors, key=errors.get)
        assert model.l1_ratio[i] == best_l1 and model.alpha[i] == pytest.approx(best_alpha, rel=1e-6), drug
    sparse = model.drugs.index("SPARSE")
    assert np.abs(model.coef[sparse, 1:]).max() < 0.2 * abs(model.coef[sparse, 0])

    refit = ElasticNetPerDrug(**model.refit_params())
    refit.fit(TrainingData(cells, pairs, pairs.iloc[:0], drugs, lower_is_sensitive=True))
    for i, drug in enumerate(refit.drugs):
        rows = pairs[pairs.drug == drug]
        reference = ElasticNet(alpha=model.alpha[i], l1_ratio=model.l1_ratio[i], max_iter=5000, tol=1e-6).fit(
            X[cells.cell_lines.get_indexer(rows.cell_line)], rows.response)
        np.testing.assert_allclose(refit.coef[i], reference.coef_, atol=1e-4)
