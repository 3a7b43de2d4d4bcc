"""drp.models.drvae: the Dr.VAE module's pieces, and DrVAE fitted on a small slice of the REAL fixture.

The real data come from tests/data (150 GDSC cell lines x 980 genes x 12 drugs, see its README); every
neural fit here is small (latent 8-16, one hidden layer of 32, <= 40 epochs) and runs on the CPU.
Synthetic inputs (module shape checks, perturbation pairs) are named as such.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pandas as pd
import pytest
import torch

from drp import training
from drp.metrics import pearson
from drp.models import TrainingData
from drp.models.blocks import gaussian_nll
from drp.models.drvae import MultitaskMLP, DrVAE, DrVAEModule
from fixture_fold import FixtureFold

N_FEATURES = 200
UNSEEN_DRUG = "SYNTHETIC_UNSEEN_DRUG"

# small and fast; patience large enough that early stopping never triggers within max_epochs
SMALL = dict(latent_dim=16, encoder_hidden=[32], decoder_hidden=[32], rank=2, warmup_epochs=10,
             max_epochs=40, patience=1000, checkpoint_every=25, device="cpu", progress=False)


pytestmark = pytest.mark.usefixtures("torch_single_thread")


# --- the real fixture, split by cell line ---------------------------------------------------------

@pytest.fixture(scope="module")
def fold():
    return FixtureFold(["expression"], N_FEATURES, clip=5.0)


@pytest.fixture(scope="module")
def fitted(fold):
    model = DrVAE(**SMALL)
    model.fit(fold.training_data(seed=0))
    return model


def per_drug_pearson(model, fold) -> pd.Series:
    predicted = model.predict(fold.test[["cell_line", "drug"]], fold.test_cell_data())
    predicted["y_true"] = fold.test["response"].to_numpy()
    return predicted.groupby("drug")[["y_true", "y_pred"]].apply(lambda g: pearson(g.y_true, g.y_pred))


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.module.state_dict().items()}


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --- 1. shapes of the module's pieces (synthetic inputs) ------------------------------------------

B, G, D, L, R = 7, 20, 5, 8, 3


def synthetic_module(seed: int = 0) -> DrVAEModule:
    torch.manual_seed(seed)
    return DrVAEModule(n_features=G, n_drugs=D, latent_dim=L, encoder_hidden=[16], decoder_hidden=[16], rank=R,
                       dropout=0.0)


def test_module_shapes_and_pair_perturbation_matches_grid():
    module = synthetic_module()
    with torch.no_grad():  # a non-trivial perturbation, so that the comparison below means something
        module.perturb_u.normal_()
        module.perturb_b.normal_()
        module.head_weight.normal_()
    x = torch.randn(B, G)
    mean, logvar = module.encode(x)
    assert mean.shape == logvar.shape == (B, L)
    x_mean, x_logvar = module.decode(mean)
    assert x_mean.shape == x_logvar.shape == (B, G)

    grid = module.perturbation(mean)
    assert grid.shape == (B, D, L)
    cells = torch.tensor([0, 0, 3, 6, 2, 5])
    drugs = torch.tensor([0, 4, 2, 1, 4, 3])
    pairs = module.perturbation(mean[cells], drugs)
    assert pairs.shape == (len(cells), L)
    torch.testing.assert_close(pairs, grid[cells, drugs])
    # and both are W_d z1 + b_d with W_d = U_d V_d^T
    for c, d in zip(cells.tolist(), drugs.tolist()):
        w = module.perturb_u[d] @ module.perturb_v[d].T
        torch.testing.assert_close(grid[c, d], w @ mean[c] + module.perturb_b[d])

    out = module.heads(mean, grid)
    assert out.shape == (B, D, 2)
    expected = torch.cat([mean[2], grid[2, 4]]) @ module.head_weight[4] + module.head_bias[4]
    torch.testing.assert_close(out[2, 4], expected)
    predicted = module.predict_grid(x)
    assert predicted.shape == (B, D, 2)
    torch.testing.assert_close(predicted, out)  # the grid prediction uses the posterior mean of z1


# --- 2. the perturbation is the identity at initialisation, and it learns ---------------------------

def test_perturbation_is_identity_at_initialisation():
    module = synthetic_module()
    z1 = torch.randn(B, L)
    assert torch.equal(module.perturbation(z1), torch.zeros(B, D, L))  # z2 = z1 for every drug
    assert torch.equal(module.perturbation(z1, torch.arange(D).repeat(2)[:B]), torch.zeros(B, L))
    w = torch.einsum("dlr,dkr->dlk", module.perturb_u, module.perturb_v)
    assert torch.equal(w, torch.zeros(D, L, L))
    assert torch.equal(module.perturb_b, torch.zeros(D, L))
    assert module.perturb_v.abs().sum() > 0  # V is random, so U receives gradient as soon as it is used


def test_one_step_moves_the_perturbation_away_from_identity():
    module = synthetic_module()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    z1, _ = module.encode(torch.randn(B, G))
    target = torch.randn(B, D, L)  # synthetic target for the latent shift
    loss = ((module.perturbation(z1) - target) ** 2).mean()
    loss.backward()
    assert module.perturb_u.grad.abs().sum() > 0 and module.perturb_b.grad.abs().sum() > 0
    optimizer.step()
    with torch.no_grad():
        assert module.perturbation(z1).abs().sum() > 0


def test_pair_objective_reaches_the_perturbation_in_one_step():
    """The perturbation-pair terms of Dr.VAE's own objective give U_d and b_d a gradient at once."""
    module = synthetic_module()
    rng = np.random.default_rng(0)
    x1 = torch.as_tensor(rng.normal(size=(6, G)), dtype=torch.float32)  # synthetic control profiles
    pairs = {"x1": x1, "x2": x1 + 1.0, "drug": torch.tensor([0, 1, 1, 2, 3, 3])}
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    loss, parts = module.pair_loss(pairs, kl_weight=1.0)
    loss.backward()
    grad_u = module.perturb_u.grad
    assert grad_u[[0, 1, 2, 3]].abs().sum() > 0 and module.perturb_b.grad[[0, 1, 2, 3]].abs().sum() > 0
    assert torch.equal(grad_u[4], torch.zeros(L, R))  # drug 4 has no pair
    optimizer.step()
    with torch.no_grad():
        z1 = module.encode(x1)[0]
        assert module.perturbation(z1, pairs["drug"]).abs().sum() > 0


