rule evaluate:
    input:
        unpack(fold_predictions),
        meta="results/{dataset}/data/dataset.json",
        response="results/{dataset}/data/response.parquet",
        splits="results/{dataset}/splits/{mode}.tsv",
    output:
        predictions="results/{dataset}/{mode}/metrics/predictions.parquet",
        per_drug=report(
            "results/{dataset}/{mode}/metrics/per_drug.tsv",
            caption="../report/per_drug.rst",
            category="{dataset} {mode}",
            labels={"table": "per-drug metrics"},
        ),
        summary="results/{dataset}/{mode}/metrics/summary.tsv",
        summary_html=report(
            "results/{dataset}/{mode}/metrics/summary.html",
            caption="../report/summary.rst",
            category="{dataset} {mode}",
            labels={"table": "summary"},
        ),
    params:
        models=config["run"]["models"],
        baseline=config["evaluation"]["baseline"],
        min_pairs=config["evaluation"]["min_pairs_per_drug"],
    log:
        "logs/{dataset}/{mode}/evaluate.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/evaluate.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/evaluate.py"


rule plot_metrics:
    input:
        meta="results/{dataset}/data/dataset.json",
        predictions="results/{dataset}/{mode}/metrics/predictions.parquet",
        per_drug="results/{dataset}/{mode}/metrics/per_drug.tsv",
    output:
        distributions=report(
            "results/{dataset}/{mode}/report/per_drug_metrics.png",
            caption="../report/per_drug_metrics.rst",
            category="{dataset} {mode}",
            labels={"figure": "per-drug metric distributions"},
        ),
        scatter=report(
            "results/{dataset}/{mode}/report/predicted_vs_observed.png",
            caption="../report/predicted_vs_observed.rst",
            category="{dataset} {mode}",
            labels={"figure": "predicted vs observed"},
        ),
    log:
        "logs/{dataset}/{mode}/plot_metrics.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/plot_metrics.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/plot_metrics.py"
