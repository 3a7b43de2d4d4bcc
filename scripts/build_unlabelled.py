"""Rule build_unlabelled_<name>: the omics of the cell lines that the data set's screen never measured."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.unlabelled:build", sm.input, sm.params.source_type, sm.params.dataset, dict(sm.output))
