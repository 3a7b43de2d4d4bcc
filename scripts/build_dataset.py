"""Rule build_dataset_<name>: turn a source's files into the canonical data set."""

from pathlib import Path

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.sources import builder, split_inputs  # noqa: E402

build = builder(snakemake.params.source_type)  # noqa: F821
files, omics_files = split_inputs(dict(snakemake.input))  # noqa: F821 (omics__<key>: the omics source's files)
dataset = build(files, snakemake.params.dataset, omics_files=omics_files)  # noqa: F821
dataset.write(Path(snakemake.output.meta).parent)  # noqa: F821
