"""Rule drug_fingerprints: Morgan fingerprints of every drug of a data set (RDKit)."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.prepare:drug_fingerprints", sm.input[0], sm.params.settings, sm.output[0])
