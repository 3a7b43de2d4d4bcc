"""Predictions for new samples: a sample set (a folder of omics without responses) through a data set's final
models, with per sample and drug the predicted response, its percentile among the training cell lines, the
probability of sensitivity, a conformal interval, an out-of-distribution score and flag, and the features
behind the prediction (``drp.uncertainty``, ``drp.explain``).

A **held-out check** (``samples.<name>.holdout``) makes a sample set from real cell lines of a data set: the
rule build_holdout_<name> writes the data set without them (``<dataset>_without_<name>``, a data set like any
other, with its own splits, cross-validation and final models, so nothing about the held-out lines reaches
the final model or its calibration) and the held-out lines' omics as a sample folder, their responses kept
apart; check_samples then scores the predictions against the hidden responses.
"""

from __future__ import annotations

import html
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..dataset import UNKNOWN_TISSUE, Dataset, read_drugs, read_meta, read_response, read_view
from ..io import write_h5ad, write_json, write_table, write_text

if TYPE_CHECKING:  # anndata is imported in the functions that build views
    import anndata as ad

log = logging.getLogger(__name__)

TOP_FEATURES_SHOWN = 3  # in predictions.tsv; explanations.tsv keeps the top ``explain_top``
# Samples are handed to the models under ids no training cell line has: a model that remembers a training
# line's own effect by its id (the mean-effects baselines) must not give it to a sample that shares the id.
SAMPLE_PREFIX = "sample::"


def held_out_cell_lines(tissue: pd.Series, holdout: Mapping) -> pd.Index:
    """The cell lines a held-out check takes out: those of ``holdout["tissue"]``, or a random ``fraction`` of
    every tissue's cell lines (at least one of a tissue with two or more; seed ``holdout["seed"]``)."""
    tissue = tissue.astype(str).sort_index()
    if "tissue" in holdout:
        chosen = tissue.index[tissue == holdout["tissue"]]
        if chosen.empty:
            raise ValueError(f"holdout.tissue: no cell line of tissue {holdout['tissue']!r}; the data set has "
                             f"{', '.join(sorted(tissue.unique())[:10])}, ...")
        if len(chosen) == len(tissue):
            raise ValueError(f"holdout.tissue: {holdout['tissue']!r} is every cell line of the data set")
        return pd.Index(chosen)
    rng = np.random.default_rng(holdout.get("seed", 0))
    chosen = []
    for _, members in tissue.groupby(tissue):
        n = int(round(holdout["fraction"] * len(members)))
        n = max(n, 1) if len(members) > 1 else n
        chosen += list(rng.choice(members.index.to_numpy(), size=n, replace=False))
    return pd.Index(sorted(chosen))


def build_holdout(paths: Mapping, holdout: Mapping, sample_set: str, outputs: Mapping) -> None:
    """Inputs: the source data set's files (meta, response, drugs, <view>). Outputs: the data set without the
    held-out cell lines (meta, response, drugs, cell_lines, <view>), the held-out lines' raw views as a sample
    folder (``sample_folder``: <view>.h5ad and samples.tsv) and their responses (``hidden_response``)."""
    import anndata as ad

    meta = read_meta(paths["meta"])
    views = {name: read_view(paths[name]) for name in meta["views"]}
    first = next(iter(views.values()))
    held = held_out_cell_lines(first.obs["tissue"], holdout)
    kept = first.obs_names.difference(held, sort=False)
    response = read_response(paths["response"])
    remaining = Dataset(views={name: view[kept].copy() for name, view in views.items()},
                        response=response[~response.cell_line.isin(held)].reset_index(drop=True),
                        drugs=read_drugs(paths["drugs"]),
                        measure=meta["measure"], lower_is_sensitive=meta["lower_is_sensitive"],
                        provenance={**meta.get("provenance", {}),
                                    "held_out": {"sample_set": sample_set, **dict(holdout), "cell_lines": len(held)}})
    remaining.write(Path(outputs["meta"]).parent)
    folder = Path(outputs["sample_folder"])
    for name, view in views.items():  # the raw profiles, as a user would hand them in
        write_h5ad(folder / f"{name}.h5ad", ad.AnnData(X=np.asarray(view[held].X), obs=pd.DataFrame(index=held),
                                                       var=pd.DataFrame(index=view.var_names)))
    write_table(folder / "samples.tsv",
                pd.DataFrame({"sample": held, "tissue": first.obs.loc[held, "tissue"].to_numpy()}))
    hidden = response[response.cell_line.isin(held)].rename(columns={"cell_line": "sample"}).reset_index(drop=True)
    write_table(outputs["hidden_response"], hidden)
    log.info("held out %d of %d cell lines (%s) with %d responses; %d cell lines remain", len(held), first.n_obs,
             holdout, len(hidden), len(kept))


