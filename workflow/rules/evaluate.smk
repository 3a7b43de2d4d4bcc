# One evaluation job per data set and split mode: metrics, paired tests against the best baseline, the
# critical-difference ranking, the per-drug heatmap (evaluation.metric), the tuning record, view
# randomization and the metric figures, all from the training jobs' outputs.
rule evaluate:
    input:
        unpack(evaluation_inputs),
        meta="results/{dataset}/data/dataset.json",
        response="results/{dataset}/data/response.parquet",
        splits="results/{dataset}/splits/{mode}.tsv",
    output:
        predictions="results/{dataset}/{mode}/metrics/predictions.parquet",
        per_drug=mode_report("results/{dataset}/{mode}/metrics/per_drug.tsv", "per_drug", {"table": "per-drug metrics"}),
        per_cell_line="results/{dataset}/{mode}/metrics/per_cell_line.tsv",
        per_fold="results/{dataset}/{mode}/metrics/per_fold.tsv",
        repeats="results/{dataset}/{mode}/metrics/repeats.tsv",
        comparison=mode_report("results/{dataset}/{mode}/statistics/comparison.tsv", "comparison",
                               {"table": "comparison with the strongest baseline"}),
        summary="results/{dataset}/{mode}/metrics/summary.tsv",
        summary_html=mode_report("results/{dataset}/{mode}/metrics/summary.html", "summary", {"table": "summary"}),
        error_tests="results/{dataset}/{mode}/statistics/error_tests.tsv",
        error_tests_summary="results/{dataset}/{mode}/statistics/error_tests_summary.tsv",
        pairwise="results/{dataset}/{mode}/statistics/pairwise_tests.tsv",
        tests_html=mode_report("results/{dataset}/{mode}/statistics/tests.html", "tests", {"table": "paired tests"}),
        critical_difference=mode_report("results/{dataset}/{mode}/report/critical_difference.png", "critical_difference",
                                    {"figure": "critical difference"}),
        heatmap=mode_report("results/{dataset}/{mode}/report/per_drug_heatmap.png", "per_drug_heatmap",
                        {"figure": "per-drug heatmap"}),
        tuning=mode_report("results/{dataset}/{mode}/metrics/tuning.tsv", "tuning", {"table": "hyperparameter selection"}),
        distributions=mode_report("results/{dataset}/{mode}/report/per_drug_metrics.png", "per_drug_metrics",
                              {"figure": "per-drug metric distributions"}),
        scatter=mode_report("results/{dataset}/{mode}/report/predicted_vs_observed.png", "predicted_vs_observed",
                        {"figure": "predicted vs observed"}),
        **({"view_ablation": mode_report("results/{dataset}/{mode}/metrics/view_ablation.tsv", "view_ablation",
                                     {"table": "view randomization"})} if EVALUATION["view_ablation"] else {}),
    params:
        models=lambda wc: models_for_mode(wc.mode, wc.dataset),
        baseline=EVALUATION["baseline"],
        naive_baseline=EVALUATION["naive_baseline"],
        baselines=EVALUATION["baselines"],
        controls=[m for m in config["run"]["models"] if config["models"][m].get("permute_labels")],
        metric=EVALUATION["metric"],
        min_pairs=EVALUATION["min_pairs_per_drug"],
        alpha=EVALUATION["alpha"],
        bootstrap_samples=EVALUATION["bootstrap_samples"],
        seed=config["seed"],
    log:
        "logs/{dataset}/{mode}/evaluate.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/evaluate.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/evaluate.py"


# Cross-study drug matching (drp.drug_matching): the target's drugs paired with the training data set's by
# name, structure (InChIKey), normalized name and the recorded synonym table; one table per (training, test)
# pair of data sets, read by every model's cross-study job.
DRUG_SYNONYMS = str(Path(workflow.basedir) / "config" / "drug_synonyms.tsv")


rule match_cross_study_drugs:
    input:
        drugs="results/{dataset}/data/drugs.tsv",
        target_drugs="results/{target}/data/drugs.tsv",
        synonyms=DRUG_SYNONYMS,
    output:
        matches="results/{dataset}/{mode}/cross_study/{target}/drug_matches.tsv",
    log:
        "logs/{dataset}/{mode}/cross_study/match_drugs_{target}.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/cross_study/match_drugs_{target}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/match_cross_study_drugs.py"


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
        comparison=f"results/{{dataset}}/{CROSS_STUDY_MODE}/cross_study/{{target}}/comparison.tsv",
    params:
        # not the models trained with auxiliary responses of the target: no cross-study result (drp.auxiliary)
        models=lambda wc: cross_study_models(wc.target),
        baseline=EVALUATION["baseline"],
        naive_baseline=EVALUATION["naive_baseline"],
        min_pairs=EVALUATION["min_pairs_per_drug"],
        baselines=EVALUATION["baselines"],
        bootstrap_samples=EVALUATION["bootstrap_samples"],
        seed=config["seed"],
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
        **{input_names.study_pair(train, test): f"results/{train}/{CROSS_STUDY_MODE}/cross_study/{test}/summary.tsv"
           for train, test in cross_study_pairs()},
        **{input_names.study_pair(train, train): f"results/{train}/{CROSS_STUDY_MODE}/metrics/summary.tsv"
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
