"""Rule train / train_gpu: fit one model on one outer fold (choosing among its grid candidates on the
validation fold), then write its test predictions and view-randomization predictions."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.train:train", sm.input, fold=int(sm.wildcards.fold), spec=sm.params.spec, seed=sm.params.seed,
          threads=sm.threads, outputs=dict(sm.output), refit=sm.params.refit)