def test_response_objective_reaches_the_perturbation():
    """Without perturbation pairs, the responses alone must train W_d, b_d and the heads' z2 - z1 half.

    The response heads read [z1, z2 - z1]; if the z2 - z1 half of the heads and the perturbation all start
    at 0, each one's gradient is proportional to the other (0), so they stay 0 forever and the model
    silently degenerates to z1-only heads.
    """
    model = DrVAE(latent_dim=L, encoder_hidden=[16], decoder_hidden=[16], rank=R, device="cpu", progress=False)
    model.module = synthetic_module()
    rng = np.random.default_rng(0)  # a synthetic batch: omics, standardized responses, sensitivity, mask
    y = rng.normal(size=(B, D))
    batch = {"x": torch.as_tensor(rng.normal(size=(B, G)), dtype=torch.float32),
             "y": torch.as_tensor(y, dtype=torch.float32), "s": torch.as_tensor(y < 0, dtype=torch.float32),
             "m": torch.ones(B, D, dtype=torch.bool)}
    optimizer = torch.optim.Adam(model.module.parameters(), lr=1e-2)
    for epoch in range(3):
        optimizer.zero_grad()
        loss, _ = model._loss(batch, kl_weight=(epoch + 1) / 20)  # the default warm-up's first epochs
        loss.backward()
        optimizer.step()
    module = model.module
    assert module.head_weight[:, L:].abs().sum() > 0, "the heads' z2 - z1 half never left 0"
    assert module.perturb_u.abs().sum() > 0 and module.perturb_b.abs().sum() > 0, "W_d and b_d never left 0"
    with torch.no_grad():
        assert module.perturbation(module.encode(batch["x"])[0]).abs().sum() > 0


# --- 3. fit on the real fixture -----------------------------------------------------------------------

