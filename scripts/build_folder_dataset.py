"""Rule build_dataset_<name> of a plug-in data set: check the folder's files and write the canonical data set."""

from pathlib import Path

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.sources.folder import build_from_files  # noqa: E402

# Everything is read and checked before the first output is written (each one atomically).
dataset = build_from_files(dict(snakemake.input), snakemake.params.dataset)  # noqa: F821
dataset.write(Path(snakemake.output.meta).parent)  # noqa: F821
