"""Rule plot_metrics: per-drug metric distributions and predicted-vs-observed plots."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import plot_metrics  # noqa: E402

plot_metrics(snakemake.input, snakemake.output,  # noqa: F821
             title=f"{snakemake.wildcards.dataset} {snakemake.wildcards.mode}")  # noqa: F821
