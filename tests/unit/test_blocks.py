"""drp.models.blocks (the VAEs' shared pieces) on SYNTHETIC tensors, the modules' inference / generative /
loss structure, and the one settings base class."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from drp.models.blocks import (GaussianEncoder, MLPHead, gaussian_kl, gaussian_nll, kl_free_bits, mlp,
                               reparameterize)
from drp.models.drvae import DrVAESettings, DrVAEModule
from drp.models.mlp import MLPSettings
from drp.models.moicvae import MOICVAEModule, MOICVAESettings
from drp.models.neural import NeuralSettings
from drp.training import TrainerSettings

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_reparameterize_has_the_posterior_mean_and_variance_and_passes_gradients():
    torch.manual_seed(0)
    mean = torch.tensor([-1.0, 0.0, 2.0]).repeat(200_000, 1).requires_grad_(True)
    logvar = torch.tensor([0.0, -2.0, 1.0]).repeat(200_000, 1).requires_grad_(True)
    z = reparameterize(mean, logvar)
    torch.testing.assert_close(z.mean(0), torch.tensor([-1.0, 0.0, 2.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), torch.exp(torch.tensor([0.0, -2.0, 1.0])), atol=0.02, rtol=0.01)
    z.sum().backward()
    assert torch.equal(mean.grad, torch.ones_like(mean)) and logvar.grad.abs().sum() > 0


def test_gaussian_kl_and_nll_match_torch_distributions():
    torch.manual_seed(1)
    mean_q, logvar_q, mean_p, logvar_p, x = torch.randn(5, 7, 5).unbind(-1)
    q, p = Normal(mean_q, torch.exp(0.5 * logvar_q)), Normal(mean_p, torch.exp(0.5 * logvar_p))
    torch.testing.assert_close(gaussian_kl(mean_q, logvar_q, mean_p, logvar_p), kl_divergence(q, p))
    standard = Normal(torch.zeros_like(mean_q), torch.ones_like(mean_q))
    torch.testing.assert_close(gaussian_kl(mean_q, logvar_q), kl_divergence(q, standard))  # N(0, I) by default
    # the closed form of KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1 - log s^2) / 2
    torch.testing.assert_close(gaussian_kl(mean_q, logvar_q),
                               0.5 * (torch.exp(logvar_q) + mean_q ** 2 - 1 - logvar_q))
    torch.testing.assert_close(gaussian_nll(x, mean_q, logvar_q), -q.log_prob(x).sum(-1))


def test_free_bits_floor_each_dimension_of_the_batch_mean():
    kl = torch.tensor([[0.0, 1.0, 0.02], [0.0, 3.0, 0.04]], requires_grad=True)  # batch 2, latent 3
    total = kl_free_bits(kl, free_bits=0.05)
    # per-dimension batch means 0, 2, 0.03 floored at 0.05, summed, times the batch size
    torch.testing.assert_close(total, torch.tensor((0.05 + 2.0 + 0.05) * 2))
    total.backward()
    assert torch.equal(kl.grad, torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))  # floored dimensions: none
    assert kl_free_bits(kl.detach(), 0.0).item() == pytest.approx(kl.detach().sum().item())


def test_encoder_and_decoder_layouts():
    torch.manual_seed(2)
    stack = mlp([6, 5, 4], dropout=0.5)
    assert [type(m).__name__ for m in stack] == ["Linear", "ELU", "Dropout", "Linear", "ELU", "Dropout"]
    head = MLPHead([6, 5], 9)
    assert head(torch.randn(3, 6)).shape == (3, 9) and isinstance(head[1], torch.nn.Linear)
    encoder = GaussianEncoder([6, 5], latent_dim=4, clamp=1.0)
    with torch.no_grad():
        encoder[1].bias[4:] = 50.0  # SYNTHETIC: huge log-variances
    mean, logvar = encoder(torch.randn(3, 6))
    assert mean.shape == logvar.shape == (3, 4) and torch.equal(logvar, torch.ones(3, 4))
    raw = GaussianEncoder([6, 5], latent_dim=4, clamp=None)
    assert set(raw.state_dict()) == {"0.0.weight", "0.0.bias", "1.weight", "1.bias"}  # saved models' names


def small_drvae(**settings) -> DrVAEModule:
    torch.manual_seed(3)
    return DrVAEModule(10, 4, 3, [8], [8], 2, 0.0, hierarchy=settings.get("hierarchy", False),
                       settings=DrVAESettings(**settings))


def drvae_batch():
    generator = torch.Generator().manual_seed(4)
    y = torch.randn(6, 4, generator=generator)
    return {"x": torch.randn(6, 10, generator=generator), "y": y, "s": (y < 0).float(),
            "m": torch.rand(6, 4, generator=generator) < 0.7}


def moicvae_module_and_batch():
    torch.manual_seed(5)
    module = MOICVAEModule({"expression": 5, "cnv": 4, "mutation": 3}, n_tissues=2, n_drugs=3, n_train_cells=6,
                           latent_dim=3, hidden=[8], drug_latent_dim=2, drug_hidden=[8], dropout=0.0,
                           settings=MOICVAESettings())
    y, m = torch.randn(6, 3), (torch.rand(6, 3) < 0.7).float()
    batch = {"views": {"expression": torch.randn(6, 5), "cnv": torch.randn(6, 4), "mutation": torch.randn(6, 3)},
             "targets": {"cnv": torch.randint(0, 3, (6, 4)), "mutation": torch.randint(0, 2, (6, 3)).float()},
             "tissue": torch.eye(2)[torch.tensor([0, 1, 0, 1, 1, 0])], "y": y * m, "s": (y < 0).float() * m, "m": m,
             "y_drug": (y * m).T, "m_drug": m.T, "n_cells": 6}
    return module, batch


@pytest.mark.parametrize("variant", ["drvae", "hierarchy", "multitask", "moicvae"])
def test_modules_are_inference_generative_loss(variant):
    """scvi-tools' pattern: forward is loss(inference, generative), a total and named terms."""
    if variant == "moicvae":
        module, batch = moicvae_module_and_batch()
        inputs = (batch["views"], batch["tissue"], batch["y_drug"], batch["m_drug"])
        q_keys, p_keys = {"qz_mean", "qz_logvar", "z", "qw_mean", "qw_logvar", "w"}, {"views", "response"}
    else:
        settings = {"hierarchy": {"hierarchy": True}, "multitask": {"generative": False}}.get(variant, {})
        module, batch = small_drvae(**settings), drvae_batch()
        inputs = (batch["x"],)
        q_keys = {"qz_mean", "qz_logvar", "z"}
        p_keys = {"response"} | (set() if variant == "multitask" else {"px_mean", "px_logvar"})
    for name in ("inference", "generative", "loss"):
        assert callable(getattr(module, name)), name
    torch.manual_seed(6)
    q = module.inference(*inputs)
    p = module.generative(q["z"], batch["tissue"], q["w"]) if variant == "moicvae" else module.generative(q["z"])
    assert set(q) == q_keys and set(p) == p_keys
    assert p["response"].shape == (6, batch["y"].shape[1], 2)
    loss, parts = module.loss(batch, q, p, kl_weight=0.5)
    torch.manual_seed(6)
    again, again_parts = module(batch, kl_weight=0.5)
    assert torch.equal(loss, again) and parts == again_parts
    assert parts["loss"] == loss.item() and {"regression", "classification"} <= set(parts)
    assert ("kl" in parts) == (variant != "multitask")
    if variant == "multitask":
        assert torch.equal(q["z"], q["qz_mean"])  # the ablation's latent is the encoder mean, not a sample


