"""Training stage: fit one model on one outer fold, choosing among its grid candidates on the validation
fold, then, while the model is in memory, write the fold's test predictions and the view-randomization
predictions. Doing it in the training job saves two job start-ups and model reloads per (model, fold)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .. import input_names, unlabelled
from ..dataset import read_drugs, read_meta, read_response, read_view
from ..models import catalog, resolve
from ..models.base import CellLineData, TrainingData
from ..models.selection import fit_best, grid_candidates, permute_within_drug
from ..models.selection import refit as refit_model
from ..splits import TRAIN, VALIDATION, fold_roles, fold_table, read_splits

log = logging.getLogger(__name__)


def fold_pairs(paths: Mapping, fold: int) -> pd.DataFrame:
    """Response pairs with their role (train / validation / test) in outer fold ``fold``."""
    response = read_response(paths["response"])
    splits = fold_table(read_splits(paths["splits"]), fold)
    pairs = response.merge(splits, on=["cell_line", "drug"], how="inner", validate="one_to_one")
    if len(pairs) != len(response):
        raise ValueError(f"{paths['splits']}: assigns {len(pairs)} of the {len(response)} response pairs")
    pairs["role"] = fold_roles(pairs, fold).to_numpy()
    return pairs


def cell_line_data(paths: Mapping) -> CellLineData:
    """The fold's preprocessed views (inputs ``features_<view>``), tissue labels and drug fingerprints."""
    views = {name: read_view(path) for name, path in input_names.views(paths).items()}
    tissue = next(iter(views.values())).obs["tissue"].astype(str)
    drug_features = read_view(paths["drug_features"]) if "drug_features" in paths.keys() else None
    return CellLineData(views, tissue, drug_features)


def perturbation_arrays(path, expression, cell_lines) -> dict:
    """Pairs of ``cell_lines`` only, on the fold's expression features (in their order).

    Genes of the fold's features that the perturbation profiles measure are filled; the others are set to
    0, the training mean after scaling. How the values are put on the fold's scale depends on
    ``uns["lincs"]["scale"]`` (drp.sources.lincs):
    - ``"log2"`` (LINCS level 3, log2 expression): the fold's own per-feature scaling, (value - train_mean)
      / train_std of ``expression.var`` and its clip (``expression.uns["clip"]``), as the baseline omics
      had, so x1, x2 and the encoded cell lines share one z-scale. Per-gene offsets between the LINCS and
      the data set's platform remain (equally in x1 and x2); x2 - x1 is a log2 fold change in units of the
      gene's training standard deviation.
    - ``"zscore"`` (LINCS level 5, and files written before the scale was recorded): used as they are;
      they are z-scores against the plate population, the fold's features z-scores against training cell
      lines: both per-gene standardized, not the same reference.
    """
    import anndata as ad

    from ..features import apply_fitted_view

    pairs = read_view(path)
    scale = dict(pairs.uns.get("lincs", {})).get("scale", "zscore")
    if scale not in ("log2", "zscore"):
        raise ValueError(f"{path}: uns['lincs']['scale'] is {scale!r}; expected 'log2' (level 3) or 'zscore' (level 5)")
    pairs = pairs[pairs.obs["cell_line"].isin(set(cell_lines))]
    shared = expression.var_names.intersection(pairs.var_names)
    if len(shared) == 0:
        raise ValueError(f"{path}: no gene in common with the expression features (e.g. {list(expression.var_names[:3])})")
    columns = expression.var_names.get_indexer(shared)
    if scale == "log2":
        missing = [c for c in ("train_mean", "train_std") if c not in expression.var]
        if missing:  # without the fold's statistics log2 values would meet z-scored features unscaled
            raise ValueError(f"{path}: log2 (level-3) pairs need the fold's scaling, but the expression features "
                             f"lack var columns {missing}")
    arrays = {}
    for key, matrix in (("x1", pairs[:, shared].layers["control"]), ("x2", pairs[:, shared].X)):
        values = np.asarray(matrix, dtype=np.float64)
        if scale == "log2":  # the cross-study path's transform, on the genes the profiles measure
            values = apply_fitted_view(ad.AnnData(values, var=pd.DataFrame(index=shared)), expression[:, shared]).X
        full = np.zeros((pairs.n_obs, expression.n_vars), dtype=np.float32)
        full[:, columns] = values
        arrays[key] = full
    log.info("perturbation pairs: %d of training cell lines, %d of %d features measured, %s values%s", pairs.n_obs,
             len(shared), expression.n_vars, scale, " scaled with the fold's train_mean/train_std" if scale == "log2"
             else " used as they are")
    return {**arrays, "drug": pairs.obs["drug"].astype(str).tolist()}


