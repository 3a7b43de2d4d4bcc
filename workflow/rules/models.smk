# One training job per data set, split mode, fold and model (all drugs at once, multi-task), so a cluster
# spreads the training. The job also writes, while the model is in memory, the fold's test predictions and
# the view-randomization predictions. Two rules, the same job: `train_gpu` for the models that train on a
# GPU (drp.models.catalog), `train` for the others, so that a cluster profile sends only the former to GPU
# nodes (profiles/slurm).
for _rule_name, _on_gpu in (("train", False), ("train_gpu", True)):

    rule:
        name:
            _rule_name
        wildcard_constraints:
            model=models_pattern([m for m, spec in config["models"].items() if catalog.uses_gpu(spec) == _on_gpu]),
        input:
            unpack(fold_features),
            unpack(perturbation_input),
            unpack(auxiliary_response_inputs),
            unpack(unlabelled_inputs),
            meta="results/{dataset}/data/dataset.json",
            response="results/{dataset}/data/response.parquet",
            drugs="results/{dataset}/data/drugs.tsv",
            drug_features="results/{dataset}/data/drug_fingerprints.h5ad",
            splits="results/{dataset}/splits/{mode}.tsv",
        output:
            model=directory("results/{dataset}/{mode}/fold{fold}/{model}/model"),
            predictions="results/{dataset}/{mode}/fold{fold}/{model}/predictions.parquet",
            view_ablation="results/{dataset}/{mode}/fold{fold}/{model}/view_ablation.parquet",
        params:
            spec=model_spec,
            seed=config["seed"],
            refit=config["splits"]["refit"],
        threads: train_threads
        log:
            "logs/{dataset}/{mode}/fold{fold}/train_{model}.log",
        benchmark:
            "benchmarks/{dataset}/{mode}/fold{fold}/train_{model}.tsv"
        conda:
            "../../envs/models.yaml"
        script:
            "../../scripts/train.py"


# Cross-study: the cell-blind models of a training data set predict every test data set's pairs of shared
# drugs, one job per model (all folds, all targets); each target cell line is predicted by a fold model that
# never saw it (see drp.stages.cross_study), the target's drugs renamed to the training data set's names by the
# match table (rule match_cross_study_drugs). One rule per training data set, since its targets come from config;
# and per set of targets: a model trained with auxiliary responses of a target (models.<name>.auxiliary_responses)
# does not predict it, since it saw that target's responses of its training cell lines (drp.auxiliary). The
# models that predict every target keep the rule predict_cross_study_<dataset>; the others get
# predict_cross_study_<dataset>_without_<targets left out>, and a model left with no target gets no job at all.
for _dataset, _targets, _models in [(dataset, targets, models)
                                    for dataset in {train for train, _ in cross_study_pairs()}
                                    for targets, models in cross_study_target_groups(dataset).items()]:
    _left_out = [t for t in cross_study_targets(_dataset) if t not in _targets]

    rule:
        name:
            f"predict_cross_study_{_dataset}" + ("_without_" + "_".join(_left_out) if _left_out else "")
        wildcard_constraints:
            dataset=_dataset,
            model=models_pattern(_models),
        input:
            unpack(cross_study_model_inputs),
            **{input_names.of_target(target, name): f"results/{target}/data/{file}"
               for target in _targets
               for name, file in {"response": "response.parquet", "cell_lines": "cell_lines.tsv",
                                  **{view: f"{view}.h5ad" for view in dataset_views(_dataset)}}.items()},
            **{input_names.of_target(target, "drug_matches"):
               f"results/{_dataset}/{{mode}}/cross_study/{target}/drug_matches.tsv"
               for target in _targets},
            drug_features=f"results/{_dataset}/data/drug_fingerprints.h5ad",
            response=f"results/{_dataset}/data/response.parquet",
            splits=f"results/{_dataset}/splits/{{mode}}.tsv",
        output:
            **{target: f"results/{{dataset}}/{{mode}}/cross_study/{target}/{{model}}.parquet" for target in _targets},
        params:
            spec=model_spec,
            folds=FOLDS,
        log:
            "logs/{dataset}/{mode}/cross_study/predict_{model}.log",
        benchmark:
            "benchmarks/{dataset}/{mode}/cross_study/predict_{model}.tsv"
        conda:
            "../../envs/models.yaml"
        script:
            "../../scripts/predict_cross_study.py"
