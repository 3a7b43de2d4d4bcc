# Final models and predictions for new samples (README, "Predict for new samples"; drp.stages.final and
# drp.stages.samples). A final model trains on every cell line of a data set; its calibration comes from the
# data set's cell-blind (LCO) cross-validation. A sample set (samples.<name>) is a folder of new samples' omics,
# or a held-out check: real cell lines taken out of a data set (rule build_holdout_<name>) and predicted by the
# final models of the data set without them, their hidden responses scored by check_samples_<name>.
# what the sample-set job needs of `final` (the final model's job takes only interval_level, for its card)
FINAL_SETTINGS = {key: config["final"][key]
                  for key in ("interval_level", "ood_neighbours", "ood_quantile", "ood_views")}


def final_features_paths(dataset):
    return {input_names.features(view): f"results/{dataset}/final/features/{view}.h5ad"
            for view in dataset_views(dataset)}


# Each view's selection and scaling fitted on every cell line of the data set (one job per data set).
for _dataset, _spec in config["datasets"].items():

    rule:
        name:
            f"final_features_{_dataset}"
        input:
            **{view: f"results/{_dataset}/data/{view}.h5ad" for view in _spec["views"]},
        output:
            **{view: f"results/{_dataset}/final/features/{view}.h5ad" for view in _spec["views"]},
        params:
            settings={view: config["features"].get(view, {}) for view in _spec["views"]},
        log:
            f"logs/{_dataset}/final/features.log",
        benchmark:
            f"benchmarks/{_dataset}/final/features.tsv"
        conda:
            "../../envs/data.yaml"
        script:
            "../../scripts/final_features.py"


# One final model per data set and model, on a GPU node for the models that train on one (as train_gpu).
for _rule_name, _on_gpu in (("train_final", False), ("train_final_gpu", True)):

    rule:
        name:
            _rule_name
        wildcard_constraints:
            model=models_pattern([m for m, spec in config["models"].items() if catalog.uses_gpu(spec) == _on_gpu]),
        input:
            unpack(lambda wc: final_features_paths(wc.dataset)),
            unpack(perturbation_input),
            meta="results/{dataset}/data/dataset.json",
            response="results/{dataset}/data/response.parquet",
            drugs="results/{dataset}/data/drugs.tsv",
            drug_features="results/{dataset}/data/drug_fingerprints.h5ad",
            splits="results/{dataset}/splits/LCO.tsv",
            cv_predictions="results/{dataset}/LCO/metrics/predictions.parquet",
            cv_summary="results/{dataset}/LCO/metrics/summary.tsv",
            cv_repeats="results/{dataset}/LCO/metrics/repeats.tsv",
            cv_tuning="results/{dataset}/LCO/metrics/tuning.tsv",
        output:
            model=directory("results/{dataset}/final/{model}/model"),
            calibration=directory("results/{dataset}/final/{model}/calibration"),
            card_md="results/{dataset}/final/{model}/card.md",
            card_json="results/{dataset}/final/{model}/card.json",
        params:
            spec=model_spec,
            seed=config["seed"],
            settings={"interval_level": config["final"]["interval_level"], "features": config["features"]},
            refit=config["splits"]["refit"],
        threads: train_threads
        log:
            "logs/{dataset}/final/train_{model}.log",
        benchmark:
            "benchmarks/{dataset}/final/train_{model}.tsv"
        conda:
            "../../envs/models.yaml"
        script:
            "../../scripts/train_final.py"


def sample_files(sample_set):
    """A folder sample set's files (views and annotations), looked up when the job is scheduled; a held-out
    check's sample folder, written by build_holdout_<set>."""
    spec = config["samples"][sample_set]
    if "holdout" in spec:
        return {"sample_folder": f"results/samples/{sample_set}/input"}
    from drp.samples_io import resolve_sample_files  # pandas: imported only when a sample set is scheduled

    return {key: str(path) for key, path in
            resolve_sample_files({**spec, "views": sample_sets.sample_views(config, sample_set)}).items()}


