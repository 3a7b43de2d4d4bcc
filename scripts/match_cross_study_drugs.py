"""Rule match_cross_study_drugs: which drugs of a target data set are the training data set's drugs."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.cross_study:match_cross_study_drugs", sm.input, sm.output)
