"""The seed ensemble (``ensemble``) and the closed-form heads on a trained encoder's latent (``latent_ridge``):
what each chooses on the validation cell lines, the refit with those choices, saving without pickles (the
REAL fixture, split by cell line)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixture_fold import FixtureFold, single_threaded_torch

from drp.models.base import DrugResponseModel
from drp.models.ensemble import SEED_STEP, SeedEnsemble
from drp.models.latent_ridge import LatentRidge
from drp.models.ridge import RidgePerDrug
from drp.models.selection import fit_best, refit

DRVAE = {"views": ["expression"], "latent_dim": 8, "encoder_hidden": [32], "decoder_hidden": [32], "max_epochs": 30,
         "patience": 10, "device": "cpu", "progress": False}
ENCODER = {"class": "drvae", "params": DRVAE, "grid": {"supervised_weight": [1.0, 4.0]}}
ENSEMBLE = {"class": "ensemble", "params": {"model": ENCODER, "seeds": 2}}
NEXT_TO_GENES = {"class": "latent_ridge", "params": {"encoder": ENCODER, "views": ["expression"],
                                                      "shares": [0.0, 0.25, 1.0]}}
LATENT_ALONE = {"class": "latent_ridge", "params": {"encoder": ENCODER, "views": []}}


@pytest.fixture(scope="module")
def fold():
    return FixtureFold(["expression"], 100)


def fitted(fold, spec):
    with single_threaded_torch():
        best = fit_best(spec, lambda index: fold.training_data(seed=0), seed=0)
        every = pd.concat([fold.train, fold.validation], ignore_index=True)
        final = refit(best, spec, fold.training_data(train=every, validation=every.iloc[:0], seed=0), seed=0)
    return best, final


@pytest.fixture(scope="module")
def ensemble(fold):
    return fitted(fold, ENSEMBLE)


@pytest.fixture(scope="module")
def next_to_genes(fold):
    return fitted(fold, NEXT_TO_GENES)


def round_trip(model, fold, path):
    model.save(path)
    loaded = DrugResponseModel.load(path)
    test = fold.test[["cell_line", "drug"]]
    pd.testing.assert_frame_equal(loaded.predict(test, fold.test_cell_data()), model.predict(test, fold.test_cell_data()))
    return loaded


def test_ensemble_members_differ_by_seed_and_predictions_are_their_mean(fold, ensemble):
    best, final = ensemble
    assert len(final.members) == 2
    test = fold.test[["cell_line", "drug"]]
    members = [m.predict(test, fold.test_cell_data()).y_pred.to_numpy() for m in final.members]
    assert not np.allclose(members[0], members[1])  # different initialisations, not one fit twice
    np.testing.assert_allclose(final.predict(test, fold.test_cell_data()).y_pred, np.mean(members, axis=0))
    # each member chose its own candidate and epochs on the validation pairs, and the refit keeps them
    assert all(member.selection.chosen.sum() == 1 for member in best.members)
    for chosen, member in zip(final.params["chosen"], best.members):
        assert chosen == member.refit_params()
    assert final.params["chosen"][0]["max_epochs"] == max(1, best.members[0].best_epoch)


def test_ensemble_member_seeds_are_spaced(fold):
    data = fold.training_data(seed=5)
    model = SeedEnsemble(model=ENCODER, seeds=3)
    assert [model._member_data(data, k).seed for k in range(3)] == [5, 5 + SEED_STEP, 5 + 2 * SEED_STEP]


def test_ensemble_round_trip(fold, ensemble, tmp_path):
    assert isinstance(round_trip(ensemble[1], fold, tmp_path / "model"), SeedEnsemble)


def test_latent_ridge_shares_are_the_validation_optimum_per_drug(fold, next_to_genes):
    best, _ = next_to_genes
    validation = fold.validation
    pairs = validation[["cell_line", "drug"]]
    for share, ridge in best.ridges.items():  # share 0 is the per-drug ridge on the genes alone
        assert ("latent" in ridge.params["views"]) == (share > 0)
    predicted = {share: ridge.predict(pairs, best._cells(fold.training_data().cells, share)).y_pred.to_numpy()
                 for share, ridge in best.ridges.items()}
    for drug, rows in validation.groupby("drug"):
        index = rows.index.to_numpy()
        mse = {share: np.mean((p[index] - rows.response.to_numpy()) ** 2) for share, p in predicted.items()}
        assert best.share[drug] == min(mse, key=mse.get), drug
    assert best.share.nunique() > 1


def test_latent_ridge_share_zero_is_the_plain_ridge(fold, next_to_genes):
    best, _ = next_to_genes
    plain = RidgePerDrug(views=["expression"], tissue=True)
    plain.fit(_train_only(fold))  # the ridge of the selection fits: training cell lines only
    test = fold.test[["cell_line", "drug"]]
    np.testing.assert_allclose(best.ridges[0.0].predict(test, fold.test_cell_data()).y_pred,
                               plain.predict(test, fold.test_cell_data()).y_pred, rtol=1e-5, atol=1e-6)


def _train_only(fold):
    from drp.models import TrainingData

    return TrainingData(fold.cells.subset(fold.train_cells), fold.train, fold.train.iloc[:0], fold.drugs,
                        fold.dataset.lower_is_sensitive)


def test_latent_ridge_refit_keeps_shares_and_round_trips(fold, next_to_genes, tmp_path):
    best, final = next_to_genes
    pd.testing.assert_series_equal(final.share, best.share, check_names=False)
    assert set(final.ridges) == set(best.share)
    assert set(final.ridges[min(final.ridges)].drugs) == set(fold.train.drug)
    # the latent was z-scored on the cells the refit saw (training + validation cell lines)
    z = final.encoder.encode(fold.training_data().cells)
    np.testing.assert_allclose(final.latent_mean, z.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert isinstance(round_trip(final, fold, tmp_path / "model"), LatentRidge)


def test_latent_alone_uses_only_the_latent(fold):
    best, final = fitted(fold, LATENT_ALONE)
    assert list(final.ridges) == [1.0] and final.ridges[1.0].params["views"] == ["latent"]
    assert final.ridges[1.0].coef.shape[1] == 8 + len(final.ridges[1.0].tissue.tissues)  # latent + tissue columns
    test = fold.test[["cell_line", "drug"]]
    assert np.isfinite(final.predict(test, fold.test_cell_data()).y_pred).all()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="seeds must be at least 2"):
        SeedEnsemble(model=ENCODER, seeds=1)
    with pytest.raises(ValueError, match="shares must be non-negative"):
        LatentRidge(encoder=ENCODER, views=["expression"], shares=[-1.0])
    with pytest.raises(ValueError, match="the encoder's own"):
        LatentRidge(encoder=ENCODER, views=["latent"])
