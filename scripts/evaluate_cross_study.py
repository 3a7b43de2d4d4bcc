"""Rule evaluate_cross_study: per-drug metrics of every model on the target data set."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import evaluate_cross_study  # noqa: E402

evaluate_cross_study(snakemake.input, snakemake.output, models=snakemake.params.models,
                     baseline=snakemake.params.baseline, min_pairs=snakemake.params.min_pairs)  # noqa: F821
