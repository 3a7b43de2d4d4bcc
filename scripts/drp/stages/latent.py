"""Latent space of the models that have one: the latent means of every cell line of a fold (written by the
latent job, one per split mode) and the figures: a UMAP of fold 0 coloured by tissue and the training history."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from .. import input_names
from ..io import write_h5ad

log = logging.getLogger(__name__)


def export_latent(model, cells, output) -> None:
    """Latent means of every cell line of the fold (obs keeps tissue and in_training)."""
    import anndata as ad

    obs = next(iter(cells.views.values())).obs[["tissue", "in_training"]].copy()
    latent = ad.AnnData(X=np.asarray(model.encode(cells), dtype=np.float32), obs=obs)
    latent.var_names = [f"z{i}" for i in range(latent.n_vars)]
    log.info("encoded %d cell lines (%d held out) into %d dimensions", latent.n_obs,
             int((~obs["in_training"]).sum()), latent.n_vars)
    write_h5ad(output, latent)


def latent(paths: Mapping, outputs: Mapping, seed: int, title: str) -> None:
    """The latent job of one split mode. Inputs: ``fold<k>__<model>__model`` and ``fold<k>__features_<view>``;
    outputs: ``fold<k>__<model>__latent``, ``<model>__umap`` and ``<model>__history`` per model with a latent
    space. A model of the run that this split mode leaves out (e.g. under LDO) gets placeholders."""
    import anndata as ad

    from ..models.base import DrugResponseModel
    from ..plots import latent_umap, placeholder_figure, training_history
    from .train import cell_line_data

    model_dirs = input_names.model_outputs(paths, "model")
    for key, path in outputs.items():
        parsed = input_names.parse_in_fold(key)
        model, _, kind = (parsed[1] if parsed else key).rpartition(input_names.SEPARATOR)
        if model in model_dirs:
            continue
        if kind == "latent":
            write_h5ad(path, ad.AnnData(np.zeros((0, 0), dtype=np.float32)))
        else:
            placeholder_figure(path, f"{model} does not run under this split mode")
    folds = sorted({fold for by_fold in model_dirs.values() for fold in by_fold})
    cells = {fold: cell_line_data(input_names.of_fold(paths, fold)) for fold in folds}  # read once for all models
    for model, by_fold in model_dirs.items():
        for fold, model_dir in sorted(by_fold.items()):
            fitted = DrugResponseModel.load(model_dir)
            export_latent(fitted, cells[fold], outputs[input_names.model_fold_output(fold, model, "latent")])
        latent_umap(outputs[input_names.model_fold_output(min(by_fold), model, "latent")],
                    outputs[input_names.model_output(model, "umap")], seed=seed,
                    title=f"{model}: latent space, {title} fold {min(by_fold)}")
        training_history([by_fold[fold] for fold in sorted(by_fold)], outputs[input_names.model_output(model, "history")],
                         title=f"{model}: {title}")
