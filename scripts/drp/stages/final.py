"""Final models: one per data set and model, trained on every cell line of the data set, to predict new samples.

- **Features** (``final_features``): each view's selection and scaling fitted on all cell lines, as a fold
  fits them on its training cell lines; new samples are put through these fitted statistics, never refitted.
- **Hyperparameters**: the grid candidate that the cell-blind (LCO) cross-validation chose most often (ties:
  the lower mean validation error), recorded with its counts. What a model chooses inside a fit (early-stopping
  epochs, a ridge's per-drug penalty, a stack's weights) is chosen as in every CV fold: on the validation cell
  lines (the LCO table's inner fold 0 of repeat 0, about a fifth of the cell lines, dealt within tissues), then
  the choice is refit on all cell lines (splits.refit).
- **Calibration** for new samples (``drp.uncertainty``): the model's out-of-fold LCO residuals and the training
  responses (percentiles, sensitivity thresholds).
- **Model card** (card.md, card.json): the data set and its provenance, versions, the configuration, the
  cross-validated metrics with their spread over repeats, the intervals' coverage on CV folds, intended use
  and limits.
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..dataset import read_meta, read_response, read_view
from ..io import write_h5ad, write_json, write_table, write_text
from ..splits import TRAIN, VALIDATION, read_splits, repeat_folds

log = logging.getLogger(__name__)

CALIBRATION_MODE = "LCO"  # new samples are new cell lines: calibrate on cell-blind cross-validation
COVERAGE_TOLERANCE = 0.03  # the intervals' coverage on held-out CV folds should be this close to nominal
INTENDED_USE = ("Ranking drugs for new cancer cell lines (or models close to them: organoids, xenografts) "
                "profiled with the same omics as the training panel, as a hypothesis for experiments.")
LIMITS = ("Trained and validated on cell lines only: not validated on patient tumours, on other assays or "
          "platforms, or on tissues absent from the panel (check the out-of-distribution flag). The intervals "
          "are calibrated on held-out cell lines of the same panel (exchangeability); they do not hold for samples "
          "unlike it. Not for clinical decisions.")


def final_features(view_paths: Mapping, settings: Mapping, outputs: Mapping) -> None:
    """Each view's feature selection and scaling fitted on every cell line of the data set."""
    from ..features import fit_transform_view

    for name, path in view_paths.items():
        view = read_view(path)
        processed = fit_transform_view(view, view.obs_names, **settings.get(name, {}))
        if processed.n_vars == 0:
            raise ValueError(f"{path}: view {name!r} has no feature that varies among its {view.n_obs} cell lines")
        log.info("%s: kept %d of %d features, fitted on all %d cell lines", name, processed.n_vars, view.n_vars,
                 view.n_obs)
        write_h5ad(outputs[name], processed)


def final_pairs(response: pd.DataFrame, splits: pd.DataFrame) -> pd.DataFrame:
    """Every response pair with its role for the final fit: validation for the cell lines of inner fold 0 of the
    LCO table's repeat 0, training for the others; no test pairs."""
    splits = splits[splits["repeat"] == 0] if "repeat" in splits else splits
    if "inner" not in splits:
        raise ValueError("final models need a split table with inner folds (splits.validation_fraction)")
    inner = splits.drop_duplicates("cell_line").set_index("cell_line")["inner"]
    pairs = response.copy()
    missing = pairs.cell_line[~pairs.cell_line.isin(inner.index)]
    if len(missing):
        raise ValueError(f"the LCO split table lacks {missing.nunique()} cell lines of the response, e.g. "
                         f"{sorted(missing.unique())[:3]}")
    pairs["role"] = np.where(pairs.cell_line.map(inner).to_numpy() == 0, VALIDATION, TRAIN)
    return pairs


def candidate_labels(spec: dict) -> dict[str, dict]:
    """The spec's grid candidates by the label the tuning table gives them: their values as they read back from a
    fold's selection.tsv, where all candidates share the columns (a list becomes its text, an integer next to a
    null a float), so labels are matched, never parsed back into values."""
    import io

    from ..models.selection import grid_candidates

    candidates = [{k: params[k] for k in spec["grid"]} for params in grid_candidates(spec)]
    text = pd.DataFrame(candidates).to_csv(sep="\t", index=False)
    read = pd.read_csv(io.StringIO(text), sep="\t")
    return {json.dumps(row.to_dict(), default=str): candidate
            for (_, row), candidate in zip(read.iterrows(), candidates)}


