"""Cross-study evaluation: models trained on one data set predict another on the drugs they share.

The source's cell-blind (LCO) fold models are used, and every target cell line is predicted by a model
that never saw it: a cell line that the source also has goes to the fold whose test set holds it, one
the source lacks is dealt to the folds round-robin (sorted ids, so the choice is reproducible). The
target's omics are transformed with the feature selection and scaling fitted on that fold's training
cell lines of the source: nothing is fitted on the target.

The drugs of the two data sets are paired by ``drp.drug_matching`` (same name, same structure by InChIKey,
normalized name, recorded synonym), once per (source, target), into a match table
(``match_cross_study_drugs``); the target's pairs of matched drugs are renamed to the source's drug names
before prediction, so that the models, the per-drug evaluation and the source's sensitivity thresholds all
see the source's names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .. import input_names
from ..dataset import read_cell_lines, read_drugs, read_meta, read_response, read_view
from ..io import write_table
from ..splits import fold_table, read_splits

log = logging.getLogger(__name__)


def assign_target_cell_lines(target_cells, source_splits: pd.DataFrame) -> pd.Series:
    """cell_line -> the source fold whose model predicts it (``source_splits``: the rows of one repeat)."""
    source_fold = source_splits.drop_duplicates("cell_line").set_index("cell_line")["fold"]
    fold_ids = np.array(sorted(source_splits["fold"].unique()))
    if source_splits.groupby("cell_line")["fold"].nunique().max() > 1:
        raise ValueError("cross-study needs cell-blind (LCO) source splits: a cell line spans several folds")
    target_cells = pd.Index(sorted(set(target_cells)))
    shared = target_cells.intersection(source_fold.index)
    new = target_cells.difference(source_fold.index)
    folds = pd.concat([source_fold.loc[shared], pd.Series(fold_ids[np.arange(len(new)) % len(fold_ids)], index=new)])
    return folds.astype(int).rename("fold")


def rename_target_drugs(target_response: pd.DataFrame, drug_names: Mapping[str, str] | None) -> pd.DataFrame:
    """The target's pairs of matched drugs, renamed to the source's names (``drug_names``: target drug ->
    source drug, from the match table); without ``drug_names``, the pairs as they are (drugs matched by exact
    name only, as callers outside the workflow get)."""
    if drug_names is None:
        return target_response
    names = pd.Series(drug_names, dtype=object)
    if names.duplicated().any():
        raise ValueError("cross-study: two target drugs renamed to one source drug: "
                         f"{sorted(set(names[names.duplicated()]))[:3]}")
    renamed = target_response[target_response.drug.isin(names.index)]
    return renamed.assign(drug=renamed.drug.map(names).astype(str)).reset_index(drop=True)


def target_pairs(target_response: pd.DataFrame, source_response: pd.DataFrame, source_splits: pd.DataFrame,
                 fold: int, drug_names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The target's pairs of drugs the source also screened, for the cell lines assigned to ``fold`` (each
    repeat of the source's folds predicts every target cell line once). ``drug_names`` (target drug -> source
    drug, ``drug_matching.matched_names``) renames the target's drugs first; without it drugs match by name."""
    target_response = rename_target_drugs(target_response, drug_names)
    shared = target_response[target_response.drug.isin(set(source_response.drug))]
    folds = assign_target_cell_lines(shared.cell_line, fold_table(source_splits, fold))
    pairs = shared[shared.cell_line.map(folds) == fold].reset_index(drop=True)
    return pairs.assign(in_source=pairs.cell_line.isin(set(source_response.cell_line)))


def match_cross_study_drugs(paths: Mapping, outputs: Mapping) -> None:
    """The match table of the source's and one target's drugs (``drug_matching.match_drugs``). Inputs:
    ``drugs`` (the source's drugs.tsv), ``target_drugs``, ``synonyms`` (the synonym table); output ``matches``."""
    from ..drug_matching import METHODS, match_drugs, read_synonyms, summarize

    source, target = read_drugs(paths["drugs"]), read_drugs(paths["target_drugs"])
    table = match_drugs(source, target, read_synonyms(paths["synonyms"]))
    counts = summarize(table)
    same_name = len(set(source.drug) & set(target.drug))
    log.info("%d of %d target drugs matched to %d source drugs (%d by exact name alone): %s; %d non-matches listed "
             "for review", counts["total"], len(target), len(source), same_name,
             ", ".join(f"{method} {counts[method]}" for method in METHODS),
             counts["not_matched_listed"])
    for row in table[table.note != ""].itertuples():
        log.warning("%s / %s (%s): %s", row.source_drug, row.target_drug, row.method or "not matched", row.note)
    write_table(outputs["matches"], table)


