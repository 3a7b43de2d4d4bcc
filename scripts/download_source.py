"""Rule download_<source>: fetch the pinned files of one source, verify them, extract the archives it names,
write the manifest. Files come from the download cache ($DRP_DOWNLOAD_CACHE, default resources/.cache)
when a verified copy is there."""

import sys

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

# Progress bars only on a terminal; redirected to a file they would be a wall of carriage returns.
run_stage(sm, "drp.acquire.fetch:fetch_source", sm.params.source, dict(sm.output), sm.output.manifest,
          progress=sys.stderr.isatty())
