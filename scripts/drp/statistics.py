"""Significance tests between models: per-drug error tests against a baseline, pairwise tests across drugs,
and a critical-difference ranking (Demšar 2006, J. Mach. Learn. Res. 7:1-30).

Definitions (also in the README):
- Per-drug error test: for one model, one reference and one drug, the two-sided Wilcoxon signed-rank test
  of the paired differences d_i = |y_i - p_i(model)| - |y_i - p_i(reference)| over the drug's test pairs
  (cell line i) that both predicted. Zero differences are dropped before ranking (Wilcoxon's convention).
  The p-values of one model are Benjamini-Hochberg adjusted across its drugs (q-values). The direction is
  the matched-pairs rank-biserial correlation r = (R+ - R-) / (R+ + R-), R+ and R- the rank sums of the
  positive and negative differences: r < 0 means the model's errors are smaller. Verdict: "better" when
  q < alpha and r < 0, "worse" when q < alpha and r > 0, otherwise "no difference".
- Pairwise metric test: for two models, the two-sided Wilcoxon signed-rank test of the per-drug metric
  differences over the drugs where both are finite; Holm adjusted over all model pairs.
- Comparison over folds and repeats: for a model and the reference (the strongest baseline), the
  differences d_j of a fold-level metric (the mean over drugs of the per-drug metric in outer fold j) over
  all J = K x R folds of R repeats; the corrected resampled t-test (Nadeau & Bengio 2003, Mach. Learn.
  52:239-281; Bouckaert & Frank 2004) replaces the variance of the mean s^2 / J by (1 / J + n_test / n_train) s^2,
  since the folds' training sets overlap; t = mean(d) / sqrt((1 / J + n_test / n_train) s^2) on J - 1 degrees of
  freedom, and the 95% interval is mean(d) +- t_0.975 * that standard error.
- Bootstrap over cell lines (Pearson only): the same mean difference of the fold-level mean per-drug Pearson,
  recomputed on B resamples of the cell lines (drawn with replacement, once per resample, the same counts in
  every repeat); each drug's Pearson in each fold is the weighted Pearson of its test pairs with the cell
  lines' counts as weights (the Pearson of the resampled rows, exactly). The 2.5 and 97.5 percentiles of the
  B differences bound the 95% percentile interval. Drugs and fitted models are held fixed: the interval is
  the uncertainty from which cell lines were screened, not from the training (the t-test's folds carry that).
- Critical difference: models are ranked within each drug (rank 1 = best, ties share the average rank)
  and the ranks averaged over drugs. The Friedman test asks whether all average ranks are equal; two
  models differ by the Nemenyi test when their average ranks differ by at least
  CD = q_alpha * sqrt(k (k + 1) / (6 N)), k models, N drugs, q_alpha the studentized range quantile
  (infinite degrees of freedom) divided by sqrt(2).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

LOWER_IS_BETTER = {"rmse"}

PAIR = ["cell_line", "drug"]
ERROR_TEST_COLUMNS = ["model", "reference", "drug", "n", "median_abs_error", "reference_median_abs_error",
                      "rank_biserial", "statistic", "p_value", "q_value", "verdict"]
ERROR_SUMMARY_COLUMNS = ["model", "reference", "drugs_tested", "better", "worse", "no_difference"]
PAIRWISE_COLUMNS = ["model_a", "model_b", "n_drugs", "mean_a", "mean_b", "mean_difference", "statistic",
                    "p_value", "p_holm"]


BOOTSTRAP_COLUMNS = ["bootstrap_ci_low", "bootstrap_ci_high"]
COMPARISON_COLUMNS = ["model", "reference", "metric", "folds", "repeats", "model_mean", "reference_mean",
                      "mean_difference", "sd_difference", "test_train_ratio", "t", "p_value", "ci_low", "ci_high",
                      *BOOTSTRAP_COLUMNS]
BOOTSTRAP_METRICS = {"pearson"}  # the metrics cell_line_bootstrap recomputes


def corrected_resampled_t(differences, test_train_ratio: float, level: float = 0.95) -> dict:
    """Nadeau & Bengio's corrected resampled t-test of paired differences over (repeated) CV folds."""
    d = np.asarray(differences, float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return {"t": np.nan, "p_value": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    variance = np.var(d, ddof=1)
    se = np.sqrt((1.0 / len(d) + test_train_ratio) * variance)
    t = d.mean() / se if se > 0 else (np.inf * np.sign(d.mean()) if d.mean() else np.nan)
    df = len(d) - 1
    half = stats.t.ppf(0.5 + level / 2, df) * se
    p_value = np.nan if np.isnan(t) else float(2 * stats.t.sf(abs(t), df))
    return {"t": float(t), "p_value": p_value, "ci_low": float(d.mean() - half), "ci_high": float(d.mean() + half)}


def compare_over_folds(per_fold: pd.DataFrame, reference: str, metric: str, fold_repeat: dict[int, int],
                       test_train_ratio: float, bootstrap: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every model against ``reference`` on a fold-level metric (``per_fold``: model, fold, metric), paired by
    fold, with the corrected resampled t-test (COMPARISON_COLUMNS). ``bootstrap`` (model, BOOTSTRAP_COLUMNS:
    ``cell_line_bootstrap``) fills the bootstrap interval; without it, or for a model it lacks, that is NaN."""
    wide = per_fold.pivot(index="fold", columns="model", values=metric)
    sign = _sign(metric)  # differences read "higher is better" for every metric
    intervals = (bootstrap.set_index("model")[BOOTSTRAP_COLUMNS] if bootstrap is not None
                 else pd.DataFrame(columns=BOOTSTRAP_COLUMNS, dtype=float))
    rows = []
    for model in wide.columns:
        d = sign * (wide[model] - wide[reference])
        rows.append({"model": model, "reference": reference, "metric": metric, "folds": int(d.notna().sum()),
                     "repeats": len({fold_repeat[f] for f in d.dropna().index}),
                     "model_mean": wide[model].mean(), "reference_mean": wide[reference].mean(),
                     "mean_difference": d.mean(), "sd_difference": d.std(ddof=1), "test_train_ratio": test_train_ratio,
                     **corrected_resampled_t(d.to_numpy(), test_train_ratio),
                     **{c: float(intervals.at[model, c]) if model in intervals.index else np.nan
                        for c in BOOTSTRAP_COLUMNS}})
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


# --- bootstrap over cell lines ----------------------------------------------------------------------

def weighted_pearson(y, p, weights) -> float:
    """Pearson correlation of ``y`` and ``p`` with frequency weights: with integer weights, the Pearson of the
    rows repeated that many times (a bootstrap resample). NaN, as ``drp.metrics.pearson``, when the weights sum
    to less than 3 or either side is constant over the rows of positive weight. The reference implementation
    of the sums ``cell_line_bootstrap`` computes for every resample at once."""
    y, p, w = (np.asarray(a, float) for a in (y, p, weights))
    kept = w > 0
    y, p, w = y[kept], p[kept], w[kept]
    if w.sum() < 3 or np.ptp(y) == 0 or np.ptp(p) == 0:
        return np.nan
    yc, pc = y - np.average(y, weights=w), p - np.average(p, weights=w)
    r = np.dot(w * yc, pc) / np.sqrt(np.dot(w * yc, yc) * np.dot(w * pc, pc))
    return float(np.clip(r, -1.0, 1.0))


_MOMENTS = 6  # per drug: the sums of w, w y, w p, w y^2, w p^2 and w y p (y and p centred within the drug)
_CONSTANT = 1e-10  # a weighted variance below this share of the raw second moment is rounding: a constant side


class _FoldSums(NamedTuple):
    fold: int
    cells: np.ndarray  # the positions of the fold's test cell lines among the bootstrap's cell lines
    terms: np.ndarray  # (cell lines, _MOMENTS x drugs): each cell line's terms of every drug's sums at weight 1
    scored: np.ndarray  # (drugs,): the drug has >= min_pairs pairs in the fold and neither side is constant


def _fold_sums(frame: pd.DataFrame, cells: pd.Index, min_pairs: int) -> list[_FoldSums]:
    """One model's test pairs as, per outer fold, a dense cell lines x (moments x drugs) table: a resample's
    sums for every drug are then one matrix product of its cell-line counts with the table."""
    blocks = []
    for fold, part in frame.groupby("fold", sort=True):
        if part.duplicated(PAIR).any():
            raise ValueError(f"fold {fold}: duplicated (cell_line, drug) pairs in the predictions")
        positions = cells.get_indexer(part["cell_line"])
        fold_cells, cell = np.unique(positions, return_inverse=True)
        drug, drugs = pd.factorize(part["drug"])
        y, p = part["y_true"].to_numpy(float), part["y_pred"].to_numpy(float)
        n = np.bincount(drug, minlength=len(drugs))
        by_drug = pd.DataFrame({"drug": drug, "y": y, "p": p}).groupby("drug")
        span = (by_drug.max() - by_drug.min()).reindex(range(len(drugs)))
        scored = (n >= max(min_pairs, 3)) & (span["y"].to_numpy() > 0) & (span["p"].to_numpy() > 0)
        # centring within the drug (Pearson does not change) keeps the one-pass sums free of cancellation
        yc = y - (np.bincount(drug, y, len(drugs)) / n)[drug]
        pc = p - (np.bincount(drug, p, len(drugs)) / n)[drug]
        terms = np.zeros((len(fold_cells), _MOMENTS, len(drugs)))
        for k, values in enumerate((1.0, yc, pc, yc * yc, pc * pc, yc * pc)):
            terms[cell, k, drug] = values
        blocks.append(_FoldSums(int(fold), fold_cells, terms.reshape(len(fold_cells), -1), scored))
    return blocks


def _mean_fold_pearson(block: _FoldSums, counts: np.ndarray) -> np.ndarray:
    """Per resample (a row of ``counts``, cell lines' multiplicities), the mean over the fold's scored drugs of
    their weighted Pearson; drugs where it is undefined in a resample are left out of that mean."""
    sums = (counts[:, block.cells] @ block.terms).reshape(len(counts), _MOMENTS, -1)
    w, sy, sp, syy, spp, syp = (sums[:, k] for k in range(_MOMENTS))
    with np.errstate(divide="ignore", invalid="ignore"):
        var_y, var_p, cov = syy - sy * sy / w, spp - sp * sp / w, syp - sy * sp / w
        defined = block.scored & (w >= 3) & (var_y > _CONSTANT * syy) & (var_p > _CONSTANT * spp)
        r = np.where(defined, np.clip(cov / np.sqrt(var_y * var_p), -1.0, 1.0), 0.0)
    drugs = defined.sum(axis=1)
    return np.where(drugs > 0, r.sum(axis=1) / np.maximum(drugs, 1), np.nan)


def pearson_fold_means(frame: pd.DataFrame, cells: pd.Index, counts: np.ndarray, min_pairs: int) -> pd.DataFrame:
    """Resamples x outer folds: the mean over drugs of the per-drug Pearson in each fold, with the test pairs of
    cell line ``cells[i]`` counted ``counts[b, i]`` times in resample b. The drugs are those with at least
    ``min_pairs`` pairs in the fold and a Pearson in the data; with every count 1 it is the per-fold mean
    per-drug Pearson of ``drp.metrics``."""
    counts = np.asarray(counts, float)
    blocks = _fold_sums(frame, cells, min_pairs)
    return pd.DataFrame({block.fold: _mean_fold_pearson(block, counts) for block in blocks})


def cell_line_bootstrap(predictions: dict[str, pd.DataFrame], reference: str, min_pairs: int, samples: int = 1000,
                        seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Percentile bootstrap interval over cell lines of each model's mean difference to ``reference`` in the
    fold-level mean per-drug Pearson (the quantity of ``compare_over_folds`` for metric pearson).

    A resample draws as many cell lines as there are, with replacement, from all cell lines tested (multinomial
    counts, ``numpy.random.default_rng(seed)``); every model is scored on the same resamples (paired). The
    counts are drawn once per resample and apply in every repeat and fold: the repeats test the same cell
    lines again, once each, so they are one sample of cell lines and not R independent ones. Resampling each
    repeat (or fold) on its own would average R independent resamples and narrow the interval by up to
    sqrt(R) without any new cell line behind it. Within a repeat a cell line's count goes to the fold that
    tests it, so a fold's size varies between resamples as it would in a new sample of cell lines. A drug's
    Pearson in a fold is the weighted Pearson with the counts as weights (``weighted_pearson``), kept to the
    drugs scored in the data (``pearson_fold_means``); the difference is averaged over the folds where both
    models have a value, as the t-test does. Returns model, BOOTSTRAP_COLUMNS (NaN where a model has no
    finite difference, e.g. a prediction constant within every drug).
    """
    if reference not in predictions:
        raise ValueError(f"reference {reference!r} is not among the models {sorted(predictions)}")
    cells = pd.Index(sorted(set().union(*(frame["cell_line"].unique() for frame in predictions.values()))))
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(cells), np.full(len(cells), 1.0 / len(cells)), size=samples).astype(float)
    reference_means = pearson_fold_means(predictions[reference], cells, counts, min_pairs)
    tail = 50.0 * (1.0 - level)
    rows = []
    for name, frame in predictions.items():
        means = reference_means if name == reference else pearson_fold_means(frame, cells, counts, min_pairs)
        differences = (means - reference_means).to_numpy()  # aligned by fold; NaN where either has none
        folds = np.isfinite(differences).sum(axis=1)
        with np.errstate(invalid="ignore"):
            mean = np.where(folds > 0, np.nansum(differences, axis=1) / np.maximum(folds, 1), np.nan)
        finite = mean[np.isfinite(mean)]
        low, high = np.percentile(finite, [tail, 100.0 - tail]) if len(finite) else (np.nan, np.nan)
        rows.append({"model": name, "bootstrap_ci_low": float(low), "bootstrap_ci_high": float(high)})
    return pd.DataFrame(rows, columns=["model", *BOOTSTRAP_COLUMNS])


def cross_study_comparison(predictions: dict[str, pd.DataFrame], fold_repeat: dict[int, int], baselines: list[str],
                           min_pairs: int, samples: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Cross-study (trained on one data set, predicting another): each repeat of the source's folds predicts
    every target cell line once, so a repeat is the unit. Per model: the mean per-drug Pearson over the target's
    pairs of each repeat (a drug's pairs pooled over the repeat's fold models), its mean and sd over repeats,
    and its difference to the strongest of ``baselines`` (highest mean) with a percentile bootstrap interval
    over the target's cell lines (``cell_line_bootstrap`` with the repeats as its folds: one resample of cell
    lines applies to every repeat). ``predictions``: the target predictions with the source's ``fold``."""
    by_repeat = {name: frame.assign(fold=frame["fold"].map(fold_repeat)) for name, frame in predictions.items()}
    present = [b for b in baselines if b in by_repeat]
    if not present:
        raise ValueError(f"evaluation.baselines {baselines}: none of them has cross-study predictions")
    cells = pd.Index(sorted(set().union(*(frame["cell_line"].unique() for frame in by_repeat.values()))))
    per_repeat = {name: pearson_fold_means(frame, cells, np.ones((1, len(cells))), min_pairs).iloc[0]
                  for name, frame in by_repeat.items()}
    reference = max(present, key=lambda name: per_repeat[name].mean())
    intervals = cell_line_bootstrap(by_repeat, reference, min_pairs, samples, seed, level).set_index("model")
    rows = []
    for name, values in per_repeat.items():
        difference = (values - per_repeat[reference]).dropna()
        rows.append({"model": name, "reference": reference, "mean": values.mean(),
                     "sd": values.std(ddof=1) if len(values) > 1 else np.nan, "repeats": int(values.notna().sum()),
                     "mean_difference": difference.mean() if len(difference) else np.nan,
                     **intervals.loc[name, BOOTSTRAP_COLUMNS].to_dict()})
    return pd.DataFrame(rows)


def repeat_summary(per_fold: pd.DataFrame, fold_repeat: dict[int, int], metrics) -> pd.DataFrame:
    """Per model and metric: the mean over each repeat's folds, then mean and sd over repeats."""
    per_repeat = per_fold.assign(repeat=per_fold["fold"].map(fold_repeat)).groupby(["model", "repeat"])[list(metrics)].mean()
    long = per_repeat.reset_index().melt(id_vars=["model", "repeat"], var_name="metric", value_name="value")
    return (long.groupby(["model", "metric"], sort=False)["value"]
            .agg(mean="mean", sd=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan, repeats="size").reset_index())


def _sign(metric: str) -> float:
    """+1 when higher values of ``metric`` are better, -1 when lower are."""
    return -1.0 if metric in LOWER_IS_BETTER else 1.0


def _models(per_drug: pd.DataFrame, models) -> list[str]:
    return list(dict.fromkeys(per_drug["model"])) if models is None else list(models)


def best_baseline(per_drug: pd.DataFrame, baselines: list[str], metric: str) -> str:
    """The baseline with the best mean per-drug ``metric`` (highest; lowest for LOWER_IS_BETTER metrics).

    Each baseline's mean is over its drugs with a finite value; ties go to the earlier baseline in the list.
    """
    best, best_score = None, -np.inf
    for name in baselines:
        if not per_drug["model"].eq(name).any():
            raise ValueError(f"baseline {name!r} has no rows in the per-drug table")
        values = per_drug.loc[per_drug["model"] == name, metric].dropna()
        score = _sign(metric) * values.mean() if len(values) else -np.inf
        if best is None or score > best_score:  # strict: a tie keeps the earlier baseline
            best, best_score = name, score
    if best is None or not np.isfinite(best_score):
        raise ValueError(f"no baseline among {baselines} has a finite per-drug {metric}")
    return best


# --- per-drug error tests against a reference -------------------------------------------------------

def _absolute_errors(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Absolute error per pair; with repeated cross-validation (a pair in one fold of each repeat), its mean
    over the repeats."""
    keys = [*PAIR, "fold"] if "fold" in frame else PAIR
    if frame.duplicated(keys).any():
        raise ValueError(f"model {name!r}: duplicated (cell_line, drug) pairs in its predictions")
    errors = frame[PAIR].assign(abs_error=(frame["y_true"] - frame["y_pred"]).abs())
    if not np.isfinite(errors["abs_error"]).all():
        raise ValueError(f"model {name!r}: non-finite y_true or y_pred, cannot test its errors")
    return errors.groupby(PAIR, as_index=False, sort=False)["abs_error"].mean() if errors.duplicated(PAIR).any() else errors


def _paired_errors(model: pd.DataFrame, reference: pd.DataFrame, name: str, reference_name: str) -> pd.DataFrame:
    """Model and reference absolute errors side by side; the two must cover exactly the same pairs."""
    paired = _absolute_errors(model, name).merge(_absolute_errors(reference, reference_name), on=PAIR,
                                                 how="outer", suffixes=("", "_reference"), indicator=True)
    mismatched = paired["_merge"] != "both"
    if mismatched.any():
        only_model = int((paired["_merge"] == "left_only").sum())
        only_reference = int((paired["_merge"] == "right_only").sum())
        raise ValueError(f"model {name!r} and reference {reference_name!r} predicted different test pairs: "
                         f"{only_model} only in {name!r}, {only_reference} only in {reference_name!r}")
    return paired.drop(columns="_merge")


def signed_rank_test(differences) -> tuple[float, float, float]:
    """Two-sided Wilcoxon signed-rank test of paired ``differences`` against zero.

    Returns (statistic, p_value, rank_biserial). The statistic is scipy's min(R+, R-); zeros are dropped
    before ranking (zero_method="wilcox"), and when every difference is zero there is no evidence
    either way: statistic 0, p = 1, r = 0 (scipy raises or warns there, depending on its version).
    """
    d = np.asarray(differences, float)
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        return 0.0, 1.0, 0.0
    ranks = stats.rankdata(np.abs(nonzero))
    rank_biserial = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
    result = stats.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided")
    return float(result.statistic), float(result.pvalue), rank_biserial


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN p-values stay NaN and are not counted."""
    return _adjust(p_values, "fdr_bh")


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error); NaN p-values stay NaN and are not counted."""
    return _adjust(p_values, "holm")


def _adjust(p_values, method: str) -> np.ndarray:
    p = np.asarray(p_values, float)
    adjusted = np.full_like(p, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        adjusted[finite] = multipletests(p[finite], method=method)[1]
    return adjusted


def verdicts(q_values, rank_biserial, alpha: float) -> np.ndarray:
    """"better" (q < alpha, model errors smaller: r < 0), "worse" (q < alpha, r > 0), else "no difference"."""
    q, r = np.asarray(q_values, float), np.asarray(rank_biserial, float)
    significant = q < alpha  # NaN compares False
    return np.where(significant & (r < 0), "better", np.where(significant & (r > 0), "worse", "no difference"))


def _drug_error_tests(paired: pd.DataFrame, min_pairs: int) -> list[dict]:
    rows = []
    for drug, group in paired.groupby("drug", sort=True):
        if len(group) < min_pairs:
            continue
        statistic, p_value, r = signed_rank_test(group["abs_error"] - group["abs_error_reference"])
        rows.append({"drug": drug, "n": len(group), "median_abs_error": group["abs_error"].median(),
                     "reference_median_abs_error": group["abs_error_reference"].median(),
                     "rank_biserial": r, "statistic": statistic, "p_value": p_value})
    return rows


def per_drug_error_tests(predictions: dict[str, pd.DataFrame], reference: str, min_pairs: int,
                         alpha: float = 0.05) -> pd.DataFrame:
    """Per model (other than ``reference``) and drug with >= ``min_pairs`` test pairs: the Wilcoxon test of
    the model's absolute errors against the reference's on the same (cell_line, drug) pairs.

    Columns: ERROR_TEST_COLUMNS. q_value is Benjamini-Hochberg across the drugs of one model (each model is
    its own family: the question is "on which drugs does this model beat the baseline"). The verdict uses
    the sign of the rank-biserial correlation, the effect the signed-rank test measures, rather than the
    difference of medians, which can point the other way.
    """
    if reference not in predictions:
        raise ValueError(f"reference {reference!r} is not among the models {sorted(predictions)}")
    tables = []
    for name, frame in predictions.items():
        if name == reference:
            continue
        paired = _paired_errors(frame, predictions[reference], name, reference)
        table = pd.DataFrame(_drug_error_tests(paired, min_pairs), columns=ERROR_TEST_COLUMNS[2:-2])
        table["q_value"] = benjamini_hochberg(table["p_value"])
        table["verdict"] = verdicts(table["q_value"], table["rank_biserial"], alpha)
        tables.append(table.assign(model=name, reference=reference))
    if not tables:
        return pd.DataFrame(columns=ERROR_TEST_COLUMNS)
    return pd.concat(tables, ignore_index=True)[ERROR_TEST_COLUMNS]


def summarize_error_tests(tests: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per model: drugs tested and how many are "better", "worse" or "no difference" than the reference.

    Verdicts are recomputed from q_value and rank_biserial at this ``alpha``. Columns: ERROR_SUMMARY_COLUMNS.
    """
    labelled = tests.assign(verdict=verdicts(tests["q_value"], tests["rank_biserial"], alpha))
    rows = [{"model": model, "reference": group["reference"].iloc[0], "drugs_tested": len(group),
             "better": int((group["verdict"] == "better").sum()),
             "worse": int((group["verdict"] == "worse").sum()),
             "no_difference": int((group["verdict"] == "no difference").sum())}
            for model, group in labelled.groupby("model", sort=False)]
    return pd.DataFrame(rows, columns=ERROR_SUMMARY_COLUMNS)


# --- tests across drugs -----------------------------------------------------------------------------

def metric_matrix(per_drug: pd.DataFrame, metric: str, models=None) -> pd.DataFrame:
    """Drugs x models table of ``metric`` (NaN where a model has no finite value for a drug)."""
    models = _models(per_drug, models)
    missing = set(models) - set(per_drug["model"])
    if missing:
        raise ValueError(f"models {sorted(missing)} have no rows in the per-drug table")
    wide = per_drug[per_drug["model"].isin(models)].pivot(index="drug", columns="model", values=metric)
    return wide[models].astype(float)


def pairwise_metric_tests(per_drug: pd.DataFrame, metric: str, models=None) -> pd.DataFrame:
    """For every pair of models (a, b): the Wilcoxon signed-rank test across drugs of metric(a) - metric(b),
    on the drugs where both are finite. mean_difference = mean_a - mean_b over those drugs (its sign is
    raw: for LOWER_IS_BETTER metrics a negative difference favours model a). p_holm is Holm adjusted over
    all pairs. Columns: PAIRWISE_COLUMNS.
    """
    wide = metric_matrix(per_drug, metric, models)
    rows = []
    for a, b in itertools.combinations(wide.columns, 2):
        both = wide[[a, b]].dropna()
        statistic, p_value = (signed_rank_test(both[a] - both[b])[:2] if len(both) else (np.nan, np.nan))
        rows.append({"model_a": a, "model_b": b, "n_drugs": len(both), "mean_a": both[a].mean(),
                     "mean_b": both[b].mean(), "mean_difference": (both[a] - both[b]).mean(),
                     "statistic": statistic, "p_value": p_value})
    table = pd.DataFrame(rows, columns=PAIRWISE_COLUMNS[:-1])  # p_holm needs every pair's p first
    table["p_holm"] = holm(table["p_value"])
    return table


def average_ranks(wide: pd.DataFrame, metric: str) -> pd.Series:
    """Mean over drugs (rows) of each model's within-drug rank; rank 1 = best, ties get average ranks."""
    ranks = wide.rank(axis=1, method="average", ascending=metric in LOWER_IS_BETTER)
    return ranks.mean(axis=0)


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Nemenyi critical value: studentized range quantile (k groups, infinite df) / sqrt(2)."""
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2))


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Critical difference of average ranks: q_alpha * sqrt(k (k + 1) / (6 N))."""
    return nemenyi_q(k, alpha) * float(np.sqrt(k * (k + 1) / (6 * n)))


def cliques(ranks: pd.Series, cd: float) -> list[list[str]]:
    """Maximal runs of models (sorted by average rank) whose ranks all lie within less than ``cd`` of each
    other: the thick bars of a CD diagram. Single models and runs inside a longer one are left out."""
    ordered = ranks.sort_values(kind="stable")
    names, values = list(ordered.index), ordered.to_numpy()
    groups, previous_end = [], -1
    for start in range(len(names)):
        end = start
        while end + 1 < len(names) and values[end + 1] - values[start] < cd:
            end += 1
        # a run that ends where the previous one ended lies inside it (it starts later)
        if end > start and end > previous_end:
            groups.append(names[start:end + 1])
            previous_end = end
    return groups


def critical_difference(per_drug: pd.DataFrame, metric: str, models=None, alpha: float = 0.05) -> dict:
    """Average ranks, Friedman test and Nemenyi critical difference of ``models`` across drugs.

    A model with no finite value at all is left out (listed in models_without_values: e.g. mean effects
    under LTO, whose prediction is constant within a fold's drug, so its Pearson is undefined); then drugs
    where any model's ``metric`` is missing or NaN are dropped (ranks need every model). Returns a
    JSON-ready dict: metric, alpha, models (best average rank first), average_ranks {model: rank},
    models_without_values, n_models, n_drugs, n_drugs_dropped, friedman_statistic, friedman_p_value (NaN
    with fewer than 3 models), q_alpha, critical_difference, groups (lists of models not significantly
    different).
    """
    wide = metric_matrix(per_drug, metric, models)
    without_values = [m for m in wide.columns if wide[m].isna().all()]
    wide = wide.drop(columns=without_values)
    complete = wide.dropna()
    k, n = complete.shape[1], len(complete)
    if k < 2 or n == 0:
        raise ValueError(f"critical difference needs >= 2 models and >= 1 drug with all finite {metric} "
                         f"(got {k} models, {n} drugs)")
    ranks = average_ranks(complete, metric).sort_values(kind="stable")
    friedman = (stats.friedmanchisquare(*(complete[m].to_numpy() for m in complete.columns)) if k >= 3 else None)
    cd = nemenyi_cd(k, n, alpha)
    return {
        "metric": metric, "alpha": alpha, "models": list(ranks.index),
        "average_ranks": {m: float(r) for m, r in ranks.items()}, "models_without_values": without_values,
        "n_models": k, "n_drugs": n, "n_drugs_dropped": len(wide) - n,
        "friedman_statistic": float(friedman.statistic) if friedman else float("nan"),
        "friedman_p_value": float(friedman.pvalue) if friedman else float("nan"),
        "q_alpha": nemenyi_q(k, alpha), "critical_difference": cd,
        "groups": cliques(ranks, cd),
    }
