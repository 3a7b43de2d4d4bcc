"""Figures and tables for the report."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # batch jobs have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .dataset import read_view  # noqa: E402
from .io import atomic_path, write_text  # noqa: E402
from .metrics import pearson  # noqa: E402
from .statistics import LOWER_IS_BETTER  # noqa: E402

DISTRIBUTION_METRICS = ("pearson", "pearson_beyond_mean_effects", "spearman", "auroc")
MAX_PANEL_COLUMNS = 4  # predicted-vs-observed panels per row; more models wrap onto further rows
OTHER_COLOUR = "#c7c7c7"  # light grey for the tissues beyond the palette


def tissue_palette() -> list:
    """Distinct colours for tissues: tab20 without its two greys (kept for "other"), the ten strong hues first
    and their light variants after, so the largest tissues get the most different colours."""
    colours = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (14, 15)]
    return colours[0::2] + colours[1::2]


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def per_drug_distributions(per_drug: pd.DataFrame, path, title: str) -> None:
    """Box plots with every drug as a point: one panel per metric, one box per model."""
    models = list(dict.fromkeys(per_drug["model"]))
    width = max(4.0, 1.0 + 0.45 * len(models))  # room for the rotated model names when there are many
    fig, axes = plt.subplots(1, len(DISTRIBUTION_METRICS), figsize=(width * len(DISTRIBUTION_METRICS), 4),
                             squeeze=False, layout="constrained")  # the suptitle gets its own space
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
    """Hexbin density of predicted against observed response, one panel per model.

    At most ``MAX_PANEL_COLUMNS`` panels a row; constrained layout keeps the suptitle above the (two-line)
    panel titles and each row's titles clear of the axis labels of the row above.
    """
    n = max(len(predictions), 1)
    ncols = min(n, MAX_PANEL_COLUMNS)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4 * nrows + 0.4), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(predictions):]:
        ax.axis("off")
    every = pd.concat(predictions.values())
    limits = np.nanpercentile(np.r_[every.y_true, every.y_pred], [0.5, 99.5])
    for ax, (name, frame) in zip(axes.flat, predictions.items()):
        ax.hexbin(frame.y_true, frame.y_pred, gridsize=50, bins="log", cmap="viridis", extent=(*limits, *limits))
        ax.plot(limits, limits, color="white", lw=0.8)
        ax.set_title(f"{name}\npooled r = {pearson(frame.y_true, frame.y_pred):.3f}, n = {len(frame)}")
        ax.set_xlabel(f"observed {measure}")
        ax.set_ylabel(f"predicted {measure}")
    fig.suptitle(title)
    _save(fig, path)


def table_html(table: pd.DataFrame, path, title: str) -> None:
    """A table as a small HTML page for the report."""
    html = table.to_html(float_format=lambda v: f"{v:.3f}", na_rep="n/a", border=0)
    write_text(path, f"<html><head><meta charset='utf-8'><title>{title}</title>"
                     "<style>td,th{padding:3px 8px;text-align:right}</style></head>"
                     f"<body><h3>{title}</h3>{html}</body></html>\n")


def summary_table_html(summary: pd.DataFrame, path, title: str) -> None:
    """Models as rows, per-drug mean / median and pooled value of each metric as columns."""
    table_html(summary.pivot_table(index="model", columns=["metric", "scope"], values="value", sort=False), path, title)


def placeholder_figure(path, message: str) -> None:
    """A figure that says why the real one could not be drawn (the report still has every file)."""
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    _save(fig, path)


def latent_umap(latent_path, path, seed: int, title: str) -> None:
    """UMAP (scanpy) of latent means, coloured by tissue; held-out cell lines drawn as crosses.

    The largest tissues (by number of cell lines, as many as ``tissue_palette`` has colours) each get their own
    colour and legend entry; any further tissues are drawn in light grey, underneath, as one "other" entry.
    """
    import scanpy as sc  # slow to import: only the UMAP needs it

    latent = read_view(latent_path)
    sc.pp.neighbors(latent, use_rep="X", n_neighbors=15, random_state=seed)
    sc.tl.umap(latent, random_state=seed)
    coords = latent.obsm["X_umap"]
    tissue = latent.obs["tissue"].astype(str).to_numpy()
    palette = tissue_palette()
    names, counts = np.unique(tissue, return_counts=True)
    by_size = sorted(zip(names, counts), key=lambda item: (-item[1], item[0]))  # ties: alphabetical
    labelled = by_size[:len(palette)]
    rest = by_size[len(labelled):]
    fig, ax = plt.subplots(figsize=(8.5, 6))
    held_out = ~latent.obs["in_training"].to_numpy(bool)
    if rest:
        own = np.isin(tissue, [name for name, _ in rest])
        ax.scatter(*coords[own & ~held_out].T, s=8, color=OTHER_COLOUR, zorder=1,
                   label=f"other ({len(rest)} tissues, n = {sum(c for _, c in rest)})")
        ax.scatter(*coords[own & held_out].T, s=18, color=OTHER_COLOUR, marker="x", zorder=1)
    for colour, (name, count) in zip(palette, labelled):
        own = tissue == name
        ax.scatter(*coords[own & ~held_out].T, s=10, color=colour, label=f"{name} (n = {count})", zorder=2)
        ax.scatter(*coords[own & held_out].T, s=22, color=colour, marker="x", zorder=2)
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_title(f"{title}\n(x: held-out test cell lines, encoded after training)")
    handles, labels = ax.get_legend_handles_labels()
    if rest:  # "other" was drawn first (underneath) but is listed last
        handles, labels = handles[1:] + handles[:1], labels[1:] + labels[:1]
    ax.legend(handles, labels, fontsize=7, markerscale=1.5, bbox_to_anchor=(1.01, 1), loc="upper left")
    _save(fig, path)


def training_history(model_dirs: list, path, title: str) -> None:
    """Training loss and validation score per epoch, one line per fold."""
    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    n = len(model_dirs)
    colours = plt.get_cmap("tab10").colors if n <= 10 else plt.get_cmap("turbo")(np.linspace(0.05, 0.95, n))
    for fold, (directory, colour) in enumerate(zip(model_dirs, colours)):
        history = pd.read_csv(Path(directory) / "history.tsv", sep="\t")
        loss_ax.plot(history.epoch, history["loss"], lw=1, color=colour, label=f"fold {fold}")
        line, = val_ax.plot(history.epoch, history.validation_score, lw=1, color=colour, label=f"fold {fold}")
        best = history.validation_score.idxmin()
        val_ax.scatter(history.epoch[best], history.validation_score[best], color=line.get_color(), zorder=3)
    loss_ax.set_yscale("log")
    loss_ax.set(xlabel="epoch", ylabel="training loss (per cell line)", title="training loss")
    val_ax.set(xlabel="epoch", ylabel="validation score (lower is better)", title="early-stopping criterion")
    val_ax.legend(fontsize=8, ncol=1 if n <= 10 else 2)
    fig.suptitle(title)
    _save(fig, path)


def critical_difference_diagram(result: dict, output, title: str) -> None:
    """Demšar-style critical-difference diagram from ``drp.statistics.critical_difference``.

    An axis of average ranks (1 = best, on the left), each model hung from its rank, a bar as long as the
    Nemenyi critical difference, and thick lines joining models whose ranks differ by less than it.
    """
    ranks, k = result["average_ranks"], result["n_models"]
    models = sorted(ranks, key=ranks.get)
    groups = result["groups"]
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.3 * (k + 1) / 2 + 0.12 * len(groups)))
    ax.set_xlim(0.8, max(k, 2) + 0.2)  # room for the label leaders; the names themselves may overhang
    ax.axis("off")
    _cd_axis(ax, max(k, 2), result["critical_difference"])
    first_row = 0.45 + 0.15 * len(groups)  # labels start below the clique bars
    _cd_labels(ax, models, ranks, first_row, max(k, 2))
    for i, group in enumerate(groups):
        y = 0.3 + 0.15 * i
        ax.plot([ranks[group[0]] - 0.03, ranks[group[-1]] + 0.03], [y, y], color="black", lw=3.5,
                solid_capstyle="round")
    rows = (len(models) + 1) // 2
    ax.set_ylim(first_row + 0.32 * rows + 0.1, -1.25)  # inverted: axis on top, models hung below
    ax.set_title(f"{title}\n{result['metric'].replace('_', ' ')}: N = {result['n_drugs']} drugs, "
                 f"Friedman p = {result['friedman_p_value']:.2g}, CD = {result['critical_difference']:.2f} "
                 f"(Nemenyi, alpha = {result['alpha']})"
                 + (f"\nnot ranked (no finite value): {', '.join(result['models_without_values'])}"
                    if result.get("models_without_values") else ""), fontsize=10)
    _save(fig, output)


def _cd_axis(ax, k: int, cd: float) -> None:
    """Rank axis with integer ticks and the CD bar above it, starting at rank 1."""
    ax.plot([1, k], [0, 0], color="black", lw=1)
    for tick in np.arange(1, k + 0.01, 0.5):
        major = float(tick).is_integer()
        ax.plot([tick, tick], [0, -0.12 if major else -0.06], color="black", lw=1)
        if major:
            ax.text(tick, -0.18, f"{tick:.0f}", ha="center", va="bottom", fontsize=9)
    if np.isfinite(cd):
        end = min(1 + cd, k)  # a CD wider than the axis is drawn to its end
        ax.plot([1, end], [-0.8, -0.8], color="black", lw=1.5)
        for x in (1, end):
            ax.plot([x, x], [-0.86, -0.74], color="black", lw=1.5)
        ax.text((1 + end) / 2, -0.9, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)


def _cd_labels(ax, models: list, ranks: dict, first_row: float, k: int) -> None:
    """Better half of the models labelled on the left, worse half on the right, lines never crossing."""
    half = (len(models) + 1) // 2
    for row, model in enumerate(models[:half]):
        y = first_row + 0.32 * row
        ax.plot([ranks[model], ranks[model], 1 - 0.1], [0, y, y], color="black", lw=0.8)
        ax.text(1 - 0.15, y, f"{model} ({ranks[model]:.2f})", ha="right", va="center", fontsize=9)
    for row, model in enumerate(reversed(models[half:])):
        y = first_row + 0.32 * row
        ax.plot([ranks[model], ranks[model], k + 0.1], [0, y, y], color="black", lw=0.8)
        ax.text(k + 0.15, y, f"({ranks[model]:.2f}) {model}", ha="left", va="center", fontsize=9)


def per_drug_heatmap(per_drug: pd.DataFrame, metric: str, output, title: str, max_drugs: int | None = None) -> None:
    """Drugs x models heatmap of a per-drug metric, best model first and best drugs on top.

    Models and drugs are ordered by their mean (over drugs, over models; lower first for rmse). With more
    than ``max_drugs`` drugs, the ``max_drugs`` on which the models disagree most (largest standard
    deviation across models) are shown. Drug names are drawn only when they stay legible (<= 60 rows).
    Colours run from worse (dark) to better (bright) whatever the metric's direction; NaN is grey.
    """
    lower = metric in LOWER_IS_BETTER
    wide = per_drug.pivot_table(index="drug", columns="model", values=metric, aggfunc="mean")
    wide = wide[wide.mean().sort_values(ascending=lower).index]
    total = len(wide)
    if max_drugs is not None and total > max_drugs:
        wide = wide.loc[wide.std(axis=1).fillna(0).nlargest(max_drugs).index]
    wide = wide.loc[wide.mean(axis=1).sort_values(ascending=lower).index]
    fig, ax = plt.subplots(figsize=(1.6 + 0.7 * wide.shape[1], min(3 + 0.05 * len(wide), 14)))
    cmap = plt.get_cmap("viridis_r" if lower else "viridis").with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(wide.to_numpy(float)), aspect="auto", interpolation="nearest", cmap=cmap)
    ax.set_xticks(range(wide.shape[1]), wide.columns, rotation=30, ha="right")
    if len(wide) <= 60:
        ax.set_yticks(range(len(wide)), wide.index, fontsize=7)
    else:
        ax.set_yticks([])
    shown = f"{len(wide)} of {total}" if len(wide) < total else f"{total}"
    ax.set_ylabel(f"drugs ({shown}), best mean {metric.replace('_', ' ')} on top")
    fig.colorbar(image, ax=ax, label=f"{metric.replace('_', ' ')}" + (" (lower is better)" if lower else ""),
                 shrink=0.6)
    ax.set_title(title)
    _save(fig, output)
