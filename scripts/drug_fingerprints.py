"""Rule drug_fingerprints: Morgan fingerprints of every drug of a data set (RDKit)."""

import pandas as pd

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.drug_features import morgan_fingerprints  # noqa: E402
from drp.io import write_h5ad  # noqa: E402

drugs = pd.read_csv(snakemake.input[0], sep="\t", dtype=str, keep_default_na=False)  # noqa: F821
write_h5ad(snakemake.output[0], morgan_fingerprints(drugs, **snakemake.params.settings))  # noqa: F821
