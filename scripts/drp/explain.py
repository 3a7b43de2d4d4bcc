"""Per-(cell line, drug) feature attributions of a fitted model: which inputs move each prediction, and how far.

The reference. An attribution says how much a feature moved the prediction away from the model's
prediction at a reference input. The inputs are z-scored with the fold's training statistics (each view's
features have training mean 0), so the reference is the training-mean profile: all zeros in every view, and
no tissue (every tissue one-hot column zero: an unknown tissue, which the linear models predict with no
tissue effect). Unlike an arbitrary baseline (a black profile, another cell line) it is the "typical training
cell line" the models were centred on, and an attribution reads as "this gene, at this cell line's value
rather than the training mean, moved the prediction by so much". ``baseline_prediction`` is the model's
prediction at that reference, for the pair's drug.

Completeness. Attributions are complete when they add up to the difference they explain: prediction -
baseline_prediction = the sum of the attributions over all features. For the per-drug linear models it holds
exactly (attribution = coefficient x value, baseline = intercept). For the networks, integrated gradients
(Sundararajan et al. 2017, captum's ``IntegratedGradients``) satisfy it in the limit of many steps along the
straight path from the reference to the input; with ``n_steps`` (Gauss-Legendre) it holds up to the
quadrature error, which ``summary.completeness_error`` reports and ``summary.complete`` checks against
``tolerance`` (relative to the explained difference, absolute below 1). A ReLU network (mlp) has kinks on the
path that a few steps miss: a cell line whose error exceeds a quarter of the default tolerance is integrated
again with 4 and then 16 times the steps (midpoint rule). Incomplete attributions are reported as they are,
never rescaled to fit.

Methods per model class (``supports``: by exact class, as a subclass may predict otherwise; wrappers only
when all their members are supported; a drug a per-drug model does not know gets its constant fallback as
baseline and no attributions):
- ridge, elastic_net: coefficient x value over the omics and the tissue columns (``TissueColumns``, with its
  scale), baseline the drug's intercept: "coefficient_x_value".
- drvae (also with ``hierarchy``), multitask_mlp, moicvae, mlp: integrated gradients of the de-standardized
  predicted response of the drug, in evaluation mode with the encoder's means (exactly what ``predict``
  computes, no input noise, dropout or sampling), with respect to the cell line's omics: "integrated_gradients".
  mlp: the drug's fingerprint is held fixed (only the cell line's omics are attributed). moicvae: its tissue
  one-hot is attributed too; its reference is the one-hot of its "unknown tissue" slot (the input moicvae
  gives a cell line of a tissue it never saw; all zeros is an input it never sees) and the tissue columns'
  attributions are summed into the cell line's own tissue (``tissue:<name>``), so completeness holds over
  omics and tissue together. A view missing for a cell line (a NaN row) stays missing in the reference: no
  attribution, value NaN.
- latent_ridge: coefficient x value for the genes and the tissue, integrated gradients through the encoder
  for the latent block (the reference: the encoder's inputs at zero, so the latent at the reference input
  goes into the baseline); a feature that is both a gene of the ridge and an input of the encoder gets both.
- stack: w_d x first member + (1 - w_d) x second, attributions and baselines alike; ensemble: the members'
  mean; a model over the mean-effects offset (``over_mean_effects``): the wrapped model's attributions plus
  the offset's tissue effect as ``tissue:<name>``, the overall mean and the drug's effect in the baseline.
  Mixed exact and approximate parts are "integrated_gradients".
- Anything else (mean effects, gradient boosting, random forest, unknown classes) has no attributions:
  method "none", NaN numbers (the prediction too: ``predict`` is not called) and one logged warning naming
  the class, never made-up attributions.

Reported values: ``value`` is the model's z-scored input; for tissue features it is 1 for the cell line's
own tissue (the indicator, whatever scale a linear model gives its tissue columns). Features whose
attribution is exactly 0 (absent tissues, zero coefficients, missing views) are never listed.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .models.base import CellLineData
from .models.drvae import DrVAE, MultitaskMLP
from .models.elastic_net import ElasticNetPerDrug
from .models.ensemble import SeedEnsemble
from .models.latent_ridge import LATENT, LatentRidge
from .models.mlp import PairMLP
from .models.moicvae import MOICVAE, product_of_experts
from .models.offset import OverMeanEffects
from .models.ridge import RidgePerDrug
from .models.stack import StackedPair

log = logging.getLogger(__name__)

EXACT, GRADIENTS, NONE = "coefficient_x_value", "integrated_gradients", "none"
ATTRIBUTION_COLUMNS = ["cell_line", "drug", "rank", "feature", "value", "attribution"]
SUMMARY_COLUMNS = ["cell_line", "drug", "method", "prediction", "baseline_prediction", "attribution_sum",
                   "completeness_error", "complete"]
ROWS_PER_PASS = 8192  # (cell line x path step) rows per forward pass of integrated gradients: bounds memory
CELLS_PER_CALL = 1024  # cell lines per call of captum's integrated gradients
PAIRS_PER_CHUNK = 1024  # pairs explained together (their pairs x features matrices are dense)
# integrated gradients redo a cell line whose attributions miss completeness by more than this (relative to
# max(1, |explained difference|), a quarter of explain's default tolerance, so that weighted sums of members
# keep within it too) with REFINE_FACTOR times the steps, at most REFINEMENTS times
REFINE_TOLERANCE, REFINE_FACTOR, REFINEMENTS = 0.0025, 4, 2


@dataclass
class Attribution:
    """Attributions of ``len(baseline)`` pairs (rows, in their order) to ``features`` (columns)."""

    method: np.ndarray  # per pair: EXACT or GRADIENTS
    features: list[str]
    values: np.ndarray  # pairs x features: the input values (NaN: absent)
    attributions: np.ndarray  # pairs x features
    baseline: np.ndarray  # per pair: the prediction at the reference input


# --- which models ------------------------------------------------------------------------------------------

def _unexplained(model) -> str | None:
    """The class name of the model (or member) that cannot be explained; None when all of it can."""
    kind = type(model)
    if kind in (RidgePerDrug, ElasticNetPerDrug, DrVAE, MultitaskMLP, MOICVAE, PairMLP):
        return None
    if kind is StackedPair:
        members = [model.fitted[name] for name in model.names]
    elif kind is SeedEnsemble:
        members = list(model.members)
    elif kind is OverMeanEffects:
        members = [model.inner]
    elif kind is LatentRidge:
        encoder = model.encoder.inner if type(model.encoder) is OverMeanEffects else model.encoder
        if type(encoder) not in (DrVAE, MultitaskMLP, MOICVAE):
            return f"{kind.__name__} (encoder {type(model.encoder).__name__})"
        members = list(model.ridges.values())
    else:
        return kind.__name__
    for member in members:
        name = _unexplained(member)
        if name is not None:
            return f"{kind.__name__} (member {name})"
    return None


def supports(model) -> bool:
    """Whether ``explain`` gives attributions for this model (wrappers: when it does for all their members)."""
    return _unexplained(model) is None


# --- the public entry point ----------------------------------------------------------------------------------

def explain(model, pairs: pd.DataFrame, cells: CellLineData, top: int = 10, n_steps: int = 64,
            tolerance: float = 0.01) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(attributions, summary) of ``model`` for ``pairs`` (cell_line, drug) of the cell lines in ``cells``.

    attributions: per pair, the ``top`` features of largest |attribution| (long format: cell_line, drug, rank
    from 1, feature ``view:name`` or ``tissue:name``, value, attribution); summary: one row per pair, in the
    order of ``pairs`` (cell_line, drug, method, prediction = the model's y_pred, baseline_prediction,
    attribution_sum over all features, completeness_error = |prediction - baseline - sum|, complete =
    error <= tolerance x max(1, |prediction - baseline|)). A model without attributions gets method "none",
    NaN numbers, no attribution rows and one warning (see the module's docstring)."""
    pairs = pairs[["cell_line", "drug"]].reset_index(drop=True)
    summary = pairs.assign(method=NONE, prediction=np.nan, baseline_prediction=np.nan, attribution_sum=np.nan,
                           completeness_error=np.nan, complete=False)
    empty = pd.DataFrame({"cell_line": pd.Series(dtype=object), "drug": pd.Series(dtype=object),
                          "rank": pd.Series(dtype=np.int64), "feature": pd.Series(dtype=object),
                          "value": pd.Series(dtype=np.float64), "attribution": pd.Series(dtype=np.float64)})
    unexplained = _unexplained(model)
    if unexplained is not None:
        log.warning("explain: no attributions for a %s model (no method for this class); method 'none' for "
                    "its %d pairs", unexplained, len(pairs))
        return empty, summary
    if not len(pairs):
        return empty, summary
    prediction = model.predict(pairs, cells).y_pred.to_numpy(dtype=np.float64)
    tables, method, baseline, total = [empty], [], [], []
    for start in range(0, len(pairs), PAIRS_PER_CHUNK):
        chunk = pairs.iloc[start:start + PAIRS_PER_CHUNK].reset_index(drop=True)
        result = _attribute(model, chunk, cells, n_steps)
        tables.append(_top_rows(chunk, result, top))
        method.append(result.method)
        baseline.append(result.baseline)
        total.append(result.attributions.sum(axis=1))
    baseline, total = np.concatenate(baseline).astype(np.float64), np.concatenate(total)
    error = np.abs(prediction - baseline - total)
    summary = pairs.assign(method=np.concatenate(method).astype(object), prediction=prediction,
                           baseline_prediction=baseline, attribution_sum=total, completeness_error=error,
                           complete=error <= tolerance * np.maximum(1.0, np.abs(prediction - baseline)))
    incomplete = int((~summary.complete).sum())
    if incomplete:
        log.warning("explain: %d of %d pairs' attributions of a %s model miss completeness by more than %g "
                    "(largest error %.3g); more n_steps make integrated gradients more exact", incomplete,
                    len(pairs), type(model).__name__, tolerance, float(error.max()))
    attributions = pd.concat(tables, ignore_index=True)
    return attributions.astype({"rank": np.int64, "value": np.float64, "attribution": np.float64}), summary


