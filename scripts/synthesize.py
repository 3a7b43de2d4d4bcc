"""Rule synthesize: one generator's synthetic cell lines of one fold, from its training cell lines only."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.synthetic:synthesize", sm.input, int(sm.wildcards.fold), sm.wildcards.generator,
          spec=dict(sm.params.spec), settings=dict(sm.params.settings), output=sm.output.synthetic)
