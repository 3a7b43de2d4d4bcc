"""Rule export_latent: encode every cell line of a fold with a trained model that has a latent space."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import export_latent  # noqa: E402

export_latent(snakemake.input, spec=snakemake.params.spec, output=snakemake.output[0])  # noqa: F821
