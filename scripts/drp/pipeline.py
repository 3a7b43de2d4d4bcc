"""Stage functions behind the Snakemake scripts, callable with plain paths for debugging.

Each ``scripts/<rule>.py`` only unpacks ``snakemake.input/output/params`` and calls one function here.
``paths`` arguments are mappings with the rule's input names (``meta``, ``response``, ``splits``,
``features_<view>``, ...), so a job can be reproduced outside Snakemake with a plain dict.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from . import models
from .dataset import Dataset
from .io import write_h5ad, write_table
from .models.base import CellLineData, TrainingData
from .splits import TEST, TRAIN, VALIDATION, fold_roles, make_splits

log = logging.getLogger(__name__)
FEATURES_PREFIX = "features_"


def split_dataset(response_path, cell_lines_path, output, mode: str, n_folds: int, seed: int) -> None:
    response = pd.read_parquet(response_path)
    tissue = Dataset.read_cell_lines(cell_lines_path)["tissue"]
    splits = make_splits(response, tissue, mode, n_folds, seed)
    log.info("%s: %d pairs in %d folds of sizes %s", mode, len(splits), n_folds,
             splits.groupby("fold").size().tolist())
    write_table(output, splits)


def preprocess_views(view_paths: Mapping, splits_path, fold: int, settings: Mapping, outputs: Mapping) -> None:
    """Fit and apply each view's preprocessing (``settings[view]``) on the fold's training cell lines."""
    from .features import fit_transform_view, training_cell_lines  # scanpy is only needed here

    train_cells = training_cell_lines(pd.read_csv(splits_path, sep="\t"), fold)
    for name, path in view_paths.items():
        view = ad.read_h5ad(path)
        processed = fit_transform_view(view, train_cells, **settings.get(name, {}))
        log.info("%s: kept %d of %d features, fitted on %d training cell lines", name, processed.n_vars,
                 view.n_vars, len(train_cells))
        write_h5ad(outputs[name], processed)


def build_perturbations(paths: Mapping, settings: dict, output) -> None:
    """LINCS (control, treated) pairs for the data set's cell lines and drugs: X = treated, layers["control"]."""
    from .lincs import build_perturbation_pairs

    cell_lines = pd.read_csv(paths["cell_lines"], sep="\t", dtype=str)["cell_line"]
    drugs = pd.read_csv(paths["drugs"], sep="\t", dtype=str)["drug"]
    control, treated, _ = build_perturbation_pairs(paths["gctx"], paths["sig_info"], paths["gene_info"], cell_lines,
                                                   drugs, pert_time=settings.get("pert_time", 6),
                                                   control_type=settings.get("control_type", "ctl_vehicle"))
    treated.layers["control"] = control.X
    write_h5ad(output, treated)


def perturbation_arrays(path, expression: ad.AnnData, cell_lines) -> dict:
    """Pairs of ``cell_lines`` only, on the fold's expression features (in their order).

    Features that the perturbation profiles lack are set to 0, the training mean after scaling.
    LINCS level-5 values are z-scores against the plate population, the fold's features z-scores
    against training cell lines: both are per-gene standardized, not the same assay.
    """
    pairs = ad.read_h5ad(path)
    pairs = pairs[pairs.obs["cell_line"].isin(set(cell_lines))]
    shared = expression.var_names.intersection(pairs.var_names)
    if len(shared) == 0:
        raise ValueError(f"{path}: no gene in common with the expression features (e.g. {list(expression.var_names[:3])})")
    columns = expression.var_names.get_indexer(shared)
    arrays = {}
    for key, matrix in (("x1", pairs[:, shared].layers["control"]), ("x2", pairs[:, shared].X)):
        full = np.zeros((pairs.n_obs, expression.n_vars), dtype=np.float32)
        full[:, columns] = np.asarray(matrix)
        arrays[key] = full
    log.info("perturbation pairs: %d of training cell lines, %d of %d features measured", pairs.n_obs,
             len(shared), expression.n_vars)
    return {**arrays, "drug": pairs.obs["drug"].astype(str).tolist()}


def fold_pairs(paths: Mapping, fold: int) -> pd.DataFrame:
    """Response pairs with their role (train / validation / test) in outer fold ``fold``."""
    response = pd.read_parquet(paths["response"])
    splits = pd.read_csv(paths["splits"], sep="\t")
    pairs = response.merge(splits, on=["cell_line", "drug"], how="inner", validate="one_to_one")
    if len(pairs) != len(response):
        raise ValueError(f"{paths['splits']}: assigns {len(pairs)} of the {len(response)} response pairs")
    pairs["role"] = fold_roles(pairs, fold).to_numpy()
    return pairs


def _cell_line_data(paths: Mapping) -> CellLineData:
    views = {key.removeprefix(FEATURES_PREFIX): ad.read_h5ad(path)
             for key, path in paths.items() if key.startswith(FEATURES_PREFIX)}
    tissue = next(iter(views.values())).obs["tissue"].astype(str)
    return CellLineData(views, tissue)


def grid_candidates(spec: dict) -> list[dict]:
    """Every combination of the spec's ``grid`` values over its ``params`` (one candidate without a grid)."""
    grid = spec.get("grid") or {}
    candidates = [dict(spec.get("params", {}))]
    for name, values in grid.items():
        candidates = [{**params, name: value} for params in candidates for value in values]
    return candidates


