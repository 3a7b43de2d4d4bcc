"""Rule final_features_<name>: select and scale every view's features on all cell lines of the data set."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.final:final_features", {view: sm.input[view] for view in sm.params.settings},
          settings=sm.params.settings, outputs={view: sm.output[view] for view in sm.params.settings})
