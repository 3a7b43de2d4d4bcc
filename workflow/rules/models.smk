# Training runs on the whole fold at once (all drugs, multi-task), so a run is tens of jobs.
rule train:
    input:
        unpack(fold_features),
        unpack(perturbation_input),
        meta="results/{dataset}/data/dataset.json",
        response="results/{dataset}/data/response.parquet",
        drugs="results/{dataset}/data/drugs.tsv",
        drug_features="results/{dataset}/data/drug_fingerprints.h5ad",
        splits="results/{dataset}/splits/{mode}.tsv",
    output:
        directory("results/{dataset}/{mode}/fold{fold}/{model}/model"),
    params:
        spec=model_spec,
        seed=config["seed"],
    threads: lambda wildcards: config["models"][wildcards.model].get("threads", 1)
    log:
        "logs/{dataset}/{mode}/fold{fold}/train_{model}.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/fold{fold}/train_{model}.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../../scripts/train.py"


rule predict:
    input:
        unpack(fold_features),
        model="results/{dataset}/{mode}/fold{fold}/{model}/model",
        drug_features="results/{dataset}/data/drug_fingerprints.h5ad",
        meta="results/{dataset}/data/dataset.json",
        response="results/{dataset}/data/response.parquet",
        splits="results/{dataset}/splits/{mode}.tsv",
    output:
        "results/{dataset}/{mode}/fold{fold}/{model}/predictions.parquet",
    params:
        spec=model_spec,
    log:
        "logs/{dataset}/{mode}/fold{fold}/predict_{model}.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/fold{fold}/predict_{model}.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../../scripts/predict.py"


# View randomization: every fold's test predictions again with one omics view shuffled across the test
# cell lines (the same permutation for every drug); the drop in accuracy shows which views a model uses.
# One job per model covers all folds (each fold is a few seconds of prediction).
rule view_ablation:
    input:
        unpack(all_fold_features),
        unpack(model_of_every_fold),
        drug_features="results/{dataset}/data/drug_fingerprints.h5ad",
        meta="results/{dataset}/data/dataset.json",
        response="results/{dataset}/data/response.parquet",
        splits="results/{dataset}/splits/{mode}.tsv",
    output:
        "results/{dataset}/{mode}/view_ablation/{model}.parquet",
    params:
        spec=model_spec,
        seed=config["seed"],
        folds=FOLDS,
    log:
        "logs/{dataset}/{mode}/view_ablation_{model}.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/view_ablation_{model}.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../../scripts/view_ablation.py"


# Cross-study: the cell-blind models of the training data set predict another data set's pairs of shared
# drugs; each target cell line is predicted by a fold model that never saw it (see drp.cross_study).
rule predict_cross_study:
    input:
        unpack(all_fold_features),
        unpack(model_of_every_fold),
        unpack(target_views),
        drug_features="results/{dataset}/data/drug_fingerprints.h5ad",
        response="results/{dataset}/data/response.parquet",
        splits="results/{dataset}/splits/{mode}.tsv",
        target_response="results/{target}/data/response.parquet",
        target_cell_lines="results/{target}/data/cell_lines.tsv",
    output:
        "results/{dataset}/{mode}/cross_study/{target}/{model}.parquet",
    params:
        spec=model_spec,
        folds=FOLDS,
    log:
        "logs/{dataset}/{mode}/cross_study/{target}/predict_{model}.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/cross_study/{target}/predict_{model}.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../../scripts/predict_cross_study.py"
