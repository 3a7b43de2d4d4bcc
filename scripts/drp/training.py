"""The training loop shared by every neural model.

What it guarantees:
- device ``auto`` picks CUDA when present; on CUDA the forward pass runs under bfloat16 autocast (no loss
  scaling needed) and all data stay on the device: batches are index slices, never host copies;
- a fixed seed gives the same weights on the CPU (deterministic algorithms, seeded generators);
- early stopping on a validation score, keeping the best weights (or, with ``fixed_epochs``, exactly
  ``max_epochs`` epochs and the last weights: a refit on training + validation data);
- a checkpoint every ``checkpoint_every`` epochs and when SIGTERM arrives (Slurm sends it before a
  time-limit kill or preemption); a rerun with the same checkpoint folder resumes where it stopped and
  ends with the same weights as an uninterrupted run;
- the KL warm-up: each epoch's KL weight rises linearly to 1 over ``warmup_epochs`` epochs;
- the history (losses and validation metrics per epoch) is returned as a table.

A model supplies ``loss(batch_index, kl_weight) -> (loss tensor, dict of floats)`` and
``validate() -> (score to minimise, dict of floats)``; the trainer owns everything else.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)


class Interrupted(RuntimeError):
    """Training stopped on SIGTERM after saving a checkpoint; rerun to resume."""


@dataclass
class TrainerSettings:
    """The training settings of every neural model; a model's settings class subclasses it (its params)."""

    max_epochs: int = 300
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int | None = None  # None: full batch (fastest on a GPU: per-batch kernel launches dominate otherwise)
    patience: int = 30
    min_epochs: int = 20
    checkpoint_every: int = 25
    device: str = "auto"
    mixed_precision: bool = True
    progress: bool = True
    fixed_epochs: bool = False  # train exactly max_epochs and keep the last weights (a refit without validation)
    warmup_epochs: int = 0  # the KL weight is (epoch + 1) / warmup_epochs until it reaches 1; 0: always 1


class Adam:
    """Adam with L2 weight decay: the update of ``torch.optim.Adam`` (its single-tensor path, which the CPU
    takes), step for step. Not torch.optim itself because its first use imports torch's compiler stack
    (torch._dynamo, sympy): 1.3 s of every training job on the 2-core machine, as long as a whole mean-effects
    fit. tests/unit/test_training.py checks it equal to torch.optim.Adam to the last bit."""

    def __init__(self, parameters, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8):
        self.parameters = [p for p in parameters if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.steps = [0] * len(self.parameters)  # per parameter, as torch: one without a gradient does not step
        self.exp_avg = [torch.zeros_like(p) for p in self.parameters]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.parameters]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for parameter in self.parameters:
            parameter.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for i, parameter in enumerate(self.parameters):
            if parameter.grad is None:
                continue
            self.steps[i] += 1
            grad = parameter.grad
            if self.weight_decay:
                grad = grad.add(parameter, alpha=self.weight_decay)
            self.exp_avg[i].lerp_(grad, 1 - beta1)
            self.exp_avg_sq[i].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step_size = self.lr / (1 - beta1 ** self.steps[i])
            denom = (self.exp_avg_sq[i].sqrt() / (1 - beta2 ** self.steps[i]) ** 0.5).add_(self.eps)
            parameter.addcdiv_(self.exp_avg[i], denom, value=-step_size)

    def state_dict(self) -> dict:
        return {"steps": list(self.steps), "exp_avg": [t.clone() for t in self.exp_avg],
                "exp_avg_sq": [t.clone() for t in self.exp_avg_sq]}

    def load_state_dict(self, state: dict) -> None:
        self.steps = list(state["steps"])
        for mine, saved in zip(self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"]):
            mine.copy_(saved)


def _use_deterministic_algorithms(mode: bool) -> None:
    """``torch.use_deterministic_algorithms`` for eager code only. The public function also sets the flag of
    torch's compiler (torch._inductor), and importing that imports the whole compiler stack (1.2 s per
    training job); nothing here is compiled, so the eager flag is all that matters."""
    torch._C._set_deterministic_algorithms(mode)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@contextlib.contextmanager
def _sigterm_flag():
    """Record SIGTERM instead of dying, so the loop can save a checkpoint first."""
    state = {"received": False}
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield state
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: state.update(received=True))
    try:
        yield state
    finally:
        signal.signal(signal.SIGTERM, previous)


