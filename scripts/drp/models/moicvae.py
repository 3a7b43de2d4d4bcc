"""MOICVAE-style model: a tissue-conditioned multi-omics VAE joined to a masked drug-response VAE.

After Wang et al. (2023), with the original code's leakage and masking problems fixed (README, "MOICVAE-style model"):
- One encoder per omics view, each with a likelihood that fits its data: Gaussian for expression,
  categorical over {-1, 0, 1} for copy-number calls, Bernoulli for mutations. The encoders are fused by a
  product of Gaussian experts (with the N(0, I) prior as one more expert): a cell line that lacks a view
  (a row of NaN) simply has one expert fewer, which concatenation could not handle.
- Conditional on tissue: a one-hot of the training tissues (plus an "unknown" slot, used for tissues not
  seen in training) is an input of every encoder and decoder.
- The collective part: a VAE over the drugs, whose input is a drug's row of the training response matrix
  as two channels, value and mask. A held-out or unscreened entry has mask 0 and value 0, so it is never
  confused with a measured "resistant" value, and it gets no gradient (tested). A drug's latent w_d and a
  cell line's latent z_c meet in the response decoder, which outputs a standardized response and a
  sensitivity logit. A new cell line (cell-blind) is a fully masked column: it is predicted from its omics
  alone through z_c.
- Scalers (per-drug mean and std) and thresholds (per-drug median) come from training pairs only.
The module follows scvi-tools' pattern (``inference``, ``generative``, ``loss``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from .base import CellLineData, TrainingData
from .blocks import GaussianEncoder, MLPHead, gaussian_kl, gaussian_nll, kl_free_bits, reparameterize
from .neural import NeuralResponseModel, NeuralSettings, response_objective, supervised_terms

LIKELIHOODS = {"expression": "gaussian", "cnv": "categorical", "mutation": "bernoulli"}
UNKNOWN_TISSUE_SLOT = "__unknown__"


def product_of_experts(means, logvars, present):
    """Precision-weighted fusion of the views' Gaussians and the N(0, I) prior; absent views drop out.

    means, logvars: (views, cells, latent); present: (views, cells) bool."""
    precision = torch.exp(-logvars) * present.unsqueeze(-1)
    total_precision = 1.0 + precision.sum(0)  # the prior expert has precision 1 and mean 0
    mean = (means * precision).sum(0) / total_precision
    return mean, -torch.log(total_precision)


@dataclass
class MOICVAESettings(NeuralSettings):
    views: tuple[str, ...] = ("expression", "cnv", "mutation")
    latent_dim: int = 32
    hidden: tuple[int, ...] = (256,)
    drug_latent_dim: int = 16
    drug_hidden: tuple[int, ...] = (128,)
    dropout: float = 0.1
    # the collective part: each drug's latent encoded from its column of the training response matrix; false:
    # a free embedding per drug learned with the rest (no drug VAE), the ablation of that encoder
    drug_encoder: bool = True


class MOICVAEModule(nn.Module):
    """The network and its objective (``settings``: the weights of its terms, defaults if None)."""

    def __init__(self, view_sizes: dict[str, int], n_tissues: int, n_drugs: int, n_train_cells: int,
                 latent_dim: int, hidden: list[int], drug_latent_dim: int, drug_hidden: list[int],
                 dropout: float, settings: MOICVAESettings | None = None):
        super().__init__()
        self.settings = settings or MOICVAESettings()
        self.views = list(view_sizes)
        self.encoders = nn.ModuleDict({v: GaussianEncoder([n + n_tissues, *hidden], latent_dim, dropout)
                                       for v, n in view_sizes.items()})
        outputs = {v: n * (3 if LIKELIHOODS[v] == "categorical" else 2 if LIKELIHOODS[v] == "gaussian" else 1)
                   for v, n in view_sizes.items()}
        self.decoders = nn.ModuleDict({v: MLPHead([latent_dim + n_tissues, *hidden[::-1]], outputs[v])
                                       for v in view_sizes})
        self.n_train_cells = n_train_cells
        if self.settings.drug_encoder:  # drug VAE over the training response matrix: value and mask channels
            self.drug_encoder = GaussianEncoder([2 * n_train_cells, *drug_hidden], drug_latent_dim, dropout)
        else:
            self.drug_embedding = nn.Parameter(torch.randn(n_drugs, drug_latent_dim) / math.sqrt(drug_latent_dim))
        # Response decoder: bilinear in the cell side [z, tissue] and the drug latent w (each drug's latent
        # spans a linear head over the cell side). It sees the tissue because the conditional VAE keeps
        # tissue out of z on purpose.
        self.response = nn.Parameter(torch.randn(latent_dim + n_tissues, drug_latent_dim, 2)
                                     / math.sqrt((latent_dim + n_tissues) * drug_latent_dim))
        self.drug_bias = nn.Parameter(torch.zeros(n_drugs, 2))

    def encode(self, views: dict[str, torch.Tensor], tissue: torch.Tensor):
        means, logvars, present = [], [], []
        for name in self.views:
            x = views[name]
            mean, logvar = self.encoders[name](torch.cat([torch.nan_to_num(x), tissue], -1))
            means.append(mean)
            logvars.append(logvar)
            present.append(~torch.isnan(x).any(-1))
        return product_of_experts(torch.stack(means), torch.stack(logvars), torch.stack(present))

    def encode_drugs(self, values, mask):
        """q(w) of every drug: mean and log-variance, or (embedding, None) without the drug encoder."""
        if not self.settings.drug_encoder:
            return self.drug_embedding, None
        return self.drug_encoder(torch.cat([values * mask, mask], -1))

    def predict_grid(self, z, tissue, w):
        """Standardized response and sensitivity logit for every (cell, drug): (cells, drugs, 2)."""
        heads = torch.einsum("ijk,dj->dik", self.response, w)  # a linear head per drug
        return torch.einsum("bi,dik->bdk", torch.cat([z, tissue], -1), heads) + self.drug_bias

    # -- the objective, as scvi-tools' modules: inference, generative, loss ---------------------------
    def inference(self, views: dict[str, torch.Tensor], tissue, drug_values, drug_mask) -> dict:
        """q(z|views, tissue) of the cell lines and q(w|response matrix) of every drug, with a sample of each."""
        qz_mean, qz_logvar = self.encode(views, tissue)
        z = reparameterize(qz_mean, qz_logvar)  # before the drug encoder's dropout: the random draws' order
        qw_mean, qw_logvar = self.encode_drugs(drug_values, drug_mask)
        return {"qz_mean": qz_mean, "qz_logvar": qz_logvar, "z": z, "qw_mean": qw_mean, "qw_logvar": qw_logvar,
                "w": qw_mean if qw_logvar is None else reparameterize(qw_mean, qw_logvar)}

    def generative(self, z, tissue, w) -> dict:
        """Each view's likelihood parameters given [z, tissue] (by LIKELIHOODS: mean and log-variance, 3
        logits per feature, or a logit), and the response grid from z, tissue and w."""
        decoder_input = torch.cat([z, tissue], -1)
        return {"views": {name: self.decoders[name](decoder_input) for name in self.views},
                "response": self.predict_grid(z, tissue, w)}

    def loss(self, tensors, inference_outputs, generative_outputs, kl_weight: float = 1.0):
        """The loss per cell line of the batch and its named terms: the ELBO of the batch's cell lines and
        their response terms, and the drug VAE's KL spread over all ``n_cells`` training cell lines."""
        s, q = self.settings, inference_outputs
        n = len(q["z"])
        reconstruction = self.reconstruction_nll(generative_outputs["views"], tensors["views"], tensors["targets"])
        reconstruction = reconstruction.sum()
        kl_z = kl_free_bits(gaussian_kl(q["qz_mean"], q["qz_logvar"]), s.free_bits)
        kl_w = (gaussian_kl(q["qw_mean"], q["qw_logvar"]).sum() if q["qw_logvar"] is not None
                else torch.zeros((), device=q["w"].device))
        regression, classification = supervised_terms(generative_outputs["response"], tensors["y"], tensors["s"],
                                                      tensors["m"])
        loss, parts = response_objective(s, regression, classification, tensors["m"], reconstruction, kl_z, kl_weight)
        loss = loss + kl_weight * kl_w / tensors["n_cells"]
        return loss, {"loss": loss.item(), "reconstruction": reconstruction.item() / n, "kl": kl_z.item() / n,
                      "kl_drugs": kl_w.item(), **parts}

    def forward(self, tensors, kl_weight: float = 1.0):
        q = self.inference(tensors["views"], tensors["tissue"], tensors["y_drug"], tensors["m_drug"])
        return self.loss(tensors, q, self.generative(q["z"], tensors["tissue"], q["w"]), kl_weight)

    def reconstruction_nll(self, outputs: dict, views: dict, targets: dict):
        """Negative log-likelihood of every observed view, summed over features: (cells,)."""
        total = torch.zeros(len(views[self.views[0]]), device=views[self.views[0]].device)
        for name in self.views:
            out, observed, kind = outputs[name], ~torch.isnan(views[name]).any(-1), LIKELIHOODS[name]
            if kind == "gaussian":
                mean, logvar = out.chunk(2, -1)
                nll = gaussian_nll(torch.nan_to_num(views[name]), mean, logvar.clamp(-8.0, 8.0))
            elif kind == "categorical":
                logits = out.view(len(out), -1, 3).transpose(1, 2)
                nll = F.cross_entropy(logits, targets[name], reduction="none").sum(-1)
            else:
                nll = F.binary_cross_entropy_with_logits(out, targets[name], reduction="none").sum(-1)
            total = total + nll * observed
        return total


