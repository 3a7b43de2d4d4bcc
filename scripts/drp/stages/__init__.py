"""The stage functions behind the rule scripts, one module per stage of the DAG:

- ``prepare``: splits, per-fold feature preprocessing, perturbation pairs
- ``train``: fit one model on one outer fold (with hyperparameter selection), then, with the model still in
  memory, its test-fold predictions, view randomization and latent space
- ``evaluate``: per split mode, metrics, paired tests, ranking, tuning record, view randomization, plots
- ``cross_study``: fold models of one data set predict another; the cross-study table
- ``latent``: latent export and the latent-space figures

Each takes plain paths (``paths`` are mappings with the rule's input names, see ``drp.input_names``), so a
job can be replayed outside Snakemake with a plain dict. Heavy libraries are imported by the stage that
uses them, so a job pays only for what it runs.
"""
