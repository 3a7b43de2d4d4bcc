"""Rule download_<source>: fetch the pinned files of one source, verify them, write the manifest."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.sources.fetch import fetch_source  # noqa: E402

fetch_source(snakemake.params.source, dict(snakemake.output), snakemake.output.manifest)  # noqa: F821
