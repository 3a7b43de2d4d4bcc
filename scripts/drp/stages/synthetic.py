"""Synthetic cell lines (README, "Synthetic data"): the synthesize job of one generator and fold, its evaluation
(fidelity and privacy against the fold's held-out real cell lines, utility of the strongest baseline trained on
it), and the page that gathers every generator and fold.

Held-out real cell lines are the fold's test cell lines: no generator, no model of the fold and no statistic
of the preprocessing saw them, so they are the fair reference for fidelity, the non-members of the privacy
attack, and the test set of the utility models.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .. import synthesis
from ..dataset import read_drugs, read_meta, read_view
from ..io import write_h5ad, write_json, write_table, write_text
from ..models import resolve
from ..models.base import CellLineData, DrugResponseModel, TrainingData
from ..models.selection import fit_best, grid_candidates, refit
from ..splits import TEST
from ..statistics import pearson_fold_means
from ..synthetic_metrics import (distance_to_closest_record, fidelity_summary, membership_inference_auroc,
                                privacy_check, response_fidelity)
from .train import cell_line_data, fold_pairs

log = logging.getLogger(__name__)

SETTINGS = ("real", "synthetic", "real_plus_synthetic")  # what the utility model trains on


def _fold(paths: Mapping, fold: int) -> tuple[CellLineData, pd.DataFrame, pd.Index, pd.Index]:
    """The fold's views, its pairs with roles, and its training (non-test) and held-out (test) cell lines."""
    cells, pairs = cell_line_data(paths), fold_pairs(paths, fold)
    training = pd.Index(sorted(pairs.loc[pairs.role != TEST, "cell_line"].unique()))
    held_out = pd.Index(sorted(pairs.loc[pairs.role == TEST, "cell_line"].unique()))
    if len(training.intersection(held_out)):  # pair-wise (LPO) or drug-blind (LDO) folds share cell lines
        raise ValueError(f"fold {fold}: {len(training.intersection(held_out))} cell lines are both training and "
                         "test; synthetic cell lines need cell-blind folds (LCO or LTO)")
    return cells, pairs, training, held_out


def synthesize(paths: Mapping, fold: int, generator: str, spec: dict, settings: dict, output) -> None:
    """One generator on one fold: fitted on the fold's training cell lines only (``spec``: ``kind`` gaussian,
    copula or copy, or ``model`` with input ``model``, the fold's trained model)."""
    cells, pairs, training, _ = _fold(paths, fold)
    training_pairs = pairs.loc[pairs.role != TEST, ["cell_line", "drug", "response"]].reset_index(drop=True)
    training_cells = cells.subset(training)
    groups = synthesis.tissue_groups(training_cells.tissue, settings["min_tissue_lines"])
    seed = int(settings["seed"]) + fold
    per_line = int(settings["per_cell_line"])
    rows = synthesis.row_groups(groups, per_line)
    members = synthesis.row_members(rows, groups, per_line)
    if "model" in spec:
        model = DrugResponseModel.load(paths["model"])
        if not callable(getattr(model, "generate", None)):
            raise ValueError(f"synthetic.generators.{generator}: model {spec['model']!r} ({type(model).__name__}) has no "
                             "decoder to generate cell lines from")
        drugs = list(model.drugs)
        views, responses = synthesis.sample_model(model, training_cells, training_pairs, groups, rows, members, seed,
                                                  latent=spec.get("latent", "aggregate"),
                                                  response_noise=spec.get("response_noise", True))
    else:
        drugs = sorted(training_pairs.drug.unique())
    measured = synthesis.response_matrix(training_pairs, training, drugs)
    if "model" not in spec:
        views, responses = synthesis.sample_baseline(spec["kind"], training_cells, list(cells.views), measured, groups,
                                                     rows, members, seed)
        spec = {"kind": spec["kind"]}  # not the model generators' options the config schema filled in
    screened = measured.notna().reindex(members).to_numpy()
    responses = pd.DataFrame(np.where(screened, responses, np.nan), columns=drugs)
    provenance = {"generator": generator, "spec": spec, "fold": fold, "seed": seed, "per_cell_line": per_line,
                  "training_cell_lines": len(training), "min_tissue_lines": settings["min_tissue_lines"],
                  "scale": "the fold's features: (value - train_mean) / train_std; layer unscaled: the data set's"}
    tissue = training_cells.tissue.reindex(members).to_numpy()
    synthetic = synthesis.synthetic_anndata(views, responses, tissue, rows, cells.views, provenance)
    log.info("%s fold %d: %d synthetic cell lines (%s) from %d training cell lines, %d features, %d drugs", generator,
             fold, synthetic.n_obs, ", ".join(f"{g} {n}" for g, n in pd.Series(rows).value_counts().items()),
             len(training), synthetic.n_vars, len(drugs))
    write_h5ad(output, synthetic)