def chosen_candidate(tuning: pd.DataFrame, model: str, spec: dict) -> tuple[dict | None, dict]:
    """The grid candidate the cross-validation chose most often (ties: lower mean validation MSE), with the
    spec's own values, and how often each was chosen; (None, {}) for a model without a grid."""
    if not spec.get("grid"):
        return None, {}
    rows = tuning[(tuning.model == model) & ~tuning.refit.astype(bool)]
    if rows.empty:
        raise ValueError(f"tuning table: no selection records of model {model!r}; expected its CV grid choices")
    counts = rows[rows.chosen.astype(bool)].candidate.value_counts()
    error = rows.groupby("candidate")["validation_mse"].mean()
    best = min(counts.index, key=lambda c: (-counts[c], error.get(c, np.inf)))
    by_label = candidate_labels(spec)
    if best not in by_label:
        raise ValueError(f"tuning table: model {model!r} chose {best}, which is not a candidate of its grid "
                         f"{spec['grid']} (was the grid changed after the cross-validation?)")
    return by_label[best], {str(c): int(n) for c, n in counts.items()}


def cv_metrics(summary: pd.DataFrame, repeats: pd.DataFrame, model: str) -> dict:
    """The model's cross-validated metrics: per-drug mean of each metric, with mean and sd over repeats where
    the repeats table has them."""
    rows = summary[(summary.model == model) & (summary.scope == "per_drug_mean")]
    out = {r.metric: {"mean_per_drug": None if pd.isna(r.value) else float(r.value), "drugs": int(r.n)}
           for r in rows.itertuples()}
    for r in repeats[repeats.model == model].itertuples():
        out.setdefault(r.metric, {}).update(mean_over_repeats=float(r.mean), sd_over_repeats=float(r.sd),
                                            repeats=int(r.repeats))
    return out


