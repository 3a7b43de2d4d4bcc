# Synthetic cell lines (README, "Synthetic data"; drp.synthesis, drp.stages.synthetic): per generator and
# cell-blind fold, synthetic cell lines from the fold's training cell lines only (rule synthesize), judged against
# the fold's held-out cell lines (rule evaluate_synthetic: fidelity, utility, privacy), and one page per data set
# and split mode (rule synthetic_report). Nothing runs while synthetic.generators is empty (config/synthetic.yaml).
SYNTHETIC = config["synthetic"]
# what the jobs need: the synthetic section and the run's seed, folds and per-drug minimum
SYNTHETIC_SETTINGS = {key: SYNTHETIC[key] for key in ("per_cell_line", "min_tissue_lines", "utility_model",
                                                      "augment_max_lines", "max_close_share", "max_mia_auroc")} | {
    "seed": config["seed"], "n_folds": config["splits"]["n_folds"],
    "min_pairs_per_drug": EVALUATION["min_pairs_per_drug"]}


rule synthesize:
    wildcard_constraints:
        mode="LCO|LTO",
        generator=models_pattern(list(SYNTHETIC["generators"])),
    input:
        unpack(fold_features),
        unpack(generator_model_input),
        response="results/{dataset}/data/response.parquet",
        splits="results/{dataset}/splits/{mode}.tsv",
    output:
        synthetic=f"{SYNTHETIC_DIR}/fold{{fold}}/{{generator}}.h5ad",
    params:
        spec=lambda wc: SYNTHETIC["generators"][wc.generator],
        settings=SYNTHETIC_SETTINGS,
    log:
        "logs/{dataset}/{mode}/synthetic/fold{fold}/{generator}.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/synthetic/fold{fold}/{generator}.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../../scripts/synthesize.py"


rule evaluate_synthetic:
    wildcard_constraints:
        mode="LCO|LTO",
        generator=models_pattern(list(SYNTHETIC["generators"])),
    input:
        unpack(fold_features),
        synthetic=f"{SYNTHETIC_DIR}/fold{{fold}}/{{generator}}.h5ad",
        response="results/{dataset}/data/response.parquet",
        splits="results/{dataset}/splits/{mode}.tsv",
        meta="results/{dataset}/data/dataset.json",
        drugs="results/{dataset}/data/drugs.tsv",
    output:
        metrics=f"{SYNTHETIC_DIR}/fold{{fold}}/{{generator}}_metrics.json",
        predictions=f"{SYNTHETIC_DIR}/fold{{fold}}/{{generator}}_utility.parquet",
    params:
        settings=SYNTHETIC_SETTINGS,
        utility_spec=lambda wc: config["models"][SYNTHETIC["utility_model"]],  # defined: checked when generators are set
    log:
        "logs/{dataset}/{mode}/synthetic/fold{fold}/{generator}_evaluate.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/synthetic/fold{fold}/{generator}_evaluate.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/evaluate_synthetic.py"


rule synthetic_report:
    wildcard_constraints:
        mode="LCO|LTO",
    input:
        unpack(synthetic_report_inputs),
    output:
        summary=f"{SYNTHETIC_DIR}/summary.tsv",
        by_fold=f"{SYNTHETIC_DIR}/by_fold.tsv",
        augmentation=f"{SYNTHETIC_DIR}/augmentation.tsv",
        overlays=f"{SYNTHETIC_DIR}/overlays.png",
        report=report(f"{SYNTHETIC_DIR}/report.html", caption="../report/synthetic.rst", category="{dataset} {mode}",
                      labels={"page": "synthetic cell lines"}),
    params:
        settings=SYNTHETIC_SETTINGS,
    log:
        "logs/{dataset}/{mode}/synthetic/report.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/synthetic/report.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/synthetic_report.py"
