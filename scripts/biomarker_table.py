"""Rule biomarker_table: the models' target enrichment against its null, stability and canonical biomarkers."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.biomarkers:biomarker_table", dict(sm.input), dict(sm.output))
