# Neural models: the latent space of every cell line (test cell lines encoded after training), a UMAP of
# it coloured by tissue, and the training history across folds.
rule export_latent:
    input:
        unpack(fold_features),
        model="results/{dataset}/{mode}/fold{fold}/{model}/model",
    output:
        "results/{dataset}/{mode}/fold{fold}/{model}/latent.h5ad",
    params:
        spec=model_spec,
    log:
        "logs/{dataset}/{mode}/fold{fold}/export_latent_{model}.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/fold{fold}/export_latent_{model}.tsv"
    conda:
        "../../envs/models.yaml"
    script:
        "../../scripts/export_latent.py"


rule plot_latent:
    input:
        "results/{dataset}/{mode}/fold0/{model}/latent.h5ad",
    output:
        report(
            "results/{dataset}/{mode}/report/{model}_latent_umap.png",
            caption="../report/latent_umap.rst",
            category="{dataset} {mode}",
            labels={"figure": "{model} latent space"},
        ),
    params:
        seed=config["seed"],
    log:
        "logs/{dataset}/{mode}/plot_latent_{model}.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/plot_latent_{model}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/plot_latent.py"


rule plot_training_history:
    input:
        models=expand("results/{{dataset}}/{{mode}}/fold{fold}/{{model}}/model", fold=FOLDS),
    output:
        report(
            "results/{dataset}/{mode}/report/{model}_training_history.png",
            caption="../report/training_history.rst",
            category="{dataset} {mode}",
            labels={"figure": "{model} training history"},
        ),
    log:
        "logs/{dataset}/{mode}/plot_training_history_{model}.log",
    benchmark:
        "benchmarks/{dataset}/{mode}/plot_training_history_{model}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../scripts/plot_training_history.py"
