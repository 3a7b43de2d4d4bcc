"""Rule build_perturbations_<name>: LINCS L1000 (control, treated) pairs for a data set's cell lines and drugs."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import build_perturbations  # noqa: E402

build_perturbations(snakemake.input, snakemake.params.settings, snakemake.output[0])  # noqa: F821
