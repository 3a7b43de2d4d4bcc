"""Rule make_splits: assign every (cell line, drug) pair to one test fold."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import split_dataset  # noqa: E402

split_dataset(
    snakemake.input.response,  # noqa: F821
    snakemake.input.cell_lines,  # noqa: F821
    snakemake.output[0],  # noqa: F821
    mode=snakemake.wildcards.mode,  # noqa: F821
    n_folds=snakemake.params.n_folds,  # noqa: F821
    seed=snakemake.params.seed,  # noqa: F821
)
