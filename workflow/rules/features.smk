# One job per view and fold: feature selection and scaling fitted on the fold's training cell lines.
rule features:
    input:
        view="results/{dataset}/data/{view}.h5ad",
        splits="results/{dataset}/splits/{mode}.tsv",
    output:
        "results/{dataset}/{mode}/fold{fold}/features/{view}.h5ad",
    params:
        settings=lambda wildcards: config["features"].get(wildcards.view, {}),
    log:
        "logs/{dataset}/{mode}/fold{fold}/features_{view}.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/fold{fold}/features_{view}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/features.py"