def _rank(frame: pd.DataFrame, lower_is_sensitive: bool) -> np.ndarray:
    """1 = the drug the sample is most likely sensitive to: by p(sensitive), the probability that its response
    is beyond the drug's median over the training cell lines (it weighs the prediction against the model's
    error for that drug), then by the prediction's percentile among the training cell lines."""
    order = pd.DataFrame({"p": -frame.p_sensitive.fillna(0.5),
                          "percentile": frame.percentile if lower_is_sensitive else -frame.percentile,
                          "sample": frame["sample"]})
    return order.sort_values(["p", "percentile"]).groupby("sample").cumcount().reindex(frame.index).to_numpy() + 1


def model_predictions(model, name: str, cells, samples: pd.Index, calibration: Path, level: float,
                      lower_is_sensitive: bool) -> pd.DataFrame:
    """One final model's predictions for every sample and every drug it was trained on, with percentile,
    p(sensitive), the conformal interval (infinite for a drug without enough residuals) and the rank of each
    drug within the sample. ``cells`` holds the samples under ``SAMPLE_PREFIX`` + id."""
    from ..uncertainty import halfwidths, probability_sensitive, training_percentile

    training = pd.read_parquet(calibration / "training_response.parquet")
    residuals = pd.read_parquet(calibration / "residuals.parquet")
    drugs = sorted(training.drug.unique())
    pairs = pd.DataFrame({"cell_line": np.repeat(samples.to_numpy(), len(drugs)), "drug": np.tile(drugs, len(samples))})
    y_pred = model.predict(pairs.assign(cell_line=SAMPLE_PREFIX + pairs.cell_line), cells)["y_pred"].to_numpy(
        dtype=np.float64)
    width = halfwidths(residuals, level).reindex(pairs.drug).fillna(np.inf).to_numpy()
    thresholds = training.groupby("drug")["response"].median()
    out = pd.DataFrame({"sample": pairs.cell_line, "model": name, "drug": pairs.drug, "prediction": y_pred,
                        "lower": y_pred - width, "upper": y_pred + width, "interval_level": level,
                        "threshold": thresholds.reindex(pairs.drug).to_numpy(),
                        "percentile": training_percentile(y_pred, pairs.drug.to_numpy(), training),
                        "p_sensitive": probability_sensitive(y_pred, pairs.drug.to_numpy(), residuals, thresholds,
                                                             lower_is_sensitive)})
    out.insert(3, "rank", _rank(out, lower_is_sensitive))
    return out


def shuffled_model_inputs(raw: Mapping, fitted: Mapping, seed: int) -> dict:
    """Every sample's raw values permuted across the final features of each view (its own permutation per
    sample and view): the same values, no biology; the OOD score must flag them. Only the features the models
    use are shuffled: the file's other columns (genes the selection dropped, annotations) would dilute them
    with values the models never see."""
    import anndata as ad

    rng = np.random.default_rng(seed)
    out = {}
    for name in fitted:
        view = raw[name][:, raw[name].var_names.isin(fitted[name].var_names)]
        X = np.asarray(view.X, dtype=np.float64).copy()
        for row in X:
            rng.shuffle(row)
        out[name] = ad.AnnData(X=X, obs=view.obs.copy(), var=view.var.copy())
    return out


