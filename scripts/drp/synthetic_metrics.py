"""Fidelity, privacy and baseline generators for synthetic cell lines (pure numpy / scipy / scikit-learn).

Every function takes samples x features matrices (numpy arrays or DataFrames; the columns of the two sets must
match). Three kinds of real data take part:

* ``training``: the real cell lines a generator was fitted on;
* ``holdout`` / ``real`` (fidelity): real cell lines that *no* generator saw, the fair reference;
* ``synthetic``: what the generator produced.

Distances are Euclidean on the values as given, so put the features on a common scale first (for example
standardize every set with the training set's means and standard deviations).

Fidelity (real = held-out real lines vs synthetic)
--------------------------------------------------
``marginal_distances``
    Per feature the two-sample Kolmogorov-Smirnov statistic (0 = identical empirical distributions, 1 = disjoint)
    and the 1-Wasserstein (earth mover's) distance in the feature's units; ``wasserstein_sd`` is the latter divided
    by the real standard deviation. ``marginal_summary`` gives the means over features (and the worst KS). Good: a
    mean KS near what two independent real samples of the same sizes give (roughly ``1.36 / sqrt(n_eff)`` is the 5 %
    critical value for one feature), a Wasserstein distance well below one standard deviation.
``correlation_distance``
    ``||C_real - C_synthetic||_F / sqrt(p (p - 1))``: the root mean square difference of the off-diagonal Pearson
    correlations (features constant in either set are left out). 0 = identical correlation structure; values above
    about 0.1 mean the dependence between features is visibly lost or distorted.
``classifier_two_sample_auroc``
    A classifier two-sample test: L2 logistic regression on standardized features (default; fast, stable with many
    features, sensitive to shifted means and scales) or a small random forest (``model="forest"``; also catches
    differences in correlation and non-linear structure) learns to tell real from synthetic rows; the AUROC of its
    out-of-fold probabilities under seeded stratified cross-validation is reported, the classes first balanced by
    subsampling the larger set. 0.5 = indistinguishable (perfect fidelity); 1.0 = trivially separable. Good: below
    about 0.6.

``response_fidelity``
    The same marginal distances per drug and the drug-drug correlation distance for response matrices with gaps.

Privacy (synthetic vs training, with the held-out real lines as reference)
-------------------------------------------------------------------------
``distance_to_closest_record`` (DCR)
    For each synthetic row the distance to its nearest training row, and for each held-out row the same distance:
    held-out rows are real lines the generator never saw, so their DCR shows how close a non-copied record lies. The
    key number, ``close_share``, is the share of synthetic rows closer to the training set than the 5th percentile of
    the held-out DCRs: about 0.05 for a generator that does not copy; much more means memorization.
``membership_inference_auroc``
    A distance attack: every candidate record (training rows = members, held-out rows = non-members, equal numbers
    by seeded subsampling) is scored by minus its distance to the nearest synthetic row; the AUROC of members vs
    non-members is reported. 0.5 = no leak; towards 1.0 = membership of a cell line in the training set can be read
    off the synthetic data.
``privacy_check``
    Passes when ``close_share <= max_close_share`` (default 0.10) and the attack AUROC ``<= max_auroc`` (0.6).

Baseline generators (fit on training cell lines only)
-----------------------------------------------------
``GaussianGenerator``
    Per group (e.g. tissue) a multivariate Gaussian: the group mean and a Ledoit-Wolf shrunk covariance (estimated
    on features scaled by the standard deviations of all rows, so that shrinkage treats features alike, and
    scaled back). ``sample`` draws rows, ``sample_with_groups`` also returns the group of each row.
``GaussianCopulaGenerator``
    Per group a Gaussian copula with empirical marginals: each feature is turned into normal scores through its
    ranks, a Ledoit-Wolf shrunk covariance of the normal scores is estimated, and draws from it (standardized to
    correlations) are mapped back through the group's empirical quantiles of each feature (linearly
    interpolated, clamped to the observed range).

Both draw from the Ledoit-Wolf estimate through a low-rank factor plus isotropic noise (``_shrunk_parts``),
never decomposing the features x features matrix.

Degenerate input (different column counts, fewer than 2 rows, non-finite values, unknown groups) raises a
ValueError that says what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "marginal_distances", "marginal_summary", "correlation_distance", "classifier_two_sample_auroc",
    "fidelity_summary", "response_fidelity", "distance_to_closest_record", "membership_inference_auroc", "privacy_check",
    "GaussianGenerator", "GaussianCopulaGenerator",
]


# ----------------------------------------------------------------------------------------------------------- input
def _matrix(name: str, values: Any, min_rows: int = 2) -> np.ndarray:
    """``values`` as a finite float matrix (rows = samples) with at least ``min_rows`` rows and one column."""
    array = np.asarray(values.to_numpy() if isinstance(values, pd.DataFrame) else values, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D samples x features matrix, got {array.ndim} dimension(s) "
                         f"with shape {array.shape}")
    if array.shape[0] < min_rows:
        raise ValueError(f"{name}: expected at least {min_rows} rows (samples), got {array.shape[0]}")
    if array.shape[1] < 1:
        raise ValueError(f"{name}: expected at least 1 column (feature), got 0")
    bad = ~np.isfinite(array)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ValueError(f"{name}: expected only finite values, found {int(bad.sum())} NaN/inf value(s), "
                         f"first at row {int(rows[0])}, column {int(cols[0])}")
    return array


def _matrices(named: Mapping[str, Any], min_rows: int = 2) -> list[np.ndarray]:
    """Several matrices that must share their columns (same count; same names where all are DataFrames)."""
    arrays = [_matrix(name, values, min_rows) for name, values in named.items()]
    names = list(named)
    widths = {name: array.shape[1] for name, array in zip(names, arrays)}
    if len(set(widths.values())) > 1:
        described = ", ".join(f"{name} has {width}" for name, width in widths.items())
        raise ValueError(f"expected the same number of columns (features) in every set: {described}")
    frames = [values for values in named.values() if isinstance(values, pd.DataFrame)]
    if len(frames) == len(arrays) and len(frames) > 1:
        first = list(frames[0].columns)
        for name, frame in zip(names[1:], frames[1:]):
            if list(frame.columns) != first:
                raise ValueError(f"expected {name} to have the same columns, in the same order, as {names[0]}")
    return arrays


def _feature_names(values: Any, width: int) -> pd.Index:
    if isinstance(values, pd.DataFrame):
        return pd.Index(values.columns, name="feature")
    return pd.RangeIndex(width, name="feature")


# -------------------------------------------------------------------------------------------------------- fidelity
def marginal_distances(real: Any, synthetic: Any) -> pd.DataFrame:
    """Per feature: ``ks`` (two-sample KS statistic), ``ks_pvalue``, ``wasserstein`` (1-Wasserstein distance) and
    ``wasserstein_sd`` (the latter over the real standard deviation; NaN for a feature constant in ``real``)."""
    real_m, synth_m = _matrices({"real": real, "synthetic": synthetic})
    rows = []
    for j in range(real_m.shape[1]):
        ks = stats.ks_2samp(real_m[:, j], synth_m[:, j])
        wd = stats.wasserstein_distance(real_m[:, j], synth_m[:, j])
        sd = real_m[:, j].std(ddof=1)
        rows.append((float(ks.statistic), float(ks.pvalue), float(wd), float(wd / sd) if sd > 0 else np.nan))
    return pd.DataFrame(rows, columns=["ks", "ks_pvalue", "wasserstein", "wasserstein_sd"],
                        index=_feature_names(real, real_m.shape[1]))


def marginal_summary(table: pd.DataFrame) -> dict[str, float]:
    """Means over features of a ``marginal_distances`` table (plus the worst KS statistic)."""
    missing = {"ks", "wasserstein", "wasserstein_sd"} - set(table.columns)
    if missing:
        raise ValueError(f"expected a marginal_distances table, missing column(s) {sorted(missing)}")
    if table.empty:
        raise ValueError("expected a marginal_distances table with at least one feature, got none")
    return {"mean_ks": float(table["ks"].mean()), "max_ks": float(table["ks"].max()),
            "mean_wasserstein": float(table["wasserstein"].mean()),
            "mean_wasserstein_sd": float(table["wasserstein_sd"].mean())}


def correlation_distance(real: Any, synthetic: Any) -> float:
    """RMS difference of the off-diagonal Pearson correlations: ``||C_r - C_s||_F / sqrt(p (p - 1))`` over the
    features that vary in both sets (at least two such features are needed)."""
    real_m, synth_m = _matrices({"real": real, "synthetic": synthetic})
    varying = (real_m.std(axis=0) > 0) & (synth_m.std(axis=0) > 0)
    p = int(varying.sum())
    if p < 2:
        raise ValueError(f"correlation_distance: expected at least 2 features that vary in both real and synthetic, "
                         f"got {p}")
    diff = np.corrcoef(real_m[:, varying], rowvar=False) - np.corrcoef(synth_m[:, varying], rowvar=False)
    return float(np.linalg.norm(diff, "fro") / np.sqrt(p * (p - 1)))


def classifier_two_sample_auroc(real: Any, synthetic: Any, seed: int = 0, folds: int = 5,
                                model: str = "logistic") -> float:
    """Out-of-fold AUROC of a classifier separating real (label 0) from synthetic (label 1) rows, classes balanced
    by seeded subsampling of the larger set. ``model``: ``"logistic"`` (standardized features, L2, C=1) or
    ``"forest"`` (100 trees, min 5 samples per leaf). 0.5 = indistinguishable, 1.0 = trivially separable."""
    real_m, synth_m = _matrices({"real": real, "synthetic": synthetic})
    if not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds: expected an integer >= 2, got {folds!r}")
    n = min(len(real_m), len(synth_m))
    if n < folds:
        raise ValueError(f"expected at least folds={folds} rows in the smaller of real ({len(real_m)}) and synthetic "
                         f"({len(synth_m)})")
    rng = np.random.default_rng(seed)
    if len(real_m) > n:
        real_m = real_m[np.sort(rng.choice(len(real_m), n, replace=False))]
    if len(synth_m) > n:
        synth_m = synth_m[np.sort(rng.choice(len(synth_m), n, replace=False))]
    x = np.vstack([real_m, synth_m])
    y = np.r_[np.zeros(n, dtype=int), np.ones(n, dtype=int)]
    if model == "logistic":
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    elif model == "forest":
        classifier = RandomForestClassifier(n_estimators=100, min_samples_leaf=5, random_state=seed, n_jobs=1)
    else:
        raise ValueError(f"model: expected 'logistic' or 'forest', got {model!r}")
    cv = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    probability = cross_val_predict(classifier, x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, probability))


def fidelity_summary(real: Any, synthetic: Any, seed: int = 0, folds: int = 5) -> dict[str, float]:
    """All fidelity numbers in one dict: the ``marginal_summary``, ``correlation_distance`` (NaN with fewer than two
    varying features) and ``classifier_auroc`` (logistic)."""
    summary = marginal_summary(marginal_distances(real, synthetic))
    try:
        summary["correlation_distance"] = correlation_distance(real, synthetic)
    except ValueError as error:
        if "vary in both" not in str(error):
            raise
        summary["correlation_distance"] = float("nan")
    summary["classifier_auroc"] = classifier_two_sample_auroc(real, synthetic, seed=seed, folds=folds)
    return summary


def response_fidelity(real: pd.DataFrame, synthetic: pd.DataFrame, min_values: int = 5) -> dict[str, float]:
    """Fidelity of drug responses, which have gaps (unscreened pairs are NaN): per drug (column) with at least
    ``min_values`` values in both sets the KS statistic and the Wasserstein distance in real standard deviations,
    averaged over drugs, and the RMS difference of the drug-drug correlations (pairwise complete, at least
    ``min_values`` shared cell lines). ``classifier_auroc`` is NaN: a classifier needs complete rows."""
    missing = [d for d in real.columns if d not in synthetic.columns]
    if missing:
        raise ValueError(f"response_fidelity: synthetic lacks {len(missing)} drug(s) of real, e.g. {missing[:3]}")
    synthetic = synthetic[real.columns]
    ks, wasserstein = [], []
    for drug in real.columns:
        a, b = real[drug].dropna().to_numpy(float), synthetic[drug].dropna().to_numpy(float)
        if len(a) >= min_values and len(b) >= min_values and a.std() > 0:
            ks.append(stats.ks_2samp(a, b).statistic)
            wasserstein.append(stats.wasserstein_distance(a, b) / a.std(ddof=1))
    if not ks:
        raise ValueError(f"response_fidelity: no drug has {min_values} responses in both sets")
    diff = (real.corr(min_periods=min_values) - synthetic.corr(min_periods=min_values)).to_numpy()
    off = ~np.eye(len(diff), dtype=bool) & np.isfinite(diff)
    return {"mean_ks": float(np.mean(ks)), "max_ks": float(np.max(ks)), "mean_wasserstein": float("nan"),
            "mean_wasserstein_sd": float(np.mean(wasserstein)),
            "correlation_distance": float(np.sqrt(np.mean(diff[off] ** 2))) if off.any() else float("nan"),
            "classifier_auroc": float("nan")}


# --------------------------------------------------------------------------------------------------------- privacy
def _nearest_distance(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return NearestNeighbors(n_neighbors=1).fit(reference).kneighbors(queries)[0][:, 0]


def distance_to_closest_record(synthetic: Any, training: Any, holdout: Any) -> dict[str, float]:
    """DCR of synthetic rows and of held-out real rows to the training set.

    Returns ``synthetic_median``, ``synthetic_p5``, ``holdout_median``, ``holdout_p5``, ``close_share`` (share of
    synthetic rows with a DCR below ``holdout_p5``; about 0.05 without copying), ``expected_close_share`` (0.05)
    and the three row counts."""
    synth_m, train_m, hold_m = _matrices({"synthetic": synthetic, "training": training, "holdout": holdout})
    synth_d = _nearest_distance(synth_m, train_m)
    hold_d = _nearest_distance(hold_m, train_m)
    hold_p5 = float(np.percentile(hold_d, 5))
    return {"synthetic_median": float(np.median(synth_d)), "synthetic_p5": float(np.percentile(synth_d, 5)),
            "holdout_median": float(np.median(hold_d)), "holdout_p5": hold_p5,
            "close_share": float(np.mean(synth_d < hold_p5)), "expected_close_share": 0.05,
            "n_synthetic": float(len(synth_m)), "n_training": float(len(train_m)), "n_holdout": float(len(hold_m))}


def membership_inference_auroc(synthetic: Any, training: Any, holdout: Any, seed: int = 0) -> float:
    """AUROC of the distance attack: members (training rows) vs non-members (held-out rows), equal numbers by seeded
    subsampling, each scored by minus the distance to its nearest synthetic row. 0.5 = no leak."""
    synth_m, train_m, hold_m = _matrices({"synthetic": synthetic, "training": training, "holdout": holdout})
    rng = np.random.default_rng(seed)
    n = min(len(train_m), len(hold_m))
    if len(train_m) > n:
        train_m = train_m[np.sort(rng.choice(len(train_m), n, replace=False))]
    if len(hold_m) > n:
        hold_m = hold_m[np.sort(rng.choice(len(hold_m), n, replace=False))]
    score = -_nearest_distance(np.vstack([train_m, hold_m]), synth_m)
    return float(roc_auc_score(np.r_[np.ones(n, dtype=int), np.zeros(n, dtype=int)], score))


def privacy_check(dcr: Mapping[str, float], mia_auroc: float, max_close_share: float = 0.10,
                  max_auroc: float = 0.6) -> bool:
    """True (passes) when ``dcr["close_share"] <= max_close_share`` and ``mia_auroc <= max_auroc``."""
    if "close_share" not in dcr:
        raise ValueError("dcr: expected the dict returned by distance_to_closest_record (with 'close_share')")
    share = float(dcr["close_share"])
    if not (np.isfinite(share) and 0.0 <= share <= 1.0):
        raise ValueError(f"dcr['close_share']: expected a share in [0, 1], got {share!r}")
    auroc = float(mia_auroc)
    if not (np.isfinite(auroc) and 0.0 <= auroc <= 1.0):
        raise ValueError(f"mia_auroc: expected an AUROC in [0, 1], got {mia_auroc!r}")
    return bool(share <= max_close_share and auroc <= max_auroc)


# ------------------------------------------------------------------------------------------------------ generators
def _sample_count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive integer number of rows to sample, got {n!r}")
    return int(n)


def _shrunk_parts(rows: np.ndarray) -> tuple[np.ndarray, float]:
    """The Ledoit-Wolf covariance ``(1 - d) S + d mu I`` of ``rows`` (S the empirical covariance, 1/n) as parts to
    sample from: a factor ``F`` (features x rows) with ``F @ F.T = (1 - d) S`` and the isotropic sd ``sqrt(d mu)``.
    Sampling ``g @ F.T + sd * e`` (g, e standard normal) is exact and costs rows x features per draw, where an
    eigen-decomposition of the full covariance would cost features^3 per tissue (minutes for 2,000 features)."""
    from sklearn.covariance import ledoit_wolf_shrinkage

    n = len(rows)
    centred = rows - rows.mean(axis=0)
    shrinkage = float(ledoit_wolf_shrinkage(rows, assume_centered=False)) if rows.shape[1] > 1 else 0.0
    mu = float((centred**2).sum() / n / rows.shape[1])
    return centred.T * np.sqrt((1.0 - shrinkage) / n), float(np.sqrt(shrinkage * mu))


def _draw(parts: tuple[np.ndarray, float], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws from N(0, F F' + sd^2 I) (``_shrunk_parts``)."""
    factor, sd = parts
    return rng.standard_normal((n, factor.shape[1])) @ factor.T + sd * rng.standard_normal((n, factor.shape[0]))


