# One job per data set and fold (a single start-up for all views): feature selection and scaling of every
# view, fitted on the fold's training cell lines. Generated per data set because its views come from config.
for _dataset, _spec in config["datasets"].items():

    rule:
        name:
            f"features_{_dataset}"
        input:
            **{view: f"results/{_dataset}/data/{view}.h5ad" for view in _spec["views"]},
            splits=f"results/{_dataset}/splits/{{mode}}.tsv",
        output:
            **{view: f"results/{_dataset}/{{mode}}/fold{{fold}}/features/{view}.h5ad" for view in _spec["views"]},
        params:
            settings={view: config["features"].get(view, {}) for view in _spec["views"]},
        log:
            f"logs/{_dataset}/{{mode}}/fold{{fold}}/features.log",
        benchmark:
            f"benchmarks/{_dataset}/{{mode}}/fold{{fold}}/features.tsv"
        conda:
            "../../envs/data.yaml"
        script:
            "../../scripts/features.py"


# Morgan fingerprints of the data set's drugs (RDKit): a fixed function of the structure, fitted on
# nothing, so one file serves every split; models that select bits do so on their training drugs.
rule drug_fingerprints:
    input:
        "results/{dataset}/data/drugs.tsv",
    output:
        "results/{dataset}/data/drug_fingerprints.h5ad",
    params:
        settings=config["drug_features"],
    log:
        "logs/{dataset}/drug_fingerprints.log",
    benchmark:
        "benchmarks/{dataset}/drug_fingerprints.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/drug_fingerprints.py"
