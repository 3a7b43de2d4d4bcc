"""Rule biomarkers: one model's attributions aggregated per drug, their stability, the drugs' known targets and
the canonical biomarkers, with its report page."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.biomarkers:biomarkers", sm.input, model_name=sm.wildcards.model,
          settings=sm.params.settings, outputs=dict(sm.output))
