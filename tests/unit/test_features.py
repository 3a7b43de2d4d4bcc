"""drp.features: selection and scaling are fitted on training cell lines only (no test-fold leakage)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from drp.features import fit_transform_view, training_cell_lines

N_CELLS, N_TRAIN, N_FEATURES = 30, 20, 12
HUGE_IN_TEST = 0   # tiny variance among training cells, enormous among test cells
CONSTANT_IN_TRAIN = 1  # exactly constant among training cells, varies among test cells


def synthetic_view(seed: int = 0) -> ad.AnnData:
    """Float32 omics view: 30 cell lines, 12 features with distinct training variances."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_CELLS, N_FEATURES)) * np.linspace(0.5, 3.0, N_FEATURES) + np.arange(N_FEATURES)
    X[:N_TRAIN, HUGE_IN_TEST] = 5 + 0.01 * rng.normal(size=N_TRAIN)
    X[N_TRAIN:, HUGE_IN_TEST] = 1000 * rng.normal(size=N_CELLS - N_TRAIN)
    X[:N_TRAIN, CONSTANT_IN_TRAIN] = 2.5
    X[N_TRAIN:, CONSTANT_IN_TRAIN] = rng.normal(size=N_CELLS - N_TRAIN) * 50
    cells = [f"SYNCELL{i:02d}" for i in range(N_CELLS)]
    obs = pd.DataFrame({"tissue": [["lung", "skin", "blood"][i % 3] for i in range(N_CELLS)]},
                       index=pd.Index(cells, name="cell_line"))
    var = pd.DataFrame(index=pd.Index([f"GENE{j:02d}" for j in range(N_FEATURES)], name="feature"))
    return ad.AnnData(X=X.astype(np.float32), obs=obs, var=var)


def synthetic_train_cells(view) -> pd.Index:
    # deliberately not in view order
    return pd.Index(list(view.obs_names[:N_TRAIN])[::-1], name="cell_line")


def _train_rows(view, train_cells) -> np.ndarray:
    return np.asarray(view[view.obs_names.isin(train_cells)].X, dtype=np.float64)


def _top_by_training_variance(view, train_cells, n):
    variance = _train_rows(view, train_cells).var(axis=0)
    order = [j for j in np.argsort(-variance, kind="stable") if variance[j] > 1e-12]
    return sorted(view.var_names[order[:n]])


@pytest.fixture
def view():
    return synthetic_view()


def test_synthetic_view_has_the_planted_features(view):
    all_variance = np.asarray(view.X, dtype=np.float64).var(axis=0)
    assert np.argmax(all_variance) == HUGE_IN_TEST  # over all cells, the trap feature looks the best
    assert np.argsort(-all_variance)[1] == CONSTANT_IN_TRAIN


@pytest.mark.parametrize("n_features", [1, 5, 10])
def test_selection_uses_training_variance_only(view, n_features):
    train_cells = synthetic_train_cells(view)
    out = fit_transform_view(view, train_cells, n_features=n_features, scale=True)
    assert out.n_vars == n_features
    assert sorted(out.var_names) == _top_by_training_variance(view, train_cells, n_features)
    assert view.var_names[HUGE_IN_TEST] not in out.var_names
    assert list(out.var_names) == [v for v in view.var_names if v in set(out.var_names)]  # original order


def test_constant_in_training_features_are_never_selected(view):
    train_cells = synthetic_train_cells(view)
    out = fit_transform_view(view, train_cells, n_features=None, scale=True)
    assert view.var_names[CONSTANT_IN_TRAIN] not in out.var_names
    assert out.n_vars == N_FEATURES - 1  # None keeps every non-constant feature
    out = fit_transform_view(view, train_cells, n_features=N_FEATURES, scale=False)
    assert view.var_names[CONSTANT_IN_TRAIN] not in out.var_names
    assert np.isfinite(out.X).all()


def test_stored_statistics_come_from_training_cells(view):
    train_cells = synthetic_train_cells(view)
    out = fit_transform_view(view, train_cells, n_features=6, scale=True)
    rows = _train_rows(view, train_cells)[:, view.var_names.get_indexer(out.var_names)]
    np.testing.assert_allclose(out.var["train_variance"], rows.var(axis=0, ddof=0), rtol=1e-9)
    np.testing.assert_allclose(out.var["train_mean"], rows.mean(axis=0), rtol=1e-6, atol=1e-9)
    # scanpy.pp.scale uses the unbiased (ddof=1) standard deviation
    np.testing.assert_allclose(out.var["train_std"], rows.std(axis=0, ddof=1), rtol=1e-6)
    # and the statistics over every cell line would have been different
    everything = np.asarray(view.X, dtype=np.float64)[:, view.var_names.get_indexer(out.var_names)]
    assert not np.allclose(out.var["train_mean"], everything.mean(axis=0), rtol=1e-3)


