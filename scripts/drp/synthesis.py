"""Synthetic cell lines: generators fitted on one fold's training cell lines, and the data a utility test needs.

A generator sees what a model of the fold sees (the fold's preprocessed views and the responses of its training
cell lines, never a test cell line) and writes synthetic cell lines on the fold's feature scale:

* ``gaussian``: per tissue a multivariate Gaussian with a Ledoit-Wolf shrunk covariance over the omics features
  and the responses together (``drp.synthetic_metrics.GaussianGenerator``);
* ``copula``: per tissue a Gaussian copula with empirical marginals over the same columns
  (``GaussianCopulaGenerator``);
* ``copy``: the training cell lines themselves, a reference: the fidelity no generator can beat, and the
  privacy check must fail;
* a trained fold model with a decoder (``drvae``, ``moicvae``; catalog trait ``generative``): latent points are
  drawn per tissue from a Gaussian matched to the mean and covariance of the tissue's training cell lines'
  posteriors q(z|x) (``latent: aggregate``, the default: a VAE's prior has regions no cell line encodes to, and
  Dr.VAE does not see tissue), or from the prior N(0, I) (``latent: prior``; MOICVAE then still conditions its
  decoders on tissue); the model decodes them (omics drawn from its likelihoods) and its response heads give
  the responses, plus per-drug noise with the standard deviation of the model's residuals on its training
  pairs (``response_noise``): heads give a conditional mean, real responses scatter around it.

Tissues with fewer than ``min_tissue_lines`` training cell lines form one pooled group, ``OTHER``: neither a
covariance nor a latent Gaussian can be estimated from a handful of cell lines. Every generator writes as many
synthetic cell lines per tissue group as the fold has training cell lines in it, times ``per_cell_line``.

The baselines need a complete response matrix: responses a training cell line was not screened for are set to
the drug's training mean before the fit (GDSC2: about 8 % of the grid), which shrinks their covariance a little.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .models.base import CellLineData
from .synthetic_metrics import GaussianCopulaGenerator, GaussianGenerator

log = logging.getLogger(__name__)

OTHER = "other tissues"  # the pooled group of tissues with fewer than min_tissue_lines training cell lines
BASELINES = {"gaussian": GaussianGenerator, "copula": GaussianCopulaGenerator, "copy": None}
LATENT_SOURCES = ("aggregate", "prior")
SEPARATOR = ":"  # var_names of a synthetic AnnData: <view>:<feature>


def tissue_groups(tissue: pd.Series, min_lines: int) -> pd.Series:
    """Each cell line's tissue, or ``OTHER`` for tissues with fewer than ``min_lines`` cell lines."""
    counts = tissue.value_counts()
    small = counts.index[counts < min_lines]
    groups = tissue.astype(str).where(~tissue.isin(small), OTHER)
    if groups.value_counts().min() < 2:  # a pooled group of one: nothing to estimate a spread from
        raise ValueError(f"tissue groups: every group needs at least 2 training cell lines; {OTHER!r} has "
                         f"{int((groups == OTHER).sum())} (raise synthetic.min_tissue_lines or lower it to 2)")
    return groups


def response_matrix(pairs: pd.DataFrame, cell_lines: pd.Index, drugs: list[str]) -> pd.DataFrame:
    """Training responses as cell lines x drugs (NaN where not screened)."""
    return pairs.pivot_table(index="cell_line", columns="drug", values="response", aggfunc="mean") \
        .reindex(index=cell_lines, columns=drugs)


def _row_counts(groups: pd.Series, per_cell_line: int) -> dict[str, int]:
    return {str(group): int(count) * per_cell_line for group, count in groups.value_counts().sort_index().items()}


