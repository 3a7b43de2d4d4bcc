"""Rule make_splits: assign every (cell line, drug) pair to one test fold."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.prepare:split_dataset", sm.input.response, sm.input.cell_lines, sm.output[0],
          mode=sm.wildcards.mode, n_folds=sm.params.n_folds, seed=sm.params.seed,
          validation_fraction=sm.params.validation_fraction, repeats=sm.params.repeats,
          table=sm.input.get("table"))
