"""Biomarker stages: the GDSC-style association test of a data set (``associations``) and, per model, the
out-of-fold attributions aggregated per drug and checked against the drugs' known targets (``biomarkers``;
the statistics are in ``drp.biomarkers``)."""

from __future__ import annotations

import html
import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .. import input_names
from ..dataset import read_cell_lines, read_response, read_view
from ..io import write_json, write_table, write_text

log = logging.getLogger(__name__)


def associations(paths: Mapping, outputs: Mapping, min_cell_lines: int, min_positive: int, fdr: float) -> None:
    """Inputs: response, cell_lines and the data set's raw views (named by view). Outputs: table (parquet),
    volcano (png)."""
    from ..associations import association_test, volcano_plot

    views = {name: read_view(path) for name, path in paths.items() if name not in ("response", "cell_lines")}
    tissue = read_cell_lines(paths["cell_lines"])["tissue"]
    table = association_test(read_response(paths["response"]), views, tissue, min_cell_lines=min_cell_lines,
                             min_positive=min_positive)
    log.info("%d tests, %d with FDR < %g; strongest:\n%s", len(table), int((table.fdr < fdr).sum()), fdr,
             table.nsmallest(10, "p_value")[["drug", "feature", "standardized_effect", "p_value", "fdr"]].to_string())
    write_table(outputs["table"], table)
    volcano_plot(table, outputs["volcano"], title="Associations: response ~ tissue + feature", fdr=fdr)


def attributions(paths: Mapping, model_name: str, folds: list[int], explain_steps: int, outputs: Mapping) -> None:
    """Every fold model's attributions on its own test cell lines (out of fold), per drug and feature (the heavy
    part, a job of its own). Inputs: ``fold<k>__model``, ``fold<k>__features_<view>``, drug_features, response,
    splits. Output: by_fold (parquet: drug, feature, importance, slope, fold)."""
    from tqdm import tqdm

    from .. import biomarkers as bm
    from ..models.base import DrugResponseModel
    from ..splits import TEST, fold_roles, fold_table, read_splits
    from .train import cell_line_data

    response, splits = read_response(paths["response"]), read_splits(paths["splits"])
    frames = []
    for fold in tqdm(folds, desc=f"{model_name}: folds", file=sys.stderr):
        fold_inputs = input_names.of_fold(paths, fold)
        model_dir = Path(fold_inputs["model"])
        model = DrugResponseModel.load(model_dir)
        table = fold_table(splits, fold)
        roles = fold_roles(table, fold).to_numpy()
        test_cells = sorted(table.loc[roles == TEST, "cell_line"].unique())
        if set(test_cells) & set(table.loc[roles != TEST, "cell_line"]):  # LPO: a test line trains on other drugs
            raise ValueError(f"fold {fold}: test cell lines also train in this split mode; biomarkers need cell-blind "
                             "(LCO) or tissue-blind (LTO) folds, where every test cell line is unseen")
        cells = cell_line_data(fold_inputs).subset(test_cells)
        drugs = sorted(set(response.drug) & set(getattr(model, "drugs", response.drug)))
        importance = bm.fold_importance(model, cells, drugs, explain_steps)
        if importance.empty:
            raise ValueError(f"{model_name}: a {type(model).__name__} model has no attributions (drp.explain); "
                             "biomarkers need a linear or neural model")
        frames.append(importance.assign(fold=fold))
        log.info("fold %d: %d test cell lines, %d drugs x %d features", fold, len(test_cells),
                 importance.drug.nunique(), importance.feature.nunique())
    write_table(outputs["by_fold"], pd.concat(frames, ignore_index=True))


def biomarkers(paths: Mapping, model_name: str, settings: Mapping, outputs: Mapping) -> None:
    """One model's biomarkers from its out-of-fold attributions. Inputs: by_fold, splits, targets (the drug-target
    table) and associations (the association test, in the report and to tell a feature the data set lacks from
    one the selection dropped). Outputs: importance (parquet, the mean over folds), stability, enrichment,
    canonical (tsv), summary (json), report (html). ``settings``: null_permutations, top, seed."""
    from .. import biomarkers as bm
    from ..splits import read_splits, repeat_folds

    by_fold = pd.read_parquet(paths["by_fold"])
    importance = bm.aggregate(by_fold)
    fold_repeat = {fold: repeat for repeat, ids in repeat_folds(read_splits(paths["splits"])).items() for fold in ids}
    stable = bm.stability(by_fold, fold_repeat)
    targets = bm.read_targets(paths["targets"])
    per_drug, enrichment = bm.target_enrichment(importance, targets, settings["null_permutations"], settings["seed"])
    associations_table = pd.read_parquet(paths["associations"])
    canonical = bm.canonical_biomarkers(importance, targets, set(associations_table.feature))
    summary = {"model": model_name, "folds": int(by_fold.fold.nunique()), "drugs": int(importance.drug.nunique()),
               "features": int(importance.feature.nunique()), "target_enrichment": enrichment,
               "stability_within_repeat": float(stable.within_repeat.mean()),
               "stability_across_repeats": float(stable.across_repeats.mean()),
               "canonical": canonical.to_dict("records")}
    log.info("%s: target AUROC %.3f (null %.3f, 95%% %.3f-%.3f, p = %.4f) over %d drugs; stability %.3f / %.3f",
             model_name, enrichment["mean_auroc"], enrichment["null_mean"], enrichment["null_low"],
             enrichment["null_high"], enrichment["p_value"], enrichment["drugs_scored"],
             summary["stability_within_repeat"], summary["stability_across_repeats"])
    write_table(outputs["importance"], importance)
    write_table(outputs["stability"], stable)
    write_table(outputs["enrichment"], per_drug)
    write_table(outputs["canonical"], canonical)
    write_json(outputs["summary"], _without_nan(summary))
    volcano = os.path.relpath(paths["volcano"], Path(outputs["report"]).parent) if "volcano" in paths.keys() else None
    write_text(outputs["report"], report_html(model_name, importance, per_drug, canonical, summary, targets,
                                              associations_table, {**settings, "volcano": volcano}))