# ---------------------------------------------------------------------------------------------------------- utility
def fit_on(spec: dict, cells: CellLineData, pairs: pd.DataFrame, drugs: pd.DataFrame, lower_is_sensitive: bool,
           seed: int):
    """``spec`` fitted on ``pairs`` of ``cells`` as the training job fits it on a fold: with grid candidates or a
    model that uses validation pairs, a seeded fifth of the cell lines chooses (and stops early), then the chosen
    candidate is refit on all."""
    lines = pd.Index(sorted(pairs.cell_line.unique()))
    validation = pairs.iloc[:0]
    train = pairs
    if len(grid_candidates(spec)) > 1 or resolve(spec["class"]).uses_validation:
        rng = np.random.default_rng(seed)
        chosen = set(rng.choice(lines, max(1, len(lines) // 5), replace=False))
        validation, train = pairs[pairs.cell_line.isin(chosen)], pairs[~pairs.cell_line.isin(chosen)]
    subset = cells.subset(lines)

    def make_data(index, train=train, validation=validation):
        return TrainingData(subset, train.reset_index(drop=True), validation.reset_index(drop=True), drugs,
                            lower_is_sensitive=lower_is_sensitive, seed=seed)

    model = fit_best(spec, make_data, seed)
    return refit(model, spec, make_data("refit", pairs, pairs.iloc[:0]), seed) if len(validation) else model


def _stack_cells(real: CellLineData, synthetic: CellLineData) -> CellLineData:
    """Real and synthetic cell lines in one CellLineData (the real views' var)."""
    import anndata as ad

    views = {name: ad.AnnData(np.vstack([np.asarray(view.X), np.asarray(synthetic.views[name].X)]),
                              obs=pd.DataFrame(index=view.obs_names.append(synthetic.views[name].obs_names)),
                              var=view.var)
             for name, view in real.views.items()}
    return CellLineData(views, pd.concat([real.tissue, synthetic.tissue]))


def mean_per_drug_pearson(predictions: pd.DataFrame, min_pairs: int) -> float:
    """The evaluation's headline metric over all of ``predictions`` as one fold: Pearson per drug over its test
    pairs, averaged over drugs (``statistics.pearson_fold_means``, as the held-out checks score it)."""
    if predictions.empty:
        return float("nan")
    cells = pd.Index(pd.unique(predictions.cell_line))
    pooled = predictions.assign(fold=0)
    return float(pearson_fold_means(pooled, cells, np.ones((1, len(cells))), min_pairs)[0].iloc[0])


def small_tissues(tissue: pd.Series, low: int, high: int) -> list[str]:
    """Tissues with ``low`` to ``high`` training cell lines: the ones synthetic cell lines might enlarge."""
    counts = tissue.value_counts()
    return sorted(counts.index[(counts >= low) & (counts <= high)].astype(str))


def evaluate_synthetic(paths: Mapping, fold: int, generator: str, settings: dict, utility_spec: dict,
                       outputs: Mapping) -> None:
    """Fidelity, privacy and utility of one generator's synthetic cell lines of one fold. Outputs ``metrics``
    (JSON) and ``predictions`` (the utility model's test predictions trained on real, synthetic, and real plus
    the synthetic cell lines of small tissues)."""
    synthetic = read_view(paths["synthetic"])
    cells, pairs, training, held_out = _fold(paths, fold)
    seed = int(settings["seed"]) + fold
    synthetic_cells, synthetic_pairs = synthesis.synthetic_cells(synthetic)
    generated = list(synthetic_cells.views)

    def real(lines, views):
        return np.hstack([np.asarray(cells.views[v][lines].X, dtype=np.float64) for v in views])

    def fake(views):
        return np.hstack([np.asarray(synthetic_cells.views[v].X, dtype=np.float64) for v in views])

    fidelity = {view: fidelity_summary(real(held_out, [view]), fake([view]), seed=seed) for view in generated}
    every_synthetic = fake(generated)  # all generated views side by side, and the same of the real cell lines
    every_training, every_held_out = real(training, generated), real(held_out, generated)
    if len(generated) > 1:
        fidelity["all"] = fidelity_summary(every_held_out, every_synthetic, seed=seed)
    held_out_responses = synthesis.response_matrix(pairs[pairs.role == TEST], held_out,
                                                   list(synthetic.obsm["response"].columns))
    fidelity["response"] = response_fidelity(held_out_responses, synthetic.obsm["response"])
    dcr = distance_to_closest_record(every_synthetic, every_training, every_held_out)
    mia = membership_inference_auroc(every_synthetic, every_training, every_held_out, seed=seed)
    privacy = {**dcr, "mia_auroc": mia, "passes": privacy_check(dcr, mia, settings["max_close_share"],
                                                                settings["max_mia_auroc"])}

    # utility: the strongest baseline on the views this generator makes, trained on real or synthetic cell lines
    utility_views = [v for v in (utility_spec.get("params") or {}).get("views") or list(cells.views) if v in generated]
    if not utility_views:
        raise ValueError(f"synthetic.utility_model: none of its views is generated by {generator!r} ({generated})")
    spec = {**utility_spec, "params": {**(utility_spec.get("params") or {}), "views": utility_views}}
    meta, drugs = read_meta(paths["meta"]), read_drugs(paths["drugs"])
    lower = meta["lower_is_sensitive"]
    columns = ["cell_line", "drug", "response"]
    training_pairs = pairs.loc[pairs.role != TEST, columns].reset_index(drop=True)
    test = pairs.loc[pairs.role == TEST, columns].reset_index(drop=True)
    training_pairs = training_pairs[training_pairs.drug.isin(set(synthetic_pairs.drug))]
    real_cells = CellLineData({v: cells.views[v] for v in utility_views}, cells.tissue)
    fake_cells = CellLineData({v: synthetic_cells.views[v] for v in utility_views}, synthetic_cells.tissue)
    small = small_tissues(cells.tissue.loc[training], settings["min_tissue_lines"], settings["augment_max_lines"])
    extra = synthetic_cells.tissue.index[synthetic_cells.tissue.isin(small)]
    fitted = {
        "real": fit_on(spec, real_cells.subset(training), training_pairs, drugs, lower, seed),
        "synthetic": fit_on(spec, fake_cells, synthetic_pairs, drugs, lower, seed),
        "real_plus_synthetic": fit_on(spec, _stack_cells(real_cells.subset(training), fake_cells.subset(extra)),
                                      pd.concat([training_pairs, synthetic_pairs[synthetic_pairs.cell_line.isin(extra)]],
                                                ignore_index=True), drugs, lower, seed),
    }
    test_cells = real_cells.subset(held_out)
    frames = []
    for setting, model in fitted.items():
        predicted = model.predict(test[["cell_line", "drug"]], test_cells)
        frames.append(test.rename(columns={"response": "y_true"}).assign(
            y_pred=predicted.y_pred.to_numpy(), setting=setting, fold=fold,
            tissue=cells.tissue.reindex(test.cell_line).to_numpy()))
    predictions = pd.concat(frames, ignore_index=True)
    min_pairs = settings["min_pairs_per_drug"]
    utility = {f"pearson_{setting}": mean_per_drug_pearson(predictions[predictions.setting == setting], min_pairs)
               for setting in SETTINGS}
    utility.update(views=utility_views, small_tissues=small, synthetic_cell_lines_added=len(extra))
    result = {"generator": generator, "fold": fold, "n_synthetic": int(synthetic.n_obs), "n_training": len(training),
              "n_held_out": len(held_out), "views": generated, "fidelity": fidelity, "privacy": privacy,
              "utility": utility}
    log.info("%s fold %d: classifier AUROC %s, response KS %.3f, DCR close share %.3f, MIA AUROC %.3f, Pearson "
             "real %.3f / synthetic %.3f", generator, fold,
             {v: round(f["classifier_auroc"], 3) for v, f in fidelity.items() if v != "response"},
             fidelity["response"]["mean_ks"], dcr["close_share"], mia, utility["pearson_real"],
             utility["pearson_synthetic"])
    write_table(outputs["predictions"], predictions)
    write_json(outputs["metrics"], result)


# ----------------------------------------------------------------------------------------------------------- report
#: the table's columns: (section, key in the metrics JSON, column name)
SUMMARY_COLUMNS = [("fidelity", "classifier_auroc", "classifier_auroc"), ("fidelity", "mean_ks", "mean_ks"),
                   ("fidelity", "mean_wasserstein_sd", "wasserstein_sd"),
                   ("fidelity", "correlation_distance", "correlation_distance"),
                   ("utility", "pearson_real", "pearson_real"), ("utility", "pearson_synthetic", "pearson_synthetic"),
                   ("privacy", "close_share", "dcr_close_share"), ("privacy", "mia_auroc", "mia_auroc")]


def metric_rows(results: list[dict]) -> pd.DataFrame:
    """One row per generator, fold and view: fidelity on that view (``all``: every generated view together;
    ``response``: the responses, without a classifier test), privacy and utility (the same on every view row of a
    generator and fold)."""
    rows = []
    for result in results:
        for view, fidelity in result["fidelity"].items():
            rows.append({"generator": result["generator"], "fold": result["fold"], "view": view,
                         **{column: float(result[section][key]) if section != "fidelity" else float(fidelity[key])
                            for section, key, column in SUMMARY_COLUMNS},
                         "utility_views": "+".join(result["utility"]["views"]),
                         "privacy_passes": bool(result["privacy"]["passes"])})
    table = pd.DataFrame(rows)
    table["pearson_loss"] = table["pearson_real"] - table["pearson_synthetic"]
    return table


def summarize_metrics(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and a t-based 95 % interval of the mean over folds (folds of repeated
    cross-validation share cell lines: the interval is a guide, not an exact test), per generator and view;
    ``privacy_passes`` is the share of folds that pass."""
    from scipy import stats

    numeric = [column for _, _, column in SUMMARY_COLUMNS] + ["pearson_loss"]
    out = []
    for (generator, view), group in rows.groupby(["generator", "view"], sort=False):
        row = {"generator": generator, "view": view, "folds": len(group), "utility_views": group.utility_views.iloc[0],
               "privacy_passes": float(group.privacy_passes.mean())}
        for column in numeric:
            values = group[column].to_numpy(dtype=float)
            mean, sd = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            half = float(stats.t.ppf(0.975, len(values) - 1) * sd / np.sqrt(len(values))) if len(values) > 1 else np.nan
            row.update({column: mean, f"{column}_sd": sd, f"{column}_ci_low": mean - half, f"{column}_ci_high": mean + half})
        out.append(row)
    return pd.DataFrame(out)


def augmentation_table(predictions: pd.DataFrame, tissues_of: dict, min_pairs: int) -> pd.DataFrame:
    """Per generator and small tissue: the mean per-drug Pearson within the tissue's held-out cell lines, pooled
    over the folds of a repeat (each cell line is tested once per repeat) and averaged over repeats, of the
    utility model trained on real cell lines and on real plus the tissue's synthetic ones. ``tissues_of``: per
    generator the tissues that were small in every fold."""
    rows = []
    for generator, by_generator in predictions.groupby("generator", sort=False):
        for tissue in tissues_of[generator]:
            own = by_generator[by_generator.tissue == tissue]
            row = {"generator": generator, "tissue": tissue, "cell_lines": own.cell_line.nunique()}
            for setting in ("real", "real_plus_synthetic"):
                chosen = own[own.setting == setting]
                values = [mean_per_drug_pearson(group, min_pairs) for _, group in chosen.groupby("repeat")]
                values = [v for v in values if np.isfinite(v)]
                row[f"pearson_{setting}"] = float(np.mean(values)) if values else np.nan
            if np.isfinite(row["pearson_real"]):  # a tissue with fewer than min_pairs cell lines cannot be scored
                rows.append(row)
    table = pd.DataFrame(rows, columns=["generator", "tissue", "cell_lines", "pearson_real", "pearson_real_plus_synthetic"])
    if len(table):
        table["difference"] = table["pearson_real_plus_synthetic"] - table["pearson_real"]
    return table


def overlay_figure(real: Mapping, synthetic: Mapping, path, seed: int, title: str) -> None:
    """Per generator (a column): PCA fitted on the training cell lines (top row) and a UMAP of training, held-out
    and synthetic cell lines together (bottom row), on the expression features of fold ``real['fold']``."""
    import matplotlib

    matplotlib.use("Agg")
    import anndata as ad
    import matplotlib.pyplot as plt
    import scanpy as sc
    from sklearn.decomposition import PCA

    from ..plots import _save

    names = list(synthetic)
    fig, axes = plt.subplots(2, len(names), figsize=(3.6 * len(names), 7.2), squeeze=False)
    training, held_out = real["training"], real["held_out"]
    pca = PCA(n_components=2, random_state=seed).fit(training)
    for column, name in enumerate(names):
        fake = synthetic[name]
        stacked = np.vstack([training, held_out, fake])
        kinds = np.repeat(["training", "held-out real", "synthetic"], [len(training), len(held_out), len(fake)])
        embedded = ad.AnnData(stacked.astype(np.float32))
        sc.pp.pca(embedded, n_comps=min(30, embedded.n_vars - 1, embedded.n_obs - 1), random_state=seed)
        sc.pp.neighbors(embedded, n_neighbors=15, random_state=seed)
        sc.tl.umap(embedded, random_state=seed)
        coordinates = {"PCA (fitted on training)": pca.transform(stacked), "UMAP": embedded.obsm["X_umap"]}
        for row, (label, xy) in enumerate(coordinates.items()):
            ax = axes[row, column]
            for kind, colour, size in (("training", "#cccccc", 5), ("synthetic", "#e6550d", 6),
                                       ("held-out real", "#3182bd", 9)):
                own = kinds == kind
                ax.scatter(*xy[own].T, s=size, color=colour, label=f"{kind} ({int(own.sum())})", linewidths=0)
            ax.set_title(f"{name}: {label}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].legend(fontsize=7, markerscale=2, loc="best")
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def synthetic_report(paths: Mapping, settings: dict, title: str, outputs: Mapping) -> None:
    """The page of one data set and split mode. Inputs ``<generator>__fold<k>__metrics`` / ``__predictions``
    for every generator and fold, ``<generator>__overlay`` (the synthetic cell lines of the first fold) and the
    first fold's ``features_expression``; outputs ``summary`` (per generator and view, over folds), ``by_fold``,
    ``augmentation``, ``overlays`` (PNG) and ``report`` (HTML)."""
    import json

    from ..plots import placeholder_figure

    results, predictions, overlay_paths = [], [], {}
    for key, path in paths.items():
        generator, _, rest = key.partition("__")
        if rest.endswith("__metrics"):
            results.append(json.loads(open(path).read()))
        elif rest.endswith("__predictions"):
            predictions.append(pd.read_parquet(path).assign(generator=generator))
        elif rest == "overlay":
            overlay_paths[generator] = path
    if not results:
        raise ValueError("synthetic report: no metrics among the inputs")
    n_folds = int(settings["n_folds"])
    rows = metric_rows(results)
    summary = summarize_metrics(rows)
    pooled = pd.concat(predictions, ignore_index=True)
    pooled["repeat"] = pooled["fold"] // n_folds
    small = {}
    for result in results:  # tissues small in every fold of the generator
        found = set(result["utility"]["small_tissues"])
        small[result["generator"]] = small.get(result["generator"], found) & found
    augmentation = augmentation_table(pooled, {g: sorted(t) for g, t in small.items()}, settings["min_pairs_per_drug"])
    write_table(outputs["by_fold"], rows)
    write_table(outputs["summary"], summary)
    write_table(outputs["augmentation"], augmentation)

    fold = int(min(r["fold"] for r in results))
    fakes = {}
    for generator, path in overlay_paths.items() if "features_expression" in paths.keys() else ():
        synthetic = read_view(path)
        columns = (synthetic.var["view"] == "expression").to_numpy()
        if columns.any():
            fakes[generator] = np.asarray(synthetic.X)[:, columns]
    if fakes:
        expression = read_view(paths["features_expression"])
        in_training = expression.obs["in_training"].to_numpy(bool)  # the fold's non-test cell lines
        real = {"training": np.asarray(expression.X)[in_training], "held_out": np.asarray(expression.X)[~in_training]}
        overlay_figure(real, fakes, outputs["overlays"], int(settings["seed"]),
                       f"{title}, fold {fold}: expression of training, held-out and synthetic cell lines")
    else:
        placeholder_figure(outputs["overlays"], "no generator makes expression")
    write_text(outputs["report"], report_html(title, summary, augmentation, outputs["overlays"], settings))


def report_html(title: str, summary: pd.DataFrame, augmentation: pd.DataFrame, overlays, settings: Mapping) -> str:
    """The page: the table per generator and view, the small-tissue augmentation and the overlays (inline)."""
    import base64
    import html

    shown = summary[["generator", "view", "folds", "classifier_auroc", "classifier_auroc_sd", "mean_ks",
                     "wasserstein_sd", "correlation_distance", "pearson_real", "pearson_synthetic",
                     "pearson_synthetic_ci_low", "pearson_synthetic_ci_high", "dcr_close_share", "mia_auroc",
                     "mia_auroc_sd", "privacy_passes", "utility_views"]]
    image = base64.b64encode(Path(overlays).read_bytes()).decode()
    float3 = lambda v: f"{v:.3f}"  # noqa: E731
    if len(augmentation):
        means = augmentation.groupby("generator", sort=False)["difference"].agg(
            mean="mean", tissues="count", improved=lambda d: int((d > 0).sum())).reset_index()
        augmented = means.to_html(index=False, float_format=float3) + augmentation.to_html(index=False,
                                                                                         float_format=float3)
    else:
        augmented = ("<p>No tissue was small in every fold (under LTO a test tissue has no training cell lines to "
                     "generate from).</p>")
    return "\n".join([
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}: synthetic cell lines</title><style>"
        "body{font-family:sans-serif;max-width:1400px;margin:auto} table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>",
        f"<h1>{html.escape(title)}: synthetic cell lines</h1>",
        "<p>Every generator is fitted on a fold's training cell lines only and judged against the fold's held-out "
        "(test) cell lines, which it never saw. Means over folds (sd; 95% t-interval over folds).</p><ul>"
        "<li>Fidelity, per view and for all generated views together: classifier two-sample AUROC (logistic "
        "regression telling held-out real from synthetic; 0.5 = indistinguishable), mean KS statistic and "
        "Wasserstein distance (in real standard deviations) over features, correlation distance (RMS difference of "
        "the feature correlations); view <i>response</i>: the same per drug over the screened responses of the "
        "held-out cell lines, and the drug-drug correlations.</li>"
        "<li>Utility: mean per-drug Pearson on the held-out cell lines of the utility model "
        f"({html.escape(str(settings['utility_model']))}, on the views the generator makes) trained on the real "
        "training cell lines, or on the synthetic ones alone (train-synthetic-test-real).</li>"
        "<li>Privacy: share of synthetic cell lines closer to a training cell line than 95% of the held-out cell "
        "lines are (about 0.05 without copying), and the AUROC of a distance membership-inference attack (0.5 = no "
        f"leak); passes: share &le; {settings['max_close_share']} and AUROC &le; {settings['max_mia_auroc']} (share "
        "of folds).</li></ul>",
        shown.to_html(index=False, float_format=float3),
        "<h2>Small tissues: real plus synthetic cell lines</h2><p>The utility model trained on the real training "
        "cell lines plus the synthetic cell lines of every tissue with "
        f"{settings['min_tissue_lines']}-{settings['augment_max_lines']} training cell lines, against real alone: mean "
        "per-drug Pearson within each such tissue's held-out cell lines (pooled over a repeat's folds, averaged over "
        "repeats).</p>", augmented,
        f"<h2>Overlays</h2><img src='data:image/png;base64,{image}' style='max-width:100%'>",
        "</body></html>"])
