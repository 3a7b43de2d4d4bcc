import sys
from pathlib import Path

# The shared library lives beside the rule scripts; make it importable here for config checks. Only light
# modules are imported at DAG time (no torch, anndata or scikit-learn): every Snakemake start and every
# cluster job builds the DAG.
sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from drp import auxiliary, input_names, sample_sets, unlabelled
from drp.config import validate_config
from drp.models import catalog
from snakemake.logging import logger

validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
sample_sets.add_holdout_datasets(config)  # a held-out check's data set: the source less its held-out cell lines

# outer folds of every repeat: repeat r holds folds r * n_folds .. (r + 1) * n_folds - 1 (drp.splits)
FOLDS = list(range(config["splits"]["n_folds"] * config["splits"]["repeats"]))
EVALUATION = config["evaluation"]
CROSS_STUDY_MODE = "LCO"  # cross-study predictions come from cell-blind models: every target cell line is unseen


def split_table_input(wildcards):
    """A user's table of test folds for this split mode (splits.<mode>.file), if there is one."""
    table = (config["splits"].get(wildcards.mode) or {}).get("file")
    return {"table": table} if table else {}


def models_for_mode(mode, dataset=None):
    """The run's models that can be evaluated under a split mode: drug-blind (LDO) splits need models
    that predict for unseen drugs (from drug features); the others are left out of LDO, not faked. Models
    with auxiliary responses are left out of pair-wise (LPO) splits: there a test pair's cell line trains
    too, and its responses to the same compound in another screen would leak the test pair (drp.auxiliary).
    A held-out check's data set cross-validates only its sample set's models and the baselines (drp.sample_sets)."""
    models = sample_sets.dataset_models(config, dataset) if dataset else config["run"]["models"]
    return [m for m in models
            if (mode != "LDO" or catalog.traits(config["models"][m]).handles_unseen_drugs)
            and auxiliary.runs_in_mode(config["models"][m], mode)]


def latent_models(mode, dataset=None):
    """Models with a latent space: latent export, UMAP and training history."""
    return [m for m in models_for_mode(mode, dataset) if catalog.traits(config["models"][m]).latent]


LATENT_RUN_MODELS = [m for m in config["run"]["models"] if catalog.traits(config["models"][m]).latent]


wildcard_constraints:
    dataset=input_names.NAME_PATTERN,
    model=input_names.NAME_PATTERN,
    source=input_names.NAME_PATTERN,
    target=input_names.NAME_PATTERN,
    mode="LPO|LCO|LTO|LDO",
    fold=r"\d+",
    view=input_names.VIEW_PATTERN,


def dataset_views(dataset):
    return config["datasets"][dataset]["views"]


def fold_dir(wildcards, fold=None):
    return f"results/{wildcards.dataset}/{wildcards.mode}/fold{wildcards.fold if fold is None else fold}"


def fold_features(wildcards):
    """The preprocessed views of one fold, as inputs named features_<view>."""
    return {input_names.features(view): f"{fold_dir(wildcards)}/features/{view}.h5ad"
            for view in dataset_views(wildcards.dataset)}


def auxiliary_response_inputs(wildcards):
    """The response tables of the other data sets whose training cell lines' responses a model trains on
    (models.<name>.auxiliary_responses), as inputs named auxiliary__<data set>: built before the training job."""
    return {auxiliary.input_name(dataset): f"results/{dataset}/data/response.parquet"
            for dataset in auxiliary.datasets_of(config["models"][wildcards.model])}


def unlabelled_inputs(wildcards):
    """For models with unlabelled_cell_lines: the data set's unlabelled views (inputs unlabelled__<view>) and the
    response tables of its cross-study targets (unlabelled_exclude__<target>), whose cell lines are left out
    (drp.unlabelled)."""
    if not unlabelled.enabled(config["models"][wildcards.model]):
        return {}
    return {**{unlabelled.view_input(view): unlabelled.path(wildcards.dataset, view)
               for view in dataset_views(wildcards.dataset)},
            **{unlabelled.target_input(target): f"results/{target}/data/response.parquet"
               for target in cross_study_targets(wildcards.dataset)}}


def perturbation_input(wildcards):
    """The data set's (control, treated) expression pairs, for data sets that configure them."""
    if "perturbations" in config["datasets"][wildcards.dataset]:
        return {"perturbations": f"results/{wildcards.dataset}/data/perturbations.h5ad"}
    return {}


def models_pattern(models):
    """A wildcard pattern that matches exactly these model names ((?!) matches nothing: the rule is unused)."""
    return "|".join(models) if models else "(?!)"


def mode_report(path, caption, labels):
    """An output shown in the report, on the page of its data set and split mode."""
    return report(path, caption=f"../report/{caption}.rst", category="{dataset} {mode}", labels=labels)


def model_spec(wildcards):
    return config["models"][wildcards.model]


def train_threads(wildcards):
    return config["models"][wildcards.model].get("threads", 1)


def source_file_outputs(source):
    """The files of a source, as named outputs (wheel, annotations, ...): resources/<source>/<filename>,
    or the folder resources/<source>/<key> for an archive marked `extract: true`."""
    files = config["sources"][source]["files"]
    return {
        key: f"resources/{source}/{key}" if spec.get("extract") else f"resources/{source}/{spec['filename']}"
        for key, spec in files.items()
    }


# The training job's outputs, per model (drp.input_names.model_output builds their kinds' names).
MODEL_OUTPUTS = {"model": "model", "predictions": "predictions.parquet", "view_ablation": "view_ablation.parquet"}


