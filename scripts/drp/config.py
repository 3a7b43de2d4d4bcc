"""Config validation with errors that name the key, the value and what was expected."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    pass


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


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


def validate_config(config: dict, schema_path: str | Path) -> dict:
    """Check ``config`` against the JSON schema and the cross-references between its sections."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _set_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"  - {_key_path(e)}: {e.message}" for e in errors]
        raise ConfigError("invalid config:\n" + "\n".join(lines))

    problems = []
    for name in config["run"]["datasets"]:
        if name not in config["datasets"]:
            problems.append(f"run.datasets: {name!r} is not defined under datasets (defined: {sorted(config['datasets'])})")
    for name in config["run"]["models"]:
        if name not in config["models"]:
            problems.append(f"run.models: {name!r} is not defined under models (defined: {sorted(config['models'])})")
    for name, dataset in config["datasets"].items():
        if dataset["source"] not in config["sources"]:
            problems.append(f"datasets.{name}.source: {dataset['source']!r} is not defined under sources")
    baseline = config["evaluation"]["baseline"]
    if baseline not in config["run"]["models"]:
        problems.append(f"evaluation.baseline: {baseline!r} must be one of run.models, since every model is "
                        f"compared with it (run.models: {config['run']['models']})")
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))
    return config