def _versions() -> dict:
    import importlib.metadata as metadata

    versions = {"python": platform.python_version()}
    for package in ("numpy", "pandas", "scikit-learn", "torch", "anndata", "captum"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def train_final(paths: Mapping, model_name: str, dataset: str, spec: dict, seed: int, threads: int,
                settings: Mapping, outputs: Mapping, refit: bool = True) -> None:
    """The final-model job. Inputs: meta, response, drugs, drug_features, splits (LCO), features_<view> (final
    features), optionally perturbations, and the LCO evaluation's cv_predictions, cv_summary, cv_repeats,
    cv_tuning. Outputs: model (folder), calibration (folder), card_md, card_json. ``settings``: interval_level
    and features (the feature settings, for the card). The out-of-distribution reference is the sample-set job's
    (it depends on the final features alone)."""
    from ..uncertainty import fold_coverage, halfwidths, out_of_fold_residuals
    from .train import cell_line_data, fit_fold

    meta = read_meta(paths["meta"])
    response = read_response(paths["response"])
    splits = read_splits(paths["splits"])
    pairs = final_pairs(response, splits)
    tuning = pd.read_csv(paths["cv_tuning"], sep="\t")
    candidate, counts = chosen_candidate(tuning, model_name, spec)
    final_spec = dict(spec) if candidate is None else {**spec, "grid": {k: [v] for k, v in candidate.items()}}
    cells = cell_line_data(paths)
    log.info("final %s on %d cell lines x %d drugs (%d validation cell lines for in-fit choices); grid candidate %s",
             model_name, pairs.cell_line.nunique(), pairs.drug.nunique(),
             pairs.loc[pairs.role == VALIDATION, "cell_line"].nunique(), candidate)
    # refit as the cross-validation did (splits.refit), so that its residuals describe this model's kind of fit
    model = fit_fold(paths, None, final_spec, seed, threads, outputs["model"], cells=cells, pairs=pairs, refit=refit)

    # calibration: out-of-fold residuals and the training responses (percentiles, sensitivity thresholds)
    predictions = pd.read_parquet(paths["cv_predictions"])
    residuals = out_of_fold_residuals(predictions, model_name)
    level = settings["interval_level"]
    coverage = fold_coverage(residuals, level, repeat_folds(splits))
    widths = halfwidths(residuals, level)
    calibration = Path(outputs["calibration"])
    write_table(calibration / "residuals.parquet", residuals)
    write_table(calibration / "training_response.parquet", response)
    write_table(calibration / "fold_coverage.tsv", coverage)

    pooled = coverage.covered.sum() / coverage.pairs.sum()
    if abs(pooled - level) > COVERAGE_TOLERANCE:
        log.warning("final %s: the %.0f%% intervals covered %.3f of the held-out CV pairs, more than %.0f points from "
                    "nominal; the residuals of the folds are not exchangeable (check the card)", model_name,
                    100 * level, pooled, 100 * COVERAGE_TOLERANCE)
    card = {
        "model": model_name, "class": spec["class"], "dataset": dataset,
        "dataset_provenance": meta.get("provenance", {}), "measure": meta.get("measure"),
        "lower_is_sensitive": bool(meta["lower_is_sensitive"]),
        "training": {"cell_lines": int(pairs.cell_line.nunique()), "drugs": int(pairs.drug.nunique()),
                     "pairs": int(len(pairs)), "tissues": int(cells.tissue.nunique()),
                     "views": {name: int(view.n_vars) for name, view in cells.views.items()}},
        "hyperparameters": {"grid_candidate": candidate, "cv_choice_counts": counts,
                            "in_fit_choices": _jsonable(model.refit_params()),
                            "selection": model.selection.to_dict("records") if hasattr(model, "selection") else []},
        "configuration": {"model": spec, "features": dict(settings.get("features", {})), "seed": seed},
        "cross_validation": {"mode": CALIBRATION_MODE, "metrics": cv_metrics(
            pd.read_csv(paths["cv_summary"], sep="\t"), pd.read_csv(paths["cv_repeats"], sep="\t"), model_name)},
        "calibration": {"interval_level": level, "cv_fold_coverage": float(pooled),
                        "cv_fold_coverage_range": [float(coverage.coverage.min()), float(coverage.coverage.max())],
                        "cv_fold_coverage_within_tolerance": bool(abs(pooled - level) <= COVERAGE_TOLERANCE),
                        "tolerance": COVERAGE_TOLERANCE,
                        "median_halfwidth": float(np.median(widths[np.isfinite(widths)])) if np.isfinite(widths).any()
                        else None, "drugs_without_finite_interval": int((~np.isfinite(widths)).sum())},
        "versions": _versions(), "intended_use": INTENDED_USE, "limits": LIMITS,
    }
    write_json(outputs["card_json"], card)
    write_text(outputs["card_md"], card_markdown(card))
    log.info("final %s: CV fold coverage of the %.0f%% intervals %.3f (folds %.3f-%.3f)", model_name, 100 * level,
             pooled, coverage.coverage.min(), coverage.coverage.max())


def _jsonable(value):
    """Model parameters as JSON (numpy numbers and arrays as Python ones)."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def card_markdown(card: dict) -> str:
    """The model card as Markdown, from card.json's content."""
    metrics = card["cross_validation"]["metrics"]
    lines = [f"# Model card: {card['model']} ({card['class']}) on {card['dataset']}", "",
             "## Intended use", card["intended_use"], "", "## Limits", card["limits"], "",
             "## Training data",
             f"- {card['training']['cell_lines']} cell lines, {card['training']['drugs']} drugs, "
             f"{card['training']['pairs']} pairs, {card['training']['tissues']} tissues; response "
             f"{card['measure']} ({'lower' if card['lower_is_sensitive'] else 'higher'} = more sensitive)",
             "- features: " + ", ".join(f"{v} {n}" for v, n in card["training"]["views"].items()),
             f"- provenance: `{json.dumps(card['dataset_provenance'], sort_keys=True)[:600]}`", "",
             "## Hyperparameters",
             f"- grid candidate (most often chosen by the {card['cross_validation']['mode']} cross-validation): "
             f"{card['hyperparameters']['grid_candidate']} (choices: {card['hyperparameters']['cv_choice_counts']})",
             "- in-fit choices on the validation cell lines, then refit on all: see card.json", "",
             f"## Cross-validated metrics ({card['cross_validation']['mode']}, mean per drug)", "",
             "| metric | mean per drug | mean over repeats | sd over repeats | repeats |", "|---|---|---|---|---|"]
    for metric, values in sorted(metrics.items()):
        lines.append(f"| {metric} | {_number(values.get('mean_per_drug'))} | "
                     f"{_number(values.get('mean_over_repeats'))} | "
                     f"{_number(values.get('sd_over_repeats'))} | {values.get('repeats', '')} |")
    calibration = card["calibration"]
    off_nominal = "" if calibration["cv_fold_coverage_within_tolerance"] else \
        f" (MORE THAN {100 * calibration['tolerance']:.0f} POINTS FROM NOMINAL)"
    lines += ["", "## Calibration for new samples",
              f"- {100 * calibration['interval_level']:.0f}% conformal intervals: coverage on held-out CV folds "
              f"{calibration['cv_fold_coverage']:.3f} (folds {calibration['cv_fold_coverage_range'][0]:.3f}-"
              f"{calibration['cv_fold_coverage_range'][1]:.3f}){off_nominal}; median half-width "
              f"{_number(calibration['median_halfwidth'])}",
              "- out of distribution: each sample set's summary.json and report (distance to the panel's nearest cell "
              "lines in the final features)", "", "## Versions",
              ", ".join(f"{k} {v}" for k, v in card["versions"].items()), ""]
    return "\n".join(lines)


def _number(value) -> str:
    return "" if value is None else f"{value:.4f}"

