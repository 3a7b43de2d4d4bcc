"""Per-feature drug response association tests, the GDSC reference analysis (the "ANOVA" of Garnett et al. 2012
and Iorio et al. 2016, as in gdsctools): for each drug and each genomic feature, the linear model

    response ~ tissue + feature

over the cell lines screened with the drug, the feature's effect tested against the tissue-only model. With a
single feature term the partial F statistic is the square of the t statistic of the feature's coefficient, so the
two tests give the same p-value; the t test is used here because it keeps the sign.

Vectorized (Frisch-Waugh-Lovell): the response and every feature are residualized on the tissue design, whose
least-squares fit is the tissue means (the one-hot of the tissues present among the drug's cell lines: full rank,
the intercept in its span, so absent tissues and the intercept-plus-dummies collinearity never make it rank
deficient); the feature's partial coefficient is then ``sxy / sxx`` with ``sxy = sum(rx * ry)`` and
``sxx = sum(rx ** 2)``, the residual sum of squares ``sum(ry ** 2) - sxy ** 2 / sxx`` with
``n - n_tissues - 1`` degrees of freedom (``n_tissues`` parameters for the tissue means, one for the feature),
and the p-value two-sided from Student's t. Every sum is a matrix product of the feature matrix with a few
columns per drug (tissue indicators, residualized response, response and its square), for a batch of drugs at
once, so a view is read once per batch and never copied per drug: 228 drugs x ~6000 features x ~900 cell lines
take about 5 s per view on one core.

Differences from gdsctools: no MSI or media covariate (only tissue), the effect sizes are described in
``association_test``, and the p-values of every view and drug are corrected together (Benjamini-Hochberg).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

log = logging.getLogger(__name__)

ZERO_VARIANCE = 1e-8  # a residualized feature with sum of squares below this fraction of its centered one is flat
OUTPUT_COLUMNS = ["drug", "feature", "view", "gene", "n", "n_positive", "effect", "mean_difference",
                  "standardized_effect", "partial_r", "t", "p_value", "fdr", "binary"]


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (the step-up FDR, as R's ``p.adjust(method="BH")``); NaN stays NaN."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    values = p[ok]
    m = values.size
    if m == 0:
        return adjusted
    order = np.argsort(values, kind="mergesort")
    ranked = values[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]  # q_(i) = min over j >= i of p_(j) m / j
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    adjusted[ok] = out
    return adjusted


def _is_binary(matrix: np.ndarray) -> np.ndarray:
    """Per column: every value is 0 or 1 (over all cell lines of the view)."""
    return ((matrix == 0) | (matrix == 1)).all(axis=0)


def _view_matrix(view, name: str) -> pd.DataFrame:
    x = view.X
    if hasattr(x, "toarray"):
        x = x.toarray()
    x = np.asarray(x, dtype=float)
    if np.isnan(x).any():
        raise ValueError(f"view {name!r} has missing values; association_test needs complete features")
    return pd.DataFrame(x, index=pd.Index(view.obs_names.astype(str)), columns=pd.Index(view.var_names.astype(str)))


class _Drug:
    """One drug's design over the rows of a view: the mask of its cell lines, its response (zero elsewhere), and
    its tissue one-hot restricted to the tissues present among them. The indicator columns of the present
    tissues are disjoint and non-empty, so they are linearly independent and span the intercept: the least-squares
    fit on the tissue design is the tissue means, of rank ``k`` = the number of tissues present (absent tissues,
    and an intercept next to a full set of dummies, are the rank deficiency that this avoids)."""

    def __init__(self, name, y: np.ndarray, rows: np.ndarray, tissue_codes: np.ndarray, n_rows: int):
        self.name, self.n = name, y.size
        levels, inverse = np.unique(tissue_codes, return_inverse=True)
        self.k = levels.size
        self.counts = np.bincount(inverse, minlength=self.k).astype(float)
        self.onehot = np.zeros((n_rows, self.k))
        self.onehot[rows, inverse] = 1.0
        tissue_mean = np.bincount(inverse, weights=y, minlength=self.k) / self.counts
        self.y, self.ry, self.y2 = (np.zeros(n_rows) for _ in range(3))
        self.y[rows], self.y2[rows] = y, y * y
        self.ry[rows] = y - tissue_mean[inverse]
        self.mask = np.zeros(n_rows)
        self.mask[rows] = 1.0
        self.sum_y, self.syy, self.sum_y2 = float(y.sum()), float(self.ry @ self.ry), float((y * y).sum())

    def columns(self) -> np.ndarray:
        return np.column_stack([self.onehot, self.ry, self.y, self.y2])


def _statistics(drug: _Drug, products: np.ndarray, sum_x2: np.ndarray, binary: np.ndarray,
                min_positive: int) -> tuple[dict, dict]:
    """The association statistics of one drug with every feature, from the products of the (shifted) feature
    matrix with the drug's columns (``products``: features x (k tissue sums, x'ry, x'y, x'y^2)) and the
    features' sums of squares over its cell lines (``sum_x2``). Frisch-Waugh-Lovell: with ``rx`` and ``ry`` the
    residuals of feature and response on the tissue means, sxx = sum(x^2) - sum_g S_g^2 / n_g, sxy = x'ry."""
    n, k = drug.n, drug.k
    sums = products[:, :k]
    sxy, xy, xy2 = products[:, k], products[:, k + 1], products[:, k + 2]
    sum_x = sums.sum(axis=1)
    sxx = sum_x2 - (sums * sums / drug.counts).sum(axis=1)
    sst_x = sum_x2 - sum_x * sum_x / n
    df = n - k - 1

    flat = (sst_x <= ZERO_VARIANCE * np.maximum(sum_x2, np.finfo(float).tiny)) | (sxx <= ZERO_VARIANCE * sst_x)
    positives = np.where(binary, np.rint(sum_x), np.nan)  # binary columns are not shifted: sum = positive lines
    too_few = binary & ~flat & ((positives < min_positive) | (n - positives < min_positive))
    keep = np.flatnonzero(~flat & ~too_few)
    skipped = {"no_variance_within_tissue": int(flat.sum()), "too_few_positive": int(too_few.sum())}

    sxx, sxy, bin_k = sxx[keep], sxy[keep], binary[keep]
    beta = sxy / sxx
    rss = np.maximum(drug.syy - sxy * beta, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = beta / np.sqrt(rss / df / sxx)
        partial_r = sxy / np.sqrt(sxx * drug.syy)
        # binary: Cohen's d between feature-positive and -negative lines (raw response, pooled sd)
        n1 = positives[keep]
        n0 = n - n1
        s1, q1 = xy[keep], xy2[keep]
        m1, m0 = s1 / n1, (drug.sum_y - s1) / n0
        within = (q1 - n1 * m1 ** 2) + (drug.sum_y2 - q1 - n0 * m0 ** 2)
        cohen_d = (m1 - m0) / np.sqrt(np.maximum(within, 0.0) / (n - 2))
    p = 2 * stats.t.sf(np.abs(t), df) if df > 0 else np.full(t.shape, np.nan)
    return ({"column": keep, "n": np.full(keep.size, n), "n_positive": n1, "effect": beta,
             "mean_difference": np.where(bin_k, m1 - m0, np.nan),
             "standardized_effect": np.where(bin_k, cohen_d, partial_r), "partial_r": partial_r, "t": t,
             "p_value": p, "binary": bin_k},
            skipped)


DRUG_BATCH = 16  # drugs whose columns go through one matrix product with the feature matrix


def association_test(response: pd.DataFrame, views: dict, tissue: pd.Series, min_cell_lines: int = 10,
                     min_positive: int = 3) -> pd.DataFrame:
    """Test every (drug, feature) pair: response ~ tissue + feature, the feature's coefficient by a t test
    (equivalent to the partial F test against the tissue-only model).

    response: long table with columns cell_line, drug, response. views: view name -> AnnData (obs_names cell
    lines, var_names features, raw values as in results/<ds>/data/<view>.h5ad; no missing values). tissue:
    cell_line -> tissue. A drug is tested over its cell lines that have a response, a tissue and are in the view;
    drugs with fewer than ``min_cell_lines`` of them are left out (logged).

    Returns one row per tested (drug, feature), sorted by p-value, with columns
      drug, feature (``"{view}:{name}"``), view, gene (name), n (cell lines),
      n_positive (binary features: feature-positive cell lines; NaN otherwise),
      effect: the partial regression coefficient of the feature (response units per unit of the feature, tissue
        held fixed; for a 0/1 feature, the tissue-adjusted difference positive - negative),
      mean_difference: binary features, mean response of positive minus negative lines (not adjusted; NaN otherwise),
      standardized_effect: binary features, Cohen's d of the response between positive and negative lines (mean
        difference over the pooled sd, not tissue-adjusted, as gdsctools); continuous features, the partial
        correlation of response and feature given tissue (the coefficient in units of residual response sd per
        residual feature sd, = t / sqrt(t^2 + df)). Negative means a higher feature goes with a lower response
        (for ln IC50, more sensitive),
      t, p_value (two-sided, n - n_tissues - 1 degrees of freedom), fdr (Benjamini-Hochberg over all rows),
      binary (every value of the feature in the view is 0 or 1).

    Skipped pairs are left out of the table and counted in the log and in ``table.attrs["skipped"]``: a feature
    with no variance within tissue among the drug's cell lines (constant, or a function of tissue only), and a
    binary feature with fewer than ``min_positive`` positive or fewer than ``min_positive`` negative cell lines.
    """
    response = response.dropna(subset=["response"])
    tissue = tissue.dropna()
    tissue.index = tissue.index.astype(str)
    skipped = {"no_variance_within_tissue": 0, "too_few_positive": 0, "drugs_too_few_cell_lines": 0}
    frames = []
    by_drug = {drug: group.set_index(group["cell_line"].astype(str))["response"]
               for drug, group in response.groupby("drug", sort=True)}
    for view_name, view in views.items():
        matrix = _view_matrix(view, view_name)
        values = matrix.to_numpy()
        binary = _is_binary(values)
        # shift the continuous features to mean 0 over the view (the intercept absorbs it) so that the sums of
        # squares below lose no precision to large means; binary features stay 0/1 (their sums count positives)
        values = values - np.where(binary, 0.0, values.mean(axis=0))
        squares = values * values
        genes = matrix.columns.to_numpy()
        features = np.array([f"{view_name}:{g}" for g in genes], dtype=object)
        position = pd.Series(np.arange(len(matrix)), index=matrix.index)
        lines = matrix.index.intersection(tissue.index)
        drugs = []
        for drug, y in by_drug.items():
            y = y[y.index.isin(lines)]
            if len(y) < min_cell_lines:
                skipped["drugs_too_few_cell_lines"] += 1
                continue
            drugs.append(_Drug(drug, y.to_numpy(dtype=float), position[y.index].to_numpy(),
                               tissue[y.index].astype(str).to_numpy(), len(matrix)))
        for start in range(0, len(drugs), DRUG_BATCH):
            batch = drugs[start:start + DRUG_BATCH]
            designs = [d.columns() for d in batch]
            products = values.T @ np.hstack(designs)  # features x all the batch's columns: one pass over the view
            sums_x2 = squares.T @ np.column_stack([d.mask for d in batch])
            offset = 0
            for i, (drug, design) in enumerate(zip(batch, designs)):
                columns, counts = _statistics(drug, products[:, offset:offset + design.shape[1]], sums_x2[:, i],
                                              binary, min_positive)
                offset += design.shape[1]
                for key, count in counts.items():
                    skipped[key] += count
                column = columns.pop("column")
                frame = pd.DataFrame(columns)
                frame.insert(0, "gene", genes[column])
                frame.insert(0, "view", view_name)
                frame.insert(0, "feature", features[column])
                frame.insert(0, "drug", drug.name)
                frames.append(frame)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=OUTPUT_COLUMNS)
    table["fdr"] = benjamini_hochberg(table["p_value"].to_numpy(dtype=float))
    # stable on p-value: ties keep the order of views, drugs (sorted) and features (as in the view)
    table = table[OUTPUT_COLUMNS].sort_values("p_value", kind="mergesort", ignore_index=True)
    table["binary"] = table["binary"].astype(bool)
    table["n"] = table["n"].astype(int)
    table.attrs["skipped"] = skipped
    log.info("association tests: %d (drug, feature) pairs tested; skipped %d with no variance within tissue, "
             "%d binary with fewer than %d positive or negative cell lines; %d (view, drug) with fewer than %d "
             "cell lines", len(table), skipped["no_variance_within_tissue"], skipped["too_few_positive"],
             min_positive, skipped["drugs_too_few_cell_lines"], min_cell_lines)
    return table


