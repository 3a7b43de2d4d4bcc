"""Models fitted over the mean-effects offset (``over_mean_effects``) on weak omics: the REAL fixture's
mutation view alone, where models that see only the omics fall far below the mean-effects baseline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fixture_fold import FixtureFold, single_threaded_torch

from drp.metrics import pearson
from drp.models import create
from drp.models.elastic_net import ElasticNetPerDrug
from drp.models.offset import OverMeanEffects

MUTATION = {"views": ["mutation"]}
DRVAE = {**MUTATION, "latent_dim": 16, "encoder_hidden": [64], "decoder_hidden": [64], "max_epochs": 150, "patience": 20,
         "device": "cpu", "progress": False}
SPECS = {
    "mean_effects": {"class": "mean_effects"},
    "elastic_net": {"class": "elastic_net", "params": MUTATION},
    "elastic_net_over": {"class": "elastic_net", "over_mean_effects": True, "params": MUTATION},
    "drvae": {"class": "drvae", "params": DRVAE},
    "drvae_over": {"class": "drvae", "over_mean_effects": True, "params": DRVAE},
}


@pytest.fixture(scope="module")
def fold():
    return FixtureFold(["mutation"], 500)


@pytest.fixture(scope="module")
def fitted(fold):
    models = {}
    with single_threaded_torch():
        for name, spec in SPECS.items():
            models[name] = create(spec)
            models[name].fit(fold.training_data(seed=0))
    return models


def mean_per_drug_pearson(model, fold) -> float:
    predicted = model.predict(fold.test[["cell_line", "drug"]], fold.test_cell_data())
    table = predicted.assign(y=fold.test.response.to_numpy())
    return float(table.groupby("drug")[["y", "y_pred"]].apply(lambda g: pearson(g.y, g.y_pred)).mean())


def test_over_the_offset_weak_omics_models_score_as_the_mean_effects_baseline(fold, fitted):
    score = {name: mean_per_drug_pearson(model, fold) for name, model in fitted.items()}
    assert score["mean_effects"] > 0.2  # drug and tissue effects carry the held-out cell lines' signal
    for name in ("elastic_net", "drvae"):
        assert score[name] < score["mean_effects"] - 0.15, score  # on the omics alone: far below
        assert score[f"{name}_over"] > score["mean_effects"] - 0.03, score  # over the offset: level with it


def test_the_offset_is_fitted_on_training_pairs_only_and_added_back(fold, fitted):
    model = fitted["elastic_net_over"]
    assert isinstance(model, OverMeanEffects) and isinstance(model.inner, ElasticNetPerDrug)
    assert set(model.offset.effects["cell_line"].index) == set(fold.train.cell_line)  # no validation cell line
    test = fold.test[["cell_line", "drug"]]
    inner = model.inner.predict(test, fold.test_cell_data()).y_pred.to_numpy()
    offset = model.offset_of(test, fold.test_cell_data())
    np.testing.assert_allclose(model.predict(test, fold.test_cell_data()).y_pred, inner + offset)
    # a held-out cell line's offset is the baseline's prediction for it: mean + drug + tissue effects
    baseline = fitted["mean_effects"]  # fitted on the same training pairs
    np.testing.assert_allclose(offset, baseline.predict(test, fold.test_cell_data()).y_pred, atol=1e-9)


def test_save_load_returns_the_wrapped_model(fold, fitted, tmp_path):
    model = fitted["drvae_over"]
    model.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "model.json").read_text())
    assert saved["class"].endswith(":OverMeanEffects") and saved["params"]["model"]["class"] == "drvae"
    from drp.models.drvae import DrVAE

    loaded = DrVAE.load(tmp_path / "model")  # what the workflow does: the config's class, the saved wrapper
    assert isinstance(loaded, OverMeanEffects)
    pairs = fold.test[["cell_line", "drug"]]
    pd.testing.assert_frame_equal(loaded.predict(pairs, fold.test_cell_data()), model.predict(pairs, fold.test_cell_data()))
    np.testing.assert_array_equal(loaded.encode(fold.test_cell_data()), model.encode(fold.test_cell_data()))
    refit = OverMeanEffects(**model.refit_params())
    assert refit.inner.settings.fixed_epochs and refit.inner.settings.max_epochs == max(1, model.inner.best_epoch)


def test_grid_choice_and_refit_keep_the_offset(fold):
    from drp.models.selection import fit_best, refit

    spec = {"class": "elastic_net", "over_mean_effects": True, "params": MUTATION, "grid": {"n_alphas": [4, 6]}}
    best = fit_best(spec, lambda index: fold.training_data(seed=0), seed=0)
    assert isinstance(best, OverMeanEffects) and list(best.selection.n_alphas) == [4, 6]
    every = pd.concat([fold.train, fold.validation], ignore_index=True)
    final = refit(best, spec, fold.training_data(train=every, validation=every.iloc[:0], seed=0), seed=0)
    assert isinstance(final, OverMeanEffects) and final.inner.params["chosen"]  # each drug's chosen penalty
    assert set(final.offset.effects["cell_line"].index) == set(every.cell_line)  # refit on all non-test pairs
    assert final.selection.refit.tolist() == [False, False, True]

