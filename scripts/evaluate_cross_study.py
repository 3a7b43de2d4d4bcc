"""Rule evaluate_cross_study: per-drug metrics of every model on the target data set."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.cross_study:evaluate_cross_study", sm.input, sm.output, models=sm.params.models,
          baseline=sm.params.baseline, naive_baseline=sm.params.naive_baseline, min_pairs=sm.params.min_pairs,
          baselines=sm.params.baselines, bootstrap_samples=sm.params.bootstrap_samples, seed=sm.params.seed)