def attribute(model, pairs: pd.DataFrame, cells: CellLineData, n_steps: int = 64) -> Attribution | None:
    """Every feature's attribution for each of ``pairs`` (cell_line, drug), in their order; None for a model
    without a method (the per-drug biomarker aggregation, ``drp.biomarkers``, needs all features, not the top)."""
    if _unexplained(model) is not None:
        return None
    return _attribute(model, pairs[["cell_line", "drug"]].reset_index(drop=True), cells, n_steps)


def _top_rows(pairs: pd.DataFrame, result: Attribution, top: int) -> pd.DataFrame:
    """Each pair's ``top`` features of largest |attribution| (exact zeros left out), rank 1 the largest."""
    k = min(int(top), len(result.features))
    if k <= 0:
        return pd.DataFrame(columns=ATTRIBUTION_COLUMNS)
    size = np.abs(np.nan_to_num(result.attributions, nan=0.0))
    order = np.argsort(-size, axis=1, kind="stable")[:, :k]  # pairs x k
    rows = np.repeat(np.arange(len(pairs)), k)
    columns = order.ravel()
    keep = size[rows, columns] > 0
    rows, columns = rows[keep], columns[keep]
    return pd.DataFrame({"cell_line": pairs.cell_line.to_numpy()[rows], "drug": pairs.drug.to_numpy()[rows],
                         "rank": np.tile(np.arange(1, k + 1), len(pairs))[keep],
                         "feature": np.asarray(result.features, dtype=object)[columns],
                         "value": result.values[rows, columns].astype(np.float64),
                         "attribution": result.attributions[rows, columns].astype(np.float64)})


