"""Which features drive each drug's predictions, out of fold, and whether they are the drugs' known targets.

- **Importance** (``fold_importance``): every cell line of a fold's test set is explained by that fold's model,
  which never saw it (``drp.explain``: coefficient x value for linear models, integrated gradients for neural
  ones). Per drug and feature: ``importance`` = mean |attribution| over the test cell lines, ``slope`` = sum(a x)
  / sum(x^2), the attribution per unit of the (z-scored) feature, whose sign says whether a higher value means
  a higher response (for ln IC50: more resistant). Folds and repeats are then averaged (``aggregate``); a feature
  that a fold's selection left out counts 0 there.
- **Stability** (``stability``): per drug, the Spearman correlation of the importance over the features two folds
  both used, between every two folds of different repeats and of the same repeat, averaged.
- **Targets** (``target_enrichment``): per drug with at least one target feature (any view's feature of a target
  gene, from config/drug_targets.tsv) and one other, the AUROC of target features against the rest by importance
  (1 = targets first, 0.5 = chance); the mean over drugs is compared with a null that gives each drug another
  drug's target genes (a permutation of the drug -> target-set assignment, ``null_permutations`` times).
- **Canonical biomarkers** (``canonical_biomarkers``): the classic GDSC associations, each a feature and the
  drugs whose targets include a gene: BRAF mutation with BRAF and MEK inhibitors, ERBB2 with ERBB2 inhibitors,
  TP53 mutation with MDM2 inhibitors, EGFR with EGFR inhibitors; where the feature ranks for those drugs.
"""

from __future__ import annotations

import logging
from itertools import combinations

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

DRUGS_PER_CHUNK = 8  # drugs explained together over a fold's test cell lines (a pairs x features matrix)
# (label, feature, target genes: the drugs whose targets include one of them)
CANONICAL = [
    ("BRAF mutation, BRAF/MEK inhibitors", "mutation:BRAF", ("BRAF", "MAP2K1", "MAP2K2")),
    ("ERBB2 expression, ERBB2 inhibitors", "expression:ERBB2", ("ERBB2",)),
    ("ERBB2 copy number, ERBB2 inhibitors", "cnv:ERBB2", ("ERBB2",)),
    ("TP53 mutation, MDM2 inhibitors", "mutation:TP53", ("MDM2",)),
    ("EGFR expression, EGFR inhibitors", "expression:EGFR", ("EGFR",)),
    ("EGFR mutation, EGFR inhibitors", "mutation:EGFR", ("EGFR",)),
]


