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
- With perturbation pairs (pre/post-treatment profiles, e.g. LINCS L1000), the perturbation likelihood
  log p(x2 | z2'), z2' ~ p(z2|z1, d), and KL(q(z2|x2) || p(z2|z1, d)) are added; x2 is reconstructed from
  q(z2|x2) (the original code sampled q(z1|x1) there, a bug not repeated here).
- KL: per-dimension free bits plus a linear warm-up (free bits on the summed KL kill its gradient).
- Optionally (``hierarchy: true``) Dr.VAE's M2-style hierarchy q(z3|z1,y), p(z1|z3,y) replaces the N(0, I)
  prior of z1, with y the vector of sensitivity labels over drugs (see ``_hierarchy_kl``).
Training (early stopping, checkpoints, devices) is the shared ``drp.training.Trainer``.
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
from .neural import NeuralResponseModel, NeuralSettings

_LOG_2PI = math.log(2 * math.pi)


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ELU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def gaussian_nll(x, mean, logvar):
    """-log N(x | mean, exp(logvar)), summed over the last dimension."""
    return 0.5 * (logvar + (x - mean) ** 2 * torch.exp(-logvar) + _LOG_2PI).sum(-1)


def gaussian_kl(mean_q, logvar_q, mean_p, logvar_p):
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) per dimension."""
    return 0.5 * (logvar_p - logvar_q + (torch.exp(logvar_q) + (mean_q - mean_p) ** 2) * torch.exp(-logvar_p) - 1)


class DrVAEModule(nn.Module):
    def __init__(self, n_features: int, n_drugs: int, latent_dim: int, encoder_hidden: list[int],
                 decoder_hidden: list[int], rank: int, dropout: float, hierarchy: bool = False):
        super().__init__()
        self.latent_dim = latent_dim
        self.hierarchy = hierarchy
        if hierarchy:  # Dr.VAE's M2-style q(z3|z1,y) and p(z1|z3,y), one 200-unit layer each
            self.z3_posterior = nn.Sequential(mlp([latent_dim + n_drugs, 200]), nn.Linear(200, 2 * latent_dim))
            self.z1_prior = nn.Sequential(mlp([latent_dim + n_drugs, 200]), nn.Linear(200, 2 * latent_dim))
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


class DrVAE(NeuralResponseModel):
    settings_class = DrVAESettings

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

    # -- the objective ------------------------------------------------------------------------------
    def _supervised(self, grid_out, batch):
        mask = batch["m"]
        regression = 0.5 * (grid_out[..., 0] - batch["y"]) ** 2
        classification = F.binary_cross_entropy_with_logits(grid_out[..., 1], batch["s"], reduction="none")
        return (regression * mask).sum(), (classification * mask).sum()

    def _loss(self, batch, epoch: int):
        s, module = self.settings, self.module
        x = batch["x"]
        x_noisy = x + s.input_noise * torch.randn_like(x) if s.input_noise else x
        mean, logvar = module.encode(x_noisy)
        if not s.generative:  # the same encoder and heads trained on the responses alone
            grid_out = module.heads(mean, module.perturbation(mean))
            regression, classification = self._supervised(grid_out, batch)
            n_pairs = max(1, batch["m"].sum().item())
            loss = s.supervised_weight * (regression + s.classifier_weight * classification) / len(x)
            return loss, {"loss": loss.item(), "regression": regression.item() / n_pairs,
                          "classification": classification.item() / n_pairs}
        z1 = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        reconstruction = gaussian_nll(x, *module.decode(z1)).sum()
        grid_out = module.heads(z1, module.perturbation(z1))
        if module.hierarchy:
            kl_per_dim = self._hierarchy_kl(mean, logvar, z1, grid_out, batch)
        else:
            kl_per_dim = gaussian_kl(mean, logvar, torch.zeros_like(mean), torch.zeros_like(logvar)).mean(0)
        kl = torch.clamp(kl_per_dim, min=s.free_bits).sum() * len(x)
        regression, classification = self._supervised(grid_out, batch)
        beta = min(1.0, (epoch + 1) / max(1, s.warmup_epochs))
        n = len(x)
        loss = (reconstruction + beta * kl + s.supervised_weight * (regression + s.classifier_weight * classification)) / n
        parts = {"reconstruction": reconstruction.item() / n, "kl": kl.item() / n,
                 "regression": regression.item() / max(1, batch["m"].sum().item()),
                 "classification": classification.item() / max(1, batch["m"].sum().item())}
        if self.perturbations is not None:
            pert_loss, pert_parts = self._perturbation_loss(beta)
            loss = loss + pert_loss
            parts.update(pert_parts)
        parts["loss"] = loss.item()
        return loss, parts

    def _hierarchy_kl(self, mean, logvar, z1, grid_out, batch):
        """KL(q(z1|x) || p(z1|z3,y)) + KL(q(z3|z1,y) || N(0, I)) per latent dimension.

        y is the cell line's vector of sensitivity labels over drugs: observed labels where the pair was
        screened, the classifier's probability q(y|z1, z2) elsewhere (the multi-drug analogue of Dr.VAE's
        expectation over y for unlabelled examples)."""
        module = self.module
        labels = torch.where(batch["m"], batch["s"], torch.sigmoid(grid_out[..., 1]).to(batch["s"].dtype))
        mean3, logvar3 = module.z3_posterior(torch.cat([z1, labels], -1)).chunk(2, -1)
        z3 = mean3 + torch.exp(0.5 * logvar3) * torch.randn_like(mean3)
        prior_mean, prior_logvar = module.z1_prior(torch.cat([z3, labels], -1)).chunk(2, -1)
        kl_z1 = gaussian_kl(mean, logvar, prior_mean, prior_logvar)
        kl_z3 = gaussian_kl(mean3, logvar3, torch.zeros_like(mean3), torch.zeros_like(logvar3))
        return (kl_z1 + kl_z3).mean(0)

    def _perturbation_loss(self, beta: float):
        """Terms for (control x1, treated x2, drug d) pairs; x2 is reconstructed from q(z2|x2)."""
        module, p, s = self.module, self.perturbations, self.settings
        mean1, logvar1 = module.encode(p["x1"])
        mean2, logvar2 = module.encode(p["x2"])
        z1 = mean1 + torch.exp(0.5 * logvar1) * torch.randn_like(mean1)
        z2 = mean2 + torch.exp(0.5 * logvar2) * torch.randn_like(mean2)
        prior_mean = z1 + module.perturbation(z1, p["drug"])
        prior_logvar = module.perturb_logvar(z1) - 2.0
        z2_prior = prior_mean + torch.exp(0.5 * prior_logvar) * torch.randn_like(prior_mean)
        n = len(z1)
        reconstruction = (gaussian_nll(p["x1"], *module.decode(z1)) + gaussian_nll(p["x2"], *module.decode(z2))).sum() / n
        perturbation = gaussian_nll(p["x2"], *module.decode(z2_prior)).sum() / n
        kl_z2 = gaussian_kl(mean2, logvar2, prior_mean, prior_logvar).sum() / n
        kl_z1 = gaussian_kl(mean1, logvar1, torch.zeros_like(mean1), torch.zeros_like(logvar1)).sum() / n
        loss = reconstruction + s.perturbation_weight * perturbation + beta * (kl_z1 + kl_z2)
        return loss, {"pair_reconstruction": reconstruction.item(), "pair_perturbation": perturbation.item(),
                      "pair_kl_z2": kl_z2.item()}

    def _validation_score(self, batch):
        out = self.module.predict_grid(batch["x"]).float()
        regression, classification = self._supervised(out, batch)
        n = max(1, batch["m"].sum().item())
        return regression.item() / n, {"validation_mse": 2 * regression.item() / n,
                                       "validation_bce": classification.item() / n}

    # -- the model interface ------------------------------------------------------------------------
    def fit(self, data: TrainingData, checkpoint_dir=None) -> None:
        s = self.settings
        torch.manual_seed(data.seed)
        self.fit_response_scaling(data)
        n_features = sum(data.cells.views[v].n_vars for v in s.views)
        self.module = DrVAEModule(n_features, len(self.drugs), s.latent_dim, list(s.encoder_hidden),
                                  list(s.decoder_hidden), s.rank, s.dropout, s.hierarchy)
        trainer = self.trainer(data, checkpoint_dir)
        device = trainer.device
        train = self._tensors(data.cells, data.train, device)
        validation = self._tensors(data.cells, data.validation if len(data.validation) else data.train, device)
        if data.perturbations is not None:
            if not s.generative:
                raise ValueError("perturbation pairs need the generative model (generative: true), not multitask_mlp")
            self.perturbations = self._perturbation_tensors(data.perturbations, device)

        def loss_fn(index):
            return self._loss({key: value[index] for key, value in train.items()}, trainer.epoch)

        self.run_trainer(trainer, loss_fn, lambda: self._validation_score(validation), len(train["x"]))
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

    def state(self):
        arrays = {f"module.{k}": v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}
        meta = {"drugs": self.drugs, "n_features": int(self.module.decoder_mean.out_features),
                "lower_is_sensitive": bool(self.lower_is_sensitive), "settings": asdict(self.settings)}
        return meta, {**arrays, **self.scaling_state()}

    def load_state(self, meta, arrays):
        s = self.settings
        self.load_scaling_state(meta, arrays)
        self.module = DrVAEModule(meta["n_features"], len(self.drugs), s.latent_dim, list(s.encoder_hidden),
                                  list(s.decoder_hidden), s.rank, s.dropout, s.hierarchy)
        self.module.load_state_dict({k.removeprefix("module."): torch.from_numpy(v)
                                     for k, v in arrays.items() if k.startswith("module.")})
        self.module.eval()


class MultitaskMLP(DrVAE):
    """The ablation of the Dr.VAE-style model that says what its generative part adds: the same encoder,
    latent size and per-drug heads, trained on the response terms alone (no decoder term, no KL, the latent
    is the encoder's mean, not a sample). Everything else (input noise, early stopping, refit) is the same."""

    def __init__(self, **params):
        if params.get("generative", False):
            raise ValueError("multitask_mlp is the non-generative ablation: generative must be false")
        super().__init__(**{**params, "generative": False})