def _attribute(model, pairs: pd.DataFrame, cells: CellLineData, n_steps: int) -> Attribution:
    kind = type(model)
    if kind in (RidgePerDrug, ElasticNetPerDrug):
        return _linear(model, pairs, cells)
    if kind in (DrVAE, MultitaskMLP, MOICVAE, PairMLP):
        return _network_model(model, pairs, cells, n_steps)
    if kind is StackedPair:
        default = float(model.weight.median()) if len(model.weight) else 0.5  # as StackedPair.predict
        w = model.weight.reindex(pairs.drug.to_numpy()).fillna(default).to_numpy()
        first, second = (_attribute(model.fitted[name], pairs, cells, n_steps) for name in model.names)
        return _weighted_sum([(w, first), (1.0 - w, second)])
    if kind is SeedEnsemble:
        n = len(model.members)
        return _weighted_sum([(np.full(len(pairs), 1.0 / n), _attribute(member, pairs, cells, n_steps))
                              for member in model.members])
    if kind is OverMeanEffects:
        return _over_mean_effects(model, pairs, cells, n_steps)
    if kind is LatentRidge:
        return _latent_ridge(model, pairs, cells, n_steps)
    raise TypeError(f"explain: no method for a {kind.__name__} model")  # _unexplained answered for these


