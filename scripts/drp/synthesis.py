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
  Dr.VAE does not see tissue), or from the prior N(0, I) (``latent: prior``, MOICVAE only: its decoders are
  conditioned on tissue); the model decodes them (omics drawn from its likelihoods) and its response heads give
  the responses, plus per-drug noise with the standard deviation of the model's residuals on its training
  pairs (``response_noise``): heads give a conditional mean, real responses scatter around it.

Tissues with fewer than ``min_tissue_lines`` training cell lines form one pooled group, ``OTHER``: neither a
covariance nor a latent Gaussian can be estimated from a handful of cell lines. Every generator writes as many
synthetic cell lines per tissue group as the fold has training cell lines in it, times ``per_cell_line``; each
synthetic line takes the tissue and the pattern of screened drugs of one training line of its group
(``row_members``), so the synthetic and real training sets share tissues and missing responses.

The baselines need a complete response matrix for their fit: responses a training cell line was not screened
for are set to the drug's training mean (GDSC2: about 8 % of the grid), which shrinks their covariance a little.
"""

from __future__ import annotations

import logging

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
    """Each cell line's tissue, or ``OTHER`` for tissues with fewer than ``min_lines`` cell lines. A pooled group
    of a single cell line (nothing to estimate a spread from) joins the largest group instead."""
    counts = tissue.value_counts()
    small = counts.index[counts < min_lines]
    groups = tissue.astype(str).where(~tissue.isin(small), OTHER)
    if (groups == OTHER).sum() == 1 and groups.nunique() > 1:
        largest = groups[groups != OTHER].value_counts().index[0]
        log.info("tissue groups: the one cell line of %s joins the largest group, %s", OTHER, largest)
        groups = groups.replace(OTHER, largest)
    if groups.value_counts().min() < 2:
        raise ValueError(f"tissue groups: expected at least 2 training cell lines, got {len(groups)}")
    return groups


def response_matrix(pairs: pd.DataFrame, cell_lines: pd.Index, drugs: list[str]) -> pd.DataFrame:
    """Training responses as cell lines x drugs (NaN where not screened)."""
    return pairs.pivot_table(index="cell_line", columns="drug", values="response", aggfunc="mean") \
        .reindex(index=cell_lines, columns=drugs)


def row_groups(groups: pd.Series, per_cell_line: int) -> np.ndarray:
    """The tissue group of every synthetic cell line: as many per group as it has training cell lines, times
    ``per_cell_line``, group after group (sorted)."""
    counts = groups.value_counts().sort_index()
    return np.repeat(counts.index.to_numpy(dtype=object), counts.to_numpy() * per_cell_line)


def row_members(rows: np.ndarray, groups: pd.Series, per_cell_line: int) -> np.ndarray:
    """For every synthetic cell line (``rows``, from ``row_groups``) a training cell line of its group, each
    ``per_cell_line`` times: the synthetic line takes its tissue (a pooled group's lines keep their own tissues)
    and its pattern of screened drugs, so that synthetic and real training sets have the same tissues and the
    same missing responses. Only the ``copy`` generator also takes its values."""
    members = np.empty(len(rows), dtype=object)
    for group in pd.unique(rows):
        members[rows == group] = np.repeat(np.sort(groups.index[groups == group].to_numpy(dtype=object)),
                                           per_cell_line)
    return members


def sample_baseline(kind: str, cells: CellLineData, views: list[str], responses: pd.DataFrame, groups: pd.Series,
                    rows: np.ndarray, members: np.ndarray, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A per-tissue Gaussian or Gaussian copula over the views' features and the responses (missing ones set to
    the drug's training mean for the fit), or the members copied: (views, responses), one row per ``rows``."""
    if kind not in BASELINES:
        raise ValueError(f"generator kind {kind!r}: expected one of {sorted(BASELINES)}")
    cell_lines = cells.cell_lines
    omics = cells.matrix(views, cell_lines).astype(np.float64)
    filled = responses.reindex(cell_lines)
    filled = filled.fillna(filled.mean()).to_numpy(dtype=np.float64)
    if not np.isfinite(filled).all():
        raise ValueError("responses: a drug without any training response cannot be generated")
    joint = np.hstack([omics, filled])
    if kind == "copy":  # the training cell lines themselves: the fidelity a generator cannot beat, and no privacy
        sample = joint[cell_lines.get_indexer(members)]
    else:
        generator = BASELINES[kind]().fit(joint, groups=groups.reindex(cell_lines).to_numpy())
        sample = generator.sample(len(rows), groups=rows, seed=seed)
    widths = [cells.views[view].n_vars for view in views]
    split = np.split(sample[:, :omics.shape[1]], np.cumsum(widths)[:-1], axis=1)
    return dict(zip(views, split)), sample[:, omics.shape[1]:]


def latent_points(mean: np.ndarray, logvar: np.ndarray, labels: np.ndarray, rows: np.ndarray, source: str,
                  rng: np.random.Generator) -> np.ndarray:
    """A latent point per synthetic cell line (its group in ``rows``; ``labels``: the group of each row of
    ``mean``): from the Gaussian that matches the group's aggregate posterior (the shrunk covariance of its
    posterior means plus the mean posterior variance), or from N(0, I)."""
    if source not in LATENT_SOURCES:
        raise ValueError(f"latent: expected one of {LATENT_SOURCES}, got {source!r}")
    if source == "prior":
        return rng.standard_normal((len(rows), mean.shape[1]))
    # the Gaussian gets a seed drawn from rng, rng itself then draws the spread
    z = GaussianGenerator().fit(mean, groups=labels).sample(len(rows), groups=rows, seed=int(rng.integers(2**31)))
    for group in pd.unique(rows):
        own = rows == group
        spread = np.sqrt(np.exp(logvar[labels == group]).mean(axis=0))
        z[own] += spread * rng.standard_normal((int(own.sum()), mean.shape[1]))
    return z


def residual_sd(model, pairs: pd.DataFrame, cells: CellLineData, drugs: list[str]) -> np.ndarray:
    """Per drug the standard deviation of the model's residuals on its training pairs (0 for a drug without).
    In-sample residuals: somewhat smaller than a new cell line's, so the noise added is on the low side."""
    predicted = model.predict(pairs[["cell_line", "drug"]], cells)
    residual = pairs.response.to_numpy() - predicted.y_pred.to_numpy()
    sd = pd.Series(residual).groupby(pairs.drug.to_numpy()).std(ddof=1)
    return sd.reindex(drugs).fillna(0.0).to_numpy()


def sample_model(model, cells: CellLineData, pairs: pd.DataFrame, groups: pd.Series, rows: np.ndarray,
                 members: np.ndarray, seed: int, latent: str = "aggregate",
                 response_noise: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Synthetic cell lines from a fitted generative model (``latent_posterior``, ``generate``), one per ``rows``,
    decoded with the tissue of its member: (views, responses over ``model.drugs``). The prior has no tissue, so
    ``latent: prior`` needs a model whose decoder is conditioned on tissue (MOICVAE)."""
    if latent == "prior" and not getattr(model, "conditions_on_tissue", False):
        raise ValueError(f"latent: prior with {type(model).__name__}: its decoder does not see tissue, so the "
                         "synthetic cell lines' tissues would be labels only; use latent: aggregate")
    rng = np.random.default_rng(seed)
    mean, logvar = model.latent_posterior(cells)
    z = latent_points(mean, logvar, groups.reindex(cells.cell_lines).to_numpy(), rows, latent, rng)
    tissue = cells.tissue.reindex(members).astype(str).reset_index(drop=True)
    views, responses = model.generate(z, tissue, {v: a.n_vars for v, a in cells.views.items()}, rng)
    if response_noise:
        responses = responses + rng.standard_normal(responses.shape) * residual_sd(model, pairs, cells, model.drugs)
    return views, responses


def synthetic_anndata(views: dict[str, np.ndarray], responses: pd.DataFrame, tissue: np.ndarray, groups: np.ndarray,
                      fold_views: dict, provenance: dict):
    """One AnnData: X = the generated views side by side on the fold's scale (var: view, feature and the fold's
    train_mean / train_std), layer ``unscaled`` on the data set's scale, obs ``tissue`` and ``tissue_group``, obsm
    ``response`` (cells x drugs in response units, NaN where the line's member was not screened) and uns
    ``provenance``."""
    import anndata as ad

    names = [f"synthetic_{provenance['generator']}_fold{provenance['fold']}_{i}" for i in range(len(tissue))]
    var = pd.concat([fold_views[view].var[["train_mean", "train_std"]].assign(view=view, feature=fold_views[view].var_names)
                     for view in views], axis=0)
    var.index = [f"{view}{SEPARATOR}{feature}" for view, feature in zip(var.view, var.feature)]
    X = np.hstack([np.asarray(views[view], dtype=np.float32) for view in views])
    values = responses.to_numpy(dtype=np.float64)
    if not np.isfinite(X).all() or np.isinf(values).any() or np.isnan(values).all(axis=1).any():
        raise ValueError(f"generator {provenance['generator']!r}: produced non-finite values, or a cell line without "
                         "any response")
    obs = pd.DataFrame({"tissue": pd.Categorical(np.asarray(tissue, dtype=str)),
                        "tissue_group": pd.Categorical(np.asarray(groups, dtype=str))}, index=names)
    out = ad.AnnData(X=X, obs=obs, var=var)
    out.layers["unscaled"] = (X * var.train_std.to_numpy() + var.train_mean.to_numpy()).astype(np.float32)
    out.obsm["response"] = pd.DataFrame(values.astype(np.float32), index=names, columns=list(responses.columns))
    out.uns["provenance"] = provenance
    return out


def synthetic_cells(synthetic) -> tuple[CellLineData, pd.DataFrame]:
    """A synthetic AnnData as model input: its views (obs tissue) and its responses as long pairs (the screened
    ones)."""
    import anndata as ad

    views = {}
    for view in pd.unique(synthetic.var["view"]):
        part = synthetic[:, (synthetic.var["view"] == view).to_numpy()]
        var = part.var.drop(columns=["view", "feature"]).set_index(part.var["feature"].astype(str).to_numpy())
        views[str(view)] = ad.AnnData(np.asarray(part.X), obs=synthetic.obs[["tissue"]].copy(), var=var)
    tissue = synthetic.obs["tissue"].astype(str)
    response = synthetic.obsm["response"].rename_axis(index="cell_line").reset_index()
    pairs = response.melt(id_vars="cell_line", var_name="drug", value_name="response").dropna(subset=["response"])
    return CellLineData(views, tissue), pairs.reset_index(drop=True)