def test_fit_on_real_data_learns_and_predicts(fold, fitted):
    history = fitted.history
    assert len(history) == SMALL["max_epochs"]
    for column in ("loss", "reconstruction", "kl", "regression", "classification", "validation_score",
                   "validation_mse", "validation_bce"):
        assert column in history, column
        assert np.isfinite(history[column]).all(), column
    assert history["loss"].iloc[-5:].mean() < history["loss"].iloc[:5].mean()
    assert history["validation_score"].min() < history["validation_score"].iloc[0]
    assert fitted.drugs == sorted(fold.train.drug.unique())

    test_pairs = fold.test[["cell_line", "drug"]]
    assert set(test_pairs.drug) <= set(fitted.drugs)  # seen drugs, unseen cell lines
    predicted = fitted.predict(test_pairs, fold.test_cell_data())
    assert len(predicted) == len(test_pairs)
    assert np.isfinite(predicted["y_pred"]).all()
    assert predicted["p_sensitive"].between(0, 1).all()
    assert predicted["y_pred"].std() > 0

    unseen = pd.DataFrame({"cell_line": fold.test_cells[:3], "drug": UNSEEN_DRUG})
    fallback = fitted.predict(unseen, fold.test_cell_data())
    assert np.isfinite(fallback["y_pred"]).all()
    np.testing.assert_allclose(fallback["y_pred"], np.mean(fitted.response_mean), rtol=1e-6)
    assert (fallback["p_sensitive"] == 0.5).all()


def test_test_cell_lines_never_reach_training_data(fold):
    data = fold.training_data()
    assert not set(data.cells.cell_lines) & set(fold.test_cells)
    assert not set(data.train.cell_line) & set(fold.test_cells)
    assert not set(data.validation.cell_line) & set(fold.test_cells)
    assert fold.cells.views["expression"].obs.loc[fold.test_cells, "in_training"].eq(False).all()
    with pytest.raises(ValueError, match="without training pairs"):  # test omics may not ride along
        TrainingData(fold.cells, fold.train, fold.validation, fold.drugs, True)


# --- 4. save and load ---------------------------------------------------------------------------------

def test_save_load_round_trip(fold, fitted, tmp_path):
    fitted.save(tmp_path / "drvae")
    assert (tmp_path / "drvae" / "history.tsv").exists()
    history = pd.read_csv(tmp_path / "drvae" / "history.tsv", sep="\t")
    assert len(history) == len(fitted.history) and "validation_score" in history
    assert "DrVAE" in json.loads((tmp_path / "drvae" / "model.json").read_text())["class"]

    loaded = DrVAE.load(tmp_path / "drvae")
    assert isinstance(loaded, DrVAE)
    assert_same_state(state(fitted), state(loaded))
    pairs = pd.concat([fold.test[["cell_line", "drug"]],
                       pd.DataFrame({"cell_line": fold.test_cells[:2], "drug": UNSEEN_DRUG})], ignore_index=True)
    pd.testing.assert_frame_equal(loaded.predict(pairs, fold.test_cell_data()),
                                  fitted.predict(pairs, fold.test_cell_data()), check_exact=True)


# --- 5. checkpoint and resume -------------------------------------------------------------------------

RESUME = dict(SMALL, max_epochs=12, checkpoint_every=4)
INTERRUPT_AFTER = 6  # epochs; not a multiple of checkpoint_every, so the SIGTERM checkpoint is the one read


def on_each_loss(model: DrVAE, callback):
    """Wrap the model's loss: ``callback(epoch)`` at every call, ``epoch`` the epochs its trainer completed."""
    original_loss, original_trainer, trainers = model._loss, model.trainer, []
    model.trainer = lambda *args, **kwargs: trainers.append(original_trainer(*args, **kwargs)) or trainers[-1]

    def loss(batch, kl_weight):
        callback(trainers[-1].epoch)
        return original_loss(batch, kl_weight)

    model._loss = loss