def sample_baseline(kind: str, cells: CellLineData, views: list[str], responses: pd.DataFrame, groups: pd.Series,
                    per_cell_line: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """A per-tissue Gaussian or Gaussian copula over the views' features and the responses, or the training cell
    lines copied: (views, responses, tissue group of each row)."""
    if kind not in BASELINES:
        raise ValueError(f"generator kind {kind!r}: expected one of {sorted(BASELINES)}")
    cell_lines = cells.cell_lines
    omics = cells.matrix(views, cell_lines).astype(np.float64)
    filled = responses.reindex(cell_lines)
    filled = filled.fillna(filled.mean()).to_numpy(dtype=np.float64)
    if not np.isfinite(filled).all():
        raise ValueError("responses: a drug without any training response cannot be generated")
    joint = np.hstack([omics, filled])
    labels = groups.reindex(cell_lines).to_numpy()
    if kind == "copy":  # the training cell lines themselves: the fidelity a generator cannot beat, and no privacy
        sample, row_groups = np.tile(joint, (per_cell_line, 1)), np.tile(labels, per_cell_line)
    else:
        counts = _row_counts(groups, per_cell_line)
        generator = BASELINES[kind]().fit(joint, groups=labels)
        sample, row_groups = generator.sample_with_groups(sum(counts.values()), groups=counts, seed=seed)
    widths = [cells.views[view].n_vars for view in views]
    split = np.split(sample[:, :omics.shape[1]], np.cumsum(widths)[:-1], axis=1)
    return dict(zip(views, split)), sample[:, omics.shape[1]:], row_groups


def latent_points(mean: np.ndarray, logvar: np.ndarray, groups: pd.Series, counts: Mapping[str, int], source: str,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Latent points per tissue group: from the Gaussian that matches the group's aggregate posterior (the
    covariance of its posterior means, shrunk, plus the mean posterior variance), or from N(0, I)."""
    if source not in LATENT_SOURCES:
        raise ValueError(f"latent: expected one of {LATENT_SOURCES}, got {source!r}")
    n = sum(counts.values())
    row_groups = np.array([group for group, count in counts.items() for _ in range(count)], dtype=object)
    if source == "prior":
        return rng.standard_normal((n, mean.shape[1])), row_groups
    labels = groups.to_numpy()
    # the Gaussian's own stream, drawn from rng: its seed's stream is rng's, whose normals the spread below takes
    z, row_groups = GaussianGenerator().fit(mean, groups=labels).sample_with_groups(
        n, groups=dict(counts), seed=int(rng.integers(2**31)))
    for group in counts:
        rows = row_groups == group
        spread = np.sqrt(np.exp(logvar[labels == group]).mean(axis=0))
        z[rows] += spread * rng.standard_normal((int(rows.sum()), mean.shape[1]))
    return z, row_groups


def residual_sd(model, pairs: pd.DataFrame, cells: CellLineData, drugs: list[str]) -> np.ndarray:
    """Per drug the standard deviation of the model's residuals on its training pairs (0 for a drug without)."""
    predicted = model.predict(pairs[["cell_line", "drug"]], cells)
    residual = pairs.response.to_numpy() - predicted.y_pred.to_numpy()
    sd = pd.Series(residual).groupby(pairs.drug.to_numpy()).std(ddof=1)
    return sd.reindex(drugs).fillna(0.0).to_numpy()


def sample_model(model, cells: CellLineData, pairs: pd.DataFrame, groups: pd.Series, per_cell_line: int, seed: int,
                 latent: str = "aggregate", response_noise: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray,
                                                                                  np.ndarray]:
    """Synthetic cell lines from a fitted generative model (``latent_posterior``, ``generate``): (views,
    responses over ``model.drugs``, tissue group of each row)."""
    rng = np.random.default_rng(seed)
    counts = _row_counts(groups, per_cell_line)
    mean, logvar = model.latent_posterior(cells)
    z, row_groups = latent_points(mean, logvar, groups.reindex(cells.cell_lines), counts, latent, rng)
    views, responses = model.generate(z, pd.Series(row_groups), {v: a.n_vars for v, a in cells.views.items()}, rng)
    if response_noise:
        responses = responses + rng.standard_normal(responses.shape) * residual_sd(model, pairs, cells, model.drugs)
    return views, responses, row_groups


def synthetic_anndata(views: dict[str, np.ndarray], responses: np.ndarray, drugs: list[str], row_groups: np.ndarray,
                      fold_views: dict, provenance: dict):
    """One AnnData: X = the generated views side by side on the fold's scale (var: view, feature and the fold's
    train_mean / train_std), layer ``unscaled`` on the data set's scale, obs tissue, obsm ``response`` (cells x
    drugs, response units) and uns ``provenance``."""
    import anndata as ad

    names = [f"synthetic_{provenance['generator']}_fold{provenance['fold']}_{i}" for i in range(len(row_groups))]
    var = pd.concat([fold_views[view].var[["train_mean", "train_std"]].assign(view=view, feature=fold_views[view].var_names)
                     for view in views], axis=0)
    var.index = [f"{view}{SEPARATOR}{feature}" for view, feature in zip(var.view, var.feature)]
    X = np.hstack([np.asarray(views[view], dtype=np.float32) for view in views])
    if not np.isfinite(X).all() or not np.isfinite(responses).all():
        raise ValueError(f"generator {provenance['generator']!r}: produced non-finite values")
    out = ad.AnnData(X=X, obs=pd.DataFrame({"tissue": pd.Categorical(row_groups.astype(str))}, index=names), var=var)
    out.layers["unscaled"] = (X * var.train_std.to_numpy() + var.train_mean.to_numpy()).astype(np.float32)
    out.obsm["response"] = pd.DataFrame(np.asarray(responses, dtype=np.float32), index=names, columns=list(drugs))
    out.uns["provenance"] = provenance
    return out


def synthetic_cells(synthetic) -> tuple[CellLineData, pd.DataFrame]:
    """A synthetic AnnData as model input: its views (obs tissue) and its responses as long pairs."""
    import anndata as ad

    views = {}
    for view in pd.unique(synthetic.var["view"]):
        part = synthetic[:, (synthetic.var["view"] == view).to_numpy()]
        var = part.var.drop(columns=["view", "feature"]).set_index(part.var["feature"].astype(str).to_numpy())
        views[str(view)] = ad.AnnData(np.asarray(part.X), obs=synthetic.obs[["tissue"]].copy(), var=var)
    tissue = synthetic.obs["tissue"].astype(str)
    response = synthetic.obsm["response"].rename_axis(index="cell_line", columns="drug")
    pairs = response.stack().rename("response").reset_index()
    return CellLineData(views, tissue), pairs
