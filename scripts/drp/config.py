"""Config validation with errors that name the key, the value and what was expected."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from . import auxiliary, sample_sets, unlabelled
from .models import catalog


class ConfigError(ValueError):
    pass


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, or the failing subschema's own ``errorMessage`` where it has one."""
    if isinstance(error.schema, dict) and "errorMessage" in error.schema:
        message = error.schema["errorMessage"]
        return f"{error.instance!r}: {message}" if isinstance(error.instance, str) else message
    return error.message


def _set_defaults(validator_class):
    """Fill in schema defaults while validating (as snakemake.utils.validate does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _evaluation_problems(config: dict) -> list[str]:
    """Baselines among the run's models, cross-study data sets defined, and the equal tuning budget."""
    from .models.selection import grid_candidates

    evaluation, run_models = config["evaluation"], config["run"]["models"]
    problems = [f"evaluation.baselines: {name!r} must be one of run.models ({run_models})"
                for name in evaluation["baselines"] if name not in run_models]
    naive = evaluation["naive_baseline"]
    if naive is not None and naive not in run_models:
        problems.append(f"evaluation.naive_baseline: {naive!r} must be one of run.models ({run_models}), since "
                        "normalized_pearson subtracts its predictions; or null to skip that metric")
    for role in ("train", "test"):
        problems += [f"evaluation.cross_study.{role}: {name!r} is not defined under datasets"
                     for name in (evaluation.get("cross_study") or {}).get(role, []) if name not in config["datasets"]]
    budget = evaluation["tuning_budget"]
    if budget is not None:
        for name in run_models:
            spec = config["models"].get(name, {})
            n = len(grid_candidates(spec))
            if not spec.get("permute_labels") and n > budget:
                problems.append(f"models.{name}.grid: {n} candidate(s), but evaluation.tuning_budget is {budget}: "
                                "no model gets more trials on the validation fold than the budget")
    return problems


def _model_view_problems(config: dict) -> list[str]:
    """Every view a run model names (``params.views``, or in its grid) is a view of every data set it trains
    on or, in a cross-study, predicts: otherwise training fails with a bare KeyError after the build, the
    splits and the features have run."""
    from .models.selection import grid_candidates

    cross_study = config["evaluation"].get("cross_study") or {}
    datasets = dict.fromkeys([*config["run"]["datasets"], *cross_study.get("test", [])])
    problems = []
    for name in config["run"]["models"]:
        spec = config["models"].get(name)
        if spec is None:
            continue
        named = {view for params in grid_candidates(spec) for view in (params.get("views") or [])}
        for dataset in datasets:
            available = (config["datasets"].get(dataset) or {}).get("views")
            missing = sorted(named - set(available or []))
            if available is not None and missing:
                problems.append(f"models.{name}.params.views: {missing} not among the views of data set {dataset!r} "
                                f"({available})")
    return problems


def _omics_source_problems(name: str, dataset: dict, sources: dict) -> list[str]:
    """A data set's omics_source must be a defined depmap source (the only omics-only source type), and a
    depmap source cannot be a data set's source, since it has no responses."""
    problems, source, omics = [], dataset.get("source"), dataset.get("omics_source")
    if source in sources and sources[source]["type"] == "depmap":
        problems.append(f"datasets.{name}.source: {source!r} is a depmap source, which has no drug "
                        "responses; name it as omics_source and a response source (gdsc, drevalpy, ctrpv2, prism) as source")
    if omics is not None and omics not in sources:
        problems.append(f"datasets.{name}.omics_source: {omics!r} is not defined under sources")
    elif omics is not None and sources[omics]["type"] != "depmap":
        problems.append(f"datasets.{name}.omics_source: {omics!r} has type {sources[omics]['type']!r}; "
                        "an omics source must have type depmap")
    return problems


