"""drp.explain: per-(cell line, drug) feature attributions of fitted models.

Models are fitted on the REAL fixture (tests/data, split by cell line as in test_drvae.py: FixtureFold) with
tiny settings (latent 8, one hidden layer of 32, 15 epochs) on the CPU; the planted-signal checks use
synthetic data, named as such (SYNTHETIC_ genes, drugs and cell lines)."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from fixture_fold import FixtureFold

from drp import explain as explain_module
from drp.explain import ATTRIBUTION_COLUMNS, SUMMARY_COLUMNS, explain, network_predictions, supports
from drp.models import CellLineData, TrainingData
from drp.models.boosting import GradientBoosting, RandomForest
from drp.models.drvae import DrVAE, MultitaskMLP
from drp.models.elastic_net import ElasticNetPerDrug
from drp.models.ensemble import SeedEnsemble
from drp.models.latent_ridge import LatentRidge
from drp.models.mean_effects import MeanEffects, NaiveMeanEffects
from drp.models.mlp import PairMLP
from drp.models.moicvae import MOICVAE
from drp.models.offset import OverMeanEffects
from drp.models.ridge import RidgePerDrug
from drp.models.stack import StackedPair

pytestmark = pytest.mark.usefixtures("torch_single_thread")

VIEWS3 = ["expression", "cnv", "mutation"]
DRVAE = dict(views=["expression"], latent_dim=8, encoder_hidden=[32], decoder_hidden=[32], rank=2, warmup_epochs=5,
             max_epochs=15, patience=1000, checkpoint_every=0, device="cpu", progress=False)
MOICVAE_SMALL = dict(latent_dim=8, hidden=[32], drug_latent_dim=8, drug_hidden=[32], warmup_epochs=5, max_epochs=15,
                     learning_rate=3e-3, patience=1000, checkpoint_every=0, device="cpu", progress=False)
MLP = dict(views=["expression"], max_features_per_view=64, hidden=[32], dropout=0.1, max_epochs=15, patience=1000,
           learning_rate=3e-3, checkpoint_every=0, device="cpu", progress=False)
EVERYTHING = 10**6  # as ``top``: every feature with a non-zero attribution


# --- fixtures: the real fixture, split by cell line; models fitted once per module ------------------------------

@pytest.fixture(scope="module")
def fold():
    return FixtureFold(["expression"], 100)


@pytest.fixture(scope="module")
def fold3():
    return FixtureFold(VIEWS3, 100, clip=None)  # moicvae recovers the raw calls: no clipping


@pytest.fixture(scope="module")
def ridge(fold):
    model = RidgePerDrug(views=["expression"], tissue=True)
    model.fit(fold.training_data())
    return model


@pytest.fixture(scope="module")
def networks(fold, fold3):
    """name -> (fitted model, the fold whose cells it takes)."""
    from drp.drug_features import morgan_fingerprints

    fitted = {"drvae": (DrVAE(**DRVAE), fold), "drvae_hierarchy": (DrVAE(**DRVAE, hierarchy=True), fold),
              "multitask_mlp": (MultitaskMLP(**DRVAE), fold), "moicvae": (MOICVAE(**MOICVAE_SMALL), fold3)}
    for model, data in fitted.values():
        model.fit(data.training_data(seed=0))
    with_fingerprints = FixtureFold(["expression"], 100)
    with_fingerprints.cells.drug_features = morgan_fingerprints(with_fingerprints.drugs)
    mlp = PairMLP(**MLP)
    mlp.fit(with_fingerprints.training_data(seed=0))
    fitted["mlp"] = (mlp, with_fingerprints)
    return fitted


def some_pairs(fold, n_cells: int = 12) -> pd.DataFrame:
    """Every drug for some test cell lines, shuffled, with an index that is not 0..n-1."""
    cell_lines = fold.test_cells[:n_cells]
    pairs = fold.test[fold.test.cell_line.isin(cell_lines)][["cell_line", "drug"]]
    return pairs.sample(frac=1.0, random_state=0).set_index(np.arange(len(pairs)) * 3 + 7)


REFERENCE = "SYNTHETIC_REFERENCE_CELL_LINE"


def reference_cell_line(cells: CellLineData) -> CellLineData:
    """A SYNTHETIC cell line at the training mean of every view (zeros) with a tissue no model has seen."""
    views = {name: ad.AnnData(X=np.zeros((1, view.n_vars), dtype=np.float32), obs=pd.DataFrame(index=[REFERENCE]),
                              var=view.var.copy()) for name, view in cells.views.items()}
    return CellLineData(views, pd.Series({REFERENCE: "SYNTHETIC_UNSEEN_TISSUE"}), cells.drug_features)


def wide(attributions: pd.DataFrame) -> pd.DataFrame:
    """(cell_line, drug) x feature table of attributions (absent features 0)."""
    return attributions.pivot_table(index=["cell_line", "drug"], columns="feature", values="attribution",
                                    aggfunc="sum", fill_value=0.0)


# --- exact: per-drug linear models --------------------------------------------------------------------------------

def test_ridge_attributions_are_coefficient_times_value_and_sum_exactly(fold, ridge):
    pairs = some_pairs(fold)
    cells = fold.test_cell_data()
    attributions, summary = explain(ridge, pairs, cells, top=5)
    assert (summary.method == "coefficient_x_value").all()
    np.testing.assert_array_equal(summary[["cell_line", "drug"]].to_numpy(), pairs.to_numpy())  # same order
    np.testing.assert_allclose(summary.prediction, ridge.predict(pairs, cells).y_pred, rtol=0, atol=1e-12)
    drug = pd.Index(ridge.drugs).get_indexer(pairs.drug)
    np.testing.assert_allclose(summary.baseline_prediction, ridge.intercept[drug], rtol=0, atol=1e-12)
    reference = ridge.predict(pairs[["drug"]].assign(cell_line=REFERENCE), reference_cell_line(cells)).y_pred
    np.testing.assert_allclose(summary.baseline_prediction, reference, rtol=0, atol=1e-9)
    np.testing.assert_allclose(summary.prediction - summary.baseline_prediction, summary.attribution_sum, atol=1e-9)
    assert (summary.completeness_error < 1e-9).all() and summary.complete.all()
    # the top features are those of largest |coef x value|, in that order, with those values
    X = ridge._matrix(cells, pairs.cell_line)  # omics then the scaled tissue columns
    names = ([f"expression:{g}" for g in cells.views["expression"].var_names]
             + [f"tissue:{t}" for t in ridge.tissue.tissues])
    contribution = X * ridge.coef.astype(np.float64)[drug]
    for i, (cell_line, drug_name) in enumerate(pairs.itertuples(index=False)):
        expected = np.argsort(-np.abs(contribution[i]), kind="stable")[:5]
        got = attributions[(attributions.cell_line == cell_line) & (attributions.drug == drug_name)]
        assert list(got["rank"]) == [1, 2, 3, 4, 5]
        assert list(got.feature) == [names[j] for j in expected]
        np.testing.assert_allclose(got.attribution, contribution[i, expected], rtol=1e-12)


def test_ridge_tissue_is_attributed_to_the_cell_lines_own_tissue(fold, ridge):
    pairs = some_pairs(fold, n_cells=6)
    cells = fold.test_cell_data()
    attributions, summary = explain(ridge, pairs, cells, top=EVERYTHING)
    tissue = attributions[attributions.feature.str.startswith("tissue:")]
    assert len(tissue) and (tissue.value == 1.0).all()  # reported as the indicator, not the scaled column
    assert (tissue.feature == "tissue:" + tissue.cell_line.map(cells.tissue)).all()
    column = len(cells.views["expression"].var_names) + pd.Index(ridge.tissue.tissues).get_indexer(
        tissue.feature.str.removeprefix("tissue:"))
    drug = pd.Index(ridge.drugs).get_indexer(tissue.drug)
    np.testing.assert_allclose(tissue.attribution, ridge.coef.astype(np.float64)[drug, column] * ridge.tissue.scale)
    # with every feature listed, the rows add up to attribution_sum
    total = attributions.groupby(["cell_line", "drug"]).attribution.sum()
    np.testing.assert_allclose(total.loc[list(zip(summary.cell_line, summary.drug))], summary.attribution_sum)


def synthetic_planted(n_cells: int = 120, n_genes: int = 20, seed: int = 0):
    """SYNTHETIC data: drug A's response is 3 x gene 7, drug B's -2 x gene 2, plus a little noise; other genes
    and the tissue carry nothing. Returns (cells, training data, held-out pairs)."""
    rng = np.random.default_rng(seed)
    cell_lines = pd.Index([f"SYNTHETIC_CELL{i:03d}" for i in range(n_cells)], name="cell_line")
    tissue = pd.Series(np.where(np.arange(n_cells) % 2, "SYNTHETIC_TISSUE_A", "SYNTHETIC_TISSUE_B"), index=cell_lines)
    X = rng.normal(size=(n_cells, n_genes)).astype(np.float32)
    view = ad.AnnData(X=X, obs=pd.DataFrame(index=cell_lines),
                      var=pd.DataFrame(index=[f"SYNTHETIC_GENE{j}" for j in range(n_genes)]))
    cells = CellLineData({"expression": view}, tissue)
    response = pd.concat([
        pd.DataFrame({"cell_line": cell_lines, "drug": "SYNTHETIC_DRUG_A",
                      "response": 1.0 + 3.0 * X[:, 7] + rng.normal(scale=0.1, size=n_cells)}),
        pd.DataFrame({"cell_line": cell_lines, "drug": "SYNTHETIC_DRUG_B",
                      "response": -1.0 - 2.0 * X[:, 2] + rng.normal(scale=0.1, size=n_cells)})], ignore_index=True)
    train_cells, validation_cells = cell_lines[:80], cell_lines[80:100]
    part = lambda cl: response[response.cell_line.isin(cl)].reset_index(drop=True)  # noqa: E731
    data = TrainingData(cells.subset(train_cells.union(validation_cells)), part(train_cells), part(validation_cells),
                        pd.DataFrame({"drug": ["SYNTHETIC_DRUG_A", "SYNTHETIC_DRUG_B"], "smiles": ""}),
                        lower_is_sensitive=True, seed=0)
    return cells, data, part(cell_lines[100:])[["cell_line", "drug"]]


PLANTED = {"SYNTHETIC_DRUG_A": "expression:SYNTHETIC_GENE7", "SYNTHETIC_DRUG_B": "expression:SYNTHETIC_GENE2"}


def assert_planted_gene_ranks_first(cells, pairs, attributions, min_share: float = 1.0):
    """Where the planted gene is clearly away from its training mean (|z| > 0.5), it is rank 1."""
    first = attributions[attributions["rank"] == 1].set_index(["cell_line", "drug"]).feature
    first = first.reindex(pd.MultiIndex.from_frame(pairs)).to_numpy()
    genes = pd.Series([PLANTED[d] for d in pairs.drug]).str.removeprefix("expression:")
    x = np.asarray(cells.views["expression"].X)
    value = x[cells.cell_lines.get_indexer(pairs.cell_line), cells.views["expression"].var_names.get_indexer(genes)]
    clear = np.abs(value) > 0.5
    assert clear.sum() >= 20
    assert np.mean(first[clear] == pairs.drug.map(PLANTED).to_numpy()[clear]) >= min_share


@pytest.mark.parametrize("cls", [RidgePerDrug, ElasticNetPerDrug])
def test_linear_planted_gene_is_rank_one(cls):
    cells, data, pairs = synthetic_planted()
    model = cls(views=["expression"], tissue=True)
    model.fit(data)
    attributions, summary = explain(model, pairs, cells, top=3)
    assert (summary.completeness_error < 1e-5).all()
    assert_planted_gene_ranks_first(cells, pairs, attributions)


# --- integrated gradients: networks -----------------------------------------------------------------------------

NETWORKS = ["drvae", "drvae_hierarchy", "multitask_mlp", "moicvae", "mlp"]


@pytest.mark.parametrize("name", NETWORKS)
def test_network_function_reproduces_predict(networks, name):
    model, data = networks[name]
    pairs = some_pairs(data)
    cells = data.test_cell_data()
    np.testing.assert_allclose(network_predictions(model, pairs, cells), model.predict(pairs, cells).y_pred,
                               rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", NETWORKS)
def test_network_attributions_are_complete(networks, name):
    model, data = networks[name]
    pairs = some_pairs(data)
    cells = data.test_cell_data()
    was_training = model.module.training
    attributions, summary = explain(model, pairs, cells, n_steps=64)
    assert model.module.training == was_training  # evaluation mode only while explaining
    assert (summary.method == "integrated_gradients").all()
    np.testing.assert_allclose(summary.prediction, model.predict(pairs, cells).y_pred)
    assert summary.complete.all(), summary.completeness_error.max()
    explained = (summary.prediction - summary.baseline_prediction).abs()
    assert (summary.completeness_error <= 0.01 * np.maximum(1.0, explained)).all()
    assert explained.median() > 0.01  # something was explained: not a trivially complete zero
    # the baseline is the model's prediction for a cell line at the training mean (all zeros) of an unknown tissue
    reference = reference_cell_line(cells)
    expected = model.predict(summary[["drug"]].assign(cell_line=REFERENCE), reference).y_pred
    np.testing.assert_allclose(summary.baseline_prediction, expected, rtol=0, atol=1e-4)
    features = attributions.feature.str.partition(":")[0]
    assert set(features) <= set(model.settings.views) | {"tissue"}


def test_summary_and_attribution_columns(networks, fold):
    model, _ = networks["drvae"]
    pairs = some_pairs(fold)
    attributions, summary = explain(model, pairs, fold.test_cell_data(), top=4)
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert list(attributions.columns) == ATTRIBUTION_COLUMNS
    assert len(summary) == len(pairs) and summary.index.equals(pd.RangeIndex(len(pairs)))
    assert summary.method.dtype == object and summary.complete.dtype == bool
    for column in SUMMARY_COLUMNS[3:7]:
        assert summary[column].dtype == np.float64, column
    assert attributions["rank"].dtype == np.int64
    assert attributions.value.dtype == np.float64 and attributions.attribution.dtype == np.float64
    for _, rows in attributions.groupby(["cell_line", "drug"]):
        assert list(rows["rank"]) == [1, 2, 3, 4]
        assert (np.diff(rows.attribution.abs().to_numpy()) <= 0).all()
    # the values are the z-scored inputs
    cells = fold.test_cell_data()
    expression = cells.views["expression"]
    genes = attributions.feature.str.removeprefix("expression:")
    x = np.asarray(expression.X)[cells.cell_lines.get_indexer(attributions.cell_line),
                                 expression.var_names.get_indexer(genes)]
    np.testing.assert_allclose(attributions.value, x)


def test_moicvae_tissue_and_missing_views(networks):
    model, fold3 = networks["moicvae"]
    cells = fold3.test_cell_data()
    views = {name: view.copy() for name, view in cells.views.items()}
    cnv = np.array(views["cnv"].X, dtype=np.float32)
    cnv[:3] = np.nan  # the cnv view missing for the first three test cell lines
    views["cnv"].X = cnv
    cells = CellLineData(views, cells.tissue.copy())
    pairs = some_pairs(fold3)
    attributions, summary = explain(model, pairs, cells, top=EVERYTHING)
    np.testing.assert_allclose(network_predictions(model, pairs, cells), model.predict(pairs, cells).y_pred, atol=1e-4)
    assert summary.complete.all(), summary.completeness_error.max()
    missing = attributions.cell_line.isin(cells.cell_lines[:3])
    assert missing.any() and not attributions[missing].feature.str.startswith("cnv:").any()
    assert attributions[~missing].feature.str.startswith("cnv:").any()
    # the tissue one-hot's attributions land on the cell line's own tissue, value 1
    tissue = attributions[attributions.feature.str.startswith("tissue:")]
    assert len(tissue) and (tissue.feature == "tissue:" + tissue.cell_line.map(cells.tissue)).all()
    assert (tissue.value == 1.0).all()


def test_network_planted_gene_is_rank_one():
    cells, data, pairs = synthetic_planted()
    model = MultitaskMLP(views=["expression"], latent_dim=4, encoder_hidden=[16], decoder_hidden=[16], rank=1,
                         max_epochs=150, learning_rate=1e-2, batch_size=32, patience=1000, checkpoint_every=0,
                         device="cpu", progress=False)
    model.fit(data)
    attributions, summary = explain(model, pairs, cells, top=3)
    assert summary.complete.all()
    assert_planted_gene_ranks_first(cells, pairs, attributions, min_share=0.9)


# --- wrappers ------------------------------------------------------------------------------------------------------

def test_stack_combines_its_members(fold, ridge, networks):
    drvae = networks["drvae"][0]
    stack = StackedPair(members={"ridge": {"class": "ridge"}, "drvae": {"class": "drvae"}})
    stack.fitted = {"ridge": ridge, "drvae": drvae}
    stack.weight = pd.Series(np.resize([0.0, 0.25, 0.5, 0.75, 1.0], len(ridge.drugs)), index=ridge.drugs)
    pairs, cells = some_pairs(fold), fold.test_cell_data()
    assert supports(stack)
    attributions, summary = explain(stack, pairs, cells, top=EVERYTHING)
    np.testing.assert_allclose(summary.prediction, stack.predict(pairs, cells).y_pred)
    assert summary.complete.all() and (summary.method == "integrated_gradients").all()
    parts = {name: explain(member, pairs, cells, top=EVERYTHING) for name, member in stack.fitted.items()}
    w = stack.weight.reindex(summary.drug).to_numpy()
    np.testing.assert_allclose(summary.baseline_prediction, w * parts["ridge"][1].baseline_prediction
                               + (1 - w) * parts["drvae"][1].baseline_prediction)
    combined = wide(attributions)
    a, b = (wide(parts[name][0]).reindex(index=combined.index, columns=combined.columns, fill_value=0.0)
            for name in ("ridge", "drvae"))
    w = stack.weight.reindex(combined.index.get_level_values("drug")).to_numpy()[:, None]
    np.testing.assert_allclose(combined.to_numpy(), w * a.to_numpy() + (1 - w) * b.to_numpy(), atol=1e-12)
    assert combined.columns.str.startswith("tissue:").any()  # the ridge's tissue columns came along


def test_ensemble_is_the_members_mean(fold, networks):
    # a seed ensemble holds fits of one class; any two fitted members show the arithmetic
    ensemble = SeedEnsemble(model={"class": "drvae"}, seeds=2)
    ensemble.members = [networks["drvae"][0], networks["multitask_mlp"][0]]
    pairs, cells = some_pairs(fold), fold.test_cell_data()
    attributions, summary = explain(ensemble, pairs, cells, top=EVERYTHING)
    np.testing.assert_allclose(summary.prediction, ensemble.predict(pairs, cells).y_pred)
    assert summary.complete.all()
    parts = [explain(member, pairs, cells, top=EVERYTHING) for member in ensemble.members]
    np.testing.assert_allclose(summary.baseline_prediction,
                               np.mean([p[1].baseline_prediction for p in parts], axis=0))
    combined = wide(attributions)
    members = [wide(p[0]).reindex(index=combined.index, columns=combined.columns, fill_value=0.0).to_numpy()
               for p in parts]
    np.testing.assert_allclose(combined.to_numpy(), np.mean(members, axis=0), atol=1e-12)


@pytest.mark.parametrize("encoder", ["drvae", "moicvae"])
def test_latent_ridge_is_complete(networks, encoder):
    model, data = networks[encoder]
    training = data.training_data(seed=0)
    latent_ridge = LatentRidge(encoder={"class": encoder}, views=["expression"], shares=[0.0, 1.0])
    latent_ridge.encoder = model  # as fit would leave it, without training the encoder again
    z = model.encode(training.cells)
    latent_ridge.latent_mean, latent_ridge.latent_std = z.mean(axis=0), z.std(axis=0) + 1e-8
    latent_ridge.gene_variance = float(np.var(training.cells.matrix(["expression"], training.cells.cell_lines),
                                              axis=0).sum())
    latent_ridge.ridges = {share: latent_ridge._ridge(share, training, training.train) for share in (0.0, 1.0)}
    drugs = sorted(training.train.drug.unique())
    latent_ridge.share = pd.Series(np.resize([0.0, 1.0], len(drugs)), index=drugs)
    assert supports(latent_ridge)
    pairs, cells = some_pairs(data), data.test_cell_data()
    attributions, summary = explain(latent_ridge, pairs, cells, top=EVERYTHING)
    np.testing.assert_allclose(summary.prediction, latent_ridge.predict(pairs, cells).y_pred)
    assert summary.complete.all(), summary.completeness_error.max()
    with_latent = summary.drug.map(latent_ridge.share).to_numpy() > 0
    assert (summary.method[~with_latent] == "coefficient_x_value").all()
    assert (summary.completeness_error[~with_latent] < 1e-9).all()
    assert (summary.method[with_latent] == "integrated_gradients").all()
    assert not attributions.feature.str.startswith("latent:").any()  # the latent is explained by the encoder's inputs
    # the latent's share is not zero: the encoder's inputs explain more than the genes alone
    genes_only = explain(latent_ridge.ridges[1.0], pairs, latent_ridge._cells(cells, 1.0), top=EVERYTHING)[1]
    assert not np.allclose(summary.attribution_sum[with_latent], genes_only.attribution_sum[with_latent])


def test_over_mean_effects_adds_the_tissue_effect(fold):
    model = OverMeanEffects(model={"class": "ridge", "params": {"views": ["expression"], "tissue": True}})
    model.fit(fold.training_data())
    pairs, cells = some_pairs(fold), fold.test_cell_data()
    attributions, summary = explain(model, pairs, cells, top=EVERYTHING)
    inner_attributions, inner = explain(model.inner, pairs, cells, top=EVERYTHING)
    np.testing.assert_allclose(summary.prediction, model.predict(pairs, cells).y_pred)
    assert (summary.completeness_error < 1e-9).all() and (summary.method == "coefficient_x_value").all()
    effects = model.offset.effects
    np.testing.assert_allclose(summary.baseline_prediction, inner.baseline_prediction + model.offset.mean
                               + effects["drug"].reindex(summary.drug).fillna(0.0).to_numpy())
    tissue = (wide(attributions) - wide(inner_attributions)).filter(like="tissue:").sum(axis=1)
    expected = effects["tissue"].reindex(tissue.index.get_level_values("cell_line").map(cells.tissue)).fillna(0.0)
    np.testing.assert_allclose(tissue.to_numpy(), expected.to_numpy(), atol=1e-12)


# --- no method: no attributions ---------------------------------------------------------------------------------

def unsupported_models():
    stack = StackedPair(members={"ridge": {"class": "ridge"}, "mean": {"class": "mean_effects"}})
    stack.fitted = {"ridge": RidgePerDrug(), "mean": MeanEffects()}
    return {"MeanEffects": MeanEffects(), "NaiveMeanEffects": NaiveMeanEffects(),
            "GradientBoosting": GradientBoosting(), "RandomForest": RandomForest(), "StackedPair": stack}


@pytest.mark.parametrize("name", list(unsupported_models()))
def test_unsupported_models_get_no_attributions_and_one_warning(fold, name, caplog):
    model = unsupported_models()[name]
    pairs = some_pairs(fold, n_cells=3)
    assert not supports(model)
    with caplog.at_level(logging.WARNING, logger=explain_module.__name__):
        attributions, summary = explain(model, pairs, fold.test_cell_data())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == explain_module.__name__]
    assert len(warnings) == 1 and name in warnings[0].getMessage()
    if name == "StackedPair":
        assert "MeanEffects" in warnings[0].getMessage()  # the member without a method is named too
    assert attributions.empty and list(attributions.columns) == ATTRIBUTION_COLUMNS
    assert list(summary.columns) == SUMMARY_COLUMNS and len(summary) == len(pairs)
    assert (summary.method == "none").all() and not summary.complete.any()
    assert summary[["prediction", "baseline_prediction", "attribution_sum", "completeness_error"]].isna().all().all()


def test_supported_models(ridge, networks):
    assert supports(ridge)
    assert all(supports(model) for model, _ in networks.values())
