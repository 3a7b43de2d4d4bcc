"""Rule cross_study_table: the N x N table of training against test data sets."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import cross_study_table  # noqa: E402

cross_study_table(snakemake.input, snakemake.output, metric=snakemake.params.metric)  # noqa: F821
