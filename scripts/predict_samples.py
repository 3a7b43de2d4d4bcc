"""Rule predict_samples_<set>: a sample set through its data set's final models: predictions with intervals,
p(sensitive), OOD flags and explanations, the latent panel and the report page."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.samples:predict_samples", sm.input, sample_set=sm.rule.removeprefix("predict_samples_"),
          spec=sm.params.spec, models=sm.params.models, settings=sm.params.settings, outputs=dict(sm.output))
