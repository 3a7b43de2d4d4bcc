"""Model registry: config names to classes; ``module:Class`` names an external model without editing this file.

The registry table lives in ``catalog`` (no heavy imports); a model class is imported only when it is resolved.
"""

from __future__ import annotations

import importlib

from .catalog import BUILTIN, class_path

REGISTRY = {name: path for name, (path, _) in BUILTIN.items()}


def __getattr__(name: str):
    """The interface classes, imported on first use so that ``drp.models.catalog`` stays light (DAG time)."""
    if name in ("CellLineData", "DrugResponseModel", "TrainingData"):
        from . import base
        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve(class_name: str) -> type:
    """A registry name (``elastic_net``) or an importable ``package.module:Class``."""
    module_name, _, attribute = class_path(class_name).partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"model class {class_name!r} cannot be imported: {error}") from error
    from .base import DrugResponseModel

    if not (isinstance(cls, type) and issubclass(cls, DrugResponseModel)):
        raise ValueError(f"model class {class_name!r} is not a subclass of drp.models.DrugResponseModel")
    return cls


def create(spec: dict):
    """Instantiate from a config entry ``{class: ..., params: {...}}``; with ``over_mean_effects: true``, the
    model fitted on the residual over the mean-effects baseline (``drp.models.offset``)."""
    if spec.get("over_mean_effects"):
        from .offset import OverMeanEffects

        return OverMeanEffects(model={"class": spec["class"], "params": spec.get("params", {})})
    cls = resolve(spec["class"])
    try:
        return cls(**spec.get("params", {}))
    except TypeError as error:
        raise ValueError(f"model {spec['class']!r}: bad params {spec.get('params')}: {error}") from error


__all__ = ["REGISTRY", "CellLineData", "DrugResponseModel", "TrainingData", "create", "resolve"]
