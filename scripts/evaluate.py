"""Rule evaluate: per-drug and pooled metrics of every model against the mean-effects baseline."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import evaluate  # noqa: E402

evaluate(snakemake.input, snakemake.output, models=snakemake.params.models,  # noqa: F821
         baseline=snakemake.params.baseline, min_pairs=snakemake.params.min_pairs,  # noqa: F821
         title=f"{snakemake.wildcards.dataset} {snakemake.wildcards.mode}")  # noqa: F821
