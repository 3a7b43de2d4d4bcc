"""Rule statistics: paired tests against the best baseline, critical-difference ranking, per-drug heatmap.

(Not named statistics.py: Snakemake puts this folder on sys.path, where it would shadow the standard library.)
"""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import statistics  # noqa: E402

statistics(snakemake.input, snakemake.output, baselines=snakemake.params.baselines,
           controls=snakemake.params.controls, metric=snakemake.params.metric, min_pairs=snakemake.params.min_pairs,
           alpha=snakemake.params.alpha, title=f"{snakemake.wildcards.dataset} {snakemake.wildcards.mode}")  # noqa: F821
