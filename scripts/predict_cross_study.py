"""Rule predict_cross_study_<dataset>: one model's cell-blind fold models predict every target data set."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.cross_study:predict_cross_study", sm.input, folds=sm.params.folds, spec=sm.params.spec,
          outputs=dict(sm.output))