def sample_set_inputs(sample_set):
    dataset = sample_sets.dataset_of(config, sample_set)
    final = f"results/{dataset}/final"
    return {**sample_files(sample_set), **final_features_paths(dataset),
            "meta": f"results/{dataset}/data/dataset.json",
            "drug_features": f"results/{dataset}/data/drug_fingerprints.h5ad",
            **{f"model__{model}": f"{final}/{model}/model" for model in sample_sets.models_of(config, sample_set)},
            **{f"calibration__{model}": f"{final}/{model}/calibration"
               for model in sample_sets.models_of(config, sample_set)}}


for _set, _spec in config["samples"].items():

    rule:
        name:
            f"predict_samples_{_set}"
        input:
            unpack(lambda wildcards, sample_set=_set: sample_set_inputs(sample_set)),
        output:
            predictions=f"results/samples/{_set}/predictions.tsv",
            explanations=f"results/samples/{_set}/explanations.tsv",
            latent=f"results/samples/{_set}/latent.h5ad",
            report=report(f"results/samples/{_set}/report.html", caption="../report/samples.rst",
                          category=f"samples {_set}"),
            summary=f"results/samples/{_set}/summary.json",
        params:
            spec={**_spec, "views": sample_sets.sample_views(config, _set),
                  **({"folder": f"results/samples/{_set}/input"} if "holdout" in _spec else {})},
            models=lambda wildcards, sample_set=_set: {m: config["models"][m]
                                                       for m in sample_sets.models_of(config, sample_set)},
            settings={**FINAL_SETTINGS, "seed": config["seed"],
                      **{key: config["final"][key] for key in ("explain_top", "explain_steps", "report_top")}},
        log:
            f"logs/samples/{_set}/predict.log",
        benchmark:
            f"benchmarks/samples/{_set}/predict.tsv"
        conda:
            "../../envs/models.yaml"
        script:
            "../../scripts/predict_samples.py"

    if "holdout" not in _spec:
        continue
    _source = _spec["holdout"]["dataset"]
    _derived = sample_sets.holdout_dataset_name(_source, _set)

    rule:
        name:
            f"build_holdout_{_set}"
        input:
            meta=f"results/{_source}/data/dataset.json",
            response=f"results/{_source}/data/response.parquet",
            drugs=f"results/{_source}/data/drugs.tsv",
            **{view: f"results/{_source}/data/{view}.h5ad" for view in dataset_views(_source)},
        output:
            meta=f"results/{_derived}/data/dataset.json",
            response=f"results/{_derived}/data/response.parquet",
            drugs=f"results/{_derived}/data/drugs.tsv",
            cell_lines=f"results/{_derived}/data/cell_lines.tsv",
            **{view: f"results/{_derived}/data/{view}.h5ad" for view in dataset_views(_source)},
            sample_folder=directory(f"results/samples/{_set}/input"),
            hidden_response=f"results/samples/{_set}/hidden_response.parquet",
        params:
            holdout=_spec["holdout"],
            sample_set=_set,
        log:
            f"logs/samples/{_set}/build_holdout.log",
        benchmark:
            f"benchmarks/samples/{_set}/build_holdout.tsv"
        conda:
            "../../envs/data.yaml"
        script:
            "../../scripts/build_holdout.py"

    rule:
        name:
            f"check_samples_{_set}"
        input:
            predictions=f"results/samples/{_set}/predictions.tsv",
            summary=f"results/samples/{_set}/summary.json",
            hidden_response=f"results/samples/{_set}/hidden_response.parquet",
            meta=f"results/{_source}/data/dataset.json",
        output:
            check=f"results/samples/{_set}/check.tsv",
        params:
            seed=config["seed"],
            bootstrap_samples=EVALUATION["bootstrap_samples"],
            min_pairs=EVALUATION["min_pairs_per_drug"],
        log:
            f"logs/samples/{_set}/check.log",
        benchmark:
            f"benchmarks/samples/{_set}/check.tsv"
        conda:
            "../../envs/evaluate.yaml"
        script:
            "../../scripts/check_samples.py"
