"""Rule cross_study_table: the N x N table of training against test data sets."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.cross_study:cross_study_table", sm.input, sm.output, metric=sm.params.metric)
