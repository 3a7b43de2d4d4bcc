"""Auxiliary responses (models.<name>.auxiliary_responses, drp.auxiliary) in the workflow: a model that trained
on data set B's responses of its training cell lines is never predicted or evaluated cross-study on B, never
runs under LPO, and its training jobs get the auxiliary response tables as inputs.

What the training stage hands the model (no test or validation cell line, prefixed drugs, no predictions of
them) is proven on the real fixture in test_split_invariants.py, section 4. The configs here are small
dictionaries (helpers) and the shipped config with an overlay (dry run); no data.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from drp import auxiliary

REPO = Path(__file__).resolve().parents[2]


def _config(**models) -> dict:
    return {"models": {"ridge": {"class": "ridge"}, **models}}


def test_cross_study_models_leave_out_the_auxiliary_data_sets():
    config = _config(both={"class": "drvae", "auxiliary_responses": ["gdsc1", "ccle"]},
                     one={"class": "multitask_mlp", "auxiliary_responses": ["gdsc1"]})
    models = ["ridge", "both", "one"]
    assert auxiliary.cross_study_models(config, models, "gdsc1") == ["ridge"]
    assert auxiliary.cross_study_models(config, models, "ccle") == ["ridge", "one"]
    assert auxiliary.cross_study_models(config, models, "ctrp") == models
    lines = auxiliary.skipped_cross_study(config, models, [("gdsc2", "gdsc1"), ("gdsc2", "ccle")])
    assert len(lines) == 3
    assert lines[0].startswith("cross-study gdsc2 -> gdsc1: model 'both' left out")
    assert "models.both.auxiliary_responses" in lines[0]


def test_models_with_auxiliary_responses_do_not_run_under_lpo():
    spec = {"class": "drvae", "auxiliary_responses": ["gdsc1"]}
    modes = ("LPO", "LCO", "LTO", "LDO")
    assert [mode for mode in modes if auxiliary.runs_in_mode(spec, mode)] == ["LCO", "LTO", "LDO"]
    assert auxiliary.runs_in_mode({"class": "drvae"}, "LPO")


def test_input_names_round_trip():
    paths = {auxiliary.input_name("gdsc1"): "a.parquet", "response": "r.parquet", "features_expression": "x"}
    assert auxiliary.input_paths(paths) == {"gdsc1": "a.parquet"}


def test_synthetic_auxiliary_drug_named_like_a_primary_drug_is_refused():
    """SYNTHETIC edge case: a primary drug literally named 'gdsc1:X' would merge with the auxiliary head."""
    response = pd.DataFrame({"cell_line": ["c1"], "drug": ["X"], "response": [1.0]})
    with pytest.raises(ValueError, match="drugs of the primary data set too"):
        auxiliary.auxiliary_pairs({"gdsc1": response}, {"c1"}, {"gdsc1:X"})


def test_synthetic_non_finite_auxiliary_response_is_refused():
    response = pd.DataFrame({"cell_line": ["c1", "c2"], "drug": ["X", "X"], "response": [1.0, float("nan")]})
    with pytest.raises(ValueError, match=r"auxiliary responses of gdsc1: response nan of \(c2, X\)"):
        auxiliary.auxiliary_pairs({"gdsc1": response}, {"c1", "c2"}, set())


def test_a_missing_auxiliary_input_is_an_error_naming_it():
    """A caller (or rule) that forgets the response table gets the input's name, not a silent no-op."""
    pairs = pd.DataFrame({"cell_line": ["c1"], "drug": ["X"], "response": [1.0], "role": ["train"]})
    with pytest.raises(ValueError, match="auxiliary__gdsc1"):
        auxiliary.fold_auxiliary({}, {"auxiliary_responses": ["gdsc1"]}, pairs, seed=0)


# --- the DAG: dry run of the shipped config with an overlay -------------------------------------------------

OVERLAY = {
    "run": {"datasets": ["gdsc2"], "split_modes": ["LCO", "LPO"],
            "models": ["naive_mean_effects", "mean_effects", "ridge", "drvae_auxiliary", "multitask_gdsc1"]},
    "models": {"multitask_gdsc1": {"class": "multitask_mlp", "auxiliary_responses": ["gdsc1"],
                                   "params": {"views": ["expression"], "max_epochs": 1}}},
    "evaluation": {"baselines": ["naive_mean_effects", "mean_effects", "ridge"]},
}