def _weighted_sum(parts: list[tuple[np.ndarray, Attribution]]) -> Attribution:
    """sum_i w_i x part_i per pair (w_i: per pair), over the union of the parts' features; a feature a part
    lacks counts 0 there; values come from the first part that has the feature."""
    features = list(dict.fromkeys(f for _, part in parts for f in part.features))
    position = {f: j for j, f in enumerate(features)}
    n = len(parts[0][1].baseline)
    values = np.full((n, len(features)), np.nan)
    attributions = np.zeros((n, len(features)))
    baseline = np.zeros(n)
    exact = np.ones(n, dtype=bool)
    for weight, part in parts:
        columns = np.asarray([position[f] for f in part.features], dtype=np.int64)
        attributions[:, columns] += weight[:, None] * part.attributions
        values[:, columns] = np.where(np.isnan(values[:, columns]), part.values, values[:, columns])
        baseline += weight * part.baseline
        exact &= part.method == EXACT
    return Attribution(np.where(exact, EXACT, GRADIENTS), features, values, attributions, baseline)


def _stack_rows(n: int, parts: list[tuple[np.ndarray, Attribution]]) -> Attribution:
    """One Attribution of ``n`` pairs from parts that each hold some of them (their positions)."""
    features = list(dict.fromkeys(f for _, part in parts for f in part.features))
    position = {f: j for j, f in enumerate(features)}
    values = np.full((n, len(features)), np.nan)
    attributions = np.zeros((n, len(features)))
    baseline = np.full(n, np.nan)
    method = np.full(n, GRADIENTS, dtype=object)
    for rows, part in parts:
        columns = np.asarray([position[f] for f in part.features], dtype=np.int64)
        values[np.ix_(rows, columns)] = part.values
        attributions[np.ix_(rows, columns)] = part.attributions
        baseline[rows], method[rows] = part.baseline, part.method
    return Attribution(method, features, values, attributions, baseline)


# --- exact: per-drug linear models -----------------------------------------------------------------------------

def _view_features(cells: CellLineData, views: list[str]) -> list[str]:
    return [f"{view}:{name}" for view in views for name in cells.views[view].var_names]


def _linear(model, pairs: pd.DataFrame, cells: CellLineData) -> Attribution:
    """coef[d, j] x x_j over the ridge's (or elastic net's) columns, tissue included; baseline intercept[d]."""
    views = model._views(cells)
    features = _view_features(cells, views)
    tissue = bool(model.params["tissue"])
    if tissue:
        features += [f"tissue:{name}" for name in model.tissue.tissues]
    cell_index = pd.Index(sorted(pairs.cell_line.unique()))
    X = model._matrix(cells, cell_index).astype(np.float64)  # what predict multiplies, tissue columns scaled
    if X.shape[1] != model.coef.shape[1] or X.shape[1] != len(features):
        raise ValueError(f"explain: the {type(model).__name__} has {model.coef.shape[1]} coefficients but views "
                         f"{views}{' and tissue' if tissue else ''} give {X.shape[1]} columns")
    values = X.copy()
    if tissue:  # report the tissue as its indicator, not the scaled column
        n_omics = X.shape[1] - len(model.tissue.tissues)
        values[:, n_omics:] = (X[:, n_omics:] != 0).astype(np.float64)
    rows = cell_index.get_indexer(pairs.cell_line)
    drug = pd.Index(model.drugs).get_indexer(pairs.drug)
    known = drug >= 0
    attributions = np.zeros((len(pairs), X.shape[1]))
    attributions[known] = X[rows[known]] * np.asarray(model.coef, dtype=np.float64)[drug[known]]
    baseline = np.full(len(pairs), float(model.fallback))  # a drug without a model: its constant fallback
    baseline[known] = np.asarray(model.intercept, dtype=np.float64)[drug[known]]
    return Attribution(np.full(len(pairs), EXACT, dtype=object), features, values[rows], attributions, baseline)


