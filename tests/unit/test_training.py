"""drp.training.Trainer with a tiny SYNTHETIC regression module: early stopping and best weights,
determinism, batching, checkpoints (periodic, on SIGTERM, resume, fingerprint) and device choice."""

from __future__ import annotations

import copy
import math
import os
import signal

import pytest
import torch

from drp import training
from drp.training import Interrupted, Trainer, TrainerSettings, resolve_device

N_SAMPLES, N_FEATURES = 23, 4


pytestmark = pytest.mark.usefixtures("torch_single_thread")


class SyntheticRegression:
    """y = X w + noise (synthetic); a linear module trained on MSE with noisy inputs (uses torch's RNG)."""

    def __init__(self, init_seed: int = 0):
        generator = torch.Generator().manual_seed(123)
        self.x = torch.randn(N_SAMPLES, N_FEATURES, generator=generator)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(N_SAMPLES, generator=generator)
        self.x_val = torch.randn(11, N_FEATURES, generator=generator)
        self.y_val = self.x_val @ torch.tensor([1.0, -2.0, 0.5, 3.0])
        torch.manual_seed(init_seed)
        self.module = torch.nn.Linear(N_FEATURES, 1)
        self.batches: list[torch.Tensor] = []  # the index of every loss call
        self.kl_weights: list[float] = []  # and the KL weight it was given
        self.trainer: Trainer | None = None

    def loss(self, index, kl_weight):
        self.batches.append(index.clone())
        self.kl_weights.append(kl_weight)
        x = self.x[index] + 0.05 * torch.randn(len(index), N_FEATURES)
        loss = ((self.module(x).squeeze(-1) - self.y[index]) ** 2).mean()
        return loss, {"loss": loss.item()}

    def validate(self):
        mse = ((self.module(self.x_val).squeeze(-1) - self.y_val) ** 2).mean().item()
        return mse, {"validation_mse": mse}

    def fit(self, seed: int = 0, checkpoint_dir=None, fingerprint: str = "run", **settings):
        settings = TrainerSettings(**{"max_epochs": 10, "learning_rate": 0.05, "patience": 100, "min_epochs": 0,
                                      "checkpoint_every": 0, "device": "cpu", "progress": False, **settings})
        self.trainer = Trainer(self.module, settings, seed, checkpoint_dir, fingerprint)
        return self.trainer.fit(self.loss, self.validate, N_SAMPLES)

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def differ(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


# --- early stopping and best weights ----------------------------------------------------------------

def scripted_validation(run: SyntheticRegression, scores: list[float], snapshots: list):
    """Replace the validation score by a script; keep a copy of the weights each epoch is scored with."""

    def validate():
        snapshots.append(copy.deepcopy(run.module.state_dict()))
        score = scores[len(snapshots) - 1]
        return score, {"validation_mse": score}

    run.validate = validate


def test_early_stopping_keeps_the_best_weights():
    run, snapshots = SyntheticRegression(), []
    scores = [5.0, 4.0, 3.0, 2.0, 1.0, 1.5, 2.5, 3.5] + [9.0] * 50  # best at epoch 5, then worse
    scripted_validation(run, scores, snapshots)
    history = run.fit(max_epochs=50, patience=3, min_epochs=0)
    assert len(history) == 8 == len(snapshots)  # stopped 3 epochs after the best one, well before 50
    assert history["epoch"].tolist() == list(range(1, 9))
    assert history["validation_score"].tolist() == scores[:8]
    assert run.trainer.best_epoch == 5
    assert_same(run.weights(), snapshots[4])  # the best epoch's weights, not the last ones
    assert differ(run.weights(), snapshots[-1])


def test_min_epochs_delays_early_stopping():
    run, snapshots = SyntheticRegression(), []
    scripted_validation(run, [1.0] + [2.0] * 50, snapshots)
    history = run.fit(max_epochs=50, patience=2, min_epochs=12)
    assert len(history) == 12
    assert_same(run.weights(), snapshots[0])


def test_runs_to_max_epochs_while_improving():
    run = SyntheticRegression()
    history = run.fit(max_epochs=15, patience=3)
    assert len(history) == 15
    assert history["loss"].iloc[-3:].mean() < history["loss"].iloc[:3].mean()
    assert {"epoch", "loss", "validation_mse", "validation_score", "seconds"} <= set(history.columns)


# --- determinism ----------------------------------------------------------------------------------

def test_same_seed_same_weights_other_seed_other_weights():
    runs = {}
    for name, seed in [("a", 7), ("b", 7), ("c", 8)]:
        run = SyntheticRegression(init_seed=0)  # same initial weights: only the trainer's seed differs
        run.fit(seed=seed, batch_size=5, max_epochs=6)
        runs[name] = run
    assert_same(runs["a"].weights(), runs["b"].weights())
    assert all(torch.equal(x, y) for x, y in zip(runs["a"].batches, runs["b"].batches))
    assert differ(runs["a"].weights(), runs["c"].weights())
    assert any(not torch.equal(x, y) for x, y in zip(runs["a"].batches, runs["c"].batches))


# --- batching -------------------------------------------------------------------------------------

def test_full_batch_by_default():
    run = SyntheticRegression()
    run.fit(max_epochs=3, batch_size=None)
    assert len(run.batches) == 3  # one loss call per epoch
    for index in run.batches:
        assert sorted(index.tolist()) == list(range(N_SAMPLES))


@pytest.mark.parametrize("batch_size", [1, 5, 23, 40])
def test_minibatches_partition_the_samples(batch_size):
    run = SyntheticRegression()
    run.fit(max_epochs=2, batch_size=batch_size)
    per_epoch = math.ceil(N_SAMPLES / batch_size)
    assert len(run.batches) == 2 * per_epoch
    for epoch in range(2):
        batches = run.batches[epoch * per_epoch:(epoch + 1) * per_epoch]
        assert [len(b) for b in batches[:-1]] == [batch_size] * (per_epoch - 1)
        assert sorted(torch.cat(batches).tolist()) == list(range(N_SAMPLES))  # each sample once per epoch
    if batch_size < N_SAMPLES:  # reshuffled every epoch
        assert not torch.equal(torch.cat(run.batches[:per_epoch]), torch.cat(run.batches[per_epoch:]))


# --- KL warm-up -----------------------------------------------------------------------------------

def test_kl_weight_warms_up_linearly_per_epoch():
    run = SyntheticRegression()
    run.fit(max_epochs=6, batch_size=5, warmup_epochs=4)  # 5 batches per epoch, one weight per epoch
    assert run.kl_weights == [w for w in (0.25, 0.5, 0.75, 1.0, 1.0, 1.0) for _ in range(5)]
    without = SyntheticRegression()
    without.fit(max_epochs=2)  # warmup_epochs 0 (the default): the full weight from the start
    assert without.kl_weights == [1.0, 1.0]


# --- checkpoints ----------------------------------------------------------------------------------

def watch_checkpoints(run: SyntheticRegression, path, sigterm_in_epoch: int | None = None):
    """At each loss call record which epoch the checkpoint on disk holds (None: no file); optionally send
    SIGTERM to this process during epoch ``sigterm_in_epoch`` (1-based)."""
    seen, original, default = [], run.loss, signal.getsignal(signal.SIGTERM)

    def loss(index, kl_weight):
        epoch = run.trainer.epoch  # epochs completed so far
        seen.append(torch.load(path, weights_only=False)["epoch"] if path.exists() else None)
        if sigterm_in_epoch is not None and epoch == sigterm_in_epoch - 1 and not getattr(loss, "sent", False):
            handler = signal.getsignal(signal.SIGTERM)
            assert callable(handler) and handler is not default, "the trainer did not install its SIGTERM handler"
            loss.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
        return original(index, kl_weight)

    run.loss = loss
    return seen


def test_checkpoint_every_n_epochs_then_deleted(tmp_path):
    run = SyntheticRegression()
    seen = watch_checkpoints(run, tmp_path / "checkpoint.pt")
    run.fit(checkpoint_dir=tmp_path, checkpoint_every=3, max_epochs=10)
    # the checkpoint on disk at the start of epochs 1..10: written after epochs 3, 6 and 9
    assert seen == [None, None, None, 3, 3, 3, 6, 6, 6, 9]
    assert not (tmp_path / "checkpoint.pt").exists()  # a finished run leaves none behind
    assert not list(tmp_path.iterdir())


def test_no_checkpoint_folder_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = SyntheticRegression()
    run.fit(checkpoint_dir=None, checkpoint_every=1, max_epochs=3)
    assert not list(tmp_path.iterdir())


def test_sigterm_saves_a_checkpoint_and_resume_matches_uninterrupted(tmp_path):
    settings = dict(max_epochs=10, batch_size=5, checkpoint_every=4)
    reference = SyntheticRegression()
    reference_history = reference.fit(seed=3, **settings)

    previous = signal.getsignal(signal.SIGTERM)
    interrupted = SyntheticRegression()
    watch_checkpoints(interrupted, tmp_path / "checkpoint.pt", sigterm_in_epoch=6)
    with pytest.raises(Interrupted):
        interrupted.fit(seed=3, checkpoint_dir=tmp_path, **settings)
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is restored
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["epoch"] == 6 and len(saved["history"]) == 6  # finished the epoch, then saved

    resumed = SyntheticRegression(init_seed=99)  # other initial weights: all state comes from the checkpoint
    history = resumed.fit(seed=3, checkpoint_dir=tmp_path, **settings)
    assert len(resumed.batches) == 4 * math.ceil(N_SAMPLES / 5)  # epochs 7..10 only
    assert history["epoch"].tolist() == list(range(1, 11))
    assert_same(resumed.weights(), reference.weights())
    assert history.drop(columns="seconds").equals(reference_history.drop(columns="seconds"))
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("change", [{"fingerprint": "another run"}, {"learning_rate": 0.01}, {"max_epochs": 12}])
def test_checkpoint_of_another_run_is_ignored(tmp_path, change):
    settings = dict(max_epochs=10, checkpoint_every=1)
    interrupted = SyntheticRegression()
    watch_checkpoints(interrupted, tmp_path / "checkpoint.pt", sigterm_in_epoch=4)
    with pytest.raises(Interrupted):
        interrupted.fit(seed=3, checkpoint_dir=tmp_path, fingerprint="run", **settings)
    assert (tmp_path / "checkpoint.pt").exists()

    arguments = {"seed": 3, "fingerprint": "run", **settings, **change}
    fresh, restarted = SyntheticRegression(), SyntheticRegression()
    fresh.fit(**arguments)  # no checkpoint folder: the reference for "started afresh"
    history = restarted.fit(checkpoint_dir=tmp_path, **arguments)
    epochs = arguments["max_epochs"]
    assert len(restarted.batches) == epochs and history["epoch"].tolist() == list(range(1, epochs + 1))
    assert_same(restarted.weights(), fresh.weights())


# --- devices --------------------------------------------------------------------------------------

def test_resolve_device(monkeypatch):
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_cpu_training_is_not_autocast():
    run = SyntheticRegression()
    dtypes = []
    original = run.loss

    def loss(index, kl_weight):
        result = original(index, kl_weight)
        dtypes.append(result[0].dtype)
        return result

    run.loss = loss
    run.fit(max_epochs=2, mixed_precision=True)
    assert run.trainer.device == torch.device("cpu")
    assert dtypes == [torch.float32, torch.float32]
    assert training.resolve_device(run.trainer.settings.device).type == "cpu"


# --- the optimizer ------------------------------------------------------------------------------------

@pytest.mark.parametrize("weight_decay", [0.0, 1e-4])
def test_adam_matches_torch_adam_to_the_last_bit(weight_decay):
    """training.Adam stands in for torch.optim.Adam (whose first use imports torch's compiler): the same
    weights after every step, including a parameter that gets no gradient on some steps (it must not step)."""
    torch.manual_seed(0)
    ours, theirs = torch.nn.Linear(6, 3), torch.nn.Linear(6, 3)
    extra_ours, extra_theirs = torch.nn.Parameter(torch.randn(3)), None
    theirs.load_state_dict(ours.state_dict())
    extra_theirs = torch.nn.Parameter(extra_ours.detach().clone())
    mine = training.Adam([*ours.parameters(), extra_ours], lr=0.01, weight_decay=weight_decay)
    reference = torch.optim.Adam([*theirs.parameters(), extra_theirs], lr=0.01, weight_decay=weight_decay)
    x = torch.randn(40, 6)
    for step in range(25):
        for module, extra, optimizer in ((ours, extra_ours, mine), (theirs, extra_theirs, reference)):
            optimizer.zero_grad(set_to_none=True)
            loss = (module(x) ** 2).mean() + (((extra ** 2).sum()) if step % 3 == 0 else 0.0)
            loss.backward()
            optimizer.step()
        assert all(torch.equal(a, b) for a, b in zip([*ours.parameters(), extra_ours], [*theirs.parameters(), extra_theirs]))


def test_adam_state_round_trip_continues_identically():
    torch.manual_seed(1)
    module = torch.nn.Linear(4, 1)
    x = torch.randn(16, 4)

    def run(optimizer, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            (module(x) ** 2).mean().backward()
            optimizer.step()

    optimizer = training.Adam(module.parameters(), lr=0.05)
    run(optimizer, 3)
    saved_weights, saved_state = copy.deepcopy(module.state_dict()), optimizer.state_dict()
    run(optimizer, 4)
    uninterrupted = copy.deepcopy(module.state_dict())
    module.load_state_dict(saved_weights)
    resumed = training.Adam(module.parameters(), lr=0.05)
    resumed.load_state_dict(saved_state)
    run(resumed, 4)
    assert_same(uninterrupted, module.state_dict())


def test_training_never_imports_torch_compiler():
    """The point of training.Adam: a fit does not pay for importing torch._dynamo (checked in a fresh process)."""
    import subprocess
    import sys

    code = ("import sys; sys.path[:0] = ['scripts', 'tests/unit']; import test_training as t; r = t.SyntheticRegression(); "
            "r.fit(max_epochs=2); print('torch._dynamo' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=os.path.join(os.path.dirname(__file__), "..", ".."))
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_fixed_epochs_trains_exactly_max_epochs_and_keeps_the_last_weights():
    """The refit setting: no early stopping however the validation score moves, and the final weights
    (not the best-scored ones) are kept."""
    run = SyntheticRegression()
    snapshots: list = []
    scripted_validation(run, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], snapshots)
    history = run.fit(max_epochs=6, patience=1, fixed_epochs=True)
    assert len(history) == 6
    run.trainer.module.eval()
    last = run.weights()
    assert run.trainer.best_epoch == 1 and differ(last, snapshots[0])
