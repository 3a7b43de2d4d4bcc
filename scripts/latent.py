"""Rule latent: per model with a latent space, the latent means of every fold, the UMAP of fold 0 and the
training history over folds."""

from drp.workflow import run_stage

sm = snakemake  # noqa: F821 (Snakemake injects `snakemake`)

run_stage(sm, "drp.stages.latent:latent", sm.input, dict(sm.output), seed=sm.params.seed,
          title=f"{sm.wildcards.dataset} {sm.wildcards.mode}")