def predict_cross_study(paths: Mapping, folds: list[int], spec: dict, outputs: Mapping) -> None:
    """Predict each target data set's pairs of shared drugs (``outputs``: target -> path), each cell line by
    the source fold model assigned to it, with the target's omics transformed by that fold's fitted statistics.
    Inputs: ``fold<k>__model``, ``fold<k>__features_<view>``, the source's response and splits, and per target
    ``target__<target>__{response, cell_lines, <view>}`` and optionally ``target__<target>__drug_matches`` (the
    match table; the target's drugs are renamed by it, and without it drugs match by exact name)."""
    from ..drug_matching import matched_names, read_matches
    from ..features import apply_fitted_view
    from ..models import resolve
    from ..models.base import CellLineData
    from .predict import prediction_table
    from .train import cell_line_data

    source_response, splits = read_response(paths["response"]), read_splits(paths["splits"])
    files = input_names.target_inputs(paths)
    targets = {target: {"response": read_response(files[target]["response"]),  # read once, used by every fold
                        "tissue": read_cell_lines(files[target]["cell_lines"])["tissue"],
                        "drug_names": (matched_names(read_matches(files[target]["drug_matches"]))
                                       if "drug_matches" in files[target] else None),
                        "views": {name: read_view(path) for name, path in files[target].items()
                                  if name not in ("response", "cell_lines", "drug_matches")}}
               for target in outputs}
    frames = {target: [] for target in outputs}
    for fold in folds:
        fold_inputs = input_names.of_fold(paths, fold)
        fitted = cell_line_data(fold_inputs)
        model = resolve(spec["class"]).load(fold_inputs["model"])
        for target, output in outputs.items():
            pairs = target_pairs(targets[target]["response"], source_response, splits, fold,
                                 targets[target]["drug_names"])
            target_tissue = targets[target]["tissue"]
            cell_index = pd.Index(sorted(pairs.cell_line.unique()))
            views = {}
            for name, fitted_view in fitted.views.items():
                raw = targets[target]["views"][name]
                missing = cell_index.difference(raw.obs_names)
                if len(missing):
                    raise ValueError(f"{files[target][name]}: no {name} profile for {len(missing)} cell lines of the target's "
                                     f"response table, e.g. {list(missing[:3])}")
                views[name] = apply_fitted_view(raw[cell_index], fitted_view)
            cells = CellLineData(views, target_tissue.reindex(cell_index).fillna("unknown"), fitted.drug_features)
            out = prediction_table(pairs, model.predict(pairs[["cell_line", "drug"]], cells), fold)
            log.info("%s fold %d: %d pairs of %d target cell lines (%d also in the source), %d shared drugs", target,
                     fold, len(out), out.cell_line.nunique(), out.loc[out.in_source, "cell_line"].nunique(),
                     out.drug.nunique())
            frames[target].append(out)
    for target, output in outputs.items():
        write_table(output, pd.concat(frames[target], ignore_index=True))


def evaluate_cross_study(paths: Mapping, outputs: Mapping, models: list[str], baseline: str, naive_baseline: str | None,
                         min_pairs: int, baselines: list[str] | None = None, bootstrap_samples: int = 1000,
                         seed: int = 0) -> None:
    """Per-drug metrics on the target, sensitivity thresholds from the source folds' training pairs; with
    ``outputs["comparison"]``, every model against the strongest of ``baselines`` over the repeats with a
    bootstrap interval over the target's cell lines (``statistics.cross_study_comparison``)."""
    from ..metrics import evaluate_models, training_thresholds
    from ..splits import repeat_folds

    source_meta, target_meta = read_meta(paths["meta"]), read_meta(paths["target_meta"])
    if source_meta["lower_is_sensitive"] != target_meta["lower_is_sensitive"]:
        raise ValueError(f"cross-study: {paths['meta']} and {paths['target_meta']} disagree on whether a lower "
                         f"response means more sensitive; the models' predictions cannot be compared")
    thresholds = training_thresholds(read_response(paths["response"]), read_splits(paths["splits"]))
    predictions = {name: pd.read_parquet(paths[name]) for name in models}
    evaluation = evaluate_models(predictions, baseline, thresholds, target_meta["lower_is_sensitive"], min_pairs,
                                 naive_baseline)
    per_drug, summary = evaluation.per_drug, evaluation.summary
    first = next(iter(predictions.values()))
    summary["pairs"], summary["cell_lines"] = len(first), first.cell_line.nunique()
    summary["cell_lines_not_in_source"] = first.loc[~first.in_source, "cell_line"].nunique()
    write_table(outputs["per_drug"], per_drug)
    write_table(outputs["summary"], summary)
    if "comparison" in outputs.keys():
        from ..statistics import cross_study_comparison

        repeats = repeat_folds(read_splits(paths["splits"]))
        fold_repeat = {fold: repeat for repeat, folds in repeats.items() for fold in folds}
        comparison = cross_study_comparison(predictions, fold_repeat, baselines or [baseline], min_pairs,
                                            bootstrap_samples, seed)
        log.info("cross-study against %s over %d repeats:\n%s", comparison.reference.iloc[0], len(repeats),
                 comparison.drop(columns="reference").round(4).to_string())
        write_table(outputs["comparison"], comparison)


def cross_study_table(paths: Mapping, outputs: Mapping, metric: str) -> None:
    """The N x N table: rows the training data set, columns the test data set, one block per model;
    the diagonal is the training data set's own cell-blind cross-validation. Inputs named
    ``<train>__<test>`` (``input_names.study_pair``)."""
    from ..plots import table_html

    rows = []
    for key, path in paths.items():
        train_set, test_set = input_names.parse_study_pair(key)
        summary = pd.read_csv(path, sep="\t")
        chosen = summary[(summary.scope == "per_drug_mean") & (summary.metric == metric)]
        rows += [{"train": train_set, "test": test_set, "model": r.model, metric: r.value, "drugs": r.n}
                 for r in chosen.itertuples()]
    table = pd.DataFrame(rows)
    write_table(outputs["table"], table)
    wide = table.pivot_table(index=["model", "train"], columns="test", values=metric).round(3).reset_index()
    table_html(wide, outputs["html"], f"Cross-study: mean per-drug {metric} (rows: trained on, columns: tested on; "
               "diagonal: cell-blind cross-validation within the data set)")
