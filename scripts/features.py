"""Rule features_<name>: select and scale every view's features on the fold's training cell lines."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.prepare:preprocess_views", {view: sm.input[view] for view in sm.params.settings},
          sm.input.splits, fold=int(sm.wildcards.fold), settings=sm.params.settings,
          outputs={view: sm.output[view] for view in sm.params.settings})