def sigterm_after(model: DrVAE, epochs: int):
    """Send SIGTERM to this process during epoch ``epochs`` (1-based) of the model's fit."""
    default = signal.getsignal(signal.SIGTERM)

    def maybe_send(epoch):
        if epoch == epochs - 1 and not getattr(maybe_send, "sent", False):
            handler = signal.getsignal(signal.SIGTERM)
            assert callable(handler) and handler is not default, "the trainer did not install its SIGTERM handler"
            maybe_send.sent = True
            os.kill(os.getpid(), signal.SIGTERM)

    on_each_loss(model, maybe_send)


def record_epochs(model: DrVAE, record: list):
    on_each_loss(model, record.append)


def interrupted_run(fold, params, directory, epochs=INTERRUPT_AFTER, data=None):
    model = DrVAE(**params)
    sigterm_after(model, epochs)
    with pytest.raises(training.Interrupted):
        model.fit(data or fold.training_data(seed=3), checkpoint_dir=directory)
    checkpoint = directory / "checkpoint.pt"
    assert checkpoint.exists()
    assert torch.load(checkpoint, weights_only=False)["epoch"] == epochs
    return model


@pytest.fixture(scope="module")
def uninterrupted(fold):
    model = DrVAE(**RESUME)
    model.fit(fold.training_data(seed=3))
    return model


def test_resume_after_sigterm_gives_the_uninterrupted_weights(fold, uninterrupted, tmp_path):
    previous_handler = signal.getsignal(signal.SIGTERM)
    interrupted_run(fold, RESUME, tmp_path)
    assert signal.getsignal(signal.SIGTERM) is previous_handler  # restored even when interrupted

    resumed, epochs = DrVAE(**RESUME), []
    record_epochs(resumed, epochs)
    resumed.fit(fold.training_data(seed=3), checkpoint_dir=tmp_path)
    assert epochs[0] == INTERRUPT_AFTER  # continued with epoch K + 1, did not start over
    assert len(epochs) == RESUME["max_epochs"] - INTERRUPT_AFTER
    assert resumed.history["epoch"].tolist() == list(range(1, RESUME["max_epochs"] + 1))
    assert not (tmp_path / "checkpoint.pt").exists()  # a finished run leaves no checkpoint
    assert_same_state(state(uninterrupted), state(resumed))
    pd.testing.assert_frame_equal(resumed.history.drop(columns="seconds"),
                                  uninterrupted.history.drop(columns="seconds"), check_exact=True)


def test_checkpoint_of_other_params_is_ignored(fold, tmp_path):
    interrupted_run(fold, RESUME, tmp_path)
    other = dict(RESUME, supervised_weight=0.5)  # same shapes and trainer settings, other objective
    model, epochs = DrVAE(**other), []
    record_epochs(model, epochs)
    model.fit(fold.training_data(seed=3), checkpoint_dir=tmp_path)
    assert epochs[0] == 0
    assert model.history["epoch"].tolist() == list(range(1, other["max_epochs"] + 1))


def test_checkpoint_of_other_seed_is_ignored(fold, tmp_path):
    interrupted_run(fold, RESUME, tmp_path)
    model, epochs = DrVAE(**RESUME), []
    record_epochs(model, epochs)
    model.fit(fold.training_data(seed=4), checkpoint_dir=tmp_path)
    assert epochs[0] == 0 and len(model.history) == RESUME["max_epochs"]


@pytest.mark.parametrize("change", ["features", "responses"])
def test_checkpoint_of_other_data_is_ignored(fold, tmp_path, change):
    """Same params, seed, cell lines, drugs and pair count, but other data: the run starts afresh.

    Realistic case: a fold killed mid-training, its preprocessing (number of selected features) or its
    responses changed, then the same rule reruns with the same checkpoint folder.
    """
    interrupted_run(fold, RESUME, tmp_path)
    if change == "features":
        other = FixtureFold(["expression"], N_FEATURES - 50, clip=5.0)
        data = other.training_data(seed=3)
    else:
        rng = np.random.default_rng(5)
        shuffle = lambda d: d.assign(response=rng.permutation(d.response.to_numpy()))  # noqa: E731
        data = fold.training_data(shuffle(fold.train), shuffle(fold.validation), seed=3)
    model, epochs = DrVAE(**RESUME), []
    record_epochs(model, epochs)
    model.fit(data, checkpoint_dir=tmp_path)  # must neither crash nor continue the other run
    assert epochs[0] == 0 and len(model.history) == RESUME["max_epochs"]


