"""What the neural models share: training settings, per-drug response scaling, the response grid,
the checkpoint fingerprint and turning a (cells, drugs) output grid into per-pair predictions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..training import Trainer, TrainerSettings
from .base import DrugResponseModel, TrainingData


@dataclass
class NeuralSettings:
    supervised_weight: float = 1.0  # weight of the response terms against the ELBO
    classifier_weight: float = 1.0  # of the sensitivity classifier relative to the regression
    free_bits: float = 0.05  # nats per latent dimension
    warmup_epochs: int = 20  # linear KL warm-up
    max_epochs: int = 300
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int | None = None
    patience: int = 30
    checkpoint_every: int = 25
    device: str = "auto"
    progress: bool = True
    fixed_epochs: bool = False  # set by refit_params: exactly max_epochs, no early stopping

    def trainer_settings(self) -> TrainerSettings:
        return TrainerSettings(max_epochs=self.max_epochs, learning_rate=self.learning_rate,
                               weight_decay=self.weight_decay, batch_size=self.batch_size, patience=self.patience,
                               checkpoint_every=self.checkpoint_every, device=self.device, progress=self.progress,
                               fixed_epochs=self.fixed_epochs)


class NeuralResponseModel(DrugResponseModel):
    """Base of the VAEs: subclasses set ``settings_class`` and build their module and loss."""

    uses_validation = True
    settings_class = NeuralSettings

    def __init__(self, **params):
        self.settings = self.settings_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        super().__init__(**params)
        self.module = None
        self.drugs: list[str] = []
        self.lower_is_sensitive = True
        self.response_mean = self.response_std = self.threshold = np.zeros(0, dtype=np.float32)
        self.history = pd.DataFrame()

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
        """The shared trainer, with a fingerprint so that a checkpoint resumes only the very same fit."""
        views = list(self.settings.views)
        fingerprint = json.dumps({
            "params": self.params, "seed": data.seed, "drugs": self.drugs, "cells": list(data.cells.cell_lines),
            "features": {v: list(data.cells.views[v].var_names) for v in views},
            "pairs": int(pd.util.hash_pandas_object(data.train_and_validation, index=False).sum()),
            "omics": hashlib.sha256(data.cells.matrix(views, data.cells.cell_lines).tobytes()).hexdigest(),
        })
        return Trainer(self.module, self.settings.trainer_settings(), data.seed,
                       checkpoint_dir or data.checkpoint_dir, fingerprint)

    def run_trainer(self, trainer: Trainer, loss_fn, validate_fn, n_samples: int) -> None:
        """Train, then keep the history, the best validation score and the best weights on the CPU."""
        self.history = trainer.fit(loss_fn, validate_fn, n_samples)
        self.validation_score, self.best_epoch = trainer.best_score, trainer.best_epoch
        self.module = trainer.module.cpu().eval()

    def refit_params(self) -> dict:
        """The epochs at which validation was best, without early stopping."""
        return {**self.params, "max_epochs": max(1, self.best_epoch), "fixed_epochs": True}

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
