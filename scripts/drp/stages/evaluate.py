"""Evaluation stage, one job per data set and split mode: metrics of every model within each test fold,
paired tests against the best baseline, the critical-difference ranking, the tuning record, view
randomization and the figures. Inputs are the training jobs' outputs, named by ``drp.input_names``:
``fold<k>__<model>__predictions``, ``fold<k>__<model>__model`` and ``fold<k>__<model>__view_ablation``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .. import input_names
from ..dataset import read_meta, read_response
from ..io import write_table
from ..splits import read_splits

log = logging.getLogger(__name__)


def _per_model(paths: Mapping, kind: str, models: list[str]) -> dict[str, dict[int, str]]:
    found = input_names.model_outputs(paths, kind)
    missing = [m for m in models if m not in found]
    if missing:
        raise ValueError(f"evaluation: no {kind} input for models {missing}")
    return {model: found[model] for model in models}


def fold_tables(paths: Mapping, kind: str, models: list[str]) -> dict[str, pd.DataFrame]:
    """``{model: its tables of every fold, concatenated in fold order}``."""
    return {model: pd.concat([pd.read_parquet(by_fold[fold]) for fold in sorted(by_fold)], ignore_index=True)
            for model, by_fold in _per_model(paths, kind, models).items()}


def metrics(predictions: dict[str, pd.DataFrame], paths: Mapping, meta: dict, outputs: Mapping, baseline: str,
            naive: str | None, min_pairs: int, title: str):
    """Per-drug, per-fold, per-cell-line (when ``outputs`` names ``per_cell_line``) and pooled metrics; writes
    predictions, per_drug, per_fold, summary, summary_html; returns the ``drp.metrics.Evaluation``."""
    from ..metrics import evaluate_models, training_thresholds
    from ..plots import summary_table_html

    thresholds = training_thresholds(read_response(paths["response"]), read_splits(paths["splits"]))
    evaluation = evaluate_models(predictions, baseline, thresholds, meta["lower_is_sensitive"], min_pairs, naive,
                                 per_cell_line="per_cell_line" in outputs.keys())
    per_drug, summary, per_cell_line = evaluation.per_drug, evaluation.summary, evaluation.per_cell_line
    headline = summary[summary.scope == "per_drug_mean"].pivot(index="model", columns="metric", values="value")
    log.info("mean per-drug metrics:\n%s", headline.round(3).to_string())
    all_predictions = pd.concat([frame.assign(model=name) for name, frame in predictions.items()], ignore_index=True)
    write_table(outputs["predictions"], all_predictions)
    write_table(outputs["per_drug"], per_drug)
    if per_cell_line is not None:
        write_table(outputs["per_cell_line"], per_cell_line)
    write_table(outputs["summary"], summary)
    write_table(outputs["per_fold"], evaluation.per_fold)
    summary_table_html(summary, outputs["summary_html"], f"{title}: {meta['measure']} metrics")
    return evaluation


def statistics(evaluation, predictions: dict[str, pd.DataFrame], splits: pd.DataFrame, outputs: Mapping,
               baselines: list[str], controls: list[str], metric: str, min_pairs: int, alpha: float, title: str,
               bootstrap_samples: int = 1000, seed: int = 0) -> None:
    """The comparison of every model with the strongest baseline over folds and repeats (corrected resampled
    t-test, and for Pearson a bootstrap over cell lines of ``bootstrap_samples`` resamples seeded by ``seed``;
    0 resamples: none), the mean and sd over repeats, paired per-drug tests against that baseline, pairwise
    tests across drugs, the critical-difference ranking and the per-drug heatmap (controls are tested, never
    ranked)."""
    from .. import statistics as stats
    from ..metrics import METRICS
    from ..plots import critical_difference_diagram, per_drug_heatmap, placeholder_figure, table_html
    from ..splits import repeat_folds

    per_drug = evaluation.per_drug
    present = [b for b in baselines if b in predictions]
    if not present:
        raise ValueError(f"evaluation.baselines {baselines}: none of them ran in this split mode")
    reference = stats.best_baseline(per_drug, present, metric)
    repeats = repeat_folds(splits)
    fold_repeat = {fold: repeat for repeat, folds in repeats.items() for fold in folds}
    test_share = splits.groupby("fold").size() / (len(splits) / len(repeats))
    ratio = float((test_share / (1 - test_share)).mean())  # n_test / n_train of an outer fold, in pairs
    bootstrap = None
    if metric in stats.BOOTSTRAP_METRICS and bootstrap_samples:
        clock = time.perf_counter()
        bootstrap = stats.cell_line_bootstrap(predictions, reference, min_pairs, bootstrap_samples, seed, level=0.95)
        log.info("bootstrap over cell lines: %d resamples in %.1f s", bootstrap_samples, time.perf_counter() - clock)
    comparison = stats.compare_over_folds(evaluation.per_fold, reference, metric, fold_repeat, ratio, bootstrap)
    write_table(outputs["comparison"], comparison)
    metrics = [*METRICS, *[f"pooled_{m}" for m in METRICS]]
    write_table(outputs["repeats"], stats.repeat_summary(evaluation.per_fold, fold_repeat, metrics))
    log.info("against %s, %s over %d folds:\n%s", reference, metric, comparison.folds.max(),
             comparison[["model", "mean_difference", "ci_low", "ci_high", "p_value", *stats.BOOTSTRAP_COLUMNS]]
             .round(4).to_string())
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
        critical_difference_diagram(result, outputs["critical_difference"],
                                    f"{title}: mean rank by per-drug {metric}\n"
                                    "description only: the drugs are not independent samples")
    else:
        placeholder_figure(outputs["critical_difference"], "a critical-difference ranking needs at least 3 models")
    per_drug_heatmap(per_drug, metric, outputs["heatmap"], f"{title}: per-drug {metric}")


def tuning_table(model_dirs: dict[str, dict[int, str]]) -> pd.DataFrame:
    """Every model's hyperparameter candidates per fold, their validation MSE, the one chosen and its refit
    on all non-test pairs (``refit`` rows, which have no validation MSE)."""
    rows = []
    for model, by_fold in model_dirs.items():
        for fold in sorted(by_fold):
            table = Path(by_fold[fold]) / "selection.tsv"
            selection = pd.read_csv(table, sep="\t") if table.exists() else pd.DataFrame({"chosen": [True]})
            params = [c for c in selection.columns if c not in ("validation_mse", "seconds", "chosen", "refit")]
            refit = selection["refit"].astype(bool) if "refit" in selection else pd.Series(False, index=selection.index)
            rows.append(pd.DataFrame({
                "model": model, "fold": fold, "candidates": int((~refit).sum()),
                "candidate": selection[params].apply(lambda r: json.dumps(r.to_dict(), default=str), axis=1)
                if params else "{}",
                "validation_mse": selection.get("validation_mse", np.nan), "seconds": selection.get("seconds", np.nan),
                "chosen": selection["chosen"], "refit": refit,
            }))
    return pd.concat(rows, ignore_index=True)


def view_ablation_table(tables: dict[str, pd.DataFrame], min_pairs: int) -> pd.DataFrame:
    """Mean per-drug Pearson per model with each view shuffled, and its change from intact views."""
    from ..metrics import fold_averaged, pearson

    def pearson_of(group: dict) -> dict:
        return {"n": len(group["y_true"]), "pearson": pearson(group["y_true"], group["y_pred"])}

    rows = []
    for name, frame in tables.items():
        for view, group in frame.groupby("shuffled_view"):
            per_drug = fold_averaged(group, pearson_of, min_pairs).reindex(columns=["drug", "pearson"])
            rows.append({"model": name, "shuffled_view": view, "pearson": per_drug["pearson"].mean(),
                         "drugs": int(per_drug["pearson"].notna().sum())})
    table = pd.DataFrame(rows)
    intact = table[table.shuffled_view == "none"].set_index("model")["pearson"]
    table["change"] = table["pearson"] - table.model.map(intact)
    return table


def plot_metrics(per_drug: pd.DataFrame, predictions: dict[str, pd.DataFrame], measure: str, outputs: Mapping,
                 title: str) -> None:
    from ..plots import per_drug_distributions, predicted_vs_observed

    per_drug_distributions(per_drug, outputs["distributions"], title)
    predicted_vs_observed(predictions, outputs["scatter"], title, measure)


def evaluate(paths: Mapping, outputs: Mapping, models: list[str], baseline: str, naive_baseline: str | None,
             baselines: list[str], controls: list[str], metric: str, min_pairs: int, alpha: float, title: str,
             bootstrap_samples: int = 1000, seed: int = 0) -> None:
    """The evaluation job of one split mode; writes view_ablation only when that output is named.
    ``bootstrap_samples`` and ``seed``: the bootstrap over cell lines of the comparison (``statistics``)."""
    meta = read_meta(paths["meta"])
    predictions = fold_tables(paths, "predictions", models)
    evaluation = metrics(predictions, paths, meta, outputs, baseline, naive_baseline, min_pairs, title)
    statistics(evaluation, predictions, read_splits(paths["splits"]), outputs, baselines, controls, metric, min_pairs,
               alpha, title, bootstrap_samples, seed)
    per_drug = evaluation.per_drug
    write_table(outputs["tuning"], tuning_table(_per_model(paths, "model", models)))
    if "view_ablation" in outputs.keys():
        write_table(outputs["view_ablation"], view_ablation_table(fold_tables(paths, "view_ablation", models), min_pairs))
    plot_metrics(per_drug, predictions, meta["measure"], outputs, title)