def _without_nan(value):
    """NaN as null, so that summary.json is strict JSON (e.g. no stability across repeats with one repeat)."""
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return None if isinstance(value, float) and not np.isfinite(value) else value


def report_html(model: str, importance: pd.DataFrame, per_drug: pd.DataFrame, canonical: pd.DataFrame,
                summary: Mapping, targets: Mapping, associations_table: pd.DataFrame, settings: Mapping) -> str:
    """The biomarker page of one model: the target-enrichment summary, the canonical biomarkers, and per drug
    its top features (with the association test's FDR for the same drug and feature, where it was run)."""
    esc = html.escape
    e = summary["target_enrichment"]
    top = importance[importance["rank"] <= settings["top"]].copy()
    top = top.merge(associations_table[["drug", "feature", "partial_r", "fdr"]], on=["drug", "feature"], how="left")
    top["target"] = [feature.partition(":")[2] in targets.get(drug, set())
                     for drug, feature in zip(top.drug, top.feature)]
    parts = [f"<html><head><meta charset='utf-8'><title>Biomarkers: {esc(model)}</title><style>"
             "body{font-family:sans-serif;max-width:1200px;margin:auto} table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>",
             f"<h1>Biomarkers of {esc(model)}</h1>",
             f"<p>Out-of-fold attributions over {summary['folds']} folds: importance = mean |attribution| over the "
             "test cell lines, slope = attribution per unit of the z-scored feature (positive: higher value, higher "
             "response). Stability (Spearman of the importance between folds): "
             f"{summary['stability_within_repeat']:.3f} within a repeat, {summary['stability_across_repeats']:.3f} "
             "across repeats.</p>",
             f"<h2>Known targets</h2><p>Mean AUROC of the drugs' target-gene features against the others by "
             f"importance: <b>{e['mean_auroc']:.3f}</b> over {e['drugs_scored']} drugs; with the drug-target "
             f"assignment permuted ({e['permutations']} times): {e['null_mean']:.3f} (95% {e['null_low']:.3f}-"
             f"{e['null_high']:.3f}), p = {e['p_value']:.4f}.</p>",
             per_drug.sort_values("auroc", ascending=False).to_html(index=False, float_format=lambda v: f"{v:.3f}"),
             "<h2>Canonical biomarkers</h2>", canonical.to_html(index=False, float_format=lambda v: f"{v:.3f}"),
             *([f"<h2>GDSC's association test</h2><p>response ~ tissue + feature per drug (all cell lines; "
                f"Benjamini-Hochberg over all tests); the top features below carry its partial r and FDR.</p>"
                f"<img src='{esc(settings['volcano'])}' style='max-width:100%'>"] if settings.get("volcano") else []),
             "<h2>Top features per drug</h2>"]
    for drug, block in top.groupby("drug", sort=True):
        parts.append(f"<h3>{esc(str(drug))}</h3>" + block.drop(columns="drug").to_html(
            index=False, float_format=lambda v: f"{v:.4g}"))
    parts.append("</body></html>")
    return "\n".join(parts)


def biomarker_table(paths: Mapping, outputs: Mapping) -> None:
    """One row per model from the models' summary.json (inputs named by model): the target enrichment against
    its null, the stability and the canonical biomarkers' median percentile."""
    rows = []
    for model, path in paths.items():
        summary = json.loads(Path(path).read_text())
        e = summary["target_enrichment"]
        canonical = pd.DataFrame(summary["canonical"], columns=["percentile"])
        rows.append({"model": model, "drugs_scored": e["drugs_scored"], "mean_target_auroc": e["mean_auroc"],
                     "null_mean": e["null_mean"], "null_low": e["null_low"], "null_high": e["null_high"],
                     "p_value": e["p_value"], "stability_within_repeat": summary["stability_within_repeat"],
                     "stability_across_repeats": summary["stability_across_repeats"],
                     "canonical_median_percentile": float(canonical.percentile.astype(float).median())
                     if len(canonical) else np.nan})
    write_table(outputs["table"], pd.DataFrame(rows))
