"""drp.synthetic_metrics on synthetic test data (multivariate normal draws made here, no real cell lines): fidelity
metrics for same vs shifted distributions, privacy metrics for a memorizing vs an honest generator, the two baseline
generators, and the errors for degenerate input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from drp.synthetic_metrics import (
    GaussianCopulaGenerator, GaussianGenerator, classifier_two_sample_auroc, correlation_distance,
    distance_to_closest_record, fidelity_summary, marginal_distances, marginal_summary, membership_inference_auroc,
    privacy_check, response_fidelity,
)

P = 8


def synthetic_covariance(rho: float = 0.6, p: int = P) -> np.ndarray:
    """Block correlation: features 0..p/2-1 correlated with rho, the rest with -rho/2 neighbours (synthetic)."""
    cov = np.eye(p)
    half = p // 2
    cov[:half, :half] = rho
    for j in range(half, p - 1):
        cov[j, j + 1] = cov[j + 1, j] = -rho / 2
    np.fill_diagonal(cov, 1.0)
    return cov


def synthetic_draw(n: int, seed: int, cov: np.ndarray | None = None, mean: np.ndarray | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cov = synthetic_covariance() if cov is None else cov
    draws = rng.standard_normal((n, len(cov))) @ np.linalg.cholesky(cov).T  # Cholesky: same draws on every platform
    return draws + (0.0 if mean is None else mean)


@pytest.fixture(scope="module")
def synthetic_real() -> np.ndarray:
    return synthetic_draw(400, seed=1)


@pytest.fixture(scope="module")
def synthetic_same(synthetic_real) -> np.ndarray:
    return synthetic_draw(400, seed=2)


@pytest.fixture(scope="module")
def synthetic_shifted() -> np.ndarray:
    shift = np.tile([1.0, 0.0], P // 2)  # 1 sd in every other feature (Mahalanobis shift 2.3, ideal AUROC 0.95)
    return synthetic_draw(400, seed=3, mean=shift)


# ----------------------------------------------------------------------------------------------------------- fidelity
def test_same_distribution_scores_as_faithful(synthetic_real, synthetic_same):
    table = marginal_distances(synthetic_real, synthetic_same)
    assert list(table.columns) == ["ks", "ks_pvalue", "wasserstein", "wasserstein_sd"] and len(table) == P
    summary = marginal_summary(table)
    assert summary["mean_ks"] < 0.1 and summary["max_ks"] < 0.15
    assert summary["mean_wasserstein"] < 0.15
    assert correlation_distance(synthetic_real, synthetic_same) < 0.1  # sampling noise alone: ~0.07
    assert abs(classifier_two_sample_auroc(synthetic_real, synthetic_same, seed=0) - 0.5) < 0.1


def test_mean_shift_in_half_the_features_is_detected(synthetic_real, synthetic_shifted):
    table = marginal_distances(synthetic_real, synthetic_shifted)
    shifted, unshifted = table.iloc[0::2], table.iloc[1::2]
    assert (shifted["ks"] > 0.3).all() and (unshifted["ks"] < 0.12).all()
    assert (shifted["wasserstein"] > 0.8).all()
    assert marginal_summary(table)["mean_ks"] > 0.15
    assert classifier_two_sample_auroc(synthetic_real, synthetic_shifted, seed=0) > 0.8


def test_different_correlation_is_detected(synthetic_real, synthetic_same):
    independent = synthetic_draw(400, seed=4, cov=np.eye(P))  # same marginals, no correlation
    assert correlation_distance(synthetic_real, independent) > 0.2  # population value 0.295
    assert correlation_distance(synthetic_real, independent) > 3 * correlation_distance(synthetic_real, synthetic_same)
    # same N(0, 1) marginals: the marginal metrics do not see it, a random forest two-sample test does
    assert marginal_summary(marginal_distances(synthetic_real, independent))["mean_ks"] < 0.1
    assert classifier_two_sample_auroc(synthetic_real, independent, seed=0, model="forest") > 0.7


def test_correlation_distance_skips_constant_features(synthetic_real, synthetic_same):
    real, synth = synthetic_real.copy(), synthetic_same.copy()
    real[:, 0] = 3.0  # constant in one set only: left out, so the rest decide
    expected = correlation_distance(synthetic_real[:, 1:], synthetic_same[:, 1:])
    assert correlation_distance(real, synth) == pytest.approx(expected)


def test_classifier_balances_classes_and_is_seeded(synthetic_real, synthetic_same):
    small = synthetic_same[:100]  # 400 real vs 100 synthetic: real is subsampled to 100
    first = classifier_two_sample_auroc(synthetic_real, small, seed=5)
    assert first == classifier_two_sample_auroc(synthetic_real, small, seed=5)
    assert abs(first - 0.5) < 0.15


def test_dataframes_keep_feature_names_and_summary(synthetic_real, synthetic_same):
    columns = [f"gene_{j}" for j in range(P)]
    table = marginal_distances(pd.DataFrame(synthetic_real, columns=columns),
                               pd.DataFrame(synthetic_same, columns=columns))
    assert list(table.index) == columns
    summary = fidelity_summary(synthetic_real, synthetic_same)
    assert set(summary) >= {"mean_ks", "mean_wasserstein", "correlation_distance", "classifier_auroc"}


# ------------------------------------------------------------------------------------------------------------ privacy
@pytest.fixture(scope="module")
def synthetic_training_holdout() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_draw(300, seed=10), synthetic_draw(300, seed=11)


def test_memorizing_generator_fails_privacy_check(synthetic_training_holdout):
    training, holdout = synthetic_training_holdout
    rng = np.random.default_rng(12)
    copies = training[rng.choice(len(training), 300)] + rng.normal(scale=0.01, size=(300, P))
    dcr = distance_to_closest_record(copies, training, holdout)
    auroc = membership_inference_auroc(copies, training, holdout)
    assert dcr["close_share"] > 0.5  # >> 0.05
    assert dcr["synthetic_median"] < 0.1 * dcr["holdout_median"]
    assert auroc > 0.75  # >> 0.5
    assert privacy_check(dcr, auroc) is False


def test_honest_generator_passes_privacy_check(synthetic_training_holdout):
    training, holdout = synthetic_training_holdout
    fresh = synthetic_draw(300, seed=13)
    dcr = distance_to_closest_record(fresh, training, holdout)
    auroc = membership_inference_auroc(fresh, training, holdout)
    assert dcr["close_share"] < 0.10
    assert dcr["synthetic_median"] == pytest.approx(dcr["holdout_median"], rel=0.15)
    assert abs(auroc - 0.5) < 0.08
    assert privacy_check(dcr, auroc) is True


def test_privacy_check_thresholds():
    assert privacy_check({"close_share": 0.10}, 0.6) is True
    assert privacy_check({"close_share": 0.11}, 0.5) is False
    assert privacy_check({"close_share": 0.05}, 0.61) is False
    assert privacy_check({"close_share": 0.2}, 0.7, max_close_share=0.25, max_auroc=0.75) is True


def test_membership_attack_subsamples_to_equal_numbers(synthetic_training_holdout):
    training, holdout = synthetic_training_holdout
    copies = training[:100].copy()  # a generator that copied 100 of 300 training rows
    auroc = membership_inference_auroc(copies, training, holdout[:150], seed=3)  # 150 of the 300 members drawn
    assert auroc == membership_inference_auroc(copies, training, holdout[:150], seed=3)
    assert 0.58 < auroc < 0.76  # about 1/3 of members exposed: 0.5 + (1/3) / 2 = 0.67


# --------------------------------------------------------------------------------------------------------- generators
def test_gaussian_generator_reproduces_means_and_correlations():
    training = synthetic_draw(600, seed=20, mean=np.arange(P, dtype=float)) * np.r_[np.ones(P - 1), 10.0]
    sample = GaussianGenerator().fit(training).sample(4000, seed=1)
    assert sample.shape == (4000, P)
    np.testing.assert_allclose(sample.mean(axis=0), training.mean(axis=0), atol=0.1 * training.std(axis=0).max())
    np.testing.assert_allclose(sample.std(axis=0), training.std(axis=0), rtol=0.08)
    np.testing.assert_allclose(np.corrcoef(sample, rowvar=False), np.corrcoef(training, rowvar=False), atol=0.08)


def test_gaussian_generator_per_group_sampling():
    tissue_a = synthetic_draw(200, seed=21, mean=np.full(P, -3.0))
    tissue_b = synthetic_draw(200, seed=22, mean=np.full(P, 3.0), cov=np.eye(P))
    training = np.vstack([tissue_a, tissue_b])
    groups = ["lung"] * 200 + ["skin"] * 200
    generator = GaussianGenerator().fit(training, groups=groups)
    wanted = ["skin"] * 1500 + ["lung"] * 500
    sample, row_groups = generator.sample_with_groups(2000, groups=wanted, seed=4)
    assert list(row_groups) == wanted
    skin, lung = sample[np.array(wanted) == "skin"], sample[np.array(wanted) == "lung"]
    np.testing.assert_allclose(skin.mean(axis=0), 3.0, atol=0.25)
    np.testing.assert_allclose(lung.mean(axis=0), -3.0, atol=0.3)
    assert correlation_distance(tissue_a, lung) < 0.12 and correlation_distance(tissue_b, skin) < 0.12
    _, counted = generator.sample_with_groups(10, groups={"lung": 7, "skin": 3}, seed=0)
    assert sorted(counted.tolist()) == ["lung"] * 7 + ["skin"] * 3
    _, drawn = generator.sample_with_groups(2000, seed=0)  # groups in training proportions
    assert abs(np.mean(drawn == "lung") - 0.5) < 0.05


def test_generators_are_seeded():
    training = synthetic_draw(200, seed=23)
    for generator in (GaussianGenerator().fit(training), GaussianCopulaGenerator().fit(training)):
        np.testing.assert_array_equal(generator.sample(50, seed=7), generator.sample(50, seed=7))
        assert not np.array_equal(generator.sample(50, seed=7), generator.sample(50, seed=8))


def test_copula_generator_reproduces_marginals_and_correlations():
    rng = np.random.default_rng(24)
    latent = synthetic_draw(800, seed=25)
    training = np.column_stack([np.exp(latent[:, :2]), latent[:, 2:6] * 5 + 1,  # skewed and scaled marginals
                                rng.integers(0, 2, size=(800, 2)) + 0.0 * latent[:, 6:]])  # binary features
    sample = GaussianCopulaGenerator().fit(training).sample(4000, seed=2)
    assert sample.shape == (4000, P)
    assert (sample.min(axis=0) >= training.min(axis=0)).all() and (sample.max(axis=0) <= training.max(axis=0)).all()
    assert (np.abs(sample.mean(axis=0) - training.mean(axis=0)) < 0.1 * training.std(axis=0)).all()
    assert marginal_summary(marginal_distances(training[:, :6], sample[:, :6]))["max_ks"] < 0.06
    # rank correlations are what a copula carries (Pearson on the heavy-tailed lognormal columns is too noisy)
    np.testing.assert_allclose(stats.spearmanr(sample[:, :6]).statistic, stats.spearmanr(training[:, :6]).statistic,
                               atol=0.06)
    np.testing.assert_allclose(np.corrcoef(sample[:, 2:6], rowvar=False), np.corrcoef(training[:, 2:6], rowvar=False),
                               atol=0.06)


def test_copula_generator_keeps_constant_feature_constant():
    training = synthetic_draw(100, seed=26)
    training[:, 3] = 2.5
    sample = GaussianCopulaGenerator().fit(training).sample(200, seed=0)
    assert np.all(sample[:, 3] == 2.5)


# ------------------------------------------------------------------------------------------------------------- errors
def test_errors_for_degenerate_input(synthetic_real):
    with pytest.raises(ValueError, match=r"same number of columns.*real has 8.*synthetic has 7"):
        marginal_distances(synthetic_real, synthetic_real[:, :7])
    with pytest.raises(ValueError, match=r"synthetic: expected at least 2 rows.*got 1"):
        correlation_distance(synthetic_real, synthetic_real[:1])
    with pytest.raises(ValueError, match=r"holdout: expected only finite values.*row 3, column 2"):
        bad = synthetic_real.copy()
        bad[3, 2] = np.nan
        distance_to_closest_record(synthetic_real, synthetic_real, bad)
    with pytest.raises(ValueError, match=r"training: expected a 2-D"):
        membership_inference_auroc(synthetic_real, synthetic_real[:, 0], synthetic_real)
    with pytest.raises(ValueError, match=r"at least 2 features that vary"):
        correlation_distance(np.ones((10, 3)), synthetic_real[:10, :3])
    with pytest.raises(ValueError, match=r"at least folds=5 rows"):
        classifier_two_sample_auroc(synthetic_real, synthetic_real[:4])
    with pytest.raises(ValueError, match=r"model: expected 'logistic' or 'forest'"):
        classifier_two_sample_auroc(synthetic_real, synthetic_real, model="svm")
    with pytest.raises(ValueError, match=r"same columns"):
        marginal_distances(pd.DataFrame(synthetic_real[:, :2], columns=["a", "b"]),
                           pd.DataFrame(synthetic_real[:, :2], columns=["a", "c"]))
    with pytest.raises(ValueError, match=r"close_share"):
        privacy_check({"median": 1.0}, 0.5)
    with pytest.raises(ValueError, match=r"mia_auroc: expected an AUROC in \[0, 1\]"):
        privacy_check({"close_share": 0.0}, float("nan"))


def test_generator_errors():
    training = synthetic_draw(20, seed=27)
    with pytest.raises(ValueError, match=r"X: expected at least 2 rows"):
        GaussianCopulaGenerator().fit(training[:1])
    with pytest.raises(ValueError, match=r"at least 2 rows per group.*'rare' \(1 row\)"):
        GaussianGenerator().fit(training, groups=["common"] * 19 + ["rare"])
    with pytest.raises(ValueError, match=r"one label per row of X \(20\)"):
        GaussianGenerator().fit(training, groups=["a"] * 5)
    generator = GaussianGenerator().fit(training, groups=["a"] * 10 + ["b"] * 10)
    with pytest.raises(ValueError, match=r"unknown 'c'"):
        generator.sample(3, groups=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"summing to n=3"):
        generator.sample(3, groups={"a": 1})
    with pytest.raises(ValueError, match=r"n: expected a positive integer"):
        generator.sample(0)
    with pytest.raises(RuntimeError, match=r"call fit before sample"):
        GaussianCopulaGenerator().sample(5)


def test_low_rank_sampling_has_the_ledoit_wolf_covariance():
    """The generators draw from the Ledoit-Wolf estimate without decomposing it: many draws must have sklearn's
    LedoitWolf covariance, also with more features than rows (where the shrinkage matters most)."""
    from sklearn.covariance import LedoitWolf

    rows = synthetic_draw(15, seed=30) @ np.random.default_rng(31).normal(size=(P, 3 * P))  # 15 rows, 24 features
    sample = GaussianGenerator().fit(rows).sample(60_000, seed=5)
    scale = rows.std(axis=0, ddof=1)  # the generator shrinks on features scaled alike, then scales back
    expected = LedoitWolf().fit(rows / scale).covariance_ * np.outer(scale, scale)
    np.testing.assert_allclose(np.cov(sample, rowvar=False, bias=True), expected, atol=0.03 * np.abs(expected).max())


def test_response_fidelity_ignores_gaps_and_sees_a_shift():
    """Responses have unscreened pairs (NaN): the per-drug distances use each drug's values, a shift of every
    drug by one sd is seen, the same distribution with other gaps is not."""
    rng = np.random.default_rng(40)
    real = pd.DataFrame(synthetic_draw(300, seed=41), columns=[f"drug{i}" for i in range(P)])
    same = pd.DataFrame(synthetic_draw(300, seed=42), columns=real.columns)
    real = real.mask(rng.random(real.shape) < 0.2)
    same = same.mask(rng.random(same.shape) < 0.3)
    faithful = response_fidelity(real, same)
    shifted = response_fidelity(real, same + same.std())
    assert faithful["mean_ks"] < 0.12 and shifted["mean_ks"] > 0.3
    assert faithful["mean_wasserstein_sd"] < 0.2 and shifted["mean_wasserstein_sd"] > 0.8
    assert faithful["correlation_distance"] < 0.12 and np.isnan(faithful["classifier_auroc"])
    with pytest.raises(ValueError, match="synthetic lacks 1 drug"):
        response_fidelity(real, same.drop(columns="drug0"))
    with pytest.raises(ValueError, match="no drug has 5 responses"):
        response_fidelity(real.iloc[:3], same)
