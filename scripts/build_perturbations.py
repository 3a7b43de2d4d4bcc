"""Rule build_perturbations_<name>: LINCS L1000 (control, treated) pairs for a data set's cell lines and drugs
(level 3 with inst_info, plate-matched; level 5 with sig_info)."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.prepare:build_perturbations", sm.input, sm.params.settings, sm.output[0])