# --- 6. label-permutation control ---------------------------------------------------------------------

def test_label_permutation_control(fold, fitted):
    """True labels predict held-out cell lines; labels permuted within drug do not (~chance).

    The validation labels are permuted as well: early stopping on true validation labels would select
    the epoch that happens to fit them and leak signal into the control.
    """
    true_score = per_drug_pearson(fitted, fold)
    train, validation = fold.permuted_within_drug(seed=0)
    control = DrVAE(**SMALL)
    control.fit(fold.training_data(train, validation, seed=0))
    control_score = per_drug_pearson(control, fold)
    assert len(true_score) == len(control_score) == fold.test.drug.nunique()
    assert abs(control_score.mean()) < 0.15, control_score.round(2).to_dict()
    assert true_score.mean() > 0.2, true_score.round(2).to_dict()
    assert true_score.mean() - control_score.mean() > 0.15


# --- 7. perturbation pairs ----------------------------------------------------------------------------

def synthetic_pairs(fold, n_per_drug: int = 4, unseen: int = 3, seed: int = 0) -> dict:
    """SYNTHETIC (control, treated) profiles in the model's feature space; ``unseen`` pairs of an unknown drug."""
    rng = np.random.default_rng(seed)
    drugs = sorted(fold.train.drug.unique())[:3]
    names = [d for d in drugs for _ in range(n_per_drug)] + [UNSEEN_DRUG] * unseen
    x1 = rng.normal(size=(len(names), N_FEATURES)).astype(np.float32)
    shift = {d: rng.normal(scale=0.5, size=N_FEATURES) for d in set(names)}
    x2 = (x1 + np.stack([shift[d] for d in names])).astype(np.float32)
    return {"x1": x1, "x2": x2, "drug": names}


def test_fit_with_perturbation_pairs(fold, monkeypatch):
    pairs = synthetic_pairs(fold)
    model = DrVAE(**dict(SMALL, max_epochs=4))
    seen = []
    original = DrVAEModule.pair_loss

    def pair_loss(module, pair_tensors, kl_weight):
        seen.append(pair_tensors["drug"].tolist())
        return original(module, pair_tensors, kl_weight)

    monkeypatch.setattr(DrVAEModule, "pair_loss", pair_loss)
    model.fit(fold.training_data(seed=0, perturbations=pairs))
    history = model.history
    for column in ("pair_reconstruction", "pair_perturbation", "pair_kl_z2", "loss"):
        assert column in history and np.isfinite(history[column]).all(), column
    kept = [model.drugs.index(d) for d in pairs["drug"] if d != UNSEEN_DRUG]
    assert seen and all(drugs == kept for drugs in seen)  # the unseen drug's 3 pairs were dropped
    assert model.perturbations is None  # pairs are training data, not fitted state


def test_x2_is_reconstructed_from_its_own_encoding(fold):
    """pair_reconstruction decodes x1 from q(z1|x1) and x2 from q(z2|x2) (the original used z1 for x2)."""
    model = DrVAE(**dict(SMALL, perturbation_weight=0.0))
    torch.manual_seed(0)
    model.module = DrVAEModule(N_FEATURES, 3, 16, [32], [32], 2, 0.0, settings=model.settings)
    pairs = synthetic_pairs(fold, unseen=0)
    model.drugs = sorted(set(pairs["drug"]))
    model.perturbations = model._perturbation_tensors(pairs, torch.device("cpu"))
    x1, x2 = model.perturbations["x1"], model.perturbations["x2"]

    encodings, decoded = [], []
    encode, decode = model.module.encode, model.module.decode

    def recording_encode(x):
        mean, _ = encode(x)
        mean.retain_grad()
        encodings.append((x, mean))
        return mean, torch.full_like(mean, -60.0)  # a posterior this narrow makes each sample its mean

    def recording_decode(z):
        decoded.append(z)
        return decode(z)

    model.module.encode, model.module.decode = recording_encode, recording_decode
    loss, parts = model.module.pair_loss(model.perturbations, kl_weight=0.0)  # and perturbation weight 0:
    # reconstruction only
    np.testing.assert_allclose(loss.item(), parts["pair_reconstruction"], rtol=1e-6)
    (mean1_input, mean1), (mean2_input, mean2) = encodings
    assert torch.equal(mean1_input, x1) and torch.equal(mean2_input, x2)
    torch.testing.assert_close(decoded[0], mean1.detach())
    torch.testing.assert_close(decoded[1], mean2.detach())  # x2's reconstruction decodes z2 ~ q(z2|x2)
    expected = (gaussian_nll(x1, *decode(mean1.detach())) + gaussian_nll(x2, *decode(mean2.detach()))).mean()
    np.testing.assert_allclose(parts["pair_reconstruction"], expected.item(), rtol=1e-5)
    loss.backward()
    assert mean2.grad.abs().sum() > 0  # the reconstruction term depends on x2's encoding


