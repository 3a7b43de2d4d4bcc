"""Rule train_final / train_final_gpu: a data set's final model on all its cell lines, its calibration for new
samples and its model card."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.final:train_final", sm.input, model_name=sm.wildcards.model, dataset=sm.wildcards.dataset,
          spec=sm.params.spec, seed=sm.params.seed, threads=sm.threads, settings=sm.params.settings,
          outputs=dict(sm.output), refit=sm.params.refit)