class MOICVAE(NeuralResponseModel):
    settings_class = MOICVAESettings
    generates_cell_lines = True  # latent_posterior + generate (drp.synthesis)
    conditions_on_tissue = True  # its decoders see tissue: synthetic cell lines can be drawn from the prior

    def __init__(self, **params):
        super().__init__(**params)
        self.tissues: list[str] = []
        self.drug_latent = np.zeros((0, 0), dtype=np.float32)
        self.raw_scale: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # -- inputs ---------------------------------------------------------------------------------------
    def _tissue_onehot(self, tissue: pd.Series) -> np.ndarray:
        slots = pd.Index(self.tissues).get_indexer(tissue.astype(str))
        onehot = np.zeros((len(tissue), len(self.tissues)), dtype=np.float32)
        onehot[np.arange(len(tissue)), np.where(slots >= 0, slots, len(self.tissues) - 1)] = 1.0
        return onehot

    def _cell_tensors(self, cells: CellLineData, cell_index: pd.Index, device) -> dict:
        """Scaled views as encoder inputs, and the raw calls (undoing the fold's scaling) as targets."""
        views, targets = {}, {}
        for name in self.settings.views:
            view = cells.views[name]
            x = np.full((len(cell_index), view.n_vars), np.nan, dtype=np.float32)
            present = cell_index.isin(view.obs_names)
            x[present] = np.asarray(view[cell_index[present]].X)
            views[name] = torch.as_tensor(x, device=device)
            if LIKELIHOODS[name] != "gaussian":
                mean, std = self.raw_scale[name]
                raw = np.rint(np.nan_to_num(x) * std + mean)
                if LIKELIHOODS[name] == "categorical":
                    targets[name] = torch.as_tensor(np.clip(raw, -1, 1) + 1, dtype=torch.long, device=device)
                else:
                    targets[name] = torch.as_tensor(np.clip(raw, 0, 1), dtype=torch.float32, device=device)
        tissue = torch.as_tensor(self._tissue_onehot(cells.tissue.reindex(cell_index).fillna("")), device=device)
        return {"views": views, "targets": targets, "tissue": tissue}

    # -- training -------------------------------------------------------------------------------------
    def _loss(self, index, data: dict, kl_weight: float):
        """The module's loss on the cell lines ``index`` of ``data``; the drug VAE sees the whole training
        matrix (values and mask) every step."""
        batch = {key: data[key][index] for key in ("tissue", "y", "s", "m")}
        batch.update({key: {k: v[index] for k, v in data[key].items()} for key in ("views", "targets")})
        return self.module({**data, **batch}, kl_weight)

    def _validation_score(self, data: dict, train: dict):
        module = self.module
        z, _ = module.encode(data["views"], data["tissue"])
        w, _ = module.encode_drugs(train["y_drug"], train["m_drug"])
        return self.validation_terms(module.predict_grid(z, data["tissue"], w), data["y"], data["s"], data["m"])

    def _data(self, cells: CellLineData, pairs: pd.DataFrame, device) -> dict:
        cell_index = pd.Index(sorted(pairs.cell_line.unique()))
        y, sensitive, mask = self.response_grid(pairs, cell_index)
        as_tensor = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
        return {**self._cell_tensors(cells, cell_index, device), "y": as_tensor(y), "s": as_tensor(sensitive),
                "m": as_tensor(mask), "n_cells": len(cell_index)}

    # -- the model interface --------------------------------------------------------------------------
    def fit(self, data: TrainingData, checkpoint_dir=None) -> None:
        s = self.settings
        torch.manual_seed(data.seed)
        self.fit_response_scaling(data)
        self.tissues = sorted(data.cells.tissue.loc[data.train.cell_line.unique()].unique()) + [UNKNOWN_TISSUE_SLOT]
        self.raw_scale = {v: (data.cells.views[v].var["train_mean"].to_numpy(np.float32),
                              data.cells.views[v].var["train_std"].to_numpy(np.float32))
                          for v in s.views if LIKELIHOODS[v] != "gaussian"}
        for view, (mean, std) in self.raw_scale.items():  # the calls must come back exactly
            raw = np.asarray(data.cells.views[view].X) * std + mean
            if np.abs(raw - np.rint(raw)).max() > 1e-3:
                raise ValueError(f"view {view!r}: its preprocessed values do not map back to integer calls "
                                 f"(was it clipped?); use features.{view}.clip: null with moicvae")

        n_train_cells = data.train.cell_line.nunique()
        self.module = self._new_module({v: data.cells.views[v].n_vars for v in s.views}, n_train_cells)
        trainer = self.trainer(data, checkpoint_dir)
        train = self._data(data.cells, data.train, trainer.device)
        train["y_drug"], train["m_drug"] = train["y"].T.contiguous(), train["m"].T.contiguous()
        validation = self._data(data.cells, data.validation if len(data.validation) else data.train, trainer.device)
        self.run_trainer(trainer, lambda index, kl_weight: self._loss(index, train, kl_weight),
                         lambda: self._validation_score(validation, train), train["n_cells"])
        with torch.no_grad():  # drugs are fixed after training: keep their latent means, not the matrix
            self.drug_latent = self.module.encode_drugs(train["y_drug"].cpu(), train["m_drug"].cpu())[0].numpy()

    def _new_module(self, view_sizes: dict[str, int], n_train_cells: int) -> MOICVAEModule:
        s = self.settings
        return MOICVAEModule(view_sizes, len(self.tissues), len(self.drugs), n_train_cells, s.latent_dim,
                             list(s.hidden), s.drug_latent_dim, list(s.drug_hidden), s.dropout, settings=s)

    @torch.no_grad()
    def encode(self, cells: CellLineData) -> np.ndarray:
        """Posterior means of z for every cell line of ``cells`` (views may be missing: NaN rows)."""
        inputs = self._cell_tensors(cells, cells.cell_lines, "cpu")
        return self.module.encode(inputs["views"], inputs["tissue"])[0].numpy()

    @torch.no_grad()
    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        cell_index = pd.Index(sorted(pairs.cell_line.unique()))
        inputs = self._cell_tensors(cells, cell_index, "cpu")
        z = self.module.encode(inputs["views"], inputs["tissue"])[0]
        out = self.module.predict_grid(z, inputs["tissue"], torch.as_tensor(self.drug_latent)).numpy()
        return self.pair_predictions(out, pairs, cell_index)

    @torch.no_grad()
    def latent_posterior(self, cells: CellLineData) -> tuple[np.ndarray, np.ndarray]:
        """Mean and log-variance of q(z|views, tissue) for every cell line of ``cells``."""
        inputs = self._cell_tensors(cells, cells.cell_lines, "cpu")
        return tuple(part.numpy() for part in self.module.encode(inputs["views"], inputs["tissue"]))

    @torch.no_grad()
    def generate(self, z: np.ndarray, tissue: pd.Series, view_sizes: dict[str, int] | None,
                 rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Synthetic cell lines from latent points ``z`` and their ``tissue`` (a training tissue, or the unknown
        slot): every view drawn from its likelihood (Gaussian expression, categorical copy-number calls,
        Bernoulli mutations; the calls put back on the fold's scale), and the responses (cells x drugs, in
        response units) of the response decoder. ``view_sizes`` is not needed (the decoders know them)."""
        module = self.module
        latent = torch.as_tensor(z, dtype=torch.float32)
        onehot = torch.as_tensor(self._tissue_onehot(pd.Series(np.asarray(tissue, dtype=str))))
        outputs = module.generative(latent, onehot, torch.as_tensor(self.drug_latent))
        views = {}
        for name in self.settings.views:
            out, kind = outputs["views"][name].numpy(), LIKELIHOODS[name]
            if kind == "gaussian":
                mean, logvar = np.split(out, 2, axis=-1)
                views[name] = mean + np.exp(0.5 * np.clip(logvar, -8.0, 8.0)) * rng.standard_normal(mean.shape)
                continue
            if kind == "categorical":  # logits (cells, features, 3) over the calls -1, 0, 1
                logits = out.reshape(len(out), -1, 3)
                probability = np.exp(logits - logits.max(-1, keepdims=True))
                probability /= probability.sum(-1, keepdims=True)
                drawn = (rng.random(probability.shape[:2])[..., None] > probability.cumsum(-1)).sum(-1)
                raw = np.minimum(drawn, 2) - 1.0  # a cumulative sum a rounding short of 1 must not give a 4th call
            else:
                raw = (rng.random(out.shape) < 1.0 / (1.0 + np.exp(-out))).astype(float)
            mean, std = self.raw_scale[name]
            views[name] = (raw - mean) / std
        views = {name: value.astype(np.float32) for name, value in views.items()}
        response = outputs["response"][..., 0].numpy()
        return views, response * self.response_std + self.response_mean

    def state(self):
        arrays = self.module_arrays()
        arrays.update(self.scaling_state(), drug_latent=self.drug_latent,
                      **{f"raw_mean.{v}": m for v, (m, _) in self.raw_scale.items()},
                      **{f"raw_std.{v}": sd for v, (_, sd) in self.raw_scale.items()})
        meta = {"drugs": self.drugs, "tissues": self.tissues, "lower_is_sensitive": bool(self.lower_is_sensitive),
                "view_sizes": {v: int(self.module.encoders[v][0][0].in_features - len(self.tissues))
                               for v in self.settings.views},
                "n_train_cells": int(self.module.n_train_cells),
                "settings": asdict(self.settings)}
        return meta, arrays

    def load_state(self, meta, arrays):
        self.load_scaling_state(meta, arrays)
        self.tissues = meta["tissues"]
        self.load_module(self._new_module(meta["view_sizes"], meta["n_train_cells"]), arrays)
        self.drug_latent = arrays["drug_latent"]
        self.raw_scale = {v: (arrays[f"raw_mean.{v}"], arrays[f"raw_std.{v}"])
                          for v in self.settings.views if LIKELIHOODS[v] != "gaussian"}
