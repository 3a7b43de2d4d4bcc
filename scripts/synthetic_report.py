"""Rule synthetic_report: every generator's fidelity, utility and privacy over folds, and the page."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.synthetic:synthetic_report", sm.input,
          settings=dict(sm.params.settings),
          title=f"{sm.wildcards.dataset} {sm.wildcards.mode}", outputs=dict(sm.output))
