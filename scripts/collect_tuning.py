"""Rule collect_tuning: every model's hyperparameter candidates, validation MSE and choice per fold."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import collect_tuning  # noqa: E402

collect_tuning(snakemake.input, snakemake.output[0])  # noqa: F821