def _renamed(view, names) -> "ad.AnnData":
    renamed = view.copy()
    renamed.obs_names = pd.Index(names)
    return renamed


def predict_samples(paths: Mapping, sample_set: str, spec: Mapping, models: Mapping, settings: Mapping,
                    outputs: Mapping) -> None:
    """The sample set's job. Inputs: the sample files (view names and ``annotations``) or ``sample_folder`` (a
    held-out check's), ``meta``, ``drug_features``, ``features_<view>`` (the final features), and per model
    ``model__<name>`` and ``calibration__<name>``. ``models``: name -> model spec. ``settings``: interval_level,
    ood_neighbours, ood_quantile, ood_views, explain_top, explain_steps, seed. Outputs: predictions,
    explanations, latent, report, summary."""
    from tqdm import tqdm

    from .. import input_names
    from ..explain import explain
    from ..models import catalog
    from ..models.base import CellLineData, DrugResponseModel
    from ..samples_io import read_sample_set, transform_samples
    from ..uncertainty import NeighbourDistance, ood_matrix, ood_view_names

    meta = read_meta(paths["meta"])
    fitted = {name: read_view(path) for name, path in input_names.views(paths).items()}
    # a folder set's files were resolved when the job was scheduled; a held-out check's folder is read whole
    files = None if "sample_folder" in paths.keys() else \
        {key: Path(paths[key]) for key in (*spec["views"], "annotations") if key in paths.keys()}
    raw, tissue, provenance = read_sample_set(dict(spec), files)
    files = files or {}
    views, transform_report = transform_samples(raw, fitted,
                                                missing=spec.get("missing_features", "refuse"),
                                                max_missing_fraction=spec.get("max_missing_fraction", 0.2),
                                                source={v: files[v] for v in fitted if v in files})
    samples = next(iter(views.values())).obs_names
    tissue = tissue.reindex(samples).fillna(UNKNOWN_TISSUE).astype(str)
    training_tissues = set(next(iter(fitted.values())).obs["tissue"].astype(str))
    log.info("sample set %s: %d samples, %d of a tissue absent from the training panel", sample_set, len(samples),
             int((~tissue.isin(training_tissues)).sum()))

    # out of distribution: distance to the training panel in the final features
    ood_views = ood_view_names(fitted, settings["ood_views"])
    ood = NeighbourDistance(settings["ood_neighbours"], settings["ood_quantile"]).fit(ood_matrix(fitted, ood_views))
    ood_score = ood.score(ood_matrix(views, ood_views))
    summary = {"sample_set": sample_set, "samples": len(samples), "provenance": provenance,
               "features": transform_report.to_dict("records"), "ood_threshold": ood.threshold, "ood_views": ood_views,
               "ood_flag_rate": float(np.mean(ood.flag(ood_score))),
               "samples_of_unseen_tissue": int((~tissue.isin(training_tissues)).sum())}
    if spec.get("shuffled_check"):  # the same samples with their genes scrambled: must be flagged
        scrambled, _ = transform_samples(shuffled_model_inputs(raw, fitted, settings["seed"]), fitted,
                                         missing=spec.get("missing_features", "refuse"),
                                         max_missing_fraction=spec.get("max_missing_fraction", 0.2), source=files)
        summary["shuffled_ood_flag_rate"] = float(np.mean(ood.flag(ood.score(ood_matrix(scrambled, ood_views)))))
        log.info("gene-shuffled profiles flagged: %.3f", summary["shuffled_ood_flag_rate"])

    cells = CellLineData({name: _renamed(view, SAMPLE_PREFIX + view.obs_names) for name, view in views.items()},
                         pd.Series(tissue.to_numpy(), index=SAMPLE_PREFIX + tissue.index),
                         read_view(paths["drug_features"]) if "drug_features" in paths.keys() else None)
    frames, explanations, latents, completeness = [], [], {}, {}
    for name in tqdm(list(models), desc=f"{sample_set}: final models", file=sys.stderr):
        model_dir, calibration = Path(paths[f"model__{name}"]), Path(paths[f"calibration__{name}"])
        model = DrugResponseModel.load(model_dir)
        predicted = model_predictions(model, name, cells, samples, calibration, settings["interval_level"],
                                      meta["lower_is_sensitive"])
        attributions, explained = explain(model, pd.DataFrame({"cell_line": SAMPLE_PREFIX + predicted["sample"],
                                                               "drug": predicted.drug}),
                                          cells, top=settings["explain_top"], n_steps=settings["explain_steps"])
        attributions["cell_line"] = attributions.cell_line.str.removeprefix(SAMPLE_PREFIX)
        predicted["explained_by"] = explained.method.to_numpy()
        predicted["top_features"] = _top_feature_text(attributions, predicted)
        completeness[name] = {"method": str(explained.method.iloc[0]) if len(explained) else "none",
                              "pairs_complete": int(explained.complete.sum()),
                              "pairs": int(len(explained)),
                              "max_completeness_error": float(explained.completeness_error.max())
                              if explained.completeness_error.notna().any() else None}
        frames.append(predicted)
        explanations.append(attributions.rename(columns={"cell_line": "sample"}).assign(model=name))
        if catalog.traits(models[name]).latent:
            latents[name] = (np.asarray(model.encode(CellLineData(fitted, next(iter(fitted.values())).obs["tissue"]
                                                                  .astype(str), cells.drug_features))),
                             np.asarray(model.encode(cells)))
    predictions = pd.concat(frames, ignore_index=True)
    predictions["ood_score"] = predictions["sample"].map(pd.Series(ood_score, index=samples))
    predictions["ood_flag"] = predictions["sample"].map(pd.Series(ood.flag(ood_score), index=samples))
    predictions["tissue"] = predictions["sample"].map(tissue)
    predictions = predictions.sort_values(["sample", "model", "rank"]).reset_index(drop=True)
    summary["explanations"] = completeness

    write_table(outputs["predictions"], predictions)
    write_table(outputs["explanations"], pd.concat(explanations, ignore_index=True))
    write_h5ad(outputs["latent"], latent_panel(fitted, views, tissue, ood, ood_score, latents, ood_views))
    write_json(outputs["summary"], summary)
    write_text(outputs["report"], report_html(sample_set, predictions, summary, meta, settings.get("report_top", 15)))
    log.info("sample set %s: %d predictions by %d models; %d samples flagged out of distribution", sample_set,
             len(predictions), len(models), int(ood.flag(ood_score).sum()))


