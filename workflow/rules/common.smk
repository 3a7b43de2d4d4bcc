import sys
from pathlib import Path

# The shared library lives beside the rule scripts; make it importable here for config checks.
sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from drp.config import validate_config
from drp.models import resolve

validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")

FOLDS = list(range(config["splits"]["n_folds"]))
# Models with a latent space (an `encode` method) get their latent export, UMAP and training history.
LATENT_MODELS = [m for m in config["run"]["models"] if hasattr(resolve(config["models"][m]["class"]), "encode")]


wildcard_constraints:
    dataset="[A-Za-z][A-Za-z0-9_]*",
    model="[A-Za-z][A-Za-z0-9_]*",
    source="[A-Za-z][A-Za-z0-9_]*",
    mode="LPO|LCO|LTO|LDO",
    fold=r"\d+",
    view="[a-z_]+",


def dataset_views(dataset):
    return config["datasets"][dataset]["views"]


def fold_features(wildcards):
    """The preprocessed views of one fold, as inputs named features_<view>."""
    return {
        f"features_{view}": f"results/{wildcards.dataset}/{wildcards.mode}/fold{wildcards.fold}/features/{view}.h5ad"
        for view in dataset_views(wildcards.dataset)
    }


def perturbation_input(wildcards):
    """The data set's (control, treated) expression pairs, for data sets that configure them."""
    if "perturbations" in config["datasets"][wildcards.dataset]:
        return {"perturbations": f"results/{wildcards.dataset}/data/perturbations.h5ad"}
    return {}


def model_spec(wildcards):
    return config["models"][wildcards.model]


def source_file_outputs(source):
    """The files of a source, as named outputs (wheel, annotations, ...)."""
    files = config["sources"][source]["files"]
    return {key: f"resources/{source}/{spec['filename']}" for key, spec in files.items()}


def fold_predictions(wildcards):
    """Test-fold predictions of every model and fold, as inputs named <model>__fold<k>."""
    return {
        f"{model}__fold{fold}": f"results/{wildcards.dataset}/{wildcards.mode}/fold{fold}/{model}/predictions.parquet"
        for model in config["run"]["models"]
        for fold in FOLDS
    }


def all_targets():
    targets = []
    for dataset in config["run"]["datasets"]:
        for mode in config["run"]["split_modes"]:
            run_dir = f"results/{dataset}/{mode}"
            targets += [
                f"{run_dir}/metrics/summary.tsv",
                f"{run_dir}/report/per_drug_metrics.png",
                f"{run_dir}/report/predicted_vs_observed.png",
            ]
            for model in LATENT_MODELS:
                targets += [
                    f"{run_dir}/report/{model}_training_history.png",
                    f"{run_dir}/report/{model}_latent_umap.png",
                    *[f"{run_dir}/fold{fold}/{model}/latent.h5ad" for fold in FOLDS],
                ]
    return targets
