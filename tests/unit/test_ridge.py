"""drp.models.ridge: the per-drug ridge with exact leave-one-out penalty choice, on SYNTHETIC data (the real
fixture runs it through the pipeline in the integration test)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from drp.models.ridge import RidgePerDrug
from test_models import _training_data, synthetic_cells

ALPHAS = [0.01, 0.1, 1.0, 10.0]


def linear_pairs(cells, n_drugs=3, missing=0.2, noise=0.5, seed=3):
    """y = X w_d + b_d + noise for each drug, with a share of pairs missing (as in a real screen)."""
    rng = np.random.default_rng(seed)
    X = cells.matrix(["expression"], cells.cell_lines)
    rows = []
    for d in range(n_drugs):
        y = X @ rng.normal(size=X.shape[1]) + rng.normal() + noise * rng.normal(size=len(X))
        keep = rng.random(len(X)) >= missing
        rows.append(pd.DataFrame({"cell_line": cells.cell_lines[keep], "drug": f"DRUG{d}", "response": y[keep]}))
    return pd.concat(rows, ignore_index=True)


def brute_force_loo_choice(X, y, penalties):
    """Leave-one-out MSE of each penalty by refitting scikit-learn's Ridge n times."""
    scores = []
    for penalty in penalties:
        errors = [y[i] - Ridge(alpha=penalty).fit(np.delete(X, i, 0), np.delete(y, i)).predict(X[i:i + 1])[0]
                  for i in range(len(y))]
        scores.append(np.mean(np.square(errors)))
    return int(np.argmin(scores))


def test_ridge_equals_scikit_learn_at_the_penalty_that_exact_leave_one_out_chooses():
    cells = synthetic_cells(40, n_features=12)
    pairs = linear_pairs(cells, noise=3.0)
    model = RidgePerDrug(alphas=ALPHAS)
    model.fit(_training_data(cells, pairs))
    for i, (drug, rows) in enumerate(pairs.groupby("drug")):
        X = cells.matrix(["expression"], rows.cell_line).astype(np.float64)
        y = rows.response.to_numpy()
        Xc = X - X.mean(axis=0)
        scale = np.sum(Xc**2) / len(y)  # alphas are relative to the mean squared norm of a centred cell line
        best = brute_force_loo_choice(X, y, [a * scale for a in ALPHAS])
        assert model.chosen_alpha[i] == ALPHAS[best]
        reference = Ridge(alpha=ALPHAS[best] * scale).fit(X, y)
        np.testing.assert_allclose(model.coef[i], reference.coef_, rtol=1e-4, atol=1e-5)
        assert model.intercept[i] == pytest.approx(reference.intercept_, abs=1e-4)


def test_ridge_prefers_strong_penalties_on_noise_and_weak_ones_on_signal():
    cells = synthetic_cells(60, n_features=10)
    noisy = RidgePerDrug(alphas=ALPHAS)
    noisy.fit(_training_data(cells, linear_pairs(cells, noise=50.0)))
    clean = RidgePerDrug(alphas=ALPHAS)
    clean.fit(_training_data(cells, linear_pairs(cells, noise=0.01)))
    assert np.all(noisy.chosen_alpha >= clean.chosen_alpha) and np.any(noisy.chosen_alpha > clean.chosen_alpha)
    assert np.all(clean.chosen_alpha == ALPHAS[0])


def test_ridge_predicts_held_out_cells_unseen_drug_and_round_trips(tmp_path):
    cells = synthetic_cells(50, n_features=8)
    pairs = linear_pairs(cells, noise=0.3, missing=0.0)
    train = pairs[pairs.cell_line.isin(cells.cell_lines[:40])]
    test = pairs[~pairs.cell_line.isin(cells.cell_lines[:40])]
    model = RidgePerDrug(alphas=ALPHAS)
    model.fit(_training_data(cells, train))
    predicted = model.predict(test[["cell_line", "drug"]], cells)
    assert np.corrcoef(predicted.y_pred, test.response)[0, 1] > 0.9
    unseen = model.predict(pd.DataFrame({"cell_line": [cells.cell_lines[45]], "drug": ["NEWDRUG"]}), cells)
    assert unseen.y_pred.iloc[0] == pytest.approx(train.response.mean())
    model.save(tmp_path / "ridge")
    loaded = RidgePerDrug.load(tmp_path / "ridge")
    pd.testing.assert_frame_equal(loaded.predict(test[["cell_line", "drug"]], cells), predicted)


def test_ridge_tissue_features_capture_a_tissue_effect_that_omics_miss():
    """SYNTHETIC: the response is a per-drug tissue effect, the omics pure noise: with ``tissue`` the ridge
    predicts held-out cell lines of seen tissues; without it, it cannot."""
    cells = synthetic_cells(80, n_features=20, seed=4)
    effect = {"lung": 3.0, "skin": -2.0, "blood": 0.5, "breast": -1.0}
    rng = np.random.default_rng(0)
    pairs = pd.DataFrame([(c, d, effect[cells.tissue[c]] * (1 + d) + 0.3 * rng.normal())
                          for c in cells.cell_lines for d in range(2)], columns=["cell_line", "drug", "response"])
    pairs["drug"] = "DRUG" + pairs.drug.astype(str)
    train, test = pairs[pairs.cell_line < "SYNCELL60"], pairs[pairs.cell_line >= "SYNCELL60"]
    scores = {}
    for tissue in (False, True):
        model = RidgePerDrug(alphas=ALPHAS, tissue=tissue)
        model.fit(_training_data(cells, train))
        predicted = model.predict(test[["cell_line", "drug"]], cells)
        scores[tissue] = np.corrcoef(predicted.y_pred, test.response)[0, 1]
    assert scores[True] > 0.95 and scores[False] < scores[True] - 0.3


def test_ridge_refuses_non_positive_penalties():
    with pytest.raises(ValueError, match="alphas must be positive"):
        RidgePerDrug(alphas=[0.0, 1.0])