# --- integrated gradients: networks ------------------------------------------------------------------------------

@dataclass
class _Inputs:
    """A network's attributed inputs for some cell lines (rows): tensors whose concatenated columns are
    ``features``, their references, fixed extra arguments (per cell line, not attributed), the values to report,
    and optionally a block of tissue one-hot columns to sum into each cell line's own tissue."""

    features: list[str]
    values: np.ndarray  # cells x features
    inputs: tuple[torch.Tensor, ...]
    baselines: tuple[torch.Tensor, ...]
    extra: tuple[torch.Tensor, ...] = ()
    tissue_block: slice | None = None  # columns of the tissue one-hot among ``features``
    own_tissue: np.ndarray | None = None  # per cell line, its tissue's column within the block


@contextlib.contextmanager
def _evaluation(module: torch.nn.Module):
    """The module in evaluation mode (no dropout) with gradients on, as it was afterwards."""
    training = module.training
    module.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        module.train(training)


def _integrated_gradients(forward: Callable, inputs: _Inputs, cell_rows: np.ndarray, n_steps: int):
    """Integrated gradients of ``forward(*inputs, *extra) -> (cells,)`` for the cell lines ``cell_rows``:
    attributions (cells x features) and the forward at the references (cells,). A cell line whose attributions
    miss completeness by more than REFINE_TOLERANCE x max(1, |explained difference|) (a ReLU network's kinks
    on the path) is redone with REFINE_FACTOR times the steps, at most REFINEMENTS times, by the midpoint rule
    (Gauss-Legendre's advantage is for smooth paths, and its nodes for thousands of steps cost seconds)."""
    attributions, reference, value = _path_integral(forward, inputs, cell_rows, n_steps, "gausslegendre")
    steps = n_steps
    for _ in range(REFINEMENTS):
        difference = value - reference
        redo = np.flatnonzero(np.abs(difference - attributions.sum(axis=1))
                              > REFINE_TOLERANCE * np.maximum(1.0, np.abs(difference)))
        if not len(redo):
            break
        steps *= REFINE_FACTOR
        attributions[redo] = _path_integral(forward, inputs, cell_rows[redo], steps, "riemann_middle")[0]
    return attributions, reference


def _path_integral(forward: Callable, inputs: _Inputs, cell_rows: np.ndarray, n_steps: int, rule: str):
    """captum's integrated gradients (``rule``: its approximation method) for the cell lines ``cell_rows``, a
    bounded number of rows per pass: attributions, the forward at the references and at the inputs."""
    from captum.attr import IntegratedGradients

    method = IntegratedGradients(forward)
    attributions, reference, value = [], [], []
    for start in range(0, len(cell_rows), CELLS_PER_CALL):
        index = torch.as_tensor(cell_rows[start:start + CELLS_PER_CALL])
        x = tuple(t[index] for t in inputs.inputs)
        baselines = tuple(t[index] for t in inputs.baselines)
        extra = tuple(t[index] for t in inputs.extra)
        # captum runs the steps in passes of at most internal_batch_size rows (and at least 2 steps a pass)
        parts = method.attribute(x, baselines=baselines, additional_forward_args=extra or None, n_steps=n_steps,
                                 method=rule, internal_batch_size=max(ROWS_PER_PASS, 2 * len(index)))
        attributions.append(torch.cat([p.detach() for p in parts], dim=1).double().numpy())
        with torch.no_grad():
            reference.append(forward(*baselines, *extra).double().numpy())
            value.append(forward(*x, *extra).double().numpy())
    return np.concatenate(attributions), np.concatenate(reference), np.concatenate(value)


