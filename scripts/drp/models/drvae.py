"""Dr.VAE-style model: a semi-supervised VAE whose latent space carries a per-drug perturbation.

After Rampasek et al. (2019), rebuilt as one multi-drug model (README, "Dr.VAE-style model"):
- q(z1|x): Gaussian encoder of the baseline omics; p(x|z): Gaussian decoder (diagonal).
- Drug perturbation in latent space: z2 = z1 + W_d z1 + b_d with W_d = U_d V_d^T of low rank, so hundreds
  of drugs fit in one model. U_d = 0 and b_d = 0 at initialisation: the operator starts as the identity.
  It is computed on the dense cell x drug grid (V_d^T z for all drugs at once, then U_d), never by
  gathering a matrix per pair (a per-pair matrix would cost pairs x rank x latent memory).
- Response heads on [z1, z2 - z1], one linear head per drug: a regression of the response (standardized
  per drug with training statistics) and a logit of sensitivity (below the drug's training median).
- Semi-supervised: every training cell line feeds the reconstruction and KL terms, also for drugs it
  has no response for; the supervised terms use observed training pairs only. Test cell lines never
  reach the model during fit (TrainingData holds training cell lines only).
- Optionally (``models.<name>.unlabelled_cell_lines``, drp.unlabelled) cell lines without any response
  (``TrainingData.unlabelled``) add their ELBO, reconstruction and KL alone, as in Dr.VAE's semi-supervised
  objective; each weighs like one labelled cell line's ELBO, and they never reach the heads.
- With perturbation pairs (pre/post-treatment profiles, e.g. LINCS L1000), the perturbation likelihood
  log p(x2 | z2'), z2' ~ p(z2|z1, d), and KL(q(z2|x2) || p(z2|z1, d)) are added; x2 is reconstructed from
  q(z2|x2) (the original code sampled q(z1|x1) there, a bug not repeated here).
- KL: per-dimension free bits plus a linear warm-up (free bits on the summed KL kill its gradient; the
  trainer sets the warm-up's weight).
- Optionally (``hierarchy: true``) Dr.VAE's M2-style hierarchy q(z3|z1,y), p(z1|z3,y) replaces the N(0, I)
  prior of z1, with y the vector of sensitivity labels over drugs (see ``DrVAEModule.hierarchy_kl``).
The module follows scvi-tools' pattern (``inference``, ``generative``, ``loss``); training (early stopping,
checkpoints, devices) is the shared ``drp.training.Trainer``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .base import CellLineData, TrainingData
from .blocks import GaussianEncoder, gaussian_kl, gaussian_nll, kl_free_bits, mlp, reparameterize
from .neural import NeuralResponseModel, NeuralSettings, response_objective, supervised_terms


@dataclass
class DrVAESettings(NeuralSettings):
    views: tuple[str, ...] = ("expression",)
    latent_dim: int = 64
    encoder_hidden: tuple[int, ...] = (512,)
    decoder_hidden: tuple[int, ...] = (512,)
    rank: int = 8
    dropout: float = 0.0
    hierarchy: bool = False  # the M2-style q(z3|z1,y), p(z1|z3,y) of Dr.VAE
    perturbation_weight: float = 0.05  # weight of log p(x2 | z2') as in the original
    input_noise: float = 0.01
    #: false: the ablation ``multitask_mlp`` (no decoder term, no KL, z1 the encoder mean)
    generative: bool = True


class DrVAEModule(nn.Module):
    """The network and its objective (``settings``: the weights of its terms, defaults if None)."""

    def __init__(self, n_features: int, n_drugs: int, latent_dim: int, encoder_hidden: list[int],
                 decoder_hidden: list[int], rank: int, dropout: float, hierarchy: bool = False,
                 settings: DrVAESettings | None = None):
        super().__init__()
        self.settings = settings or DrVAESettings()
        self.latent_dim = latent_dim
        self.hierarchy = hierarchy
        if hierarchy:  # Dr.VAE's M2-style q(z3|z1,y) and p(z1|z3,y), one 200-unit layer each
            self.z3_posterior = GaussianEncoder([latent_dim + n_drugs, 200], latent_dim, clamp=None)
            self.z1_prior = GaussianEncoder([latent_dim + n_drugs, 200], latent_dim, clamp=None)
        # separate mean and log-variance layers (not a GaussianEncoder): the saved models' weight names
        self.encoder = mlp([n_features, *encoder_hidden], dropout)
        self.encoder_mean = nn.Linear(encoder_hidden[-1], latent_dim)
        self.encoder_logvar = nn.Linear(encoder_hidden[-1], latent_dim)
        self.decoder = mlp([latent_dim, *decoder_hidden])
        self.decoder_mean = nn.Linear(decoder_hidden[-1], n_features)
        self.decoder_logvar = nn.Linear(decoder_hidden[-1], n_features)
        # W_d = U_d V_d^T: U_d = 0 makes the perturbation exactly the identity at initialisation
        self.perturb_u = nn.Parameter(torch.zeros(n_drugs, latent_dim, rank))
        self.perturb_v = nn.Parameter(torch.randn(n_drugs, latent_dim, rank) / math.sqrt(latent_dim))
        self.perturb_b = nn.Parameter(torch.zeros(n_drugs, latent_dim))
        self.perturb_logvar = nn.Linear(latent_dim, latent_dim)
        # per-drug linear heads on [z1, z2 - z1]: column 0 regression, column 1 sensitivity logit
        self.head_weight = nn.Parameter(torch.zeros(n_drugs, 2 * latent_dim, 2))
        self.head_bias = nn.Parameter(torch.zeros(n_drugs, 2))
        with torch.no_grad():
            # The (z2 - z1) half must start non-zero: with it and U_d both zero, neither gets a gradient
            # and the perturbation would never train (z2 - z1 = 0 while U_d = 0).
            self.head_weight[:, latent_dim:].normal_(0.0, 1.0 / math.sqrt(latent_dim))

    def encode(self, x):
        hidden = self.encoder(x)
        return self.encoder_mean(hidden), self.encoder_logvar(hidden) - 2.0  # offset as in Dr.VAE

    def decode(self, z):
        hidden = self.decoder(z)
        return self.decoder_mean(hidden), self.decoder_logvar(hidden).clamp(-8.0, 8.0)

    def perturbation(self, z1, drugs=None):
        """z2 - z1 = W_d z1 + b_d: (cells, drugs, latent) on the grid, or (pairs, latent) for given drugs."""
        if drugs is None:
            low_rank = torch.einsum("bl,dlr->bdr", z1, self.perturb_v)
            return torch.einsum("bdr,dlr->bdl", low_rank, self.perturb_u) + self.perturb_b
        low_rank = torch.einsum("pl,plr->pr", z1, self.perturb_v[drugs])
        return torch.einsum("pr,plr->pl", low_rank, self.perturb_u[drugs]) + self.perturb_b[drugs]

    def heads(self, z1, delta):
        """Regression and logit for every (cell, drug): (cells, drugs, 2)."""
        latent = self.latent_dim
        from_z1 = torch.einsum("bl,dlk->bdk", z1, self.head_weight[:, :latent])
        from_delta = torch.einsum("bdl,dlk->bdk", delta, self.head_weight[:, latent:])
        return from_z1 + from_delta + self.head_bias

    def predict_grid(self, x):
        z1, _ = self.encode(x)
        return self.heads(z1, self.perturbation(z1))

    # -- the objective, as scvi-tools' modules: inference, generative, loss ---------------------------
    def inference(self, x) -> dict:
        """q(z1|x) and z1: a sample, or the mean in the non-generative ablation; noisy inputs in training."""
        s = self.settings
        if self.training and s.input_noise:
            x = x + s.input_noise * torch.randn_like(x)
        mean, logvar = self.encode(x)
        return {"qz_mean": mean, "qz_logvar": logvar, "z": reparameterize(mean, logvar) if s.generative else mean}

    def generative(self, z) -> dict:
        """p(x|z1) (not in the ablation) and the heads' output (cells, drugs, 2) on [z1, z2 - z1]."""
        px = dict(zip(("px_mean", "px_logvar"), self.decode(z))) if self.settings.generative else {}
        return {**px, "response": self.heads(z, self.perturbation(z))}

    def loss(self, tensors, inference_outputs, generative_outputs, kl_weight: float = 1.0):
        """The loss per cell line and its named terms. Every cell line of ``tensors`` (x, y, s, m) feeds the
        reconstruction and KL terms, its observed pairs the response terms; ``tensors["pairs"]`` (if given)
        adds the perturbation-pair terms, ``tensors["unlabelled"]`` (omics of cell lines without responses, if
        given) their ELBO (``unlabelled_elbo``)."""
        s, out, n = self.settings, generative_outputs["response"], len(tensors["x"])
        reconstruction = kl = 0.0
        if s.generative:
            mean, logvar, px = inference_outputs["qz_mean"], inference_outputs["qz_logvar"], generative_outputs
            reconstruction = gaussian_nll(tensors["x"], px["px_mean"], px["px_logvar"]).sum()
            kl = kl_free_bits(self.hierarchy_kl(mean, logvar, inference_outputs["z"], out, tensors)
                              if self.hierarchy else gaussian_kl(mean, logvar), s.free_bits)
        regression, classification = supervised_terms(out, tensors["y"], tensors["s"], tensors["m"])
        loss, parts = response_objective(s, regression, classification, tensors["m"], reconstruction, kl, kl_weight)
        if s.generative:
            parts = {"reconstruction": reconstruction.item() / n, "kl": kl.item() / n, **parts}
        if tensors.get("pairs") is not None:
            pair_loss, pair_parts = self.pair_loss(tensors["pairs"], kl_weight)
            loss = loss + pair_loss
            parts.update(pair_parts)
        if tensors.get("unlabelled") is not None and len(tensors["unlabelled"]):
            # summed over the unlabelled cell lines and divided by the labelled batch size, as the labelled ELBO
            # is: one unlabelled cell line weighs like one labelled one
            reconstruction, kl = self.unlabelled_elbo(tensors["unlabelled"])
            loss = loss + (reconstruction + kl_weight * kl) / n
            n_unlabelled = len(tensors["unlabelled"])
            parts.update({"unlabelled_reconstruction": reconstruction.item() / n_unlabelled,
                          "unlabelled_kl": kl.item() / n_unlabelled})
        return loss, {"loss": loss.item(), **parts}

    def unlabelled_elbo(self, x):
        """Reconstruction and KL (free bits per dimension over these cell lines) summed over cell lines without
        responses: the inference and decoder only, never the perturbation or the heads."""
        inference_outputs = self.inference(x)
        reconstruction = gaussian_nll(x, *self.decode(inference_outputs["z"])).sum()
        kl = kl_free_bits(gaussian_kl(inference_outputs["qz_mean"], inference_outputs["qz_logvar"]),
                          self.settings.free_bits)
        return reconstruction, kl

    def forward(self, tensors, kl_weight: float = 1.0):
        inference_outputs = self.inference(tensors["x"])
        return self.loss(tensors, inference_outputs, self.generative(inference_outputs["z"]), kl_weight)

    def hierarchy_kl(self, mean, logvar, z1, out, tensors):
        """KL(q(z1|x) || p(z1|z3,y)) + KL(q(z3|z1,y) || N(0, I)) per cell line and latent dimension.

        y is the cell line's vector of sensitivity labels over drugs: observed labels where the pair was
        screened, the classifier's probability q(y|z1, z2) elsewhere (the multi-drug analogue of Dr.VAE's
        expectation over y for unlabelled examples). Hence z3 is sampled here, after the heads, not in
        ``inference``."""
        labels = torch.where(tensors["m"], tensors["s"], torch.sigmoid(out[..., 1]).to(tensors["s"].dtype))
        mean3, logvar3 = self.z3_posterior(torch.cat([z1, labels], -1))
        z3 = reparameterize(mean3, logvar3)
        prior_mean, prior_logvar = self.z1_prior(torch.cat([z3, labels], -1))
        return gaussian_kl(mean, logvar, prior_mean, prior_logvar) + gaussian_kl(mean3, logvar3)

    def pair_loss(self, pairs: dict, kl_weight: float):
        """Terms for (control x1, treated x2, drug d) pairs; x2 is reconstructed from q(z2|x2)."""
        mean1, logvar1 = self.encode(pairs["x1"])
        mean2, logvar2 = self.encode(pairs["x2"])  # both encodings, then both samples (dropout, then noise:
        # the order of the random draws that fits at a fixed seed have always used)
        z1, z2 = reparameterize(mean1, logvar1), reparameterize(mean2, logvar2)
        prior_mean = z1 + self.perturbation(z1, pairs["drug"])
        prior_logvar = self.perturb_logvar(z1) - 2.0
        z2_prior = reparameterize(prior_mean, prior_logvar)
        n = len(z1)
        x1, x2 = pairs["x1"], pairs["x2"]
        reconstruction = (gaussian_nll(x1, *self.decode(z1)) + gaussian_nll(x2, *self.decode(z2))).sum() / n
        perturbation = gaussian_nll(x2, *self.decode(z2_prior)).sum() / n
        kl_z2 = gaussian_kl(mean2, logvar2, prior_mean, prior_logvar).sum() / n
        kl_z1 = gaussian_kl(mean1, logvar1).sum() / n
        loss = reconstruction + self.settings.perturbation_weight * perturbation + kl_weight * (kl_z1 + kl_z2)
        return loss, {"pair_reconstruction": reconstruction.item(), "pair_perturbation": perturbation.item(),
                      "pair_kl_z2": kl_z2.item()}