def fold_importance(model, cells, drugs: list[str], n_steps: int = 16) -> pd.DataFrame:
    """drug, feature, importance, slope over the cell lines of ``cells`` (a fold's test cell lines) for the
    model's ``drugs``; an empty frame for a model without attributions."""
    from .explain import attribute

    cell_lines = list(cells.cell_lines)
    if not drugs:
        raise ValueError("biomarkers: the model knows none of the data set's drugs")
    frames = []
    for start in range(0, len(drugs), DRUGS_PER_CHUNK):
        chunk = drugs[start:start + DRUGS_PER_CHUNK]
        pairs = pd.DataFrame({"cell_line": np.tile(cell_lines, len(chunk)), "drug": np.repeat(chunk, len(cell_lines))})
        result = attribute(model, pairs, cells, n_steps)
        if result is None:
            return pd.DataFrame(columns=["drug", "feature", "importance", "slope"])
        keep = [j for j, feature in enumerate(result.features) if not feature.startswith("tissue:")]
        a = result.attributions[:, keep]
        x = np.nan_to_num(result.values[:, keep].astype(np.float64))
        for k, drug in enumerate(chunk):
            rows = slice(k * len(cell_lines), (k + 1) * len(cell_lines))
            with np.errstate(invalid="ignore", divide="ignore"):
                slope = (a[rows] * x[rows]).sum(axis=0) / (x[rows] ** 2).sum(axis=0)
            importance = np.abs(a[rows]).mean(axis=0)
            if not importance.any():  # a drug the model does not know (a wrapper's fallback): nothing to rank
                log.warning("biomarkers: no attribution at all for drug %s; left out", drug)
                continue
            frames.append(pd.DataFrame({"drug": drug, "feature": np.asarray(result.features)[keep],
                                        "importance": importance, "slope": np.nan_to_num(slope)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["drug", "feature", "importance", "slope"])


def aggregate(by_fold: pd.DataFrame) -> pd.DataFrame:
    """The mean over folds (and repeats) of each (drug, feature)'s importance and slope, a feature absent from
    a fold counting 0 there; with ``rank`` within the drug (1 = most important) and ``folds`` where it was used."""
    n_folds = by_fold.fold.nunique()
    grouped = by_fold.groupby(["drug", "feature"])
    table = pd.DataFrame({"importance": grouped.importance.sum() / n_folds, "slope": grouped.slope.sum() / n_folds,
                          "folds": grouped.size()}).reset_index()
    # ties share the worst of their ranks: a feature at zero importance never looks better than its peers
    table["rank"] = table.groupby("drug").importance.rank(ascending=False, method="max").astype(int)
    return table.sort_values(["drug", "rank"]).reset_index(drop=True)


def stability(by_fold: pd.DataFrame, fold_repeat: dict[int, int]) -> pd.DataFrame:
    """Per drug: the mean Spearman correlation of the features' importance between two folds, over pairs of
    folds of different repeats (``across_repeats``: the same drug, other cell-line partitions) and of the same
    repeat (``within_repeat``: disjoint test cell lines). Each pair is compared over the features both folds used
    (their feature selections differ a little; counting a feature one fold lacks as 0 there would mix the
    selection's differences into the ranking's, and features neither used would be ties that agree by
    construction)."""
    from scipy.stats import spearmanr

    wide = by_fold.pivot_table(index=["drug", "feature"], columns="fold", values="importance")
    rows = []
    for drug, block in wide.groupby(level="drug"):
        values = block.to_numpy()
        folds = list(block.columns)
        across, within = [], []
        for i, j in combinations(range(len(folds)), 2):
            used = ~np.isnan(values[:, i]) & ~np.isnan(values[:, j])
            pair = values[used][:, [i, j]]
            rho = spearmanr(pair[:, 0], pair[:, 1]).statistic if used.sum() > 2 else np.nan
            (within if fold_repeat.get(folds[i]) == fold_repeat.get(folds[j]) else across).append(rho)
        rows.append({"drug": drug, "within_repeat": float(np.nanmean(within)) if within else np.nan,
                     "across_repeats": float(np.nanmean(across)) if across else np.nan})
    return pd.DataFrame(rows)


def _auroc(ranks: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUROC of the positives against the negatives from the scores' ranks (ties averaged)."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return np.nan
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def target_enrichment(importance: pd.DataFrame, targets: dict[str, set[str]], null_permutations: int = 1000,
                      seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """(per drug: drug, targets, target_features, features, auroc, best_target_rank; summary: mean AUROC over the
    drugs with a target feature, the null's mean and 95% range, the permutation p-value). ``targets``: drug ->
    its target genes (drugs without any are left out)."""
    from scipy.stats import rankdata

    by_drug = {drug: block for drug, block in importance.groupby("drug")}
    drugs = [d for d in by_drug if targets.get(d)]
    ranks = {d: rankdata(by_drug[d].importance.to_numpy()) for d in drugs}
    genes = {d: by_drug[d].feature.str.split(":", n=1).str[1].to_numpy() for d in drugs}
    rows = []
    for drug in drugs:
        block = by_drug[drug]
        positive = np.isin(genes[drug], list(targets[drug]))
        rows.append({"drug": drug, "targets": ",".join(sorted(targets[drug])), "target_features": int(positive.sum()),
                     "features": len(block), "auroc": _auroc(ranks[drug], positive),
                     "best_target_rank": int(block["rank"].to_numpy()[positive].min()) if positive.any() else np.nan})
    per_drug = pd.DataFrame(rows, columns=["drug", "targets", "target_features", "features", "auroc",
                                           "best_target_rank"])
    scored = per_drug.auroc.notna()
    observed = float(per_drug.auroc[scored].mean()) if scored.any() else np.nan

    # the null keeps the scored drugs and deals their target sets among them: the same drugs as the observed
    # mean, each judged by another scored drug's targets (drugs of one class share a set: conservative)
    rng = np.random.default_rng(seed)
    scored_drugs = list(per_drug.drug[scored])
    sets = [list(targets[d]) for d in scored_drugs]
    null = []
    for _ in range(null_permutations if len(scored_drugs) > 1 else 0):
        shuffled = rng.permutation(len(sets))
        values = [_auroc(ranks[d], np.isin(genes[d], sets[k])) for d, k in zip(scored_drugs, shuffled)]
        values = [v for v in values if np.isfinite(v)]
        null.append(np.mean(values) if values else np.nan)
    null = np.asarray(null, dtype=float)
    null = null[np.isfinite(null)]
    summary = {"drugs_with_targets": len(drugs), "drugs_scored": int(scored.sum()), "mean_auroc": observed,
               "null_mean": float(null.mean()) if len(null) else np.nan,
               "null_low": float(np.quantile(null, 0.025)) if len(null) else np.nan,
               "null_high": float(np.quantile(null, 0.975)) if len(null) else np.nan,
               "p_value": float((1 + np.sum(null >= observed)) / (1 + len(null))) if len(null) else np.nan,
               "permutations": int(len(null))}
    return per_drug, summary


def canonical_biomarkers(importance: pd.DataFrame, targets: dict[str, set[str]],
                         data_features: set[str] | None = None) -> pd.DataFrame:
    """For each classic biomarker and each drug that targets its genes: the feature's rank among the drug's
    features (NaN when the model's features lack it), how many features the drug has, the slope, and, given
    the data set's features (``data_features``), whether the data set has the feature at all (``in_data_set``:
    False means it was never measured, not that the feature selection dropped it)."""
    rows = []
    by_drug = {drug: block.set_index("feature") for drug, block in importance.groupby("drug")}
    for label, feature, genes in CANONICAL:
        for drug in sorted(d for d, t in targets.items() if t & set(genes) and d in by_drug):
            block = by_drug[drug]
            present = feature in block.index
            rows.append({"biomarker": label, "feature": feature, "drug": drug, "features": len(block),
                         "rank": int(block.loc[feature, "rank"]) if present else np.nan,
                         "percentile": 100.0 * (1 - (block.loc[feature, "rank"] - 1) / len(block)) if present else np.nan,
                         "slope": float(block.loc[feature, "slope"]) if present else np.nan,
                         "in_data_set": (feature in data_features) if data_features is not None else np.nan})
    return pd.DataFrame(rows, columns=["biomarker", "feature", "drug", "features", "rank", "percentile", "slope",
                                       "in_data_set"])


def read_targets(path) -> dict[str, set[str]]:
    """drug -> its target genes from a drug-target table (config/drug_targets.tsv: drug, genes comma-separated;
    ``#`` lines are provenance)."""
    table = pd.read_csv(path, sep="\t", comment="#", keep_default_na=False, dtype=str)
    missing = [c for c in ("drug", "genes") if c not in table]
    if missing:
        raise ValueError(f"{path}: no column {missing}; expected drug and genes (comma-separated gene symbols)")
    return {row.drug: {g.strip() for g in row.genes.split(",") if g.strip()} for row in table.itertuples()}