def _network_attribution(inputs: _Inputs, output: Callable[[str], Callable | None], fallback: float,
                         pairs: pd.DataFrame, cell_index: pd.Index, n_steps: int) -> Attribution:
    """Integrated gradients, one call per drug over its cell lines; ``output(drug)`` is the drug's function of
    the inputs (None: a drug the model does not know, predicted ``fallback`` whatever the input)."""
    rows = cell_index.get_indexer(pairs.cell_line)
    attributions = np.zeros((len(pairs), len(inputs.features)))
    baseline = np.full(len(pairs), float(fallback))
    by_drug = pairs.groupby("drug", sort=False).indices
    # the long step of a sample set's job: a bar per model, on stderr (the job's log keeps the logging lines)
    for drug, positions in tqdm(by_drug.items(), total=len(by_drug), desc="integrated gradients", unit="drug",
                                file=sys.stderr, mininterval=5, disable=len(by_drug) < 10):
        forward = output(drug)
        if forward is None:
            continue
        cell_rows = np.unique(rows[positions])
        by_cell, reference = _integrated_gradients(forward, inputs, cell_rows, n_steps)
        where = np.searchsorted(cell_rows, rows[positions])
        attributions[positions], baseline[positions] = by_cell[where], reference[where]
    if inputs.tissue_block is not None:  # the tissue columns' share, on the cell line's own tissue
        block = attributions[:, inputs.tissue_block]
        total = block.sum(axis=1)
        block[:] = 0.0
        block[np.arange(len(pairs)), inputs.own_tissue[rows]] = total
    return Attribution(np.full(len(pairs), GRADIENTS, dtype=object), inputs.features, inputs.values[rows],
                       attributions, baseline)


def _as_tensor(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float32))


def _drvae_inputs(model, cells: CellLineData, cell_index: pd.Index):
    """The Dr.VAE-style encoder's input (its views concatenated) and z1 = the encoder's mean."""
    views = list(model.settings.views)
    x = cells.matrix(views, cell_index).astype(np.float32)
    inputs = _Inputs(_view_features(cells, views), x.astype(np.float64), (_as_tensor(x),),
                     (torch.zeros(x.shape),))
    module = model.module
    return inputs, (lambda x: module.encode(x)[0])


def _moicvae_inputs(model, cells: CellLineData, cell_index: pd.Index):
    """MOICVAE's views (NaN rows as zeros, their absence a fixed argument) and tissue one-hot, the reference
    with every view at zero and the unknown-tissue slot, and z = the product of experts' mean."""
    module = model.module
    tensors = model._cell_tensors(cells, cell_index, "cpu")  # what predict feeds the encoders
    views = [tensors["views"][name] for name in module.views]
    present = torch.stack([~torch.isnan(x).any(-1) for x in views], dim=1)  # cells x views
    tissue = tensors["tissue"]
    unknown = torch.zeros_like(tissue)
    unknown[:, len(model.tissues) - 1] = 1.0  # the unknown-tissue slot: the model's input for "no tissue"
    features = _view_features(cells, list(module.views)) + [f"tissue:{name}" for name in model.tissues]
    values = np.hstack([x.numpy() for x in views] + [tissue.numpy()]).astype(np.float64)
    n_omics = values.shape[1] - tissue.shape[1]
    inputs = _Inputs(features, values, (*[torch.nan_to_num(x) for x in views], tissue),
                     (*[torch.zeros_like(x) for x in views], unknown), (present,),
                     slice(n_omics, len(features)), tissue.numpy().argmax(axis=1))

    def encode(*args):
        *xs, tissue, present = args
        means, logvars = zip(*(module.encoders[name](torch.cat([x, tissue], -1)) for name, x in zip(module.views, xs)))
        return product_of_experts(torch.stack(means), torch.stack(logvars), present.T)[0]

    return inputs, encode


