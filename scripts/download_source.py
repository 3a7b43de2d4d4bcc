"""Rule download_<source>: fetch the pinned files of one source, verify them, extract the archives it names,
write the manifest. Files come from the download cache ($DRP_DOWNLOAD_CACHE, default resources/.cache)
when a verified copy is there."""

import sys

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.sources.fetch import fetch_source  # noqa: E402

# Progress bars only on a terminal; redirected to a file they would be a wall of carriage returns.
fetch_source(snakemake.params.source, dict(snakemake.output), snakemake.output.manifest,  # noqa: F821
             progress=sys.stderr.isatty())
