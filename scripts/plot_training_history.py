"""Rule plot_training_history: training loss and validation score per epoch, for every fold."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.plots import training_history  # noqa: E402

training_history(list(snakemake.input.models), snakemake.output[0],  # noqa: F821
                 title=f"{snakemake.wildcards.model}: {snakemake.wildcards.dataset} {snakemake.wildcards.mode}")  # noqa: F821