def volcano_plot(table: pd.DataFrame, output, title: str, fdr: float = 0.05, label_top: int = 15) -> None:
    """A volcano plot (matplotlib, Agg): the tissue-adjusted partial correlation (the effect the p-value tests;
    Cohen's d of gdsctools ignores tissue and can have the other sign) against -log10 p, the pairs with FDR below ``fdr``
    coloured (blue for a lower response, red for a higher one with the feature), the ``label_top`` smallest
    p-values labelled drug/gene. Written to ``output`` as PNG through a temporary file renamed on success."""
    from . import plots  # sets the Agg backend

    plt = plots.plt
    fig, ax = plt.subplots(figsize=(8, 6))
    if len(table):
        p = table["p_value"].to_numpy(dtype=float)
        floor = np.nextafter(0, 1)
        y = -np.log10(np.maximum(p, floor))
        x = table["partial_r"].to_numpy(dtype=float)
        significant = table["fdr"].to_numpy(dtype=float) < fdr
        ax.scatter(x[~significant], y[~significant], s=6, c=plots.OTHER_COLOUR, alpha=0.6, linewidths=0,
                   label="not significant", rasterized=True)
        for sign, colour, name in ((x < 0, "#1f77b4", "FDR < %g, lower response" % fdr),
                                   (x >= 0, "#d62728", "FDR < %g, higher response" % fdr)):
            mask = significant & sign
            if mask.any():
                ax.scatter(x[mask], y[mask], s=10, c=colour, alpha=0.8, linewidths=0, label=name, rasterized=True)
        top = np.argsort(p, kind="mergesort")[:label_top]
        for i in top:
            if np.isfinite(x[i]):
                ax.annotate(f"{table['drug'].iloc[i]}/{table['gene'].iloc[i]}", (x[i], y[i]), fontsize=7,
                            xytext=(3, 2), textcoords="offset points")
        if significant.any():
            threshold = p[significant].max()
            ax.axhline(-np.log10(max(threshold, floor)), color="grey", lw=0.6, ls="--")
        ax.axvline(0, color="grey", lw=0.6)
        ax.legend(fontsize=8, loc="upper center", frameon=False)  # the top hits sit at the upper corners
    else:
        ax.text(0.5, 0.5, "no association tested", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("partial correlation of response and feature given tissue")
    ax.set_ylabel("-log10 p")
    ax.set_title(title)
    plots._save(fig, Path(output))