class DrVAE(NeuralResponseModel):
    settings_class = DrVAESettings
    uses_unlabelled_cell_lines = True  # TrainingData.unlabelled feeds the ELBO (drp.unlabelled)
    generates_cell_lines = True  # latent_posterior + generate (drp.synthesis)

    def __init__(self, **params):
        super().__init__(**params)
        self.perturbations: dict | None = None  # optional {"x1", "x2": arrays, "drug": names}
        if not self.settings.generative and self.settings.hierarchy:
            raise ValueError("drvae: hierarchy: true needs the generative model (generative: true)")

    # -- data on the device ------------------------------------------------------------------------
    def _tensors(self, data: CellLineData, pairs: pd.DataFrame, device):
        cells = pd.Index(sorted(pairs.cell_line.unique()))
        y, s, m = self.response_grid(pairs, cells)
        as_tensor = lambda a, dtype=torch.float32: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        return {"x": as_tensor(data.matrix(list(self.settings.views), cells)), "y": as_tensor(y),
                "s": as_tensor(s), "m": as_tensor(m, torch.bool)}

    # -- training ---------------------------------------------------------------------------------------
    def _loss(self, batch: dict, kl_weight: float):
        """The module's loss on a batch; the perturbation pairs (if any) join every step."""
        return self.module({**batch, "pairs": self.perturbations}, kl_weight)

    def trainer(self, data: TrainingData, checkpoint_dir=None):
        """The shared trainer; with unlabelled cell lines their omics join the fit's fingerprint, so that a
        checkpoint of a fit without them (or with others) is never resumed."""
        if data.unlabelled is None:
            return super().trainer(data, checkpoint_dir)
        s = self.settings
        if not s.generative or s.hierarchy:
            raise ValueError("unlabelled cell lines need the generative model without hierarchy (generative: true, "
                             "hierarchy: false): they enter the plain ELBO only")
        views = list(s.views)
        unlabelled = data.unlabelled.matrix(views, data.unlabelled.cell_lines)
        return self.new_trainer(data, data.cells.matrix(views, data.cells.cell_lines), checkpoint_dir, drugs=self.drugs,
                                features={v: list(data.cells.views[v].var_names) for v in views},
                                unlabelled={"cells": list(data.unlabelled.cell_lines),
                                            "omics": hashlib.sha256(unlabelled.tobytes()).hexdigest()})

    def _new_module(self, n_features: int) -> DrVAEModule:
        s = self.settings
        return DrVAEModule(n_features, len(self.drugs), s.latent_dim, list(s.encoder_hidden), list(s.decoder_hidden),
                           s.rank, s.dropout, s.hierarchy, settings=s)

    def fit(self, data: TrainingData, checkpoint_dir=None) -> None:
        s = self.settings
        torch.manual_seed(data.seed)
        self.fit_response_scaling(data)
        self.module = self._new_module(sum(data.cells.views[v].n_vars for v in s.views))
        trainer = self.trainer(data, checkpoint_dir)
        device = trainer.device
        train = self._tensors(data.cells, data.train, device)
        validation = self._tensors(data.cells, data.validation if len(data.validation) else data.train, device)
        if data.perturbations is not None:
            if not s.generative:
                raise ValueError("perturbation pairs need the generative model (generative: true), not multitask_mlp")
            self.perturbations = self._perturbation_tensors(data.perturbations, device)
        unlabelled = owner = None
        if data.unlabelled is not None:
            unlabelled = torch.as_tensor(data.unlabelled.matrix(list(s.views), data.unlabelled.cell_lines),
                                         dtype=torch.float32, device=device)
            # each unlabelled cell line rides with one labelled cell line (spread evenly), so that a batch takes
            # the unlabelled share of its labelled ones and every unlabelled cell line comes once per epoch, in
            # the trainer's random batches, without random draws of its own
            owner = torch.arange(len(unlabelled), device=device) * len(train["x"]) // len(unlabelled)

        def loss_fn(index, kl_weight):
            batch = {key: value[index] for key, value in train.items()}
            if unlabelled is not None:
                batch["unlabelled"] = unlabelled[torch.isin(owner, index)]
            return self._loss(batch, kl_weight)

        def validate():
            return self.validation_terms(self.module.predict_grid(validation["x"]), validation["y"], validation["s"],
                                         validation["m"])

        self.run_trainer(trainer, loss_fn, validate, len(train["x"]))
        self.perturbations = None  # pairs are training data, not part of the fitted state

    def _perturbation_tensors(self, pairs: dict, device):
        n_features = self.module.decoder_mean.out_features
        if np.shape(pairs["x1"])[1] != n_features:
            raise ValueError(f"perturbation pairs have {np.shape(pairs['x1'])[1]} features but the model encodes "
                             f"{n_features} (views {list(self.settings.views)}); use views: [expression] with them")
        drug_index = pd.Index(self.drugs).get_indexer(pairs["drug"])
        keep = drug_index >= 0
        as_tensor = lambda a: torch.as_tensor(np.asarray(a)[keep], dtype=torch.float32, device=device)  # noqa: E731
        return {"x1": as_tensor(pairs["x1"]), "x2": as_tensor(pairs["x2"]),
                "drug": torch.as_tensor(drug_index[keep], device=device)}

    @torch.no_grad()
    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        cell_index = pd.Index(sorted(pairs.cell_line.unique()))
        x = torch.as_tensor(cells.matrix(list(self.settings.views), cell_index), dtype=torch.float32)
        return self.pair_predictions(self.module.predict_grid(x).numpy(), pairs, cell_index)

    @torch.no_grad()
    def encode(self, cells: CellLineData) -> np.ndarray:
        """Posterior means of z1 for every cell line of ``cells`` (in its order)."""
        x = torch.as_tensor(cells.matrix(list(self.settings.views), cells.cell_lines), dtype=torch.float32)
        return self.module.encode(x)[0].numpy()

    @torch.no_grad()
    def latent_posterior(self, cells: CellLineData) -> tuple[np.ndarray, np.ndarray]:
        """Mean and log-variance of q(z1|x) for every cell line of ``cells``: where synthetic cell lines start."""
        x = torch.as_tensor(cells.matrix(list(self.settings.views), cells.cell_lines), dtype=torch.float32)
        return tuple(part.numpy() for part in self.module.encode(x))

    @torch.no_grad()
    def generate(self, z: np.ndarray, tissue: pd.Series, view_sizes: dict[str, int],
                 rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Synthetic cell lines from latent points ``z``: omics drawn from p(x|z1) (decoder mean plus its noise),
        split into the model's views (``view_sizes``: each view's width, in the fold's features), and the heads'
        responses (cells x drugs, in response units). The model is not conditioned on tissue: ``tissue`` is
        ignored (drp.synthesis conditions the latent points instead)."""
        if not self.settings.generative:
            raise ValueError(f"{type(self).__name__} with generative: false has no decoder: it cannot generate cell "
                             "lines (use drvae with its decoder)")
        latent = torch.as_tensor(z, dtype=torch.float32)
        mean, logvar = (part.numpy() for part in self.module.decode(latent))
        x = mean + np.exp(0.5 * logvar) * rng.standard_normal(mean.shape).astype(np.float32)
        widths = [int(view_sizes[view]) for view in self.settings.views]
        if sum(widths) != x.shape[1]:
            raise ValueError(f"view_sizes {dict(zip(self.settings.views, widths))} add up to {sum(widths)} features, "
                             f"the model decodes {x.shape[1]}")
        views = dict(zip(self.settings.views, np.split(x, np.cumsum(widths)[:-1], axis=1)))
        response = self.module.heads(latent, self.module.perturbation(latent))[..., 0].numpy()
        return views, response * self.response_std + self.response_mean

    def state(self):
        meta = {"drugs": self.drugs, "n_features": int(self.module.decoder_mean.out_features),
                "lower_is_sensitive": bool(self.lower_is_sensitive), "settings": asdict(self.settings)}
        return meta, {**self.module_arrays(), **self.scaling_state()}

    def load_state(self, meta, arrays):
        self.load_scaling_state(meta, arrays)
        self.load_module(self._new_module(meta["n_features"]), arrays)


class MultitaskMLP(DrVAE):
    """The ablation of the Dr.VAE-style model that says what its generative part adds: the same encoder,
    latent size and per-drug heads, trained on the response terms alone (no decoder term, no KL, the latent
    is the encoder's mean, not a sample). Everything else (input noise, early stopping, refit) is the same."""

    generates_cell_lines = False  # no decoder

    def __init__(self, **params):
        if params.get("generative", False):
            raise ValueError("multitask_mlp is the non-generative ablation: generative must be false")
        super().__init__(**{**params, "generative": False})
