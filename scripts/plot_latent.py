"""Rule plot_latent: UMAP of a model's latent space, coloured by tissue."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.plots import latent_umap  # noqa: E402

latent_umap(snakemake.input[0], snakemake.output[0], seed=snakemake.params.seed,  # noqa: F821
            title=f"{snakemake.wildcards.model}: latent space, {snakemake.wildcards.dataset} "  # noqa: F821
                  f"{snakemake.wildcards.mode} fold 0")  # noqa: F821
