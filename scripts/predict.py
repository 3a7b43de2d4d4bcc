"""Rule predict: predict the test pairs of one outer fold with a trained model."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import predict  # noqa: E402

predict(
    snakemake.input,  # noqa: F821
    fold=int(snakemake.wildcards.fold),  # noqa: F821
    spec=snakemake.params.spec,  # noqa: F821
    output=snakemake.output[0],  # noqa: F821
)
