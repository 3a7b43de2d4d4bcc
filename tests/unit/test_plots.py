"""Report figures (drp.plots): titles that never overlap, and colours that stay distinct with many tissues,
models or folds. Every figure is checked as it is saved: ``_save`` is wrapped so the test keeps the figure
(the PNG is still written) and measures its texts with the renderer."""

import sys
import types

import anndata as ad
import matplotlib.colors as mcolors
from matplotlib.backends.backend_agg import FigureCanvasAgg
import numpy as np
import pandas as pd
import pytest

from drp import plots

TAB20_COLOURS = 20  # the palette the latent UMAP used; the legend must not list more entries than this


@pytest.fixture
def saved(monkeypatch):
    """Figures handed to ``plots._save``, in order (the real ``_save`` still writes and closes them)."""
    kept = []
    save = plots._save

    def keep(fig, path):
        kept.append(fig)
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return kept


def _extents(fig):
    """Renderer of the figure laid out as for saving (constrained layout runs at draw time)."""
    FigureCanvasAgg(fig)  # the saved figure was closed, which detached its canvas
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _suptitle(fig, title):
    found = [text for text in fig.texts if text.get_text() == title]
    assert len(found) == 1, "figure has no suptitle"
    return found[0]


def _title_overlaps(fig, title) -> list:
    """Every pair (suptitle / panel title / axis labels of another panel) whose window boxes intersect."""
    renderer = _extents(fig)
    suptitle = _suptitle(fig, title).get_window_extent(renderer)
    axes = [ax for ax in fig.axes if ax.axison and ax.get_title()]
    assert axes, "no titled panels"
    clashes = []
    for i, ax in enumerate(axes):
        box = ax.title.get_window_extent(renderer)
        if box.overlaps(suptitle):
            clashes.append(("suptitle", ax.get_title()))
        for j, other in enumerate(axes):
            if i == j:
                continue
            neighbours = [other.title, other.xaxis.label, *other.get_xticklabels()]
            if any(box.overlaps(text.get_window_extent(renderer)) for text in neighbours if text.get_text()):
                clashes.append((ax.get_title(), other.get_title()))
    return clashes


def _synthetic_predictions(n_models: int) -> dict:
    rng = np.random.default_rng(n_models)
    out = {}
    for m in range(n_models):
        y_true = rng.normal(size=300)
        out[f"synthetic_model_{m}"] = pd.DataFrame({"y_true": y_true, "y_pred": y_true + rng.normal(size=300)})
    return out


@pytest.mark.parametrize("n_models", [1, 2, 3, 5, 8])
def test_predicted_vs_observed_synthetic_suptitle_clear_of_panel_titles(tmp_path, saved, n_models):
    title = "synthetic data set LCO: predicted against observed"
    path = tmp_path / "predicted_vs_observed.png"
    plots.predicted_vs_observed(_synthetic_predictions(n_models), path, title, "LN_IC50")
    assert path.stat().st_size > 0
    (fig,) = saved
    assert _title_overlaps(fig, title) == []
    assert sum(ax.axison for ax in fig.axes) == n_models


def test_per_drug_distributions_synthetic_suptitle_clear_of_panel_titles(tmp_path, saved):
    rng = np.random.default_rng(1)
    per_drug = pd.DataFrame([{"model": f"synthetic_model_{m}", "drug": f"drug{d}",
                              **{metric: rng.uniform() for metric in plots.DISTRIBUTION_METRICS}}
                             for m in range(8) for d in range(20)])
    title = "synthetic data set: per-drug metrics"
    plots.per_drug_distributions(per_drug, tmp_path / "distributions.png", title)
    (fig,) = saved
    assert _title_overlaps(fig, title) == []


def _synthetic_latent(path, n_tissues: int, seed: int = 0):
    """Latent means of cell lines from ``n_tissues`` tissues, all of different sizes (3 .. n_tissues + 2),
    names not in size order; about one in four cell lines held out."""
    rng = np.random.default_rng(seed)
    sizes = rng.permutation(np.arange(3, n_tissues + 3))
    tissue = np.repeat([f"synthetic_tissue_{i:02d}" for i in range(n_tissues)], sizes)
    n = len(tissue)
    latent = ad.AnnData(rng.normal(size=(n, 6)).astype(np.float32),
                        obs=pd.DataFrame({"tissue": pd.Categorical(tissue), "in_training": rng.uniform(size=n) > 0.25},
                                         index=[f"cell{i}" for i in range(n)]))
    latent.write_h5ad(path)
    return latent


@pytest.fixture
def fake_scanpy(monkeypatch):
    """scanpy stand-in: no neighbour graph, and the 'UMAP' is the first two latent dimensions (fast, exact)."""
    fake = types.ModuleType("scanpy")
    fake.pp = types.SimpleNamespace(neighbors=lambda adata, **kwargs: None)
    fake.tl = types.SimpleNamespace(umap=lambda adata, **kwargs: adata.obsm.__setitem__(
        "X_umap", np.asarray(adata.X, dtype=float)[:, :2]))
    monkeypatch.setitem(sys.modules, "scanpy", fake)