def _folder_dataset_problems(name: str, dataset: dict) -> list[str]:
    """A plug-in data set (drp.sources.folder): the folder exists, file keys and view names fit the format."""
    tables = ("response", "cell_lines", "drugs")
    problems = []
    if not Path(dataset["folder"]).is_dir():
        problems.append(f"datasets.{name}.folder: {dataset['folder']!r} is not a folder (a relative path is read "
                        f"from the working directory, {Path.cwd()})")
    problems += [f"datasets.{name}.views: {view!r} is the name of a table of the folder format; expected a view "
                 f"name other than {', '.join(tables)}" for view in dataset["views"] if view in tables]
    problems += [f"datasets.{name}.files.{key}: {key!r} is neither a view of the data set ({dataset['views']}) nor "
                 f"one of {', '.join(tables)}" for key in dataset.get("files", {})
                 if key not in dataset["views"] and key not in tables]
    return problems


def validate_config(config: dict, schema_path: str | Path) -> dict:
    """Check ``config`` against the JSON schema and the cross-references between its sections."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _set_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = dict.fromkeys(f"  - {_key_path(e)}: {_message(e)}" for e in errors)  # unique, in order
        raise ConfigError("invalid config:\n" + "\n".join(lines))

    problems = []
    for name in config["run"]["datasets"]:
        if name not in config["datasets"]:
            problems.append(f"run.datasets: {name!r} is not defined under datasets (defined: {sorted(config['datasets'])})")
    for name in config["run"]["models"]:
        if name not in config["models"]:
            problems.append(f"run.models: {name!r} is not defined under models (defined: {sorted(config['models'])})")
    for name, dataset in config["datasets"].items():
        if "folder" in dataset:
            problems += _folder_dataset_problems(name, dataset)
            continue
        if dataset["source"] not in config["sources"]:
            problems.append(f"datasets.{name}.source: {dataset['source']!r} is not defined under sources")
        problems += _omics_source_problems(name, dataset, config["sources"])
    problems += _evaluation_problems(config)
    problems += _model_view_problems(config)
    problems += auxiliary.config_problems(config)  # models.<name>.auxiliary_responses and its leakage rules
    problems += unlabelled.config_problems(config)  # models.<name>.unlabelled_cell_lines
    problems += sample_sets.config_problems(config)  # samples.<name> and final
    problems += [f"biomarkers.models: {model!r} is not one of run.models; its biomarkers come from its cell-blind fold "
                 f"models (run.models: {config['run']['models']})"
                 for model in config["biomarkers"]["models"] if model not in config["run"]["models"]]
    problems += _synthetic_problems(config)
    baseline = config["evaluation"]["baseline"]
    if baseline not in config["run"]["models"]:
        problems.append(f"evaluation.baseline: {baseline!r} must be one of run.models, since every model is "
                        f"compared with it (run.models: {config['run']['models']})")
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))
    return config


def _synthetic_problems(config: dict) -> list[str]:
    """synthetic: generators' models must be defined and have a decoder; the utility model must be defined."""
    section, models = config["synthetic"], config["models"]
    problems = []
    for name, spec in section["generators"].items():
        model = spec.get("model")
        if model is None:
            for key in ("latent", "response_noise"):
                if key in spec and spec[key] != {"latent": "aggregate", "response_noise": True}[key]:
                    problems.append(f"synthetic.generators.{name}.{key}: only a model-based generator has it "
                                    f"(this one is kind {spec['kind']!r})")
        elif model not in models:
            problems.append(f"synthetic.generators.{name}.model: {model!r} is not defined under models")
        elif not catalog.traits(models[model]).generative or (models[model].get("params") or {}).get("generative") is False:
            problems.append(f"synthetic.generators.{name}.model: {model!r} (class {models[model]['class']!r}) has no "
                            "decoder to generate cell lines; use a generative model (drvae, moicvae)")
    if section["generators"] and section["utility_model"] not in models:
        problems.append(f"synthetic.utility_model: {section['utility_model']!r} is not defined under models")
    return problems
