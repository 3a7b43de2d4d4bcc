"""What the neural models share: settings, the trainer and the refit at the best epoch; and what the VAEs
share: per-drug response scaling, the response grid and its supervised terms, the checkpoint fingerprint
and turning a (cells, drugs) output grid into per-pair predictions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from ..training import Trainer, TrainerSettings
from .base import DrugResponseModel, TrainingData


@dataclass
class NeuralSettings(TrainerSettings):
    """The VAEs' settings: the training ones (other defaults) and the weights of their objective."""

    weight_decay: float = 1e-4
    warmup_epochs: int = 20  # linear KL warm-up
    supervised_weight: float = 1.0  # weight of the response terms against the ELBO
    classifier_weight: float = 1.0  # of the sensitivity classifier relative to the regression
    free_bits: float = 0.05  # nats per latent dimension


def supervised_terms(out, y, sensitive, mask):
    """Masked sums over a (cells, drugs, 2) output grid: half the squared error of the standardized
    response (column 0) and the cross-entropy of the sensitivity logit (column 1)."""
    regression = 0.5 * (out[..., 0] - y) ** 2
    classification = F.binary_cross_entropy_with_logits(out[..., 1], sensitive, reduction="none")
    return (regression * mask).sum(), (classification * mask).sum()


def response_objective(settings: NeuralSettings, regression, classification, mask, reconstruction=0.0, kl=0.0,
                       kl_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """The loss per cell line of the batch (reconstruction + kl_weight x KL + the weighted response terms),
    and the response terms per observed pair, for the history."""
    n_pairs = max(1, mask.sum().item())
    loss = (reconstruction + kl_weight * kl
            + settings.supervised_weight * (regression + settings.classifier_weight * classification)) / len(mask)
    return loss, {"regression": regression.item() / n_pairs, "classification": classification.item() / n_pairs}


class NeuralModel(DrugResponseModel):
    """A torch model trained by ``drp.training.Trainer``; subclasses set ``settings_class`` and ``module``."""

    uses_validation = True
    settings_class = TrainerSettings

    def __init__(self, **params):
        self.settings = self.settings_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        super().__init__(**params)
        self.module = None
        self.history = pd.DataFrame()

    def new_trainer(self, data: TrainingData, omics: np.ndarray, checkpoint_dir=None, **identity) -> Trainer:
        """The shared trainer, with a fingerprint of the fit (params, seed, cell lines, pairs, the ``omics``
        matrix the module sees and ``identity``) so that a checkpoint resumes only the very same fit."""
        fingerprint = json.dumps({
            "params": self.params, "seed": data.seed, "cells": list(data.cells.cell_lines),
            "pairs": int(pd.util.hash_pandas_object(data.train_and_validation, index=False).sum()),
            "omics": hashlib.sha256(omics.tobytes()).hexdigest(), **identity})
        return Trainer(self.module, self.settings, data.seed, checkpoint_dir or data.checkpoint_dir, fingerprint)

    def run_trainer(self, trainer: Trainer, loss_fn, validate_fn, n_samples: int) -> None:
        """Train, then keep the history, the best validation score and the best weights on the CPU."""
        self.history = trainer.fit(loss_fn, validate_fn, n_samples)
        self.validation_score, self.best_epoch = trainer.best_score, trainer.best_epoch
        self.module = trainer.module.cpu().eval()

    def refit_params(self) -> dict:
        """The epochs at which validation was best, without early stopping."""
        return {**self.params, "max_epochs": max(1, self.best_epoch), "fixed_epochs": True}

    def module_arrays(self) -> dict[str, np.ndarray]:
        """The module's weights as saved: arrays.npz keys ``module.<parameter name>``."""
        return {f"module.{k}": v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}

    def load_module(self, module: torch.nn.Module, arrays: dict) -> None:
        """``module`` (freshly built) with the saved weights, in evaluation mode."""
        module.load_state_dict({k.removeprefix("module."): torch.as_tensor(v) for k, v in arrays.items()
                                if k.startswith("module.")})
        self.module = module.eval()


class NeuralResponseModel(NeuralModel):
    """Base of the VAEs: per-drug heads over a (cells, drugs) grid of standardized responses."""

    settings_class = NeuralSettings

    def __init__(self, **params):
        super().__init__(**params)
        self.drugs: list[str] = []
        self.lower_is_sensitive = True
        self.response_mean = self.response_std = self.threshold = np.zeros(0, dtype=np.float32)

    def fit_response_scaling(self, data: TrainingData) -> None:
        """Per-drug mean, std and median of the training pairs only (never validation or test)."""
        self.lower_is_sensitive = data.lower_is_sensitive
        stats = data.train.groupby("drug")["response"]
        self.drugs = sorted(data.train.drug.unique())
        self.response_mean = stats.mean().loc[self.drugs].to_numpy(np.float32)
        self.response_std = stats.std(ddof=0).fillna(1.0).clip(lower=1e-3).loc[self.drugs].to_numpy(np.float32)
        self.threshold = stats.median().loc[self.drugs].to_numpy(np.float32)

    def response_grid(self, pairs: pd.DataFrame, cells: pd.Index):
        """Observed responses as a (cells, drugs) grid standardized per drug, the sensitivity labels and
        the mask of observed entries (float32 arrays; unobserved entries are 0 in all three)."""
        rows = cells.get_indexer(pairs.cell_line)
        cols = pd.Index(self.drugs).get_indexer(pairs.drug)
        keep = (rows >= 0) & (cols >= 0)
        values = np.zeros((len(cells), len(self.drugs)), dtype=np.float32)
        mask = np.zeros_like(values)
        values[rows[keep], cols[keep]] = pairs.response.to_numpy()[keep]
        mask[rows[keep], cols[keep]] = 1.0
        standardized = (values - self.response_mean) / self.response_std * mask
        sensitive = (values < self.threshold) if self.lower_is_sensitive else (values > self.threshold)
        return standardized, sensitive.astype(np.float32) * mask, mask

    def trainer(self, data: TrainingData, checkpoint_dir=None) -> Trainer:
        views = list(self.settings.views)
        return self.new_trainer(data, data.cells.matrix(views, data.cells.cell_lines), checkpoint_dir, drugs=self.drugs,
                                features={v: list(data.cells.views[v].var_names) for v in views})

    def validation_terms(self, out, y, sensitive, mask) -> tuple[float, dict]:
        """Half the mean squared error over the observed pairs of a (cells, drugs, 2) output grid, and the
        mean squared error and cross-entropy."""
        regression, classification = supervised_terms(out.float(), y, sensitive, mask)
        n = max(1, mask.sum().item())
        return regression.item() / n, {"validation_mse": 2 * regression.item() / n,
                                       "validation_bce": classification.item() / n}

    def pair_predictions(self, grid: np.ndarray, pairs: pd.DataFrame, cells: pd.Index) -> pd.DataFrame:
        """``pairs`` with y_pred (de-standardized) and p_sensitive from a (cells, drugs, 2) output grid;
        drugs unseen in training get the mean training response and p_sensitive 0.5."""
        rows = cells.get_indexer(pairs.cell_line)
        cols = pd.Index(self.drugs).get_indexer(pairs.drug)
        known = cols >= 0
        y_pred = np.full(len(pairs), float(np.mean(self.response_mean)))
        p_sensitive = np.full(len(pairs), 0.5)
        y_pred[known] = grid[rows[known], cols[known], 0] * self.response_std[cols[known]] + self.response_mean[cols[known]]
        p_sensitive[known] = 1.0 / (1.0 + np.exp(-grid[rows[known], cols[known], 1]))
        return pairs.assign(y_pred=y_pred, p_sensitive=p_sensitive)

    def scaling_state(self) -> dict[str, np.ndarray]:
        return {"response_mean": self.response_mean, "response_std": self.response_std, "threshold": self.threshold}

    def load_scaling_state(self, meta: dict, arrays: dict) -> None:
        self.drugs, self.lower_is_sensitive = meta["drugs"], meta["lower_is_sensitive"]
        self.response_mean, self.response_std = arrays["response_mean"], arrays["response_std"]
        self.threshold = arrays["threshold"]