# --- the optional M2-style hierarchy ------------------------------------------------------------------

def test_hierarchy_option_trains_and_round_trips(fold, tmp_path):
    model = DrVAE(**{**SMALL, "max_epochs": 25, "hierarchy": True})
    model.fit(fold.training_data(seed=0))
    history = model.history
    assert np.isfinite(history["loss"]).all() and history["loss"].iloc[-5:].mean() < history["loss"].iloc[:5].mean()
    # q(z3|z1,y) and p(z1|z3,y) get gradients through the KL: they moved from their initialisation
    torch.manual_seed(0)
    fresh = DrVAEModule(N_FEATURES, len(model.drugs), 16, [32], [32], 2, 0.0, hierarchy=True)
    assert not torch.equal(fresh.z1_prior[1].weight, model.module.z1_prior[1].weight)
    assert per_drug_pearson(model, fold).mean() > 0.1
    model.save(tmp_path / "m")
    again = DrVAE.load(tmp_path / "m")
    cells = fold.test_cell_data()
    np.testing.assert_array_equal(model.predict(fold.test[["cell_line", "drug"]], cells).y_pred,
                                  again.predict(fold.test[["cell_line", "drug"]], cells).y_pred)


# --- the ablation without the generative part ---------------------------------------------------------

def test_multitask_mlp_is_the_encoder_and_heads_trained_on_responses_alone(fold, fitted, tmp_path):
    """multitask_mlp: Dr.VAE's module, but neither decoder term nor KL in the loss (so the decoder never
    moves from its initial weights), the latent is the encoder mean, and it learns held-out cell lines."""
    model = MultitaskMLP(**SMALL)
    torch.manual_seed(0)
    initial = DrVAEModule(fold.training_data().cells.views["expression"].n_vars, len(fold.train.drug.unique()),
                          SMALL["latent_dim"], list(SMALL["encoder_hidden"]), list(SMALL["decoder_hidden"]),
                          SMALL["rank"], 0.0).state_dict()
    model.fit(fold.training_data(seed=0))
    assert "reconstruction" not in model.history and "kl" not in model.history
    trained = state(model)
    for key in ("decoder_mean.weight", "decoder_logvar.bias"):
        assert torch.equal(trained[key], initial[key]), key  # no gradient reached the decoder
    assert not torch.equal(trained["encoder_mean.weight"], initial["encoder_mean.weight"])
    assert per_drug_pearson(model, fold).mean() > 0.2
    assert per_drug_pearson(model, fold).mean() != pytest.approx(per_drug_pearson(fitted, fold).mean())

    model.save(tmp_path / "multitask")
    assert "MultitaskMLP" in json.loads((tmp_path / "multitask" / "model.json").read_text())["class"]
    pairs = fold.test[["cell_line", "drug"]]
    pd.testing.assert_frame_equal(MultitaskMLP.load(tmp_path / "multitask").predict(pairs, fold.test_cell_data()),
                                  model.predict(pairs, fold.test_cell_data()), check_exact=True)
    with pytest.raises(ValueError, match="non-generative"):
        MultitaskMLP(**SMALL, generative=True)
    with pytest.raises(ValueError, match="hierarchy"):
        DrVAE(**SMALL, generative=False, hierarchy=True)
