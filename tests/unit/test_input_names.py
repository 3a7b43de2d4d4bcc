"""drp.input_names: the composite rule-input names, built and parsed in one place; names that would make
them ambiguous are refused by the config schema."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from drp import input_names
from drp.config import ConfigError, validate_config
from drp.stages.evaluate import fold_tables

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture
def config():
    return copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))


def test_models_whose_names_share_a_prefix_get_only_their_own_predictions(tmp_path):
    """The old parser split <model>__fold<k> on the first "__": with models mlp and mlp__v2 the first took both
    models' predictions and the second none. Here names are built and parsed by one module, exactly."""
    paths = {}
    for model in ("mlp", "mlp_v2", "mlp__v2"):
        for fold in (0, 1):
            path = tmp_path / f"{model}_{fold}.parquet"
            pd.DataFrame({"cell_line": [f"{model}-{fold}"], "y_pred": [float(fold)]}).to_parquet(path)
            paths[input_names.model_fold_output(fold, model, "predictions")] = path
    tables = fold_tables(paths, "predictions", ["mlp", "mlp_v2", "mlp__v2"])
    for model, table in tables.items():
        assert list(table.cell_line) == [f"{model}-0", f"{model}-1"]  # its own rows, in fold order, and no other's


def test_every_name_round_trips():
    assert input_names.views({input_names.features("cnv"): "a", "meta": "m"}) == {"cnv": "a"}
    assert input_names.parse_in_fold(input_names.in_fold(12, "features_expression")) == (12, "features_expression")
    assert input_names.parse_in_fold("features_expression") is None
    key = input_names.model_fold_output(3, "drvae", "model")
    assert input_names.model_outputs({key: "p", "meta": "m"}, "model") == {"drvae": {3: "p"}}
    assert input_names.model_outputs({key: "p"}, "predictions") == {}
    assert input_names.parse_study_pair(input_names.study_pair("gdsc2", "ccle")) == ("gdsc2", "ccle")
    targets = {input_names.of_target("gdsc1", "response"): "r", input_names.of_target("ccle", "cnv"): "c"}
    assert input_names.target_inputs(targets) == {"gdsc1": {"response": "r"}, "ccle": {"cnv": "c"}}
    assert input_names.split_omics({"wheel": "w", input_names.omics("models"): "m"}) == ({"wheel": "w"}, {"models": "m"})


def test_of_fold_keeps_shared_inputs_and_strips_the_fold():
    paths = {"splits": "s", input_names.in_fold(0, "model"): "m0", input_names.in_fold(1, "model"): "m1"}
    assert input_names.of_fold(paths, 1) == {"splits": "s", "model": "m1"}


def test_study_pair_of_names_with_a_double_underscore_is_refused():
    with pytest.raises(ValueError, match="not a cross-study pair"):
        input_names.parse_study_pair("a__b__c")


@pytest.mark.parametrize("name", ["mlp__v2", "mlp_", "_mlp", "2mlp"])
def test_config_refuses_model_names_that_would_break_composite_names(config, name):
    config["models"][name] = copy.deepcopy(config["models"]["mlp"])
    config["run"]["models"].append(name)
    with pytest.raises(ConfigError) as error:
        validate_config(config, SCHEMA)
    assert f"models: {name!r}" in str(error.value) or f"'{name}'" in str(error.value)
    assert "double underscore" in str(error.value)


def test_config_refuses_data_set_and_view_names_with_a_double_underscore(config):
    config["datasets"]["gdsc__2"] = config["datasets"].pop("gdsc2")
    config["datasets"]["gdsc1"]["views"] = ["expression", "copy__number"]
    message = str(pytest.raises(ConfigError, validate_config, config, SCHEMA).value)
    assert "'gdsc__2'" in message and "'copy__number'" in message


def test_wildcard_patterns_accept_what_the_schema_accepts():
    schema = yaml.safe_load(SCHEMA.read_text())["$defs"]
    for name in ("gdsc2", "mlp_v2", "A1_b2_C3", "mlp__v2", "x_", "1x"):
        assert bool(re.fullmatch(input_names.NAME_PATTERN, name)) == bool(re.match(schema["name"]["pattern"], name))
    for name in ("cnv", "rna_seq", "rna__seq", "Cnv"):
        assert bool(re.fullmatch(input_names.VIEW_PATTERN, name)) == bool(re.match(schema["view_name"]["pattern"], name))
