"""Rule build_holdout_<set>: a data set without the held-out cell lines, and those lines as a sample folder
with their responses kept apart."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.samples:build_holdout", sm.input, holdout=sm.params.holdout,
          sample_set=sm.params.sample_set, outputs=dict(sm.output))