def _drvae_network(model, cells: CellLineData, cell_index: pd.Index):
    """The drug's regression head on [z1, z2 - z1] (``DrVAEModule.heads``, column 0), de-standardized."""
    inputs, encode = _drvae_inputs(model, cells, cell_index)
    module, latent = model.module, model.module.latent_dim

    def output(drug):
        d = model.drugs.index(drug) if drug in model.drugs else -1
        if d < 0:
            return None
        u, v, b = module.perturb_u[d], module.perturb_v[d], module.perturb_b[d]
        w_z1, w_delta = module.head_weight[d, :latent, 0], module.head_weight[d, latent:, 0]
        bias, std, mean = module.head_bias[d, 0], float(model.response_std[d]), float(model.response_mean[d])

        def forward(x):
            z1 = encode(x)
            delta = (z1 @ v) @ u.T + b  # W_d z1 + b_d, W_d = U_d V_d^T
            return (z1 @ w_z1 + delta @ w_delta + bias) * std + mean

        return forward

    return inputs, output, float(np.mean(model.response_mean))


def _moicvae_network(model, cells: CellLineData, cell_index: pd.Index):
    """The drug's bilinear head on [z, tissue] (``MOICVAEModule.predict_grid``, column 0), de-standardized."""
    inputs, encode = _moicvae_inputs(model, cells, cell_index)
    module = model.module
    drug_latent = torch.as_tensor(model.drug_latent)

    def output(drug):
        d = model.drugs.index(drug) if drug in model.drugs else -1
        if d < 0:
            return None
        head = torch.einsum("ijk,j->ik", module.response, drug_latent[d])[:, 0]
        bias, std, mean = module.drug_bias[d, 0], float(model.response_std[d]), float(model.response_mean[d])

        def forward(*args):
            z = encode(*args)
            return (torch.cat([z, args[-2]], -1) @ head + bias) * std + mean  # args[-2]: the tissue one-hot

        return forward

    return inputs, output, float(np.mean(model.response_mean))


def _mlp_network(model, cells: CellLineData, cell_index: pd.Index, drugs: pd.Index):
    """The pair MLP with the drug's fingerprint fixed: body(cell_in(x) + drug_in(fingerprint)), de-standardized;
    only the cell line's omics (the model's selected features) are attributed."""
    features = model.features
    x = features.cell_matrix(cells, cell_index)
    names = [f"{view}:{name}" for view in features.views for name in features.cell_features[view]]
    inputs = _Inputs(names, x.astype(np.float64), (_as_tensor(x),), (torch.zeros(x.shape),))
    fingerprints = torch.as_tensor(features.drug_matrix(cells, drugs))
    module, std, mean = model.module, float(model.response_std), float(model.response_mean)

    def output(drug):
        with torch.no_grad():
            drug_part = module.drug_in(fingerprints[drugs.get_loc(drug)])
        return lambda x: module.body(module.cell_in(x) + drug_part).squeeze(-1) * std + mean

    return inputs, output, float("nan")


def _network(model, pairs: pd.DataFrame, cells: CellLineData):
    """A network model's attributed inputs for the pairs' cell lines (sorted), the drug -> function of them
    (None for a drug it does not know), the prediction for such a drug, the cell lines and the torch module."""
    cell_index = pd.Index(sorted(pairs.cell_line.unique()))
    if type(model) is MOICVAE:
        built = _moicvae_network(model, cells, cell_index)
    elif type(model) is PairMLP:
        built = _mlp_network(model, cells, cell_index, pd.Index(pairs.drug.unique()))
    else:
        built = _drvae_network(model, cells, cell_index)
    return (*built, cell_index, model.module)


def _network_model(model, pairs: pd.DataFrame, cells: CellLineData, n_steps: int) -> Attribution:
    inputs, output, fallback, cell_index, module = _network(model, pairs, cells)
    with _evaluation(module):
        return _network_attribution(inputs, output, fallback, pairs, cell_index, n_steps)


def network_predictions(model, pairs: pd.DataFrame, cells: CellLineData) -> np.ndarray:
    """What the function that integrated gradients attribute gives at the pairs' inputs (drvae, multitask_mlp,
    moicvae, mlp): ``model.predict``'s y_pred, recomputed differentiably (a check that it is the same)."""
    pairs = pairs[["cell_line", "drug"]].reset_index(drop=True)
    inputs, output, fallback, cell_index, module = _network(model, pairs, cells)
    rows = cell_index.get_indexer(pairs.cell_line)
    predicted = np.full(len(pairs), fallback)
    with _evaluation(module), torch.no_grad():
        for drug, positions in pairs.groupby("drug", sort=False).indices.items():
            forward = output(drug)
            if forward is not None:
                index = torch.as_tensor(rows[positions])
                predicted[positions] = forward(*(t[index] for t in inputs.inputs),
                                               *(t[index] for t in inputs.extra)).double().numpy()
    return predicted


