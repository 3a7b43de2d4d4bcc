"""Rule evaluate_synthetic: fidelity, privacy and utility of one generator's synthetic cell lines of one fold."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.synthetic:evaluate_synthetic", sm.input, int(sm.wildcards.fold), sm.wildcards.generator,
          settings=dict(sm.params.settings), utility_spec=dict(sm.params.utility_spec), outputs=dict(sm.output))