class Trainer:
    def __init__(self, module: torch.nn.Module, settings: TrainerSettings, seed: int,
                 checkpoint_dir: str | Path | None = None, fingerprint: str = ""):
        """``fingerprint`` identifies the run (params, data); a checkpoint of another run is not resumed."""
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.module = module.to(self.device)
        self.seed = seed
        self.fingerprint = fingerprint
        self.checkpoint_path = Path(checkpoint_dir) / "checkpoint.pt" if checkpoint_dir else None
        self.optimizer = Adam(module.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.history: list[dict] = []
        self.best_score, self.best_epoch, self.best_state = math.inf, -1, None
        self.epoch = 0

    # -- checkpoints -------------------------------------------------------------------------------
    def _checkpoint(self) -> dict:
        return {
            "module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "history": self.history, "best_score": self.best_score, "best_epoch": self.best_epoch,
            "best_state": self.best_state, "epoch": self.epoch, "settings": asdict(self.settings),
            "fingerprint": self.fingerprint,
        }

    def save_checkpoint(self) -> None:
        if self.checkpoint_path is None:
            return
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_suffix(".partial")
        torch.save(self._checkpoint(), tmp)
        os.replace(tmp, self.checkpoint_path)

    def _resume(self) -> None:
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return
        saved = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        if saved.get("fingerprint") != self.fingerprint or saved.get("settings") != asdict(self.settings):
            log.warning("ignoring %s: it belongs to a run with other settings or data", self.checkpoint_path)
            return
        self.module.load_state_dict(saved["module"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.generator.set_state(saved["generator"].cpu() if self.device.type == "cpu" else saved["generator"])
        torch.set_rng_state(saved["torch_rng"].cpu())
        if saved["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        self.history, self.epoch = saved["history"], saved["epoch"]
        self.best_score, self.best_epoch, self.best_state = saved["best_score"], saved["best_epoch"], saved["best_state"]
        log.info("resumed from %s at epoch %d", self.checkpoint_path, self.epoch)

    # -- the loop ----------------------------------------------------------------------------------
    def kl_weight(self) -> float:
        """The KL term's weight in the coming epoch: a linear warm-up (a full KL from the first epoch lets
        the posterior collapse onto the prior before the decoder has learnt anything)."""
        return min(1.0, (self.epoch + 1) / max(1, self.settings.warmup_epochs))

    def _batches(self, n_samples: int):
        size = self.settings.batch_size or n_samples
        order = torch.randperm(n_samples, generator=self.generator, device=self.device)
        return [order[start:start + size] for start in range(0, n_samples, size)]

    def _autocast(self):
        if self.device.type == "cuda" and self.settings.mixed_precision:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def fit(self, loss_fn, validate_fn, n_samples: int) -> pd.DataFrame:
        """Train until early stopping or ``max_epochs``; leave the best weights in the module."""
        torch.manual_seed(self.seed)
        was_deterministic = torch.are_deterministic_algorithms_enabled()
        _use_deterministic_algorithms(self.device.type == "cpu" or was_deterministic)
        try:
            return self._fit(loss_fn, validate_fn, n_samples)
        finally:
            _use_deterministic_algorithms(was_deterministic)

    def _fit(self, loss_fn, validate_fn, n_samples: int) -> pd.DataFrame:
        self._resume()
        settings = self.settings
        with _sigterm_flag() as sigterm, tqdm(total=settings.max_epochs, initial=self.epoch, unit="epoch",
                                              disable=not settings.progress, mininterval=5) as bar:
            while self.epoch < settings.max_epochs and not self._should_stop():
                started = time.perf_counter()
                self.module.train()
                totals: dict[str, float] = {}
                batches, kl_weight = self._batches(n_samples), self.kl_weight()
                for index in batches:
                    with self._autocast():
                        loss, parts = loss_fn(index, kl_weight)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    for key, value in parts.items():
                        totals[key] = totals.get(key, 0.0) + value / len(batches)
                self.module.eval()
                with torch.no_grad(), self._autocast():
                    score, val_parts = validate_fn()
                self.epoch += 1
                if score < self.best_score:
                    self.best_score, self.best_epoch = score, self.epoch
                    self.best_state = copy.deepcopy(self.module.state_dict())
                self.history.append({"epoch": self.epoch, **totals, **val_parts, "validation_score": score,
                                     "seconds": time.perf_counter() - started})
                bar.update(1)
                bar.set_postfix(loss=totals.get("loss", float("nan")), val=score, refresh=False)
                if sigterm["received"]:
                    self.save_checkpoint()
                    raise Interrupted(f"SIGTERM at epoch {self.epoch}; checkpoint saved to {self.checkpoint_path}")
                if settings.checkpoint_every and self.epoch % settings.checkpoint_every == 0:
                    self.save_checkpoint()
        if self.best_state is not None and not settings.fixed_epochs:
            self.module.load_state_dict(self.best_state)
        if self.checkpoint_path is not None:  # finished: a later run must start afresh
            self.checkpoint_path.unlink(missing_ok=True)
        log.info("stopped at epoch %d; best validation score %.4f at epoch %d", self.epoch, self.best_score,
                 self.best_epoch)
        return pd.DataFrame(self.history)

    def _should_stop(self) -> bool:
        s = self.settings
        return not s.fixed_epochs and self.epoch >= s.min_epochs and self.epoch - self.best_epoch >= s.patience