def _top_feature_text(attributions: pd.DataFrame, predicted: pd.DataFrame) -> np.ndarray:
    """'gene (+0.12); ...' of the first TOP_FEATURES_SHOWN attributions of each (sample, drug)."""
    if attributions.empty:
        return np.full(len(predicted), "", dtype=object)
    top = attributions[attributions["rank"] <= TOP_FEATURES_SHOWN].sort_values("rank")
    text = top.assign(item=top.feature + " (" + top.attribution.map("{:+.3f}".format) + ")") \
        .groupby(["cell_line", "drug"])["item"].agg("; ".join)
    keys = pd.MultiIndex.from_arrays([predicted["sample"], predicted["drug"]])
    return text.reindex(keys).fillna("").to_numpy()


def latent_panel(fitted: Mapping, views: Mapping, tissue: pd.Series, ood, ood_score: np.ndarray,
                 latents: Mapping, names: list[str]) -> "ad.AnnData":
    """The training panel and the samples in one AnnData: obs set (training / sample), tissue, ood_score and
    ood_flag (leave-one-out scores for the panel); obsm X_pca (PCA fitted on the panel's final features of the
    OOD views ``names``) and X_<model> (the latent means of each model that has a latent space)."""
    import anndata as ad
    from sklearn.decomposition import PCA

    from ..uncertainty import ood_matrix

    panel = next(iter(fitted.values()))
    panel_matrix, sample_matrix = ood_matrix(fitted, names), ood_matrix(views, names)
    pca = PCA(n_components=min(20, *panel_matrix.shape), random_state=0).fit(panel_matrix)
    obs = pd.DataFrame({
        "set": ["training"] * panel.n_obs + ["sample"] * len(tissue),
        "tissue": np.concatenate([panel.obs["tissue"].astype(str).to_numpy(), tissue.to_numpy()]),
        "ood_score": np.concatenate([ood.training_scores, ood_score]),
    }, index=pd.Index([f"training:{c}" for c in panel.obs_names] + [f"sample:{s}" for s in tissue.index]))
    obs["ood_flag"] = ood.flag(obs.ood_score.to_numpy())
    out = ad.AnnData(X=np.zeros((len(obs), 0), dtype=np.float32), obs=obs)
    out.obsm["X_pca"] = np.vstack([pca.transform(panel_matrix), pca.transform(sample_matrix)]).astype(np.float32)
    for name, (panel_latent, sample_latent) in latents.items():
        out.obsm[f"X_{name}"] = np.vstack([panel_latent, sample_latent]).astype(np.float32)
    out.uns["pca_variance_ratio"] = pca.explained_variance_ratio_
    return out


