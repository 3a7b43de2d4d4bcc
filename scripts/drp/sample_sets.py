"""Sample sets and final models in the config (``samples``, ``final``): checks and the names the workflow derives.

Imported when the workflow is built (every Snakemake start), so plain Python only.

A sample set either names a ``folder`` of omics files of new samples, or a ``holdout`` of real cell lines of a
data set (a held-out check). A held-out check adds a data set to the run's config, ``<dataset>_without_<set>``:
the source data set less the held-out cell lines, written by the rule build_holdout_<set>. It has its own
splits, cross-validation (of the set's models and the evaluation's baselines) and final models, so neither the
final model nor its calibration ever sees a held-out cell line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

HOLDOUT_KEY = "holdout_of"  # in a derived data set's config: the sample set that holds its cell lines out


def holdout_dataset_name(dataset: str, sample_set: str) -> str:
    return f"{dataset}_without_{sample_set}"


def dataset_of(config: Mapping, sample_set: str) -> str:
    """The data set whose final models predict the sample set (for a held-out check, the derived one)."""
    spec = config["samples"][sample_set]
    if "holdout" in spec:
        return holdout_dataset_name(spec["holdout"]["dataset"], sample_set)
    return spec["dataset"]


def models_of(config: Mapping, sample_set: str) -> list[str]:
    return list(config["samples"][sample_set].get("models") or config["final"]["models"])


def add_holdout_datasets(config: dict) -> None:
    """Add each held-out check's derived data set to ``config["datasets"]`` (after the config is validated)."""
    for name, spec in (config.get("samples") or {}).items():
        if "holdout" in spec:
            source = spec["holdout"]["dataset"]
            config["datasets"][holdout_dataset_name(source, name)] = {**config["datasets"][source], HOLDOUT_KEY: name}


def is_holdout_dataset(config: Mapping, dataset: str) -> bool:
    return HOLDOUT_KEY in config["datasets"].get(dataset, {})


def dataset_models(config: Mapping, dataset: str) -> list[str]:
    """The models cross-validated on a data set: the run's models and those of the folder sample sets it
    predicts (their final models' cards and calibration need the cross-validation), or, for a held-out check's
    data set, its sample set's models and the evaluation's baselines."""
    if not is_holdout_dataset(config, dataset):
        folder_sets = [name for name, spec in (config.get("samples") or {}).items()
                       if "holdout" not in spec and spec.get("dataset") == dataset]
        return list(dict.fromkeys([*config["run"]["models"],
                                   *(model for name in folder_sets for model in models_of(config, name))]))
    evaluation = config["evaluation"]
    wanted = [*models_of(config, config["datasets"][dataset][HOLDOUT_KEY]), evaluation["baseline"],
              *([evaluation["naive_baseline"]] if evaluation.get("naive_baseline") else []),
              *evaluation.get("baselines", [])]
    return list(dict.fromkeys(wanted))


def sample_views(config: Mapping, sample_set: str) -> list[str]:
    """The views a sample set must have: those of its data set."""
    return list(config["datasets"][dataset_of(config, sample_set)]["views"])


def config_problems(config: Mapping) -> list[str]:
    """Cross-references of ``samples`` and ``final`` that the schema cannot check."""
    problems = []
    models, datasets = config["models"], config["datasets"]
    if config.get("samples") and config["splits"].get("validation_fraction") is None:
        problems.append("samples: final models choose their epochs and per-drug settings on validation cell lines; "
                        "set splits.validation_fraction (e.g. 0.2)")
    for name, spec in (config.get("samples") or {}).items():
        key = f"samples.{name}"
        if name in datasets:
            problems.append(f"{key}: a sample set may not share its name with a data set")
        for model in models_of(config, name):
            if model not in models:
                where = f"{key}.models" if spec.get("models") else f"final.models (the models of {key})"
                problems.append(f"{where}: {model!r} is not defined under models")
            spec_of = models.get(model, {})
            if spec_of.get("auxiliary_responses") or spec_of.get("unlabelled_cell_lines"):
                problems.append(f"{key}.models: {model!r} trains on other data sets' responses or on unlabelled cell "
                                "lines; final models of such models are not supported")
            if spec_of.get("permute_labels"):
                problems.append(f"{key}.models: {model!r} is a label-permutation control; it predicts nothing")
        if "holdout" in spec:
            source = spec["holdout"]["dataset"]
            if source not in datasets:
                problems.append(f"{key}.holdout.dataset: {source!r} is not defined under datasets")
            if ("fraction" in spec["holdout"]) == ("tissue" in spec["holdout"]):
                problems.append(f"{key}.holdout: expected exactly one of fraction (a share of every tissue's cell "
                                "lines) or tissue (every cell line of one tissue)")
            if "folder" in spec or "dataset" in spec:
                problems.append(f"{key}: a held-out check (holdout) takes its samples and data set from holdout; "
                                "remove folder and dataset")
            continue
        if "folder" not in spec or "dataset" not in spec:
            problems.append(f"{key}: expected folder (the samples' omics files) and dataset (whose final models "
                            "predict them), or holdout (a held-out check)")
            continue
        if spec["dataset"] not in datasets:
            problems.append(f"{key}.dataset: {spec['dataset']!r} is not defined under datasets")
        elif not Path(spec["folder"]).is_dir():
            problems.append(f"{key}.folder: {spec['folder']!r} is not a folder (a relative path is read from the "
                            f"working directory, {Path.cwd()})")
        views = datasets.get(spec["dataset"], {}).get("views", [])
        for file_key in spec.get("files") or {}:
            if file_key not in views and file_key not in ("annotations", "samples", "cell_lines"):
                problems.append(f"{key}.files.{file_key}: {file_key!r} is neither a view of data set "
                                f"{spec['dataset']!r} ({views}) nor annotations")
    return problems
