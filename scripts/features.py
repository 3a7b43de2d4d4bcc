"""Rule features_<name>: select and scale every view's features on the fold's training cell lines."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import preprocess_views  # noqa: E402

preprocess_views(
    {view: snakemake.input[view] for view in snakemake.params.settings},  # noqa: F821
    snakemake.input.splits,  # noqa: F821
    fold=int(snakemake.wildcards.fold),  # noqa: F821
    settings=snakemake.params.settings,  # noqa: F821
    outputs={view: snakemake.output[view] for view in snakemake.params.settings},  # noqa: F821
)
