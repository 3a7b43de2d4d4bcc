import sys
from pathlib import Path

# The shared library lives beside the rule scripts; make it importable here for config checks.
sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from drp.config import validate_config
from drp.models import resolve

validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")

FOLDS = list(range(config["splits"]["n_folds"]))
EVALUATION = config["evaluation"]
CROSS_STUDY_MODE = "LCO"  # cross-study predictions come from cell-blind models: every target cell line is unseen


def models_for_mode(mode):
    """The run's models that can be evaluated under a split mode: drug-blind (LDO) splits need models
    that predict for unseen drugs (from drug features); the others are left out of LDO, not faked."""
    return [m for m in config["run"]["models"]
            if mode != "LDO" or resolve(config["models"][m]["class"]).handles_unseen_drugs]


def latent_models(mode):
    """Models with a latent space (an `encode` method): latent export, UMAP and training history."""
    return [m for m in models_for_mode(mode) if hasattr(resolve(config["models"][m]["class"]), "encode")]


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


def target_views(wildcards):
    """The cross-study target data set's raw views that the training data set's models use."""
    return {f"target_{view}": f"results/{wildcards.target}/data/{view}.h5ad" for view in dataset_views(wildcards.dataset)}


def perturbation_input(wildcards):
    """The data set's (control, treated) expression pairs, for data sets that configure them."""
    if "perturbations" in config["datasets"][wildcards.dataset]:
        return {"perturbations": f"results/{wildcards.dataset}/data/perturbations.h5ad"}
    return {}


def model_spec(wildcards):
    return config["models"][wildcards.model]


def source_file_outputs(source):
    """The files of a source, as named outputs (wheel, annotations, ...): resources/<source>/<filename>,
    or the folder resources/<source>/<key> for an archive marked `extract: true`."""
    files = config["sources"][source]["files"]
    return {
        key: f"resources/{source}/{key}" if spec.get("extract") else f"resources/{source}/{spec['filename']}"
        for key, spec in files.items()
    }


def fold_predictions(wildcards):
    """Test-fold predictions of every model and fold, as inputs named <model>__fold<k>."""
    return {
        f"{model}__fold{fold}": f"results/{wildcards.dataset}/{wildcards.mode}/fold{fold}/{model}/predictions.parquet"
        for model in models_for_mode(wildcards.mode)
        for fold in FOLDS
    }


def fold_models(wildcards):
    """The trained models of every model and fold, as inputs named <model>__fold<k>."""
    return {
        f"{model}__fold{fold}": f"results/{wildcards.dataset}/{wildcards.mode}/fold{fold}/{model}/model"
        for model in models_for_mode(wildcards.mode)
        for fold in FOLDS
    }


def all_fold_features(wildcards):
    """The preprocessed views of every fold, as inputs named fold<k>__features_<view>."""
    return {
        f"fold{fold}__features_{view}": f"results/{wildcards.dataset}/{wildcards.mode}/fold{fold}/features/{view}.h5ad"
        for fold in FOLDS
        for view in dataset_views(wildcards.dataset)
    }


def model_of_every_fold(wildcards):
    """One model's trained folds, as inputs named fold<k>__model."""
    return {f"fold{fold}__model": f"results/{wildcards.dataset}/{wildcards.mode}/fold{fold}/{wildcards.model}/model"
            for fold in FOLDS}


def view_ablation_tables(wildcards):
    return {model: f"results/{wildcards.dataset}/{wildcards.mode}/view_ablation/{model}.parquet"
            for model in models_for_mode(wildcards.mode)}


def cross_study_predictions(wildcards):
    """Every model's predictions for one target data set, as inputs named by model."""
    return {model: f"results/{wildcards.dataset}/{CROSS_STUDY_MODE}/cross_study/{wildcards.target}/{model}.parquet"
            for model in config["run"]["models"]}


def cross_study_pairs():
    """(train, test) data-set pairs of the cross-study table; empty when none is configured."""
    spec = EVALUATION.get("cross_study") or {}
    return [(train, test) for train in spec.get("train", []) for test in spec.get("test", []) if test != train]


def all_targets():
    targets = []
    for dataset in config["run"]["datasets"]:
        for mode in config["run"]["split_modes"]:
            run_dir = f"results/{dataset}/{mode}"
            targets += [
                f"{run_dir}/metrics/summary.tsv",
                f"{run_dir}/report/per_drug_metrics.png",
                f"{run_dir}/report/predicted_vs_observed.png",
                f"{run_dir}/statistics/error_tests_summary.tsv",
                f"{run_dir}/report/per_drug_heatmap.png",
                f"{run_dir}/report/critical_difference.png",
                f"{run_dir}/metrics/tuning.tsv",
            ]
            if EVALUATION["view_ablation"]:
                targets.append(f"{run_dir}/metrics/view_ablation.tsv")
            for model in latent_models(mode):
                targets += [
                    f"{run_dir}/report/{model}_training_history.png",
                    f"{run_dir}/report/{model}_latent_umap.png",
                    *[f"{run_dir}/fold{fold}/{model}/latent.h5ad" for fold in FOLDS],
                ]
    if cross_study_pairs():
        targets.append("results/cross_study/table.tsv")
    return targets
