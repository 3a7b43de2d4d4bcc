"""Rule features: select and scale one view's features on the fold's training cell lines."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import preprocess_view  # noqa: E402

preprocess_view(
    snakemake.input.view,  # noqa: F821
    snakemake.input.splits,  # noqa: F821
    fold=int(snakemake.wildcards.fold),  # noqa: F821
    settings=snakemake.params.settings,  # noqa: F821
    output=snakemake.output[0],  # noqa: F821
)