def model_fold_outputs(wildcards, kinds, models=None):
    """Outputs of the training jobs of every fold, as inputs named fold<k>__<model>__<kind>."""
    return {input_names.model_fold_output(fold, model, kind): f"{fold_dir(wildcards, fold)}/{model}/{MODEL_OUTPUTS[kind]}"
            for model in (models if models is not None else models_for_mode(wildcards.mode, wildcards.dataset))
            for fold in FOLDS for kind in kinds}


def evaluation_inputs(wildcards):
    kinds = ["predictions", "model"] + (["view_ablation"] if EVALUATION["view_ablation"] else [])
    return model_fold_outputs(wildcards, kinds)


def every_fold_features(wildcards):
    """The preprocessed views of every fold, as inputs named fold<k>__features_<view>."""
    return {input_names.in_fold(fold, input_names.features(view)): f"{fold_dir(wildcards, fold)}/features/{view}.h5ad"
            for fold in FOLDS for view in dataset_views(wildcards.dataset)}


def latent_inputs(wildcards):
    """Every fold's features and the fold models of the models with a latent space that run in this mode."""
    return {**model_fold_outputs(wildcards, ["model"], latent_models(wildcards.mode, wildcards.dataset)),
            **every_fold_features(wildcards)}


def cross_study_model_inputs(wildcards):
    """One model's fold models and every fold's features, as inputs named fold<k>__model and fold<k>__features_<view>."""
    return {**{input_names.in_fold(fold, "model"): f"{fold_dir(wildcards, fold)}/{wildcards.model}/model" for fold in FOLDS},
            **every_fold_features(wildcards)}


def cross_study_models(target):
    """The run's models evaluated on a cross-study target: not those trained with auxiliary responses of the
    target (they saw its responses of their training cell lines: no cross-study result; drp.auxiliary)."""
    return auxiliary.cross_study_models(config, config["run"]["models"], target)


def cross_study_predictions(wildcards):
    """Every model's predictions for one target data set, as inputs named by model."""
    return {model: f"results/{wildcards.dataset}/{CROSS_STUDY_MODE}/cross_study/{wildcards.target}/{model}.parquet"
            for model in cross_study_models(wildcards.target)}


def cross_study_pairs():
    """(train, test) data-set pairs of the cross-study table; empty when none is configured."""
    spec = EVALUATION.get("cross_study") or {}
    return [(train, test) for train in spec.get("train", []) for test in spec.get("test", []) if test != train]


def cross_study_targets(dataset):
    return [test for train, test in cross_study_pairs() if train == dataset]


def cross_study_target_groups(dataset):
    """{targets: models}: every defined model by the cross-study targets of ``dataset`` it predicts (all, less
    the data sets of its auxiliary responses), for one prediction rule per group (models.smk); models left
    with no target are in no group: nothing asks for their cross-study predictions."""
    groups = {}
    for model in config["models"]:
        targets = tuple(t for t in cross_study_targets(dataset) if auxiliary.cross_study_models(config, [model], t))
        if targets:
            groups.setdefault(targets, []).append(model)
    return groups


# Said once per start, so that a run's log explains a blank cell of the cross-study table.
for _line in auxiliary.skipped_cross_study(config, config["run"]["models"], cross_study_pairs()):
    logger.info(_line)


SYNTHETIC_DIR = "results/{dataset}/{mode}/synthetic"  # synthetic cell lines (synthetic.smk)


def generator_model_input(wildcards):
    """The fold model a model-based generator decodes from; nothing for the baselines."""
    spec = config["synthetic"]["generators"][wildcards.generator]
    return {"model": f"{fold_dir(wildcards)}/{spec['model']}/model"} if "model" in spec else {}


def synthetic_report_inputs(wildcards):
    """Every generator's metrics and utility predictions of every fold, its synthetic cell lines of the first
    fold (the overlays) and that fold's expression features (if the data set has them)."""
    base = SYNTHETIC_DIR.format(dataset=wildcards.dataset, mode=wildcards.mode)
    inputs = {}
    if "expression" in dataset_views(wildcards.dataset):
        inputs["features_expression"] = f"{fold_dir(wildcards, FOLDS[0])}/features/expression.h5ad"
    for generator in config["synthetic"]["generators"]:
        inputs[f"{generator}__overlay"] = f"{base}/fold{FOLDS[0]}/{generator}.h5ad"
        for fold in FOLDS:
            inputs[f"{generator}__fold{fold}__metrics"] = f"{base}/fold{fold}/{generator}_metrics.json"
            inputs[f"{generator}__fold{fold}__predictions"] = f"{base}/fold{fold}/{generator}_utility.parquet"
    return inputs


def all_targets():
    targets = []
    for dataset in config["run"]["datasets"]:
        for mode in config["run"]["split_modes"]:
            run_dir = f"results/{dataset}/{mode}"
            targets += [f"{run_dir}/metrics/summary.tsv"]
            if latent_models(mode):
                targets.append(f"{run_dir}/report/{latent_models(mode)[0]}_latent_umap.png")
    if cross_study_pairs():
        targets.append("results/cross_study/table.tsv")
    if config["biomarkers"]["models"]:
        targets += [f"results/{dataset}/LCO/biomarkers/summary.tsv" for dataset in config["run"]["datasets"]]
    if config["synthetic"]["generators"]:
        targets += [f"results/{dataset}/{mode}/synthetic/summary.tsv" for dataset in config["run"]["datasets"]
                    for mode in config["synthetic"]["modes"]]
    for sample_set, spec in config["samples"].items():
        targets.append(f"results/samples/{sample_set}/{'check.tsv' if 'holdout' in spec else 'predictions.tsv'}")
    return targets
