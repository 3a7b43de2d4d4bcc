# Biomarkers (README, "Biomarkers"; drp.biomarkers, drp.associations): GDSC's association test per data set,
# and per model the out-of-fold attributions of its cell-blind fold models, aggregated per drug and checked
# against the drugs' putative targets (config `biomarkers`; nothing runs while biomarkers.models is empty).
BIOMARKERS = config["biomarkers"]
DRUG_TARGETS = str(Path(workflow.basedir) / BIOMARKERS["targets"])

# One job per data set: response ~ tissue + feature for every drug and raw feature.
for _dataset, _spec in config["datasets"].items():

    rule:
        name:
            f"associations_{_dataset}"
        input:
            **{view: f"results/{_dataset}/data/{view}.h5ad" for view in _spec["views"]},
            response=f"results/{_dataset}/data/response.parquet",
            cell_lines=f"results/{_dataset}/data/cell_lines.tsv",
        output:
            table=f"results/{_dataset}/biomarkers/associations.parquet",
            volcano=report(f"results/{_dataset}/biomarkers/volcano.png", caption="../report/volcano.rst",
                           category=f"{_dataset} biomarkers"),
        params:
            min_cell_lines=BIOMARKERS["min_cell_lines"],
            min_positive=BIOMARKERS["min_positive"],
            fdr=BIOMARKERS["fdr"],
        log:
            f"logs/{_dataset}/biomarkers/associations.log",
        benchmark:
            f"benchmarks/{_dataset}/biomarkers/associations.tsv"
        conda:
            "../../envs/evaluate.yaml"
        script:
            "../../scripts/associations.py"


# The heavy part, a job of its own: every fold model explains its own test cell lines (integrated gradients for
# the neural models). Cell- or tissue-blind folds only, where no test cell line trained.
rule biomarker_attributions:
    wildcard_constraints:
        mode="LCO|LTO",
    input:
        unpack(cross_study_model_inputs),
        drug_features="results/{dataset}/data/drug_fingerprints.h5ad",
        response="results/{dataset}/data/response.parquet",
        splits="results/{dataset}/splits/{mode}.tsv",
    output:
        by_fold="results/{dataset}/{mode}/biomarkers/{model}/by_fold.parquet",
    params:
        folds=FOLDS,
        explain_steps=BIOMARKERS["explain_steps"],
    log:
        "logs/{dataset}/{mode}/biomarkers/{model}_attributions.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/biomarkers/{model}_attributions.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../../scripts/biomarker_attributions.py"


# Aggregation, stability, target enrichment against its permutation null, canonical biomarkers and the page.
rule biomarkers:
    wildcard_constraints:
        mode="LCO|LTO",
    input:
        by_fold="results/{dataset}/{mode}/biomarkers/{model}/by_fold.parquet",
        splits="results/{dataset}/splits/{mode}.tsv",
        targets=DRUG_TARGETS,
        associations="results/{dataset}/biomarkers/associations.parquet",
        volcano="results/{dataset}/biomarkers/volcano.png",
    output:
        importance="results/{dataset}/{mode}/biomarkers/{model}/importance.parquet",
        stability="results/{dataset}/{mode}/biomarkers/{model}/stability.tsv",
        enrichment="results/{dataset}/{mode}/biomarkers/{model}/enrichment.tsv",
        canonical="results/{dataset}/{mode}/biomarkers/{model}/canonical.tsv",
        summary="results/{dataset}/{mode}/biomarkers/{model}/summary.json",
        report=report("results/{dataset}/{mode}/biomarkers/{model}/report.html", caption="../report/biomarkers.rst",
                      category="{dataset} {mode}", labels={"model": "{model}", "page": "biomarkers"}),
    params:
        settings={key: BIOMARKERS[key] for key in ("null_permutations", "top")} | {"seed": config["seed"]},
    log:
        "logs/{dataset}/{mode}/biomarkers/{model}.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/biomarkers/{model}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/biomarkers.py"


rule biomarker_table:
    input:
        unpack(lambda wc: {model: f"results/{wc.dataset}/{wc.mode}/biomarkers/{model}/summary.json"
                           for model in BIOMARKERS["models"]}),
    output:
        table="results/{dataset}/{mode}/biomarkers/summary.tsv",
    log:
        "logs/{dataset}/{mode}/biomarkers/summary.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/biomarkers/summary.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/biomarker_table.py"
