"""Rule biomarkers: one model's out-of-fold attributions per drug, their stability and the drugs' known targets."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.biomarkers:biomarkers", sm.input, model_name=sm.wildcards.model, folds=sm.params.folds,
          settings=sm.params.settings, outputs=dict(sm.output))
