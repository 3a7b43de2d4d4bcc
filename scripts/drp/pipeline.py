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
from .splits import TEST, TRAIN, VALIDATION, fold_roles, make_splits, read_splits

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

    train_cells = training_cell_lines(read_splits(splits_path), fold)
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
    splits = read_splits(paths["splits"])
    pairs = response.merge(splits, on=["cell_line", "drug"], how="inner", validate="one_to_one")
    if len(pairs) != len(response):
        raise ValueError(f"{paths['splits']}: assigns {len(pairs)} of the {len(response)} response pairs")
    pairs["role"] = fold_roles(pairs, fold).to_numpy()
    return pairs


def _cell_line_data(paths: Mapping) -> CellLineData:
    views = {key.removeprefix(FEATURES_PREFIX): ad.read_h5ad(path)
             for key, path in paths.items() if key.startswith(FEATURES_PREFIX)}
    tissue = next(iter(views.values())).obs["tissue"].astype(str)
    drug_features = ad.read_h5ad(paths["drug_features"]) if "drug_features" in paths.keys() else None
    return CellLineData(views, tissue, drug_features)


def grid_candidates(spec: dict) -> list[dict]:
    """Every combination of the spec's ``grid`` values over its ``params`` (one candidate without a grid)."""
    grid = spec.get("grid") or {}
    candidates = [dict(spec.get("params", {}))]
    for name, values in grid.items():
        candidates = [{**params, name: value} for params in candidates for value in values]
    return candidates


