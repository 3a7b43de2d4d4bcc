"""drp.models.moicvae: MOICVAE fitted on a small slice of the REAL fixture (expression, CNV and mutation views).

The data come from tests/data (150 GDSC cell lines, 12 drugs, see its README), split by cell line as in
test_drvae.py (50 test, 20 validation, 80 training cell lines); each view keeps its 100 most variable
features among the training cell lines, z-scored with training statistics (no clipping, so the raw CNV
and mutation calls can be recovered). Every fit is small (latent 8, one hidden layer of 32, 30 epochs) and
runs on the CPU. Synthetic values (a poisoned masked entry, a made-up tissue or drug) are named as such.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from drp.features import fit_transform_view
from drp.metrics import pearson
from drp.models import CellLineData, TrainingData
from drp.models.moicvae import MOICVAE, UNKNOWN_TISSUE_SLOT
from fixture_fold import FixtureFold

VIEWS = ["expression", "cnv", "mutation"]
N_FEATURES = 100  # per view
UNSEEN_DRUG = "SYNTHETIC_UNSEEN_DRUG"
UNSEEN_TISSUE = "SYNTHETIC_UNSEEN_TISSUE"

# small and fast; patience large enough that early stopping never triggers within max_epochs.
# learning_rate 3e-3: at 1e-3, 30 epochs are too few for some seeds (test Pearson 0.08 at seed 2).
SMALL = dict(latent_dim=8, hidden=[32], drug_latent_dim=8, drug_hidden=[32], warmup_epochs=10,
             max_epochs=30, learning_rate=3e-3, patience=1000, checkpoint_every=0, device="cpu", progress=False)


pytestmark = pytest.mark.usefixtures("torch_single_thread")


# --- the real fixture, split by cell line, three views ----------------------------------------------

@pytest.fixture(scope="module")
def fold():
    return FixtureFold(VIEWS, N_FEATURES, clip=None)


@pytest.fixture(scope="module")
def fitted(fold):
    model = MOICVAE(**SMALL)
    model.fit(fold.training_data(seed=0))
    return model


def per_drug_pearson(model, fold, cells: CellLineData | None = None) -> pd.Series:
    predicted = model.predict(fold.test[["cell_line", "drug"]], cells or fold.test_cell_data())
    predicted["y_true"] = fold.test["response"].to_numpy()
    return predicted.groupby("drug")[["y_true", "y_pred"]].apply(lambda g: pearson(g.y_true, g.y_pred))


def module_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.module.state_dict().items()}


def with_nan_rows(cells: CellLineData, rows: dict[str, list[int]]) -> CellLineData:
    """A copy of ``cells`` whose given rows (by position) of the given views are NaN: views missing there."""
    views = {name: view.copy() for name, view in cells.views.items()}
    for name, positions in rows.items():
        X = np.array(views[name].X, dtype=np.float32)
        X[positions] = np.nan
        views[name].X = X
    return CellLineData(views, cells.tissue.copy())


def all_drug_pairs(model, cell_lines) -> pd.DataFrame:
    return pd.DataFrame([(c, d) for c in cell_lines for d in model.drugs], columns=["cell_line", "drug"])


# --- 1. a held-out (masked) entry has no influence on the training loss -------------------------------

def test_masked_entries_get_no_gradient_and_do_not_change_the_loss(fold, fitted):
    model = copy.deepcopy(fitted)  # gradients and train mode must not touch the shared fitted model
    model.module.train()  # dropout on, as in fit; every loss call below is reseeded
    data = fold.training_data()
    held_out = np.random.default_rng(1).random(len(data.train)) < 0.15  # pairs withheld from training
    train = data.train[~held_out]
    assert set(train.cell_line) == set(data.train.cell_line)  # same cells: the drug encoder's input width
    tensors = model._data(data.cells, train, "cpu")
    cell_index = pd.Index(sorted(train.cell_line.unique()))
    mask = tensors["m"]
    masked = mask == 0
    rows = cell_index.get_indexer(data.train.cell_line[held_out])
    cols = pd.Index(model.drugs).get_indexer(data.train.drug[held_out])
    assert (rows >= 0).all() and (cols >= 0).all()
    assert masked[rows, cols].all()  # every held-out pair is masked ...
    assert int(masked.sum()) >= held_out.sum() > 0
    assert (tensors["y"][masked] == 0).all() and (tensors["s"][masked] == 0).all()  # ... and stored as 0
    index = torch.arange(tensors["n_cells"])

    def loss_of(**changes):
        batch = dict(tensors, y_drug=tensors["y"].T, m_drug=mask.T)
        batch.update(changes)
        torch.manual_seed(0)
        return model._loss(index, batch, kl_weight=0.4)

    # gradient w.r.t. the standardized grid, through the supervised terms and the drug encoder's input
    y = tensors["y"].clone().requires_grad_(True)
    loss, _ = loss_of(y=y, y_drug=y.T)
    loss.backward()
    assert torch.isfinite(y.grad).all()
    assert (y.grad[masked] == 0).all(), "a masked entry receives gradient"
    assert (y.grad[~masked] != 0).any()

    # the drug encoder's input alone: the value channel of a masked entry is cut off too
    y_drug = tensors["y"].T.clone().requires_grad_(True)
    loss, _ = loss_of(y_drug=y_drug)
    loss.backward()
    assert (y_drug.grad[masked.T] == 0).all(), "a masked entry reaches the drug encoder"
    assert (y_drug.grad[~masked.T] != 0).any()

    # a SYNTHETIC value stored at the masked entries (and a sensitive label) leaves the loss unchanged
    base, base_parts = loss_of()
    poisoned_y, poisoned_s = tensors["y"].clone(), tensors["s"].clone()
    poisoned_y[masked], poisoned_s[masked] = 100.0, 1.0
    poisoned, poisoned_parts = loss_of(y=poisoned_y, y_drug=poisoned_y.T, s=poisoned_s)
    assert poisoned.item() == base.item()
    assert poisoned_parts == base_parts
    # while the same change at one observed entry does change it (the comparison can see a change)
    observed = tensors["y"].clone()
    r, c = np.argwhere(mask.numpy() == 1)[0]
    observed[r, c] = 100.0
    assert loss_of(y=observed, y_drug=observed.T)[0].item() != base.item()


# --- 2. a cell line missing a view: one expert fewer ---------------------------------------------------

def test_missing_view_drops_its_expert(fold, fitted):
    model = fitted
    cells = fold.test_cell_data()
    full = model.encode(cells)
    # cell 0 lacks its CNV view; cell 1 lacks every view; the others are complete
    broken = with_nan_rows(cells, {"cnv": [0, 1], "expression": [1], "mutation": [1]})
    z = model.encode(broken)
    assert np.isfinite(z).all()
    assert np.abs(z[0] - full[0]).max() > 1e-3  # the CNV expert no longer contributes
    np.testing.assert_allclose(z[2:], full[2:], rtol=1e-5, atol=1e-6)
    assert np.array_equal(z[1], np.zeros(SMALL["latent_dim"], dtype=np.float32))  # only the prior remains
    with torch.no_grad():
        inputs = model._cell_tensors(broken, broken.cell_lines, "cpu")
        _, logvar = model.module.encode(inputs["views"], inputs["tissue"])
    assert torch.equal(logvar[1], torch.zeros(SMALL["latent_dim"]))  # N(0, I) exactly

    # z[0] is the product of the expression and mutation experts with the N(0, I) prior (computed here)
    with torch.no_grad():
        complete = model._cell_tensors(cells, cells.cell_lines[:1], "cpu")
        precision_sum, weighted_sum = torch.ones(SMALL["latent_dim"]), torch.zeros(SMALL["latent_dim"])
        for name in ("expression", "mutation"):
            mean, logvar = (t[0] for t in model.module.encoders[name](torch.cat([complete["views"][name],
                                                                                 complete["tissue"]], -1)))
            precision = torch.exp(-logvar.clamp(-8.0, 8.0))
            precision_sum, weighted_sum = precision_sum + precision, weighted_sum + precision * mean
    np.testing.assert_allclose(z[0], (weighted_sum / precision_sum).numpy(), rtol=1e-5, atol=1e-6)

    # a view that lacks the cell line altogether is the same as a NaN row
    without_row = CellLineData({**cells.views, "cnv": cells.views["cnv"][cells.cell_lines[1:]].copy()}, cells.tissue)
    np.testing.assert_allclose(model.encode(without_row)[0], z[0], rtol=1e-6, atol=1e-7)

    # predictions for both cells are finite; the all-missing cell is predicted from z = 0 and its tissue
    pairs = all_drug_pairs(model, broken.cell_lines[:2])
    predicted = model.predict(pairs, broken)
    assert np.isfinite(predicted["y_pred"]).all() and predicted["p_sensitive"].between(0, 1).all()
    with torch.no_grad():
        tissue = torch.as_tensor(model._tissue_onehot(broken.tissue.loc[broken.cell_lines[1:2]]))
        out = model.module.predict_grid(torch.zeros(1, SMALL["latent_dim"]), tissue,
                                        torch.as_tensor(model.drug_latent)).numpy()[0]
    expected = out[:, 0] * model.response_std + model.response_mean
    np.testing.assert_allclose(predicted["y_pred"].to_numpy()[len(model.drugs):], expected, rtol=1e-5, atol=1e-5)
    full_prediction = model.predict(pairs, cells)
    assert not np.allclose(predicted["y_pred"], full_prediction["y_pred"])


def test_training_cell_lines_missing_a_view_still_train(fold):
    data = fold.training_data(seed=0)
    data.cells = with_nan_rows(data.cells, {"cnv": [0, 1, 2], "mutation": [2, 3]})
    model = MOICVAE(**dict(SMALL, max_epochs=2))
    model.fit(data)
    assert len(model.history) == 2
    for column in ("loss", "reconstruction", "regression", "validation_score"):
        assert np.isfinite(model.history[column]).all(), column
    assert all(torch.isfinite(p).all() for p in model.module.parameters())


# --- 3. a tissue not seen in training uses the unknown slot ---------------------------------------------

def test_unknown_tissue_uses_the_unknown_slot(fold, fitted):
    model = fitted
    assert model.tissues[-1] == UNKNOWN_TISSUE_SLOT and UNSEEN_TISSUE not in model.tissues
    onehot = model._tissue_onehot(pd.Series([UNSEEN_TISSUE, "another synthetic tissue", model.tissues[0]]))
    assert (onehot.sum(1) == 1).all()
    assert onehot[0, -1] == onehot[1, -1] == 1 and onehot[2, 0] == 1

    cells = fold.test_cell_data()
    cell = next(c for c in cells.cell_lines if cells.tissue[c] in model.tissues)  # a known tissue
    relabelled = CellLineData(cells.views, cells.tissue.where(cells.tissue.index != cell, UNSEEN_TISSUE))
    other_name = CellLineData(cells.views, cells.tissue.where(cells.tissue.index != cell, "another synthetic tissue"))
    pairs = all_drug_pairs(model, [cell])
    known = model.predict(pairs, cells)
    unknown = model.predict(pairs, relabelled)
    assert np.isfinite(unknown["y_pred"]).all() and unknown["p_sensitive"].between(0, 1).all()
    assert np.abs(unknown["y_pred"].to_numpy() - known["y_pred"].to_numpy()).max() > 1e-4
    pd.testing.assert_frame_equal(unknown, model.predict(pairs, other_name))  # both are the one unknown slot
    position = cells.cell_lines.get_loc(cell)
    assert not np.allclose(model.encode(relabelled)[position], model.encode(cells)[position])  # encoders see it

    # every test cell line with an unseen tissue is still predicted from its omics
    all_unknown = CellLineData(cells.views, pd.Series(UNSEEN_TISSUE, index=cells.tissue.index))
    assert per_drug_pearson(model, fold, all_unknown).mean() > 0.15


# --- 4. cell-blind prediction ---------------------------------------------------------------------------

def test_cell_blind_prediction_uses_stored_drug_latents(fold, fitted, monkeypatch):
    data = fold.training_data()
    assert not set(data.cells.cell_lines) & set(fold.test_cells)  # test omics never reach fit
    assert not (set(data.train.cell_line) | set(data.validation.cell_line)) & set(fold.test_cells)
    assert fitted.drugs == sorted(fold.train.drug.unique())
    history = fitted.history
    assert len(history) == SMALL["max_epochs"]
    for column in ("loss", "reconstruction", "kl", "kl_drugs", "regression", "classification", "validation_score"):
        assert np.isfinite(history[column]).all(), column
    assert history["loss"].iloc[-5:].mean() < history["loss"].iloc[:5].mean()

    test_pairs = fold.test[["cell_line", "drug"]]
    assert set(test_pairs.drug) <= set(fitted.drugs)
    predicted = fitted.predict(test_pairs, fold.test_cell_data())
    assert len(predicted) == len(test_pairs)
    assert np.isfinite(predicted["y_pred"]).all() and predicted["y_pred"].std() > 0
    assert predicted["p_sensitive"].between(0, 1).all()
    score = per_drug_pearson(fitted, fold)
    assert len(score) == fold.test.drug.nunique()
    assert score.mean() > 0.15, score.round(2).to_dict()

    # drug latents: the drug encoder's means over the training matrix, kept after fit
    assert fitted.drug_latent.shape == (len(fitted.drugs), SMALL["drug_latent_dim"])
    train = fitted._data(data.cells, data.train, "cpu")
    with torch.no_grad():
        expected = fitted.module.encode_drugs(train["y"].T, train["m"].T)[0].numpy()
    np.testing.assert_allclose(fitted.drug_latent, expected, rtol=1e-5, atol=1e-6)

    # predict needs neither the training matrix nor the drug encoder
    def no_drug_encoder(*args, **kwargs):
        raise AssertionError("predict re-encoded the drugs")

    monkeypatch.setattr(fitted.module, "encode_drugs", no_drug_encoder)
    pd.testing.assert_frame_equal(fitted.predict(test_pairs, fold.test_cell_data()), predicted, check_exact=True)
    monkeypatch.undo()

    # and each seen drug's prediction follows its own stored latent row
    moved = copy.deepcopy(fitted)
    moved.drug_latent = fitted.drug_latent.copy()
    moved.drug_latent[0] += 1.0
    shifted = moved.predict(test_pairs, fold.test_cell_data())
    first = (test_pairs.drug == fitted.drugs[0]).to_numpy()
    assert not np.allclose(shifted["y_pred"][first], predicted["y_pred"][first])
    np.testing.assert_array_equal(shifted["y_pred"][~first], predicted["y_pred"][~first])

    unseen = pd.DataFrame({"cell_line": fold.test_cells[:3], "drug": UNSEEN_DRUG})
    fallback = fitted.predict(unseen, fold.test_cell_data())
    assert np.isfinite(fallback["y_pred"]).all()
    np.testing.assert_allclose(fallback["y_pred"], np.mean(fitted.response_mean), rtol=1e-6)
    assert (fallback["p_sensitive"] == 0.5).all()


# --- 5. label-permutation control -----------------------------------------------------------------------

PERMUTATION_SEEDS = (0, 1, 2, 3)


def test_label_permutation_control(fold, fitted):
    """True labels predict held-out cell lines; labels permuted within drug do not (~chance).

    The validation labels are permuted as well (early stopping on true validation labels would leak).
    One permuted fit's mean per-drug Pearson is noisy (sd ~0.13 over seeds on this fixture: the drugs share
    a general-sensitivity axis, so a random predictor correlates with all of them at once), so the control
    is the mean over several seeded permutations.
    """
    true_score = per_drug_pearson(fitted, fold)
    control_scores = []
    for seed in PERMUTATION_SEEDS:
        train, validation = fold.permuted_within_drug(seed)
        control = MOICVAE(**SMALL)
        control.fit(fold.training_data(train, validation, seed=seed))
        control_scores.append(per_drug_pearson(control, fold))
    control = pd.concat(control_scores, axis=1).mean(axis=1)
    assert len(true_score) == len(control) == fold.test.drug.nunique()
    assert abs(control.mean()) < 0.15, [round(float(s.mean()), 3) for s in control_scores]
    assert true_score.mean() > 0.15, true_score.round(2).to_dict()
    assert true_score.mean() - control.mean() > 0.1


# --- 6. save and load; categorical and Bernoulli targets ----------------------------------------------

def test_save_load_round_trip(fold, fitted, tmp_path):
    fitted.save(tmp_path / "moicvae")
    assert "MOICVAE" in json.loads((tmp_path / "moicvae" / "model.json").read_text())["class"]
    assert (tmp_path / "moicvae" / "history.tsv").exists()
    loaded = MOICVAE.load(tmp_path / "moicvae")
    assert isinstance(loaded, MOICVAE)
    a, b = module_state(fitted), module_state(loaded)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.drugs == fitted.drugs and loaded.tissues == fitted.tissues
    assert loaded.lower_is_sensitive == fitted.lower_is_sensitive
    for name in ("response_mean", "response_std", "threshold", "drug_latent"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(fitted, name), err_msg=name)

    cells = fold.test_cell_data()
    cells = CellLineData(cells.views, cells.tissue.where(cells.tissue.index != cells.cell_lines[0], UNSEEN_TISSUE))
    pairs = pd.concat([fold.test[["cell_line", "drug"]],
                       pd.DataFrame({"cell_line": fold.test_cells[:2], "drug": UNSEEN_DRUG})], ignore_index=True)
    pd.testing.assert_frame_equal(loaded.predict(pairs, cells), fitted.predict(pairs, cells), check_exact=True)
    np.testing.assert_array_equal(loaded.encode(cells), fitted.encode(cells))

    # the raw calls recovered from the scaled inputs, also after loading
    for model in (fitted, loaded):
        targets = model._cell_tensors(fold.cells, fold.cells.cell_lines, "cpu")["targets"]
        assert set(targets) == {"cnv", "mutation"}
        for name in ("cnv", "mutation"):
            features = fold.cells.views[name].var_names
            raw = np.asarray(fold.raw[name][fold.cells.cell_lines, features].X)
            target = targets[name].numpy()
            if name == "cnv":
                assert targets[name].dtype == torch.long
                assert set(np.unique(target)) == {0, 1, 2}  # all three classes occur on the fixture
                np.testing.assert_array_equal(target, raw + 1)
            else:
                assert set(np.unique(target)) == {0.0, 1.0}
                np.testing.assert_array_equal(target, raw)


def test_clipped_binary_view_is_refused_or_its_calls_recovered_exactly(fold):
    """The Bernoulli/categorical targets are raw calls recovered as rint(x * train_std + train_mean). A view
    preprocessed with ``clip`` (a documented per-view option, config/README.md) loses that information
    for rare calls: with clip 3 and every non-constant mutation feature, a rare mutation (training
    frequency p < ~0.05) is clipped to 3 and recovered as rint(3 sqrt(p (1 - p)) + p) = 0. The model must
    then refuse the view (ValueError) rather than train on silently wrong targets."""
    view = fit_transform_view(fold.raw["mutation"], fold.training_cells, None, scale=True, clip=3.0)
    cells = CellLineData({**fold.cells.views, "mutation": view}, fold.cells.tissue)
    data = TrainingData(cells.subset(fold.training_cells), fold.train, fold.validation, fold.drugs,
                        fold.dataset.lower_is_sensitive, seed=0)
    model = MOICVAE(**dict(SMALL, max_epochs=1))
    try:
        model.fit(data)
    except ValueError:
        return  # refused: fine
    targets = model._cell_tensors(data.cells, data.cells.cell_lines, "cpu")["targets"]["mutation"].numpy()
    raw = np.asarray(fold.raw["mutation"][data.cells.cell_lines, view.var_names].X)
    wrong = targets != raw
    assert int(wrong.sum()) == 0, f"{wrong.sum()} wrong mutation targets in {wrong.any(0).sum()} features"


# --- 7. scalers and thresholds from training pairs only ------------------------------------------------

def test_scalers_and_thresholds_come_from_training_pairs(fold, fitted):
    stats = fold.train.groupby("drug")["response"]
    drugs = fitted.drugs
    np.testing.assert_allclose(fitted.response_mean, stats.mean().loc[drugs], rtol=1e-6)
    np.testing.assert_allclose(fitted.response_std, stats.std(ddof=0).loc[drugs], rtol=1e-6)
    np.testing.assert_allclose(fitted.threshold, stats.median().loc[drugs], rtol=1e-6)
    both = pd.concat([fold.train, fold.validation]).groupby("drug")["response"]  # would be a leak of validation
    assert not np.allclose(fitted.threshold, both.median().loc[drugs], rtol=1e-6)
    assert not np.allclose(fitted.response_std, both.std(ddof=0).loc[drugs], rtol=1e-6)
    assert fitted.tissues == sorted(fold.dataset.tissue.loc[fold.train_cells].unique()) + [UNKNOWN_TISSUE_SLOT]

    # training labels: sensitive iff below the drug's training median
    tensors = fitted._data(fold.training_data().cells, fold.train, "cpu")
    cell_index = pd.Index(sorted(fold.train.cell_line.unique()))
    rows, cols = cell_index.get_indexer(fold.train.cell_line), pd.Index(drugs).get_indexer(fold.train.drug)
    expected = fold.train.response.to_numpy() < stats.median().loc[fold.train.drug].to_numpy()  # float64
    np.testing.assert_array_equal(tensors["s"].numpy()[rows, cols], expected.astype(np.float32))
    standardized = (fold.train.response.to_numpy() - fitted.response_mean[cols]) / fitted.response_std[cols]
    np.testing.assert_allclose(tensors["y"].numpy()[rows, cols], standardized, rtol=1e-5, atol=1e-5)

    # SYNTHETIC shift of every validation response, and a SYNTHETIC tissue for one validation cell line:
    # the scalers, thresholds and tissue slots do not move
    data = fold.training_data(validation=fold.validation.assign(response=fold.validation.response + 10.0))
    data.cells.tissue[fold.validation_cells[0]] = "SYNTHETIC_VALIDATION_TISSUE"
    shifted = MOICVAE(**dict(SMALL, max_epochs=2))
    shifted.fit(data)
    for name in ("response_mean", "response_std", "threshold"):
        np.testing.assert_array_equal(getattr(shifted, name), getattr(fitted, name), err_msg=name)
    assert shifted.tissues == fitted.tissues  # the validation cell line's tissue gets the unknown slot


def test_without_the_drug_encoder_each_drug_has_a_free_embedding(fold, tmp_path):
    """The ablation of the collective part (``drug_encoder: false``): no drug VAE, no drug KL, a learned
    embedding per drug that is the stored drug latent; it still learns and saves like the full model."""
    model = MOICVAE(**SMALL, drug_encoder=False)
    model.fit(fold.training_data(seed=0))
    assert not hasattr(model.module, "drug_encoder")
    np.testing.assert_array_equal(model.drug_latent, model.module.drug_embedding.detach().numpy())
    assert (model.history["kl_drugs"] == 0).all()
    assert per_drug_pearson(model, fold).mean() > 0.1  # cell-blind skill from the omics, as the full model
    model.save(tmp_path / "model")
    loaded = MOICVAE.load(tmp_path / "model")
    test = fold.test[["cell_line", "drug"]]
    pd.testing.assert_frame_equal(loaded.predict(test, fold.test_cell_data()), model.predict(test, fold.test_cell_data()))