def test_transform_applies_training_statistics_to_every_cell(view):
    train_cells = synthetic_train_cells(view)
    out = fit_transform_view(view, train_cells, n_features=6, scale=True)
    assert out.obs_names.equals(view.obs_names)
    assert out.X.dtype == np.float32
    raw = np.asarray(view[:, out.var_names].X, dtype=np.float64)
    expected = (raw - out.var["train_mean"].to_numpy()) / out.var["train_std"].to_numpy()
    np.testing.assert_allclose(out.X, expected, rtol=1e-5, atol=1e-5)
    train = np.asarray(out[out.obs["in_training"].to_numpy()].X, dtype=np.float64)
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0, ddof=1), 1, rtol=1e-5)


def test_in_training_flag(view):
    train_cells = synthetic_train_cells(view)
    out = fit_transform_view(view, train_cells, n_features=4, scale=True)
    assert out.obs["in_training"].dtype == bool
    assert list(out.obs["in_training"]) == [i < N_TRAIN for i in range(N_CELLS)]
    assert out.obs["tissue"].equals(view.obs["tissue"])


def test_changing_test_cells_changes_nothing_fitted(view):
    train_cells = synthetic_train_cells(view)
    before = fit_transform_view(view, train_cells, n_features=6, scale=True, clip=4.0)
    tampered = view.copy()
    rng = np.random.default_rng(99)
    tampered.X[N_TRAIN:] = (rng.normal(size=(N_CELLS - N_TRAIN, N_FEATURES)) * 1e4).astype(np.float32)
    after = fit_transform_view(tampered, train_cells, n_features=6, scale=True, clip=4.0)
    assert list(after.var_names) == list(before.var_names)
    pd.testing.assert_frame_equal(after.var, before.var)
    is_train = before.obs["in_training"].to_numpy()
    np.testing.assert_array_equal(after.X[is_train], before.X[is_train])
    assert not np.array_equal(after.X[~is_train], before.X[~is_train])


def test_no_scaling_keeps_raw_values(view):
    train_cells = synthetic_train_cells(view)
    out = fit_transform_view(view, train_cells, n_features=3, scale=False)
    assert (out.var["train_mean"] == 0).all() and (out.var["train_std"] == 1).all()
    np.testing.assert_array_equal(out.X, view[:, out.var_names].X)


def test_clip_bounds_every_cell(view):
    train_cells = synthetic_train_cells(view)
    out = fit_transform_view(view, train_cells, n_features=None, scale=True, clip=0.5)
    assert np.abs(out.X).max() <= 0.5 + 1e-7
    unclipped = fit_transform_view(view, train_cells, n_features=None, scale=True)
    assert np.abs(unclipped.X).max() > 0.5
    pd.testing.assert_frame_equal(out.var, unclipped.var)  # clipping does not change the statistics


def test_training_cell_lines_excludes_test_only_cells():
    splits = pd.DataFrame({
        "cell_line": ["A", "A", "B", "B", "C", "D", "E"],
        "drug":      ["x", "y", "x", "y", "x", "y", "x"],
        "fold":      [0, 1, 1, 2, 0, 2, 1],
    })
    # fold 0 is test: C is only in fold 0; A has a fold-1 pair so it is a training cell line
    assert list(training_cell_lines(splits, 0)) == ["A", "B", "D", "E"]
    assert list(training_cell_lines(splits, 2)) == ["A", "B", "C", "E"]


def test_training_std_is_accurate_for_features_with_a_large_offset():
    rng = np.random.default_rng(5)
    X = (1e4 + rng.normal(size=(40, 3))).astype(np.float32)  # e.g. unlogged intensities
    view = ad.AnnData(X=X, obs=pd.DataFrame({"tissue": ["lung"] * 40}, index=[f"SYN{i}" for i in range(40)]))
    train_cells = view.obs_names[:30]
    out = fit_transform_view(view, train_cells, n_features=None, scale=True)
    rows = X[:30].astype(np.float64)
    np.testing.assert_allclose(out.var["train_std"], rows.std(axis=0, ddof=1), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(out.X[:30], dtype=np.float64).std(axis=0, ddof=1), 1, rtol=1e-4)


def test_scaling_statistics_equal_scanpys_scale(view):
    """The numpy statistics replaced scanpy's pp.scale (a multi-second import for a job); they must be the
    same numbers, so that the preprocessed features, and every model trained on them, are unchanged."""
    import scanpy as sc

    from drp.features import scaling_statistics

    train = view[view.obs_names[:N_TRAIN]].copy()
    train.X = np.asarray(train.X, dtype=np.float64)
    sc.pp.scale(train, zero_center=True)
    mean, std = scaling_statistics(np.asarray(view.X[:N_TRAIN], dtype=np.float64))
    np.testing.assert_array_equal(mean, train.var["mean"].to_numpy())
    np.testing.assert_array_equal(std, train.var["std"].to_numpy())  # 1 for the feature constant in training


def test_a_view_without_settings_keeps_every_varying_feature_scaled(view):
    out = fit_transform_view(view, view.obs_names[:N_TRAIN])
    assert out.n_vars == N_FEATURES - 1  # all but the feature constant among training cells
    np.testing.assert_allclose(np.asarray(out[: N_TRAIN].X).mean(axis=0), 0, atol=1e-5)
