"""Rule build_dataset_<name>: turn a source's files into the canonical data set."""

from pathlib import Path

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.sources import builder  # noqa: E402

build = builder(snakemake.params.source_type)  # noqa: F821
dataset = build(dict(snakemake.input), snakemake.params.dataset)  # noqa: F821
dataset.write(Path(snakemake.output.meta).parent)  # noqa: F821