class _GroupedGenerator:
    """Fits one generator per group (e.g. tissue) and samples each group's rows from its own. Every group needs
    >= 2 rows. Fitted without groups, it is one generator and the group of every sampled row is None.
    Subclasses implement ``_fit_group(rows) -> state`` and ``_sample_group(state, n, rng) -> rows``."""

    def __init__(self) -> None:
        self.groups_: np.ndarray | None = None
        self.group_frequencies_: np.ndarray | None = None
        self.states_: dict[Any, Any] = {}
        self.n_features_: int | None = None

    def _prepare(self, x: np.ndarray) -> None:
        """Statistics of all rows that every group's fit uses (none by default)."""

    def _fit_group(self, rows: np.ndarray) -> Any:
        raise NotImplementedError

    def _sample_group(self, state: Any, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def fit(self, X: Any, groups: Sequence[Any] | None = None):
        x = _matrix("X", X)
        if groups is None:
            labels = np.full(len(x), None, dtype=object)
            uniques, counts = np.array([None], dtype=object), np.array([len(x)])
        else:
            labels = np.asarray(list(groups), dtype=object)
            if labels.ndim != 1 or len(labels) != len(x):
                raise ValueError(f"groups: expected one label per row of X ({len(x)}), got shape {labels.shape}")
            if pd.isna(pd.Series(labels)).any():
                raise ValueError("groups: expected a label for every row, found None/NaN")
            tally = pd.Series(labels).value_counts(sort=False)
            uniques, counts = np.array(list(tally.index), dtype=object), tally.to_numpy()
        small = [f"{label!r} ({count} row)" for label, count in zip(uniques, counts) if count < 2]
        if small:
            raise ValueError(f"groups: expected at least 2 rows per group to fit a generator; too small: "
                             f"{', '.join(small)} (merge them into a larger group)")
        self._prepare(x)
        self.states_ = {label: self._fit_group(x[np.array([g == label for g in labels.tolist()], dtype=bool)])
                        for label in uniques}
        self.groups_ = uniques
        self.group_frequencies_ = counts / counts.sum()
        self.n_features_ = x.shape[1]
        return self

    def _row_groups(self, n: int, groups: Any, rng: np.random.Generator) -> np.ndarray:
        assert self.groups_ is not None and self.group_frequencies_ is not None
        if groups is None:
            return self.groups_[rng.choice(len(self.groups_), n, p=self.group_frequencies_)]
        if isinstance(groups, Mapping):
            counts = {label: int(count) for label, count in groups.items()}
            if any(count < 0 for count in counts.values()) or sum(counts.values()) != n:
                raise ValueError(f"groups: expected non-negative counts per group summing to n={n}, got {counts}")
            wanted = np.array([label for label, count in counts.items() for _ in range(count)], dtype=object)
        else:
            wanted = np.asarray(groups, dtype=object)
            if wanted.ndim != 1 or len(wanted) != n:
                raise ValueError(f"groups: expected one group label per sampled row (n={n}), got shape "
                                 f"{wanted.shape}")
        known = set(self.groups_.tolist())
        unknown = sorted({repr(label) for label in wanted.tolist() if label not in known})
        if unknown:
            raise ValueError(f"groups: expected labels seen in fit ({sorted(map(repr, known))}), got unknown "
                             f"{', '.join(unknown)}")
        return wanted

    def sample_with_groups(self, n: int, groups: Any = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` rows and the group of each. ``groups``: None (groups drawn in their training proportions), one label
        per row, or a mapping label -> count (summing to ``n``). Same seed, same sample."""
        if self.groups_ is None:
            raise RuntimeError(f"{type(self).__name__}: call fit before sample")
        n = _sample_count(n)
        rng = np.random.default_rng(seed)
        row_groups = self._row_groups(n, groups, rng)
        out = np.empty((n, int(self.n_features_)), dtype=float)  # type: ignore[arg-type]
        for label in self.groups_:
            rows = np.flatnonzero(np.array([g == label for g in row_groups.tolist()], dtype=bool))
            if len(rows):
                out[rows] = self._sample_group(self.states_[label], len(rows), rng)
        return out, row_groups

    def sample(self, n: int, groups: Any = None, seed: int = 0) -> np.ndarray:
        """``n`` rows (see ``sample_with_groups``)."""
        return self.sample_with_groups(n, groups=groups, seed=seed)[0]


class GaussianGenerator(_GroupedGenerator):
    """Per-group multivariate Gaussian: the group mean and a Ledoit-Wolf shrunk covariance, estimated on features
    scaled by the standard deviations of all rows (so that shrinkage treats features alike) and scaled back."""

    def _prepare(self, x: np.ndarray) -> None:
        scale = x.std(axis=0, ddof=1)
        scale[scale == 0] = 1.0
        self.scale_ = scale

    def _fit_group(self, rows: np.ndarray):
        return rows.mean(axis=0), _shrunk_parts(rows / self.scale_)

    def _sample_group(self, state, n: int, rng: np.random.Generator) -> np.ndarray:
        mean, parts = state
        return mean + _draw(parts, n, rng) * self.scale_


class GaussianCopulaGenerator(_GroupedGenerator):
    """Per-group Gaussian copula with empirical marginals: rank normal scores, a Ledoit-Wolf shrunk correlation of
    them, and on the way back each feature's empirical quantiles of the group (linearly interpolated, so values
    stay within the group's observed range)."""

    def _fit_group(self, rows: np.ndarray):
        n = len(rows)
        scores = stats.norm.ppf((stats.rankdata(rows, axis=0) - 0.5) / n)
        parts = _shrunk_parts(scores)
        variance = (parts[0] ** 2).sum(axis=1) + parts[1] ** 2
        # a feature constant in the group has variance sd^2 only: its draws are independent standard normals, and
        # its quantiles map them all back to its one value
        return parts, np.sqrt(np.where(variance > 0, variance, 1.0)), np.sort(rows, axis=0)

    def _sample_group(self, state, n: int, rng: np.random.Generator) -> np.ndarray:
        parts, sd, sorted_values = state
        u = stats.norm.cdf(_draw(parts, n, rng) / sd)
        grid = (np.arange(len(sorted_values)) + 0.5) / len(sorted_values)
        return np.column_stack([np.interp(u[:, j], grid, sorted_values[:, j]) for j in range(sorted_values.shape[1])])