def test_kl_weight_scales_only_the_kl_terms():
    module, batch = small_drvae(), drvae_batch()
    module.eval()  # no input noise: both calls see the same inputs
    torch.manual_seed(7)
    full, parts = module(batch, kl_weight=1.0)
    torch.manual_seed(7)
    half, _ = module(batch, kl_weight=0.5)
    assert full.item() - half.item() == pytest.approx(0.5 * parts["kl"], rel=1e-4, abs=1e-5)
    assert parts["kl"] >= module.settings.free_bits * module.latent_dim - 1e-6  # the floor holds


def test_one_settings_base_class():
    for cls in (NeuralSettings, DrVAESettings, MOICVAESettings, MLPSettings):
        assert issubclass(cls, TrainerSettings)
    shared = {f.name for f in dataclasses.fields(TrainerSettings)}
    assert {"learning_rate", "weight_decay", "max_epochs", "patience", "batch_size", "checkpoint_every", "device",
            "warmup_epochs"} <= shared
    vae = {f.name for f in dataclasses.fields(NeuralSettings)}
    assert {"free_bits", "supervised_weight", "classifier_weight"} <= vae
    # each model's defaults, as before the settings were shared
    assert (DrVAESettings().weight_decay, DrVAESettings().warmup_epochs, DrVAESettings().dropout) == (1e-4, 20, 0.0)
    assert (MOICVAESettings().dropout, MLPSettings().max_epochs, MLPSettings().batch_size) == (0.1, 100, 128)
    with pytest.raises(TypeError):
        MLPSettings(free_bits=0.1)  # the pair MLP has no KL: a VAE setting there is an error
