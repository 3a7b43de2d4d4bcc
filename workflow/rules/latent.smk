# Models with a latent space, one job per data set and split mode: the latent means of every cell line of
# every fold (test cell lines encoded by the fold model that never saw them), a UMAP of fold 0 coloured by
# tissue, and the training history across folds.
rule latent:
    input:
        unpack(latent_inputs),
    output:
        **{input_names.model_fold_output(fold, model, "latent"): f"results/{{dataset}}/{{mode}}/fold{fold}/{model}/latent.h5ad"
           for model in LATENT_RUN_MODELS for fold in FOLDS},
        **{input_names.model_output(model, "umap"): report(
            f"results/{{dataset}}/{{mode}}/report/{model}_latent_umap.png",
            caption="../report/latent_umap.rst",
            category="{dataset} {mode}",
            labels={"figure": f"{model} latent space"},
        ) for model in LATENT_RUN_MODELS},
        **{input_names.model_output(model, "history"): report(
            f"results/{{dataset}}/{{mode}}/report/{model}_training_history.png",
            caption="../report/training_history.rst",
            category="{dataset} {mode}",
            labels={"figure": f"{model} training history"},
        ) for model in LATENT_RUN_MODELS},
    params:
        seed=config["seed"],
    log:
        "logs/{dataset}/{mode}/latent.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/latent.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../../scripts/latent.py"
