# Training runs on the whole fold at once (all drugs, multi-task), so a run is tens of jobs.
rule train:
    input:
        unpack(fold_features),
        unpack(perturbation_input),
        meta="results/{dataset}/data/dataset.json",
        response="results/{dataset}/data/response.parquet",
        drugs="results/{dataset}/data/drugs.tsv",
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
