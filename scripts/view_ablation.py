"""Rule view_ablation: test predictions with each omics view shuffled across the test cell lines."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import view_ablation  # noqa: E402

view_ablation(snakemake.input, folds=snakemake.params.folds, spec=snakemake.params.spec,
              seed=snakemake.params.seed, output=snakemake.output[0])  # noqa: F821