def dry_run_jobs(stdout: str) -> list[tuple[str, list[str], list[str]]]:
    """(rule, inputs, outputs) of every job a dry run lists."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", stdout):
        match = re.match(r"(?:local)?rule (\w+):", block)
        if match:
            fields = dict(re.findall(r"^ {4}(input|output): (.*)$", block, re.M))
            jobs.append((match.group(1), fields.get("input", "").split(", "), fields.get("output", "").split(", ")))
    return jobs


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("auxiliary_dag")
    overlay = root / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(OVERLAY))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(root / "run"), "--configfile", str(REPO / "config" / "config.yaml"),
                             str(overlay), "--dry-run", "--cores", "1", "--forceall"],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr, dry_run_jobs(result.stdout)


def test_dag_never_evaluates_a_model_cross_study_on_its_auxiliary_data_set(dry_run):
    log, jobs = dry_run
    cross = "results/gdsc2/LCO/cross_study"
    outputs = {path for _, _, paths in jobs for path in paths}
    evaluated = {out[0].split("/")[4]: inputs for rule, inputs, out in jobs if rule == "evaluate_cross_study"}
    assert set(evaluated) == {"gdsc1", "ccle"} and any(rule == "cross_study_table" for rule, _, _ in jobs)
    # drvae_auxiliary (gdsc1 and ccle): neither predicted nor evaluated on either target
    for target in ("gdsc1", "ccle"):
        assert f"{cross}/{target}/drvae_auxiliary.parquet" not in outputs
        assert f"{cross}/{target}/drvae_auxiliary.parquet" not in evaluated[target]
        assert f"{cross}/{target}/ridge.parquet" in evaluated[target]
        assert (f"cross-study gdsc2 -> {target}: model 'drvae_auxiliary' left out, since it trained on {target}'s "
                "responses") in log
    # multitask_gdsc1 (gdsc1 only): evaluated on ccle, by a prediction job that does not predict gdsc1
    assert f"{cross}/gdsc1/multitask_gdsc1.parquet" not in outputs | set(evaluated["gdsc1"])
    assert f"{cross}/ccle/multitask_gdsc1.parquet" in evaluated["ccle"]
    predict = [(rule, inputs, out) for rule, inputs, out in jobs if out == [f"{cross}/ccle/multitask_gdsc1.parquet"]]
    assert len(predict) == 1 and predict[0][0] == "predict_cross_study_gdsc2_without_gdsc1"
    assert not any("results/gdsc1/" in path for path in predict[0][1])  # nor reads the target gdsc1
    assert "cross-study gdsc2 -> gdsc1: model 'multitask_gdsc1' left out" in log
    assert "cross-study gdsc2 -> ccle: model 'multitask_gdsc1'" not in log
    # the other models keep the rule of old, predicting both targets
    ridge = [rule for rule, _, out in jobs if f"{cross}/gdsc1/ridge.parquet" in out]
    assert ridge == ["predict_cross_study_gdsc2"]


def test_dag_feeds_auxiliary_response_tables_to_training_and_skips_lpo(dry_run):
    _, jobs = dry_run
    train = {out[0]: inputs for rule, inputs, out in jobs if rule.startswith("train")}
    for fold in range(5):
        inputs = train[f"results/gdsc2/LCO/fold{fold}/drvae_auxiliary/model"]
        assert {"results/gdsc1/data/response.parquet", "results/ccle/data/response.parquet"} <= set(inputs)
        inputs = train[f"results/gdsc2/LCO/fold{fold}/multitask_gdsc1/model"]
        assert "results/gdsc1/data/response.parquet" in inputs and "results/ccle/data/response.parquet" not in inputs
        assert not any(p.startswith(("results/gdsc1/", "results/ccle/"))
                       for p in train[f"results/gdsc2/LCO/fold{fold}/ridge/model"])
    # LPO: the other models train, those with auxiliary responses do not
    assert "results/gdsc2/LPO/fold0/ridge/model" in train
    assert not any(path.startswith("results/gdsc2/LPO/") and ("drvae_auxiliary" in path or "multitask_gdsc1" in path)
                   for path in train)
    # the auxiliary data sets are built before (their build jobs are in the DAG)
    outputs = {path for _, _, paths in jobs for path in paths}
    assert {"results/gdsc1/data/response.parquet", "results/ccle/data/response.parquet"} <= outputs