def report_html(sample_set: str, predictions: pd.DataFrame, summary: Mapping, meta: Mapping, top: int) -> str:
    """One page: how the samples were read and checked, then per sample its flags and, per model, the ``top``
    drugs it is predicted most sensitive to, with intervals, p(sensitive) and the genes behind them."""
    esc = html.escape
    parts = [f"<html><head><meta charset='utf-8'><title>Sample set {esc(sample_set)}</title><style>"
             "body{font-family:sans-serif;max-width:1200px;margin:auto} table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:2px 6px} .flag{color:#b00;font-weight:bold}</style></head><body>",
             f"<h1>Predictions for sample set {esc(sample_set)}</h1>",
             f"<p>{summary['samples']} samples; response {esc(str(meta.get('measure')))} "
             f"({'lower' if meta['lower_is_sensitive'] else 'higher'} = more sensitive). Rank 1 = the drug the sample "
             "is predicted most sensitive to relative to the training cell lines (percentile of the prediction among "
             f"their responses). Intervals: {100 * predictions.interval_level.iloc[0]:.0f}% conformal, calibrated on "
             "held-out cell lines. Out of distribution: mean distance to the nearest training cell lines above the "
             f"threshold {summary['ood_threshold']:.4f} ({100 * summary['ood_flag_rate']:.1f}% of the samples "
             "flagged).</p>",
             "<h2>Features</h2>", pd.DataFrame(summary["features"]).to_html(index=False),
             "<h2>Explanations</h2><ul>"]
    for name, info in summary["explanations"].items():
        parts.append(f"<li>{esc(name)}: {esc(info['method'])}; completeness holds for {info['pairs_complete']} of "
                     f"{info['pairs']} pairs</li>")
    parts.append("</ul>")
    for sample, rows in predictions.groupby("sample", sort=True):
        first = rows.iloc[0]
        flag = "<span class='flag'>OUT OF DISTRIBUTION</span>" if first.ood_flag else "within the training panel"
        parts.append(f"<h2 id='{esc(str(sample))}'>{esc(str(sample))}</h2><p>tissue {esc(str(first.tissue))}; "
                     f"OOD score {first.ood_score:.4f}: {flag}</p>")
        for model, by_model in rows.groupby("model", sort=False):
            shown = by_model.nsmallest(top, "rank")[["rank", "drug", "prediction", "lower", "upper", "percentile",
                                                     "p_sensitive", "top_features"]]
            parts.append(f"<h3>{esc(str(model))}</h3>" + shown.to_html(index=False, float_format=lambda v: f"{v:.3f}"))
    parts.append("</body></html>")
    return "\n".join(parts)


