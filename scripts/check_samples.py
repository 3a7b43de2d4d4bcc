"""Rule check_samples_<set>: a held-out check's predictions against the held-out cell lines' hidden responses."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.samples:check_samples", sm.input, dict(sm.output), min_samples=sm.params.min_pairs,
          bootstrap_samples=sm.params.bootstrap_samples, seed=sm.params.seed)