def train(paths: Mapping, fold: int, spec: dict, seed: int, threads: int, output_dir) -> None:
    """Fit one model on a fold. With a ``grid`` in the spec, every candidate is fitted on the training
    pairs and the one with the best validation score is kept: the choice never sees the test fold."""
    meta = json.loads(Path(paths["meta"]).read_text())
    pairs = fold_pairs(paths, fold)
    columns = ["cell_line", "drug", "response"]
    train_pairs = pairs.loc[pairs.role == TRAIN, columns]
    validation_pairs = pairs.loc[pairs.role == VALIDATION, columns]
    model_class = models.resolve(spec["class"])
    candidates = grid_candidates(spec)
    if len(candidates) > 1 and not model_class.uses_validation:
        raise ValueError(f"model class {spec['class']!r} does not use a validation fold, so it cannot select from a grid")
    if not model_class.uses_validation:  # models without early stopping train on every non-test pair
        train_pairs, validation_pairs = pd.concat([train_pairs, validation_pairs]), validation_pairs.iloc[:0]
    training_cells = sorted(set(train_pairs.cell_line) | set(validation_pairs.cell_line))
    cells = _cell_line_data(paths).subset(training_cells)
    drugs = pd.read_csv(paths["drugs"], sep="\t")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)

    perturbations = None
    if "perturbations" in paths:  # pairs of training cell lines only: never validation or test ones
        perturbations = perturbation_arrays(paths["perturbations"], cells.views["expression"], train_pairs.cell_line)

    best, selection = None, []
    for index, params in enumerate(candidates):
        data = TrainingData(cells, train_pairs.reset_index(drop=True), validation_pairs.reset_index(drop=True),
                            drugs, lower_is_sensitive=meta["lower_is_sensitive"], seed=seed,
                            checkpoint_dir=Path(output_dir).parent / "checkpoint" / f"candidate{index}",
                            perturbations=perturbations)
        model = models.create({"class": spec["class"], "params": params})
        np.random.seed(seed)
        started = time.perf_counter()
        with threadpool_limits(threads):
            model.fit(data)
        seconds = time.perf_counter() - started
        selection.append({**{k: params[k] for k in spec.get("grid") or {}},
                          "validation_score": model.validation_score, "seconds": round(seconds, 1)})
        log.info("fitted %s %s on %d pairs of %d cell lines (%d validation pairs) in %.1f s; validation score %s",
                 spec["class"], selection[-1], len(train_pairs), len(training_cells), len(validation_pairs),
                 seconds, model.validation_score)
        if best is None or model.validation_score < best.validation_score:
            best = model
    best.selection = pd.DataFrame(selection)
    best.save(output_dir)


def predict(paths: Mapping, fold: int, spec: dict, output) -> None:
    pairs = fold_pairs(paths, fold)
    test = pairs.loc[pairs.role == TEST, ["cell_line", "drug", "response"]].reset_index(drop=True)
    model = models.resolve(spec["class"]).load(paths["model"])
    cells = _cell_line_data(paths).subset(sorted(test.cell_line.unique()))
    predicted = model.predict(test[["cell_line", "drug"]], cells)
    if len(predicted) != len(test) or not np.isfinite(predicted["y_pred"]).all():
        raise ValueError(f"{spec['class']}: predictions must be finite, one per test pair")
    out = test.rename(columns={"response": "y_true"}).assign(y_pred=predicted["y_pred"].to_numpy(), fold=fold)
    if "p_sensitive" in predicted:
        out["p_sensitive"] = predicted["p_sensitive"].to_numpy()
    write_table(output, out)


def evaluate(paths: Mapping, outputs: Mapping, models: list[str], baseline: str, min_pairs: int, title: str) -> None:
    from .metrics import evaluate_models
    from .plots import summary_table_html

    meta = json.loads(Path(paths["meta"]).read_text())
    predictions = {
        name: pd.concat([pd.read_parquet(path) for key, path in paths.items() if key.split("__")[0] == name],
                        ignore_index=True)
        for name in models
    }
    per_drug, summary = evaluate_models(predictions, baseline, pd.read_parquet(paths["response"]),
                                        pd.read_csv(paths["splits"], sep="\t"), meta["lower_is_sensitive"], min_pairs)
    headline = summary[summary.scope == "per_drug_mean"].pivot(index="model", columns="metric", values="value")
    log.info("mean per-drug metrics:\n%s", headline.round(3).to_string())
    all_predictions = pd.concat([frame.assign(model=name) for name, frame in predictions.items()], ignore_index=True)
    write_table(outputs["predictions"], all_predictions)
    write_table(outputs["per_drug"], per_drug)
    write_table(outputs["summary"], summary)
    summary_table_html(summary, outputs["summary_html"], f"{title}: {meta['measure']} metrics")


def plot_metrics(paths: Mapping, outputs: Mapping, title: str) -> None:
    from .plots import per_drug_distributions, predicted_vs_observed

    meta = json.loads(Path(paths["meta"]).read_text())
    predictions = pd.read_parquet(paths["predictions"])
    per_drug_distributions(pd.read_csv(paths["per_drug"], sep="\t"), outputs["distributions"], title)
    predicted_vs_observed({name: frame for name, frame in predictions.groupby("model", sort=False)},
                          outputs["scatter"], title, meta["measure"])


def export_latent(paths: Mapping, spec: dict, output) -> None:
    """Latent means of every cell line of the fold (obs keeps tissue and in_training)."""
    model = models.resolve(spec["class"]).load(paths["model"])
    cells = _cell_line_data(paths)
    obs = next(iter(cells.views.values())).obs[["tissue", "in_training"]].copy()
    latent = ad.AnnData(X=np.asarray(model.encode(cells), dtype=np.float32), obs=obs)
    latent.var_names = [f"z{i}" for i in range(latent.n_vars)]
    log.info("encoded %d cell lines (%d held out) into %d dimensions", latent.n_obs,
             int((~obs["in_training"]).sum()), latent.n_vars)
    write_h5ad(output, latent)
