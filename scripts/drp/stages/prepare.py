"""Preparation stages: the split table, per-fold feature preprocessing, and drug-perturbation pairs."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..dataset import read_cell_lines, read_drugs, read_response, read_view
from ..io import write_h5ad, write_table
from ..splits import make_splits, read_splits, splits_from_file

log = logging.getLogger(__name__)


def split_dataset(response_path, cell_lines_path, output, mode: str, n_folds: int, seed: int,
                  validation_fraction: float | None = 0.2, repeats: int = 1, table=None) -> None:
    """The split table, generated, or from ``table`` (a user's test folds, ``splits.<mode>.file``)."""
    response = read_response(response_path)
    tissue = read_cell_lines(cell_lines_path)["tissue"]
    if table is not None:
        splits = splits_from_file(response, tissue, mode, table, n_folds, seed, validation_fraction, repeats)
    else:
        splits = make_splits(response, tissue, mode, n_folds, seed, validation_fraction, repeats)
    log.info("%s: %d pairs x %d repeats in %d folds of sizes %s; validation %s", mode, len(response), repeats,
             n_folds * repeats,
             splits.groupby("fold").size().tolist(),
             f"{splits['inner'].nunique()} inner folds" if "inner" in splits else "the next outer fold")
    write_table(output, splits)


def preprocess_views(view_paths: Mapping, splits_path, fold: int, settings: Mapping, outputs: Mapping) -> None:
    """Fit and apply each view's preprocessing (``settings[view]``) on the fold's training cell lines."""
    from ..features import fit_transform_view, training_cell_lines

    train_cells = training_cell_lines(read_splits(splits_path), fold)
    for name, path in view_paths.items():
        view = read_view(path)
        processed = fit_transform_view(view, train_cells, **settings.get(name, {}))
        if processed.n_vars == 0:  # a model would fit on nothing and fail later with a message naming neither
            raise ValueError(f"{path}: view {name!r} has no feature that varies among the {len(train_cells)} training "
                             f"cell lines of fold {fold} (constant or missing values only); remove the view from "
                             "the data set's views or fix the file")
        log.info("%s: kept %d of %d features, fitted on %d training cell lines", name, processed.n_vars,
                 view.n_vars, len(train_cells))
        write_h5ad(outputs[name], processed)


def build_perturbations(paths: Mapping, settings: Mapping, output) -> None:
    """The rule's stage: LINCS pairs for the data set's cell lines and drugs, X = treated, layers["control"].

    ``paths``: ``gctx``, ``gene_info``, ``inst_info`` (level 3) or ``sig_info`` (level 5), ``cell_lines``,
    ``drugs`` and, optionally, the data set's raw ``expression`` view, to record how many of the kept
    LINCS genes it has (``uns["lincs"]["genes_in_expression_view"]``).
    """
    import anndata as ad

    from ..sources.lincs import build_level3_pairs, build_perturbation_pairs, perturbation_level

    level = perturbation_level(settings, paths)
    cell_lines = read_cell_lines(paths["cell_lines"]).index
    drugs = read_drugs(paths["drugs"])["drug"]
    common = dict(pert_time=settings.get("pert_time", 6), control_type=settings.get("control_type", "ctl_vehicle"),
                  landmark_only=settings.get("landmarks_only", True))
    if level == 3:
        control, treated, _ = build_level3_pairs(paths["gctx"], paths["inst_info"], paths["gene_info"], cell_lines,
                                                 drugs, fallback_across_plates=settings.get("fallback_across_plates",
                                                                                            False), **common)
    elif level == 5:
        control, treated, _ = build_perturbation_pairs(paths["gctx"], paths["sig_info"], paths["gene_info"],
                                                       cell_lines, drugs, **common)
    else:
        raise ValueError(f"perturbations.level: {level!r}; expected 3 (inst_info) or 5 (sig_info)")
    if "expression" in paths.keys():
        expression_genes = ad.read_h5ad(paths["expression"], backed="r").var_names
        shared = int(treated.var_names.isin(expression_genes).sum())
        treated.uns["lincs"]["genes_in_expression_view"] = shared
        log.info("LINCS: %d of the %d kept genes are features of the expression view (%s)", shared,
                 treated.n_vars, paths["expression"])
    treated.layers["control"] = control.X
    write_h5ad(output, treated)


def build_dataset(inputs: Mapping, source_type: str, spec: dict, output_dir) -> None:
    """A source's files (and its omics source's, named by ``input_names.omics``) -> the canonical data set.
    Inputs named ``download_manifest*`` are the sources' manifests: every downloaded file is checked against
    the checksum recorded there before it is read (``verify_downloaded``)."""
    from ..acquire.fetch import verify_downloaded
    from ..input_names import split_omics
    from ..sources import builder

    inputs = dict(inputs)
    manifests = [inputs.pop(key) for key in sorted(inputs) if key.startswith("download_manifest")]
    for manifest in manifests:
        verify_downloaded(manifest, inputs.values())
    files, omics_files = split_omics(inputs)
    builder(source_type)(files, spec, omics_files=omics_files).write(output_dir)


def build_folder_dataset(inputs: Mapping, spec: dict, output_dir) -> None:
    """A plug-in folder -> the canonical data set; everything is read and checked before the first output is
    written (each one atomically)."""
    from ..sources.folder import build_from_files

    build_from_files(dict(inputs), spec).write(output_dir)


def drug_fingerprints(drugs_path, settings: dict, output) -> None:
    """Morgan fingerprints (RDKit) of every drug of the data set."""
    from ..drug_features import morgan_fingerprints

    write_h5ad(output, morgan_fingerprints(read_drugs(drugs_path), **settings))