def _colour_of_each_tissue(ax, latent) -> dict:
    """Tissue -> set of colours its points are drawn in, read back from the scatter collections."""
    where = {tuple(np.round(xy, 4)): t for xy, t in zip(np.asarray(latent.X, float)[:, :2], latent.obs["tissue"])}
    colours, drawn = {}, 0
    for collection in ax.collections:
        offsets = collection.get_offsets()
        if len(offsets) == 0:
            continue
        colour = mcolors.to_hex(collection.get_facecolor()[0] if len(collection.get_facecolor())
                                else collection.get_edgecolor()[0])
        for xy in np.asarray(offsets, float):
            colours.setdefault(where[tuple(np.round(xy, 4))], set()).add(colour)
            drawn += 1
    assert drawn == latent.n_obs, "every cell line is drawn exactly once"
    return colours


def _legend(ax):
    legend = ax.get_legend()
    assert legend is not None
    labels = [text.get_text() for text in legend.get_texts()]
    colours = [mcolors.to_hex(handle.get_facecolor()[0]) for handle in legend.legend_handles]
    return legend, labels, colours


def test_latent_umap_synthetic_28_tissues_distinct_colours_and_readable_legend(tmp_path, saved, fake_scanpy):
    latent = _synthetic_latent(tmp_path / "latent.h5ad", n_tissues=28)
    path = tmp_path / "latent_umap.png"
    plots.latent_umap(tmp_path / "latent.h5ad", path, seed=0, title="synthetic: latent space")
    assert path.stat().st_size > 0
    (fig,) = saved
    ax = fig.axes[0]
    legend, labels, legend_colours = _legend(ax)

    # readable: no more entries than the palette has colours, and the legend fits the figure's height
    assert len(labels) <= TAB20_COLOURS
    renderer = _extents(fig)
    assert legend.get_window_extent(renderer).height <= fig.bbox.height
    # no two legend entries (tissues, or tissues and "other") share a colour
    assert len(set(legend_colours)) == len(legend_colours)

    by_tissue = _colour_of_each_tissue(ax, latent)
    counts = latent.obs["tissue"].astype(str).value_counts()
    named = {label.split(" (n = ")[0]: colour for label, colour in zip(labels, legend_colours)
             if not label.startswith("other")}
    others = [label for label in labels if label.startswith("other")]
    # labelled tissues: one colour each, shared with no other tissue, the same as in the legend
    for tissue, colour in named.items():
        assert by_tissue[tissue] == {colour}
        assert all(colour not in shared for other, shared in by_tissue.items() if other != tissue)
    # the labelled tissues are the largest ones; the rest are one grey "other" entry that counts them
    assert set(named) == set(counts.sort_values(ascending=False).index[:len(named)])
    rest = sorted(set(counts.index) - set(named))
    assert len(others) == 1 and f"other ({len(rest)} tissues" in others[0]
    grey = legend_colours[labels.index(others[0])]
    assert all(by_tissue[tissue] == {grey} for tissue in rest)


def test_latent_umap_synthetic_few_tissues_all_labelled(tmp_path, saved, fake_scanpy):
    latent = _synthetic_latent(tmp_path / "latent.h5ad", n_tissues=5, seed=3)
    plots.latent_umap(tmp_path / "latent.h5ad", tmp_path / "latent_umap.png", seed=0, title="synthetic")
    (fig,) = saved
    _, labels, legend_colours = _legend(fig.axes[0])
    assert len(labels) == 5 and not any(label.startswith("other") for label in labels)
    assert len(set(legend_colours)) == 5
    by_tissue = _colour_of_each_tissue(fig.axes[0], latent)
    assert all(len(colours) == 1 for colours in by_tissue.values())


def test_training_history_synthetic_12_folds_distinct_colours(tmp_path, saved):
    dirs = []
    for fold in range(12):
        directory = tmp_path / f"fold{fold}"
        directory.mkdir()
        pd.DataFrame({"epoch": range(5), "loss": np.linspace(2, 1, 5) + fold,
                      "validation_score": np.linspace(1, 0.5, 5) + 0.01 * fold}).to_csv(
            directory / "history.tsv", sep="\t", index=False)
        dirs.append(directory)
    title = "synthetic: training history"
    plots.training_history(dirs, tmp_path / "history.png", title)
    (fig,) = saved
    colours = [mcolors.to_hex(line.get_color()) for line in fig.axes[1].get_lines()]
    assert len(colours) == 12 and len(set(colours)) == 12
    assert _title_overlaps(fig, title) == []
