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
        models=lambda wc: models_for_mode(wc.mode),
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


# Paired tests against the best baseline, pairwise tests across drugs, critical-difference ranking and the
# per-drug heatmap of the chosen metric (evaluation.metric).
rule statistics:
    input:
        per_drug="results/{dataset}/{mode}/metrics/per_drug.tsv",
        predictions="results/{dataset}/{mode}/metrics/predictions.parquet",
    output:
        error_tests="results/{dataset}/{mode}/statistics/error_tests.tsv",
        error_tests_summary="results/{dataset}/{mode}/statistics/error_tests_summary.tsv",
        pairwise="results/{dataset}/{mode}/statistics/pairwise_tests.tsv",
        tests_html=report(
            "results/{dataset}/{mode}/statistics/tests.html",
            caption="../report/tests.rst",
            category="{dataset} {mode}",
            labels={"table": "paired tests"},
        ),
        critical_difference=report(
            "results/{dataset}/{mode}/report/critical_difference.png",
            caption="../report/critical_difference.rst",
            category="{dataset} {mode}",
            labels={"figure": "critical difference"},
        ),
        heatmap=report(
            "results/{dataset}/{mode}/report/per_drug_heatmap.png",
            caption="../report/per_drug_heatmap.rst",
            category="{dataset} {mode}",
            labels={"figure": "per-drug heatmap"},
        ),
    params:
        baselines=EVALUATION["baselines"],
        controls=[m for m in config["run"]["models"] if config["models"][m].get("permute_labels")],
        metric=EVALUATION["metric"],
        min_pairs=EVALUATION["min_pairs_per_drug"],
        alpha=EVALUATION["alpha"],
    log:
        "logs/{dataset}/{mode}/statistics.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/statistics.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/compare_models.py"


rule collect_tuning:
    input:
        unpack(fold_models),
    output:
        report(
            "results/{dataset}/{mode}/metrics/tuning.tsv",
            caption="../report/tuning.rst",
            category="{dataset} {mode}",
            labels={"table": "hyperparameter selection"},
        ),
    log:
        "logs/{dataset}/{mode}/collect_tuning.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/collect_tuning.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/collect_tuning.py"


rule evaluate_view_ablation:
    input:
        unpack(view_ablation_tables),
    output:
        report(
            "results/{dataset}/{mode}/metrics/view_ablation.tsv",
            caption="../report/view_ablation.rst",
            category="{dataset} {mode}",
            labels={"table": "view randomization"},
        ),
    params:
        models=lambda wc: models_for_mode(wc.mode),
        min_pairs=EVALUATION["min_pairs_per_drug"],
    log:
        "logs/{dataset}/{mode}/evaluate_view_ablation.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/evaluate_view_ablation.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/evaluate_view_ablation.py"


rule evaluate_cross_study:
    input:
        unpack(cross_study_predictions),
        meta="results/{dataset}/data/dataset.json",
        target_meta="results/{target}/data/dataset.json",
        response="results/{dataset}/data/response.parquet",
        splits=f"results/{{dataset}}/splits/{CROSS_STUDY_MODE}.tsv",
    output:
        per_drug=f"results/{{dataset}}/{CROSS_STUDY_MODE}/cross_study/{{target}}/per_drug.tsv",
        summary=f"results/{{dataset}}/{CROSS_STUDY_MODE}/cross_study/{{target}}/summary.tsv",
    params:
        models=config["run"]["models"],
        baseline=EVALUATION["baseline"],
        min_pairs=EVALUATION["min_pairs_per_drug"],
    log:
        "logs/{dataset}/cross_study_{target}.log",
    benchmark:
        "benchmarks/{dataset}/cross_study_{target}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/evaluate_cross_study.py"


rule cross_study_table:
    input:
        **{f"{train}__{test}": f"results/{train}/{CROSS_STUDY_MODE}/cross_study/{test}/summary.tsv"
           for train, test in cross_study_pairs()},
        **{f"{train}__{train}": f"results/{train}/{CROSS_STUDY_MODE}/metrics/summary.tsv"
           for train in {train for train, _ in cross_study_pairs()}},
    output:
        table="results/cross_study/table.tsv",
        html=report(
            "results/cross_study/table.html",
            caption="../report/cross_study.rst",
            category="cross-study",
            labels={"table": "cross-study"},
        ),
    params:
        metric=EVALUATION["metric"],
    log:
        "logs/cross_study_table.log",
    benchmark:
        "benchmarks/cross_study_table.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/cross_study_table.py"
