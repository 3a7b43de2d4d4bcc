"""Rule build_dataset_<name> of a plug-in data set: check the folder's files and write the canonical data set."""

from pathlib import Path

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.prepare:build_folder_dataset", sm.input, sm.params.dataset, Path(sm.output.meta).parent)
