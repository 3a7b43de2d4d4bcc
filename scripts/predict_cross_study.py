"""Rule predict_cross_study: a source fold model predicts the target data set's cell lines assigned to it."""

from drp.workflow import setup_logging

setup_logging(snakemake)  # noqa: F821 (Snakemake injects `snakemake`)

from drp.pipeline import predict_cross_study  # noqa: E402

predict_cross_study(snakemake.input, folds=snakemake.params.folds, spec=snakemake.params.spec,
                    output=snakemake.output[0])  # noqa: F821
