rule make_splits:
    input:
        response="results/{dataset}/data/response.parquet",
        cell_lines="results/{dataset}/data/cell_lines.tsv",
    output:
        "results/{dataset}/splits/{mode}.tsv",
    params:
        n_folds=config["splits"]["n_folds"],
        seed=config["seed"],
    log:
        "logs/{dataset}/make_splits_{mode}.log",
    benchmark:
        "benchmarks/{dataset}/make_splits_{mode}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/make_splits.py"
