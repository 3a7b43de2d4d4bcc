"""Rule biomarker_attributions: every fold model's attributions on its own test cell lines, per drug and feature."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.biomarkers:attributions", sm.input, model_name=sm.wildcards.model, folds=sm.params.folds,
          explain_steps=sm.params.explain_steps, outputs=dict(sm.output))