# --- wrappers --------------------------------------------------------------------------------------------------

def _over_mean_effects(model, pairs: pd.DataFrame, cells: CellLineData, n_steps: int) -> Attribution:
    """The wrapped model's attributions; the offset's tissue effect is the attribution of ``tissue:<name>``
    (exact: no tissue is the reference), its mean and drug effect join the baseline (as offset_of)."""
    inner = _attribute(model.inner, pairs, cells, n_steps)
    effects = model.offset.effects
    tissue = cells.tissue.reindex(pairs.cell_line).to_numpy()
    tissue_effect = effects["tissue"].reindex(tissue).fillna(0.0).to_numpy()
    names = list(effects["tissue"].index)
    own = pd.Index(names).get_indexer(tissue)
    values = np.zeros((len(pairs), len(names)))
    attributions = np.zeros((len(pairs), len(names)))
    seen = own >= 0
    values[np.flatnonzero(seen), own[seen]] = 1.0
    attributions[np.flatnonzero(seen), own[seen]] = tissue_effect[seen]
    offset = Attribution(np.full(len(pairs), EXACT, dtype=object), [f"tissue:{name}" for name in names], values,
                         attributions,
                         model.offset.mean + effects["drug"].reindex(pairs.drug.to_numpy()).fillna(0.0).to_numpy())
    ones = np.ones(len(pairs))
    return _weighted_sum([(ones, inner), (ones, offset)])


def _latent_ridge(model, pairs: pd.DataFrame, cells: CellLineData, n_steps: int) -> Attribution:
    """Per chosen share: the ridge's genes and tissue exactly; its latent block, coef . z-scored latent x weight,
    by integrated gradients through the encoder (the latent at the reference input into the baseline)."""
    share = model._share_of(pairs.drug.to_numpy())
    encoder = model.encoder.inner if type(model.encoder) is OverMeanEffects else model.encoder
    cell_index = pd.Index(sorted(pairs.cell_line.unique()))
    parts = []
    for value, ridge in model.ridges.items():
        rows = np.flatnonzero(share == value)
        if not len(rows):
            continue
        subset = pairs.iloc[rows].reset_index(drop=True)
        if LATENT not in ridge.params["views"]:
            parts.append((rows, _linear(ridge, subset, cells)))
            continue
        exact = _linear(ridge, subset, model._cells(cells, value))
        is_latent = np.asarray([f.startswith(f"{LATENT}:") for f in exact.features])
        genes = Attribution(exact.method, [f for f, lat in zip(exact.features, is_latent) if not lat],
                            exact.values[:, ~is_latent], exact.attributions[:, ~is_latent], exact.baseline)
        columns = np.flatnonzero(is_latent)
        weight = np.sqrt(value * model.gene_variance / len(columns)) if model.params["views"] else 1.0
        mean, std = (torch.as_tensor(np.asarray(a, dtype=np.float32)) for a in (model.latent_mean, model.latent_std))
        if type(encoder) is MOICVAE:
            inputs, encode = _moicvae_inputs(encoder, cells, cell_index)
        else:
            inputs, encode = _drvae_inputs(encoder, cells, cell_index)

        def output(drug, ridge=ridge, columns=columns, weight=weight, mean=mean, std=std, encode=encode):
            d = ridge.drugs.index(drug) if drug in ridge.drugs else -1
            if d < 0:
                return None
            coef = torch.as_tensor(np.asarray(ridge.coef[d, columns], dtype=np.float32))
            return lambda *args: ((encode(*args) - mean) / std * weight) @ coef

        with _evaluation(encoder.module):
            latent = _network_attribution(inputs, output, 0.0, subset, cell_index, n_steps)
        parts.append((rows, _weighted_sum([(np.ones(len(rows)), genes), (np.ones(len(rows)), latent)])))
    return _stack_rows(len(pairs), parts)
