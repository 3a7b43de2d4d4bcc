"""Rule evaluate: metrics, paired tests, ranking, tuning record, view randomization and figures of one split mode."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.evaluate:evaluate", sm.input, dict(sm.output), models=sm.params.models,
          baseline=sm.params.baseline, naive_baseline=sm.params.naive_baseline, baselines=sm.params.baselines, controls=sm.params.controls,
          metric=sm.params.metric, min_pairs=sm.params.min_pairs, alpha=sm.params.alpha,
          title=f"{sm.wildcards.dataset} {sm.wildcards.mode}", bootstrap_samples=sm.params.bootstrap_samples,
          seed=sm.params.seed)
