"""What the workflow needs to know about a model before any model code is imported.

Building the DAG (and so every Snakemake start, every Slurm job) must not import torch, anndata or
scikit-learn. The rules only need a few facts per model: whether it predicts for unseen drugs (drug-blind
splits), whether it has a latent space (latent export, UMAP, training history), whether it trains on a
GPU (Slurm resources) and whether it generates synthetic cell lines. Built-in models declare them here; an external ``module:Class`` declares them in its
config entry under ``traits`` (defaults: all false). ``check_traits`` compares a declaration with the class
once it is imported, at training time, and the tests check the built-in table against the classes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Traits:
    handles_unseen_drugs: bool = False  # predicts for drugs absent from training (LDO)
    latent: bool = False  # has ``encode(cells)``: latent export and plots
    gpu: bool = False  # a neural model that trains on CUDA when one is present (device "auto" or "cuda")
    generative: bool = False  # has ``latent_posterior`` and ``generate``: synthetic cell lines (drp.synthesis)


#: registry name -> (importable ``module:Class``, traits)
BUILTIN = {
    "mean_effects": ("drp.models.mean_effects:MeanEffects", Traits(handles_unseen_drugs=True)),
    "naive_mean_effects": ("drp.models.mean_effects:NaiveMeanEffects", Traits(handles_unseen_drugs=True)),
    "elastic_net": ("drp.models.elastic_net:ElasticNetPerDrug", Traits()),
    "ridge": ("drp.models.ridge:RidgePerDrug", Traits()),
    "gradient_boosting": ("drp.models.boosting:GradientBoosting", Traits(handles_unseen_drugs=True)),
    "random_forest": ("drp.models.boosting:RandomForest", Traits(handles_unseen_drugs=True)),
    "mlp": ("drp.models.mlp:PairMLP", Traits(handles_unseen_drugs=True, gpu=True)),
    "drvae": ("drp.models.drvae:DrVAE", Traits(latent=True, gpu=True, generative=True)),
    "multitask_mlp": ("drp.models.drvae:MultitaskMLP", Traits(latent=True, gpu=True)),
    "stack": ("drp.models.stack:StackedPair", Traits(gpu=True)),
    "ensemble": ("drp.models.ensemble:SeedEnsemble", Traits(gpu=True)),
    "latent_ridge": ("drp.models.latent_ridge:LatentRidge", Traits(gpu=True)),
    "moicvae": ("drp.models.moicvae:MOICVAE", Traits(latent=True, gpu=True, generative=True)),
}


def class_path(class_name: str) -> str:
    """``module:Class`` of a registry name, or the name itself when it already is one."""
    target = BUILTIN[class_name][0] if class_name in BUILTIN else class_name
    if ":" not in target:
        raise ValueError(f"unknown model class {class_name!r}: use one of {sorted(BUILTIN)} or 'module:Class'")
    return target


def traits(spec: dict) -> Traits:
    """The traits of a config model entry (``{class, params, traits, ...}``)."""
    name = spec["class"]
    if name in BUILTIN:
        return BUILTIN[name][1]
    class_path(name)  # a clear error for an unknown registry name
    return Traits(**(spec.get("traits") or {}))


def uses_gpu(spec: dict) -> bool:
    """Whether the model's training job should ask a cluster for a GPU: a GPU model not pinned to the CPU."""
    return traits(spec).gpu and (spec.get("params") or {}).get("device", "auto") != "cpu"


def check_traits(cls: type, spec: dict) -> None:
    """Refuse a class whose behaviour contradicts the traits the workflow was built with."""
    declared = traits(spec)
    actual = {"handles_unseen_drugs": bool(getattr(cls, "handles_unseen_drugs", False)),
              "latent": callable(getattr(cls, "encode", None))}
    wrong = {key: value for key, value in actual.items() if getattr(declared, key) != value}
    if declared.generative and not getattr(cls, "generates_cell_lines", False):  # a generator must have a decoder;
        wrong["generative"] = False  # a class that could generate but is not declared so is simply not asked to
    if wrong:
        raise ValueError(f"model class {spec['class']!r}: its traits {wrong} disagree with the declaration "
                         f"{declared}; set models.<name>.traits in the config to match the class")