def permute_within_drug(pairs: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The label-permutation control: responses shuffled across cell lines within each drug, so the
    omics carry no information about them while each drug keeps its distribution."""
    rng = np.random.default_rng(seed)
    shuffled = pairs.copy()
    for _, index in pairs.groupby("drug").indices.items():
        shuffled.iloc[index, shuffled.columns.get_loc("response")] = pairs.response.to_numpy()[rng.permutation(index)]
    return shuffled


def validation_mse(model, pairs: pd.DataFrame, cells: CellLineData) -> float:
    """The one selection criterion for every model: mean squared error on the validation pairs."""
    predicted = model.predict(pairs[["cell_line", "drug"]], cells)["y_pred"].to_numpy()
    return float(np.mean((predicted - pairs.response.to_numpy()) ** 2))


def train(paths: Mapping, fold: int, spec: dict, seed: int, threads: int, output_dir) -> None:
    """Fit one model on a fold. With a ``grid`` in the spec, every candidate is fitted on the training
    pairs and the one with the lowest mean squared error on the validation pairs is kept, for every
    model alike: the choice never sees the test fold. A single candidate of a model that does not use
    a validation fold trains on training and validation pairs."""
    meta = json.loads(Path(paths["meta"]).read_text())
    pairs = fold_pairs(paths, fold)
    columns = ["cell_line", "drug", "response"]
    train_pairs = pairs.loc[pairs.role == TRAIN, columns].reset_index(drop=True)
    validation_pairs = pairs.loc[pairs.role == VALIDATION, columns].reset_index(drop=True)
    if spec.get("permute_labels"):
        train_pairs = permute_within_drug(train_pairs, seed)
        validation_pairs = permute_within_drug(validation_pairs, seed + 1)
    model_class = models.resolve(spec["class"])
    candidates = grid_candidates(spec)
    if len(candidates) == 1 and not model_class.uses_validation:
        train_pairs, validation_pairs = pd.concat([train_pairs, validation_pairs], ignore_index=True), validation_pairs.iloc[:0]
    training_cells = sorted(set(train_pairs.cell_line) | set(validation_pairs.cell_line))
    cells = _cell_line_data(paths).subset(training_cells)
    drugs = pd.read_csv(paths["drugs"], sep="\t", dtype=str, keep_default_na=False)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)

    perturbations = None
    if "perturbations" in paths.keys():  # pairs of training cell lines only: never validation or test ones
        perturbations = perturbation_arrays(paths["perturbations"], cells.views["expression"], train_pairs.cell_line)

    best, best_index, best_score, selection = None, 0, float("inf"), []
    for index, params in enumerate(candidates):
        data = TrainingData(cells, train_pairs, validation_pairs, drugs, lower_is_sensitive=meta["lower_is_sensitive"],
                            seed=seed, checkpoint_dir=Path(output_dir).parent / "checkpoint" / f"candidate{index}",
                            perturbations=perturbations)
        model = models.create({"class": spec["class"], "params": params})
        np.random.seed(seed)
        started = time.perf_counter()
        with threadpool_limits(threads):
            model.fit(data)
            score = validation_mse(model, validation_pairs, cells) if len(validation_pairs) else float("nan")
        seconds = time.perf_counter() - started
        selection.append({**{k: params[k] for k in spec.get("grid") or {}}, "validation_mse": score,
                          "seconds": round(seconds, 1)})
        log.info("fitted %s %s on %d pairs of %d cell lines (%d validation pairs) in %.1f s", spec["class"],
                 selection[-1], len(train_pairs), len(training_cells), len(validation_pairs), seconds)
        if best is None or score < best_score:  # NaN (no validation pairs) keeps the first candidate
            best, best_index, best_score = model, index, score
    best.selection = pd.DataFrame(selection).assign(chosen=np.arange(len(selection)) == best_index)
    best.save(output_dir)


def _fold_test_inputs(paths: Mapping, fold: int, spec: dict):
    """The fold's test pairs, its trained model and the test cell lines' data."""
    pairs = fold_pairs(paths, fold)
    test = pairs.loc[pairs.role == TEST, ["cell_line", "drug", "response"]].reset_index(drop=True)
    model = models.resolve(spec["class"]).load(paths["model"])
    return test, model, _cell_line_data(paths).subset(sorted(test.cell_line.unique()))


def _prediction_table(pairs: pd.DataFrame, predicted: pd.DataFrame, fold: int) -> pd.DataFrame:
    """The predictions contract: the pairs with y_true, y_pred, fold (+ p_sensitive when the model has one)."""
    out = pairs.rename(columns={"response": "y_true"}).assign(y_pred=predicted["y_pred"].to_numpy(), fold=fold)
    if "p_sensitive" in predicted:
        out["p_sensitive"] = predicted["p_sensitive"].to_numpy()
    return out


def predict(paths: Mapping, fold: int, spec: dict, output) -> None:
    test, model, cells = _fold_test_inputs(paths, fold, spec)
    predicted = model.predict(test[["cell_line", "drug"]], cells)
    if len(predicted) != len(test) or not np.isfinite(predicted["y_pred"]).all():
        raise ValueError(f"{spec['class']}: predictions must be finite, one per test pair")
    write_table(output, _prediction_table(test, predicted, fold))


def _named_tables(paths: Mapping, names) -> dict[str, pd.DataFrame]:
    """Concatenate the inputs named <name>__fold<k> per name."""
    return {name: pd.concat([pd.read_parquet(path) for key, path in paths.items() if key.split("__")[0] == name],
                            ignore_index=True) for name in names}


def evaluate(paths: Mapping, outputs: Mapping, models: list[str], baseline: str, min_pairs: int, title: str) -> None:
    from .metrics import evaluate_models, training_thresholds
    from .plots import summary_table_html

    meta = json.loads(Path(paths["meta"]).read_text())
    predictions = _named_tables(paths, models)
    thresholds = training_thresholds(pd.read_parquet(paths["response"]), read_splits(paths["splits"]))
    per_drug, summary = evaluate_models(predictions, baseline, thresholds, meta["lower_is_sensitive"], min_pairs)
    headline = summary[summary.scope == "per_drug_mean"].pivot(index="model", columns="metric", values="value")
    log.info("mean per-drug metrics:\n%s", headline.round(3).to_string())
    all_predictions = pd.concat([frame.assign(model=name) for name, frame in predictions.items()], ignore_index=True)
    write_table(outputs["predictions"], all_predictions)
    write_table(outputs["per_drug"], per_drug)
    write_table(outputs["summary"], summary)
    summary_table_html(summary, outputs["summary_html"], f"{title}: {meta['measure']} metrics")


def statistics(paths: Mapping, outputs: Mapping, baselines: list[str], controls: list[str], metric: str,
               min_pairs: int, alpha: float, title: str) -> None:
    """Paired tests of every model against the best baseline, pairwise tests across drugs, the
    critical-difference ranking and the per-drug heatmap (controls are tested, never ranked)."""
    from . import statistics as stats
    from .plots import critical_difference_diagram, per_drug_heatmap, table_html

    per_drug = pd.read_csv(paths["per_drug"], sep="\t", dtype={"drug": str})
    predictions = {name: frame for name, frame in pd.read_parquet(paths["predictions"]).groupby("model", sort=False)}
    present = [b for b in baselines if b in predictions]
    if not present:
        raise ValueError(f"evaluation.baselines {baselines}: none of them ran in this split mode")
    reference = stats.best_baseline(per_drug, present, metric)
    tests = stats.per_drug_error_tests(predictions, reference, min_pairs, alpha)
    summary = stats.summarize_error_tests(tests, alpha)
    ranked = [m for m in predictions if m not in controls]
    pairwise = stats.pairwise_metric_tests(per_drug, metric, ranked)
    write_table(outputs["error_tests"], tests)
    write_table(outputs["error_tests_summary"], summary)
    write_table(outputs["pairwise"], pairwise)
    table_html(summary, outputs["tests_html"], f"{title}: per-drug paired Wilcoxon tests of absolute errors "
               f"against the best baseline ({reference}), Benjamini-Hochberg q < {alpha}")
    if len(ranked) >= 3:
        result = stats.critical_difference(per_drug, metric, ranked, alpha)
        critical_difference_diagram(result, outputs["critical_difference"], f"{title}: mean rank by per-drug {metric}")
    else:
        from .plots import placeholder_figure
        placeholder_figure(outputs["critical_difference"], "a critical-difference ranking needs at least 3 models")
    per_drug_heatmap(per_drug, metric, outputs["heatmap"], f"{title}: per-drug {metric}")


def collect_tuning(paths: Mapping, output) -> None:
    """Every model's hyperparameter candidates per fold, their validation MSE and the one chosen."""
    rows = []
    for key, directory in paths.items():
        model, _, fold = key.partition("__fold")
        table = Path(directory) / "selection.tsv"
        selection = pd.read_csv(table, sep="\t") if table.exists() else pd.DataFrame({"chosen": [True]})
        params = [c for c in selection.columns if c not in ("validation_mse", "seconds", "chosen")]
        rows.append(pd.DataFrame({
            "model": model, "fold": int(fold), "candidates": len(selection),
            "candidate": selection[params].apply(lambda r: json.dumps(r.to_dict(), default=str), axis=1)
            if params else "{}",
            "validation_mse": selection.get("validation_mse", np.nan), "seconds": selection.get("seconds", np.nan),
            "chosen": selection["chosen"],
        }))
    write_table(output, pd.concat(rows, ignore_index=True))


def fold_paths(paths: Mapping, fold: int) -> dict:
    """The inputs of one fold out of a rule over all folds: keys ``fold<k>__<name>`` become ``<name>``,
    keys without a fold prefix are shared."""
    prefix = f"fold{fold}__"
    return {**{key: path for key, path in paths.items() if not key.startswith("fold")},
            **{key.removeprefix(prefix): path for key, path in paths.items() if key.startswith(prefix)}}


def view_ablation(paths: Mapping, folds: list[int], spec: dict, seed: int, output) -> None:
    """Test predictions of every fold with each view in turn shuffled across the fold's test cell lines."""
    frames = []
    for fold in folds:
        test, model, cells = _fold_test_inputs(fold_paths(paths, fold), fold, spec)
        rng = np.random.default_rng(seed + fold)
        for view in [None, *sorted(cells.views)]:
            views = dict(cells.views)
            if view is not None:
                original = cells.views[view]
                views[view] = ad.AnnData(X=np.asarray(original.X)[rng.permutation(original.n_obs)],
                                         obs=original.obs, var=original.var)
            predicted = model.predict(test[["cell_line", "drug"]], CellLineData(views, cells.tissue, cells.drug_features))
            frames.append(_prediction_table(test, predicted, fold).assign(shuffled_view=view or "none"))
    write_table(output, pd.concat(frames, ignore_index=True))


def evaluate_view_ablation(paths: Mapping, models: list[str], min_pairs: int, output) -> None:
    """Mean per-drug Pearson per model with each view shuffled, and its change from intact views."""
    from .metrics import fold_averaged, pearson

    def pearson_of(group: pd.DataFrame) -> dict:
        return {"n": len(group), "pearson": pearson(group.y_true, group.y_pred)}

    rows = []
    for name in models:
        for view, group in pd.read_parquet(paths[name]).groupby("shuffled_view"):
            per_drug = fold_averaged(group, pearson_of, min_pairs).reindex(columns=["drug", "pearson"])
            rows.append({"model": name, "shuffled_view": view, "pearson": per_drug["pearson"].mean(),
                         "drugs": int(per_drug["pearson"].notna().sum())})
    table = pd.DataFrame(rows)
    intact = table[table.shuffled_view == "none"].set_index("model")["pearson"]
    table["change"] = table["pearson"] - table.model.map(intact)
    write_table(output, table)


def predict_cross_study(paths: Mapping, folds: list[int], spec: dict, output) -> None:
    """Predict the target data set's pairs of shared drugs, each cell line by the source fold model
    assigned to it (drp.cross_study), with the target's omics transformed by that fold's fitted statistics."""
    from .cross_study import target_pairs
    from .features import apply_fitted_view

    target_response, source_response = pd.read_parquet(paths["target_response"]), pd.read_parquet(paths["response"])
    splits = read_splits(paths["splits"])
    target_tissue = Dataset.read_cell_lines(paths["target_cell_lines"])["tissue"]
    frames = []
    for fold in folds:
        fold_inputs = fold_paths(paths, fold)
        pairs = target_pairs(target_response, source_response, splits, len(folds), fold)
        fitted = _cell_line_data(fold_inputs)
        cell_index = pd.Index(sorted(pairs.cell_line.unique()))
        views = {}
        for name, fitted_view in fitted.views.items():
            raw = ad.read_h5ad(paths[f"target_{name}"])
            missing = cell_index.difference(raw.obs_names)
            if len(missing):
                raise ValueError(f"{paths[f'target_{name}']}: no {name} profile for {len(missing)} cell lines of "
                                 f"the target's response table, e.g. {list(missing[:3])}")
            views[name] = apply_fitted_view(raw[cell_index], fitted_view)
        cells = CellLineData(views, target_tissue.reindex(cell_index).fillna("unknown"), fitted.drug_features)
        predicted = models.resolve(spec["class"]).load(fold_inputs["model"]).predict(pairs[["cell_line", "drug"]], cells)
        out = _prediction_table(pairs, predicted, fold)
        log.info("fold %d: %d pairs of %d target cell lines (%d also in the source), %d shared drugs", fold,
                 len(out), out.cell_line.nunique(), out.loc[out.in_source, "cell_line"].nunique(), out.drug.nunique())
        frames.append(out)
    write_table(output, pd.concat(frames, ignore_index=True))


def evaluate_cross_study(paths: Mapping, outputs: Mapping, models: list[str], baseline: str, min_pairs: int) -> None:
    """Per-drug metrics on the target, sensitivity thresholds from the source folds' training pairs."""
    from .metrics import evaluate_models, training_thresholds

    source_meta, target_meta = (json.loads(Path(paths[k]).read_text()) for k in ("meta", "target_meta"))
    if source_meta["lower_is_sensitive"] != target_meta["lower_is_sensitive"]:
        raise ValueError(f"cross-study: {paths['meta']} and {paths['target_meta']} disagree on whether a lower "
                         f"response means more sensitive; the models' predictions cannot be compared")
    thresholds = training_thresholds(pd.read_parquet(paths["response"]), read_splits(paths["splits"]))
    predictions = {name: pd.read_parquet(paths[name]) for name in models}
    per_drug, summary = evaluate_models(predictions, baseline, thresholds, target_meta["lower_is_sensitive"], min_pairs)
    first = next(iter(predictions.values()))
    summary["pairs"], summary["cell_lines"] = len(first), first.cell_line.nunique()
    summary["cell_lines_not_in_source"] = first.loc[~first.in_source, "cell_line"].nunique()
    write_table(outputs["per_drug"], per_drug)
    write_table(outputs["summary"], summary)


def cross_study_table(paths: Mapping, outputs: Mapping, metric: str) -> None:
    """The N x N table: rows the training data set, columns the test data set, one block per model;
    the diagonal is the training data set's own cell-blind cross-validation."""
    from .plots import table_html

    rows = []
    for key, path in paths.items():
        train_set, _, test_set = key.partition("__")
        summary = pd.read_csv(path, sep="\t")
        chosen = summary[(summary.scope == "per_drug_mean") & (summary.metric == metric)]
        rows += [{"train": train_set, "test": test_set, "model": r.model, metric: r.value, "drugs": r.n}
                 for r in chosen.itertuples()]
    table = pd.DataFrame(rows)
    write_table(outputs["table"], table)
    wide = table.pivot_table(index=["model", "train"], columns="test", values=metric).round(3).reset_index()
    table_html(wide, outputs["html"], f"Cross-study: mean per-drug {metric} (rows: trained on, columns: tested on; "
               "diagonal: cell-blind cross-validation within the data set)")


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