def check_samples(paths: Mapping, outputs: Mapping, min_samples: int = 10, bootstrap_samples: int = 1000,
                  seed: int = 0) -> None:
    """A held-out check: every model's predictions of the held-out cell lines against their hidden responses.
    Per model: the mean per-drug Pearson over the drugs with at least ``min_samples`` held-out responses and a
    spread in both (as the evaluation scores a fold: ``statistics.pearson_fold_means``), with a percentile
    bootstrap 95% interval over the samples; the intervals' empirical coverage (overall, and its 10th
    percentile over drugs); p(sensitive)'s Brier score against the sensitivity its threshold defines; and the
    share of samples flagged out of distribution (and of their gene-shuffled profiles, when the set asks for
    that check). Inputs: predictions, hidden_response, summary, meta; output: check (tsv)."""
    from ..statistics import pearson_fold_means

    lower_is_sensitive = read_meta(paths["meta"])["lower_is_sensitive"]
    # ids as text (a drug may be named NA); an empty number field is a missing value (an infinite interval is inf)
    predictions = pd.read_csv(paths["predictions"], sep="\t", keep_default_na=False, na_values=[""],
                              dtype={"sample": str, "drug": str, "model": str, "tissue": str})
    hidden = read_response(paths["hidden_response"])
    sample_summary = json.loads(Path(paths["summary"]).read_text())
    scored = predictions.merge(hidden, on=["sample", "drug"], how="inner", validate="many_to_one")
    samples = pd.Index(sorted(scored["sample"].unique()))
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(samples), np.full(len(samples), 1.0 / len(samples)), size=bootstrap_samples)
    rows = []
    for model, frame in scored.groupby("model", sort=False):
        pairs = pd.DataFrame({"cell_line": frame["sample"], "drug": frame.drug, "y_true": frame.response,
                              "y_pred": frame.prediction, "fold": 0})
        point = pearson_fold_means(pairs, samples, np.ones((1, len(samples))), min_samples)[0].iloc[0]
        boot = pearson_fold_means(pairs, samples, counts, min_samples)[0].to_numpy() if bootstrap_samples else []
        covered = (frame.response >= frame.lower) & (frame.response <= frame.upper)
        sensitive = (frame.response < frame.threshold) if lower_is_sensitive else (frame.response > frame.threshold)
        flags = frame.drop_duplicates("sample").ood_flag.astype(str).str.lower().eq("true")
        rows.append({"model": model, "samples": frame["sample"].nunique(), "pairs": len(frame),
                     "mean_per_drug_pearson": float(point),
                     "pearson_ci_low": float(np.nanpercentile(boot, 2.5)) if len(boot) else np.nan,
                     "pearson_ci_high": float(np.nanpercentile(boot, 97.5)) if len(boot) else np.nan,
                     "interval_level": float(frame.interval_level.iloc[0]), "coverage": float(covered.mean()),
                     "coverage_per_drug_p10": float(covered.groupby(frame.drug).mean().quantile(0.1)),
                     "median_interval_width": float((frame.upper - frame.lower).median()),
                     "brier_p_sensitive": float(np.mean((frame.p_sensitive - sensitive.astype(float)) ** 2)),
                     "ood_flag_rate": float(flags.mean()),
                     "shuffled_ood_flag_rate": sample_summary.get("shuffled_ood_flag_rate", np.nan)})
    check = pd.DataFrame(rows)
    log.info("held-out check:\n%s", check.round(4).to_string())
    write_table(outputs["check"], check)
