"""Figures and tables for the report."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import matplotlib

matplotlib.use("Agg")  # batch jobs have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .io import atomic_path, write_text  # noqa: E402
from .metrics import pearson  # noqa: E402

DISTRIBUTION_METRICS = ("pearson", "normalized_pearson", "spearman", "auroc")


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def per_drug_distributions(per_drug: pd.DataFrame, path, title: str) -> None:
    """Box plots with every drug as a point: one panel per metric, one box per model."""
    models = list(dict.fromkeys(per_drug["model"]))
    fig, axes = plt.subplots(1, len(DISTRIBUTION_METRICS), figsize=(4 * len(DISTRIBUTION_METRICS), 4), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes[0], DISTRIBUTION_METRICS):
        values = [per_drug.loc[per_drug.model == m, metric].dropna().to_numpy() for m in models]
        ax.boxplot([v if len(v) else [np.nan] for v in values], showfliers=False)
        ax.set_xticks(range(1, len(models) + 1), models, rotation=30, ha="right")
        for i, v in enumerate(values, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=6, alpha=0.4, color="tab:blue")
        ax.set_title(metric.replace("_", " "))
        ax.axhline(0.5 if metric == "auroc" else 0.0, color="grey", lw=0.8, ls="--")
    fig.suptitle(title)
    _save(fig, path)


def predicted_vs_observed(predictions: dict[str, pd.DataFrame], path, title: str, measure: str) -> None:
    """Hexbin density of predicted against observed response, one panel per model."""
    fig, axes = plt.subplots(1, len(predictions), figsize=(4.2 * len(predictions), 4), squeeze=False)
    every = pd.concat(predictions.values())
    limits = np.nanpercentile(np.r_[every.y_true, every.y_pred], [0.5, 99.5])
    for ax, (name, frame) in zip(axes[0], predictions.items()):
        ax.hexbin(frame.y_true, frame.y_pred, gridsize=50, bins="log", cmap="viridis", extent=(*limits, *limits))
        ax.plot(limits, limits, color="white", lw=0.8)
        ax.set_title(f"{name}\npooled r = {pearson(frame.y_true, frame.y_pred):.3f}, n = {len(frame)}")
        ax.set_xlabel(f"observed {measure}")
        ax.set_ylabel(f"predicted {measure}")
    fig.suptitle(title)
    _save(fig, path)


def summary_table_html(summary: pd.DataFrame, path, title: str) -> None:
    """Models as rows, per-drug mean / median and pooled value of each metric as columns."""
    wide = summary.pivot_table(index="model", columns=["metric", "scope"], values="value", sort=False)
    html = wide.to_html(float_format=lambda v: f"{v:.3f}", na_rep="n/a", border=0)
    write_text(path, f"<html><head><meta charset='utf-8'><title>{title}</title>"
                     "<style>td,th{padding:3px 8px;text-align:right}</style></head>"
                     f"<body><h3>{title}</h3>{html}</body></html>\n")


def latent_umap(latent_path, path, seed: int, title: str) -> None:
    """UMAP (scanpy) of latent means, coloured by tissue; held-out cell lines drawn as crosses."""
    import scanpy as sc  # slow to import: only the UMAP needs it

    latent = ad.read_h5ad(latent_path)
    sc.pp.neighbors(latent, use_rep="X", n_neighbors=15, random_state=seed)
    sc.tl.umap(latent, random_state=seed)
    coords = latent.obsm["X_umap"]
    tissues = sorted(latent.obs["tissue"].astype(str).unique())
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(tissues), 2)))
    fig, ax = plt.subplots(figsize=(8.5, 6))
    held_out = ~latent.obs["in_training"].to_numpy(bool)
    for colour, tissue in zip(colours, tissues):
        own = (latent.obs["tissue"].astype(str) == tissue).to_numpy()
        ax.scatter(*coords[own & ~held_out].T, s=10, color=colour, label=tissue)
        ax.scatter(*coords[own & held_out].T, s=22, color=colour, marker="x")
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_title(f"{title}\n(x: held-out test cell lines, encoded after training)")
    ax.legend(fontsize=7, markerscale=1.5, bbox_to_anchor=(1.01, 1), loc="upper left")
    _save(fig, path)


def training_history(model_dirs: list, path, title: str) -> None:
    """Training loss and validation score per epoch, one line per fold."""
    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for fold, directory in enumerate(model_dirs):
        history = pd.read_csv(Path(directory) / "history.tsv", sep="\t")
        loss_ax.plot(history.epoch, history["loss"], lw=1, label=f"fold {fold}")
        line, = val_ax.plot(history.epoch, history.validation_score, lw=1, label=f"fold {fold}")
        best = history.validation_score.idxmin()
        val_ax.scatter(history.epoch[best], history.validation_score[best], color=line.get_color(), zorder=3)
    loss_ax.set_yscale("log")
    loss_ax.set(xlabel="epoch", ylabel="training loss (per cell line)", title="training loss")
    val_ax.set(xlabel="epoch", ylabel="validation score (lower is better)", title="early-stopping criterion")
    val_ax.legend(fontsize=8)
    fig.suptitle(title)
    _save(fig, path)
