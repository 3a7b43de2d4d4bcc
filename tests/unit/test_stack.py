"""The per-drug stack of two models (``stack``): weights chosen on the validation cell lines only, refit with
the members' choices, saved without pickles (the REAL fixture, split by cell line)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixture_fold import FixtureFold, single_threaded_torch

from drp.models.base import DrugResponseModel
from drp.models.selection import fit_best, refit
from drp.models.stack import StackedPair

DRVAE = {"views": ["expression"], "latent_dim": 8, "encoder_hidden": [32], "decoder_hidden": [32], "max_epochs": 30,
         "patience": 10, "device": "cpu", "progress": False}
SPEC = {"class": "stack", "params": {"members": {
    "ridge": {"class": "ridge", "params": {"views": ["expression"], "tissue": True}},
    "drvae": {"class": "drvae", "params": DRVAE, "grid": {"supervised_weight": [1.0, 4.0]}}}}}


@pytest.fixture(scope="module")
def fold():
    return FixtureFold(["expression"], 100)


@pytest.fixture(scope="module")
def stacked(fold):
    with single_threaded_torch():
        best = fit_best(SPEC, lambda index: fold.training_data(seed=0), seed=0)
        every = pd.concat([fold.train, fold.validation], ignore_index=True)
        final = refit(best, SPEC, fold.training_data(train=every, validation=every.iloc[:0], seed=0), seed=0)
    return best, final


def test_weights_are_the_validation_optimum_per_drug(fold, stacked):
    best, _ = stacked
    validation = fold.validation
    a, b = (best.fitted[name].predict(validation[["cell_line", "drug"]], fold.cells).y_pred.to_numpy()
            for name in ("ridge", "drvae"))
    for drug, rows in validation.groupby("drug"):
        index = rows.index.to_numpy()
        errors = {w: np.mean((w * a[index] + (1 - w) * b[index] - rows.response.to_numpy()) ** 2)
                  for w in (0.0, 0.25, 0.5, 0.75, 1.0)}
        assert best.weight[drug] == min(errors, key=errors.get), drug
    assert best.fitted["drvae"].selection.chosen.sum() == 1  # the member chose its own candidate on validation
    assert best.weight.nunique() > 1  # per drug, not one weight for all


def test_the_refit_keeps_the_weights_and_refits_both_members_on_all_non_test_pairs(fold, stacked):
    best, final = stacked
    pd.testing.assert_series_equal(final.weight, best.weight, check_names=False)
    assert set(final.fitted["ridge"].drugs) == set(fold.train.drug)
    drvae = final.fitted["drvae"]
    assert drvae.settings.fixed_epochs and drvae.settings.max_epochs == max(1, best.fitted["drvae"].best_epoch)
    test = fold.test[["cell_line", "drug"]]
    predicted = final.predict(test, fold.test_cell_data())
    a, b = (final.fitted[name].predict(test, fold.test_cell_data()).y_pred.to_numpy() for name in ("ridge", "drvae"))
    w = final.weight.reindex(test.drug).to_numpy()
    np.testing.assert_allclose(predicted.y_pred, w * a + (1 - w) * b)


def test_save_and_load_round_trip(fold, stacked, tmp_path):
    _, final = stacked
    final.save(tmp_path / "model")
    loaded = DrugResponseModel.load(tmp_path / "model")
    assert isinstance(loaded, StackedPair)
    test = fold.test[["cell_line", "drug"]]
    pd.testing.assert_frame_equal(loaded.predict(test, fold.test_cell_data()), final.predict(test, fold.test_cell_data()))


def test_bad_members_and_weights_are_refused():
    with pytest.raises(ValueError, match="exactly two models"):
        StackedPair(members={"ridge": {"class": "ridge"}})
    with pytest.raises(ValueError, match=r"weights must lie in \[0, 1\]"):
        StackedPair(members={"a": {"class": "ridge"}, "b": {"class": "ridge"}}, weights=[0.5, 2.0])
