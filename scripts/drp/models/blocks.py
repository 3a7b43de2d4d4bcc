"""Network pieces the VAEs share: hidden stacks, Gaussian encoders, the reparameterisation step, Gaussian
likelihoods and KL terms (with free bits).

Encoders and decoders are ``nn.Sequential`` subclasses whose children are (hidden stack, output layer), the
layout the saved models' weight names (``encoders.expression.0.0.weight``, ``z1_prior.1.bias``) depend on.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_LOG_2PI = math.log(2 * math.pi)


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear + ELU (+ dropout) for each consecutive pair of ``sizes``."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ELU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLPHead(nn.Sequential):
    """A hidden stack (``sizes``) and a linear output layer of ``n_out`` units; also a decoder's shape."""

    def __init__(self, sizes: list[int], n_out: int, dropout: float = 0.0):
        super().__init__(mlp(sizes, dropout), nn.Linear(sizes[-1], n_out))


class GaussianEncoder(MLPHead):
    """N(mean, exp(logvar)) from one output layer of 2 x latent units: the means, then the log-variances
    (clamped to +-``clamp`` unless None: exp(logvar) must neither vanish nor overflow)."""

    def __init__(self, sizes: list[int], latent_dim: int, dropout: float = 0.0, clamp: float | None = 8.0):
        super().__init__(sizes, 2 * latent_dim, dropout)
        self.clamp = clamp

    def forward(self, x):
        mean, logvar = super().forward(x).chunk(2, -1)
        return mean, logvar if self.clamp is None else logvar.clamp(-self.clamp, self.clamp)


def reparameterize(mean, logvar):
    """A sample of N(mean, exp(logvar)) that gradients flow through (torch's global RNG)."""
    return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)


def gaussian_nll(x, mean, logvar):
    """-log N(x | mean, exp(logvar)), summed over the last dimension."""
    return 0.5 * (logvar + (x - mean) ** 2 * torch.exp(-logvar) + _LOG_2PI).sum(-1)


def gaussian_kl(mean_q, logvar_q, mean_p=None, logvar_p=None):
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) per dimension; the prior defaults to N(0, I)."""
    if mean_p is None:  # explicit zeros: the same arithmetic, so the same bits, as a general prior
        mean_p, logvar_p = torch.zeros_like(mean_q), torch.zeros_like(logvar_q)
    return 0.5 * (logvar_p - logvar_q + (torch.exp(logvar_q) + (mean_q - mean_p) ** 2) * torch.exp(-logvar_p) - 1)


def kl_free_bits(kl, free_bits: float):
    """A (batch, latent) KL as a batch total: each dimension's batch mean floored at ``free_bits`` nats.
    Per dimension, because a floor on the summed KL removes its gradient altogether."""
    return torch.clamp(kl.mean(0), min=free_bits).sum() * len(kl)
