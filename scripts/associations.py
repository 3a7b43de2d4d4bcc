"""Rule associations_<ds>: GDSC's per-feature association test (response ~ tissue + feature, per drug, BH FDR)."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.biomarkers:associations", sm.input, dict(sm.output), min_cell_lines=sm.params.min_cell_lines,
          min_positive=sm.params.min_positive, fdr=sm.params.fdr)
