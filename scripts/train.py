"""Rule train: fit one model on one outer fold's training pairs and save it."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import train  # noqa: E402

train(
    snakemake.input,  # noqa: F821
    fold=int(snakemake.wildcards.fold),  # noqa: F821
    spec=snakemake.params.spec,  # noqa: F821
    seed=snakemake.params.seed,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    output_dir=snakemake.output[0],  # noqa: F821
)
