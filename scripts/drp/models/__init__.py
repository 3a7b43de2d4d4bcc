"""Model registry: config names to classes; ``module:Class`` names an external model without editing this file."""

from __future__ import annotations

import importlib

from .base import CellLineData, DrugResponseModel, TrainingData

REGISTRY = {
    "mean_effects": "drp.models.mean_effects:MeanEffects",
    "elastic_net": "drp.models.elastic_net:ElasticNetPerDrug",
    "gradient_boosting": "drp.models.boosting:GradientBoosting",
    "mlp": "drp.models.mlp:PairMLP",
    "drvae": "drp.models.drvae:DrVAE",
    "moicvae": "drp.models.moicvae:MOICVAE",
}


def resolve(class_name: str) -> type[DrugResponseModel]:
    """A registry name (``elastic_net``) or an importable ``package.module:Class``."""
    target = REGISTRY.get(class_name, class_name)
    if ":" not in target:
        raise ValueError(f"unknown model class {class_name!r}: use one of {sorted(REGISTRY)} or 'module:Class'")
    module_name, _, attribute = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"model class {class_name!r} cannot be imported: {error}") from error
    if not (isinstance(cls, type) and issubclass(cls, DrugResponseModel)):
        raise ValueError(f"model class {class_name!r} is not a subclass of drp.models.DrugResponseModel")
    return cls


def create(spec: dict) -> DrugResponseModel:
    """Instantiate from a config entry ``{class: ..., params: {...}}``."""
    cls = resolve(spec["class"])
    try:
        return cls(**spec.get("params", {}))
    except TypeError as error:
        raise ValueError(f"model {spec['class']!r}: bad params {spec.get('params')}: {error}") from error


__all__ = ["REGISTRY", "CellLineData", "DrugResponseModel", "TrainingData", "create", "resolve"]
