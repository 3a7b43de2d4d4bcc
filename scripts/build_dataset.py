"""Rule build_dataset_<name>: turn a source's files into the canonical data set."""

from pathlib import Path

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.prepare:build_dataset", sm.input, sm.params.source_type, sm.params.dataset,
          Path(sm.output.meta).parent)
