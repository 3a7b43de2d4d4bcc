"""Rule evaluate_view_ablation: per-drug Pearson with each omics view shuffled, per model."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import evaluate_view_ablation  # noqa: E402

evaluate_view_ablation(snakemake.input, models=snakemake.params.models,
                       min_pairs=snakemake.params.min_pairs, output=snakemake.output[0])  # noqa: F821