def fit_fold(paths: Mapping, fold: int, spec: dict, seed: int, threads: int, model_dir, cells=None, pairs=None,
             refit: bool = True):
    """Fit one model on a fold and save it to ``model_dir``. With a ``grid`` in the spec, every candidate
    is fitted on the training pairs and the one with the lowest mean squared error on the validation pairs
    is kept, for every model alike: the choice never sees the test fold. With ``refit`` the chosen candidate
    is then fitted on all non-test pairs (``selection.refit``); a single candidate of a model that does not
    use the validation pairs trains on all non-test pairs at once. Returns the fitted model.
    ``cells`` (the fold's ``cell_line_data``, all cell lines) and ``pairs`` (its ``fold_pairs``) may be passed
    in by a caller that needs them too, so they are read once."""
    from threadpoolctl import threadpool_limits

    meta = read_meta(paths["meta"])
    pairs = fold_pairs(paths, fold) if pairs is None else pairs
    columns = ["cell_line", "drug", "response"]
    train_pairs = pairs.loc[pairs.role == TRAIN, columns].reset_index(drop=True)
    validation_pairs = pairs.loc[pairs.role == VALIDATION, columns].reset_index(drop=True)
    with np.errstate(over="ignore"):
        overflowing = ~np.isfinite(np.square(pairs.response.to_numpy(dtype=np.float64)))
    if overflowing.any():  # every squared error, every fit's loss and every validation score would be infinite
        row = pairs[overflowing].iloc[0]
        raise ValueError(f"{paths['response']}: response {float(row.response)!r} of ({row.cell_line}, {row.drug}) and "
                         f"{int(overflowing.sum()) - 1} more cannot be squared in float64 (|response| above ~1e154); "
                         "expected responses on a usual scale (e.g. ln IC50, AUC)")
    if spec.get("permute_labels"):
        # one permutation over all non-test pairs: permuting training and validation pairs apart would keep
        # the difference between their groups' responses (under LTO, whole tissues), which a refit on both
        # learns: a permuted MLP reached a per-drug Pearson of 0.10 on held-out tissues that way
        permuted = permute_within_drug(pd.concat([train_pairs, validation_pairs], ignore_index=True), seed)
        train_pairs, validation_pairs = permuted.iloc[:len(train_pairs)], permuted.iloc[len(train_pairs):]
        train_pairs, validation_pairs = train_pairs.reset_index(drop=True), validation_pairs.reset_index(drop=True)
    model_class = resolve(spec["class"])
    catalog.check_traits(model_class, spec)
    all_pairs = pd.concat([train_pairs, validation_pairs], ignore_index=True)
    if len(grid_candidates(spec)) == 1 and not model_class.uses_validation:
        train_pairs, validation_pairs = all_pairs, validation_pairs.iloc[:0]
    if spec.get("auxiliary_responses"):  # other screens' pairs of training cell lines, as extra drugs
        from .. import auxiliary

        train_pairs, all_pairs = auxiliary.extend_training(paths, spec, pairs, train_pairs, all_pairs,
                                                           fit_on_all=validation_pairs.empty, seed=seed)
    training_cells = sorted(set(train_pairs.cell_line) | set(validation_pairs.cell_line))
    cells = cells or cell_line_data(paths)
    training_data = cells.subset(training_cells)
    drugs = read_drugs(paths["drugs"])
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)

    perturbations = None
    if "perturbations" in paths.keys():  # pairs of training cell lines only: never validation or test ones
        perturbations = perturbation_arrays(paths["perturbations"], training_data.views["expression"], train_pairs.cell_line)

    unlabelled_cells = None
    if spec.get(unlabelled.KEY):  # cell lines without responses, never of this data set or a cross-study target
        if not getattr(model_class, "uses_unlabelled_cell_lines", False):
            raise ValueError(f"{unlabelled.KEY}: model class {spec['class']!r} does not use unlabelled cell lines")
        unlabelled_cells = unlabelled.fold_unlabelled(paths, cells, pairs)

    shared: dict = {}  # one cache for all grid candidates: they see the same cells and pairs

    def make_data(index: int, train=train_pairs, validation=validation_pairs, shared=shared) -> TrainingData:
        return TrainingData(training_data, train, validation, drugs, lower_is_sensitive=meta["lower_is_sensitive"],
                            seed=seed, checkpoint_dir=Path(model_dir).parent / "checkpoint" / f"candidate{index}",
                            perturbations=perturbations, shared=shared, unlabelled=unlabelled_cells)

    with threadpool_limits(threads):
        model = fit_best(spec, make_data, seed)
        if refit and len(validation_pairs):
            model = refit_model(model, spec, make_data("_refit", all_pairs, validation_pairs.iloc[:0], {}), seed)
    model.save(model_dir)
    return model


def train(paths: Mapping, fold: int, spec: dict, seed: int, threads: int, outputs: Mapping, refit: bool = True) -> None:
    """The training job: ``outputs`` names ``model`` (a folder), ``predictions`` and ``view_ablation``."""
    from .predict import test_inputs, test_predictions, view_ablation

    cells, pairs = cell_line_data(paths), fold_pairs(paths, fold)
    model = fit_fold(paths, fold, spec, seed, threads, outputs["model"], cells=cells, pairs=pairs, refit=refit)
    test, test_cells = test_inputs(pairs, cells)
    test_predictions(model, test, test_cells, fold, spec, outputs["predictions"])
    view_ablation(model, test, test_cells, fold, seed, outputs["view_ablation"])
