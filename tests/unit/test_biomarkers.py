"""Biomarker statistics (drp.biomarkers): a planted signal is found out of fold, the target enrichment is at
chance on a shuffled table and high on a true one, stability and canonical biomarkers by hand. Synthetic data,
named as such."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from drp import biomarkers as bm
from drp.models.base import CellLineData, TrainingData
from drp.models.ridge import RidgePerDrug


def synthetic_cells(n=120, genes=40, seed=0, prefix="c"):
    rng = np.random.default_rng(seed)
    names = [f"G{j}" for j in range(genes)]
    cells = [f"{prefix}{i}" for i in range(n)]
    obs = pd.DataFrame({"tissue": "t"}, index=cells)
    view = ad.AnnData(rng.normal(size=(n, genes)).astype(np.float32), obs=obs, var=pd.DataFrame(index=names))
    return CellLineData({"expression": view}, obs.tissue)


def planted_response(cells: CellLineData, gene: dict[str, int], seed=0):
    """Each drug's response driven by one gene (and noise)."""
    rng = np.random.default_rng(seed)
    X = np.asarray(cells.views["expression"].X)
    rows = [pd.DataFrame({"cell_line": cells.cell_lines, "drug": drug,
                          "response": 2.0 * X[:, j] + rng.normal(0, 0.5, len(X))}) for drug, j in gene.items()]
    return pd.concat(rows, ignore_index=True)


def test_planted_gene_is_first_out_of_fold():
    train, test = synthetic_cells(seed=1), synthetic_cells(n=40, seed=2, prefix="t")
    planted = {"d0": 3, "d1": 17, "d2": 29}
    model = RidgePerDrug(views=["expression"], alphas=[1.0])
    model.fit(TrainingData(train, planted_response(train, planted), planted_response(train, planted).iloc[:0],
                           pd.DataFrame({"drug": list(planted), "smiles": ""}), True))
    importance = bm.fold_importance(model, test, list(planted))
    top = bm.aggregate(importance.assign(fold=0)).query("rank == 1").set_index("drug").feature
    assert top.to_dict() == {d: f"expression:G{j}" for d, j in planted.items()}
    slopes = importance.set_index(["drug", "feature"]).slope
    # for a linear model the slope is the coefficient itself
    assert slopes[("d0", "expression:G3")] == pytest.approx(float(model.coef[model.drugs.index("d0"), 3]), rel=1e-6)
    assert slopes[("d0", "expression:G3")] > 0


def random_importance(drugs=60, genes=200, seed=0, boost=None):
    """Importance per drug over genes in two views; ``boost``: drug -> genes made most important."""
    rng = np.random.default_rng(seed)
    features = [f"{view}:G{j}" for view in ("expression", "mutation") for j in range(genes)]
    rows = []
    for d in range(drugs):
        importance = rng.exponential(size=len(features))
        for gene in (boost or {}).get(f"d{d}", []):
            importance[[features.index(f"expression:{gene}")]] += 10.0
        rows.append(pd.DataFrame({"drug": f"d{d}", "feature": features, "importance": importance, "slope": 0.0}))
    return bm.aggregate(pd.concat(rows, ignore_index=True).assign(fold=0))


def test_enrichment_is_at_chance_for_random_targets_and_high_for_true_ones():
    rng = np.random.default_rng(3)
    targets = {f"d{d}": {f"G{j}" for j in rng.choice(200, size=2, replace=False)} for d in range(60)}
    per_drug, summary = bm.target_enrichment(random_importance(), targets, null_permutations=200, seed=0)
    assert len(per_drug) == 60 and (per_drug.target_features == 4).all()  # 2 genes x 2 views
    assert abs(summary["mean_auroc"] - 0.5) < 0.05 and summary["p_value"] > 0.05
    assert abs(summary["null_mean"] - 0.5) < 0.03

    boosted = random_importance(boost={d: sorted(genes) for d, genes in targets.items()})
    per_drug, summary = bm.target_enrichment(boosted, targets, null_permutations=200, seed=0)
    assert summary["mean_auroc"] > 0.7 and summary["p_value"] < 0.01
    assert abs(summary["null_mean"] - 0.5) < 0.05  # each drug given another drug's genes: chance again
    assert (per_drug.best_target_rank <= 2).all()


def test_enrichment_leaves_out_drugs_without_targets_or_target_features():
    targets = {"d0": {"G1"}, "d1": set(), "d2": {"NOT_A_FEATURE"}}
    per_drug, summary = bm.target_enrichment(random_importance(drugs=3), targets, null_permutations=10)
    assert list(per_drug.drug) == ["d0", "d2"] and np.isnan(per_drug.set_index("drug").auroc["d2"])
    assert summary["drugs_with_targets"] == 2 and summary["drugs_scored"] == 1


def test_stability_by_hand():
    by_fold = pd.DataFrame({"drug": "d", "feature": ["a", "b", "c"] * 3, "importance": [3, 2, 1, 3, 2, 1, 1, 2, 3],
                            "fold": [0] * 3 + [1] * 3 + [5] * 3, "slope": 0.0})
    table = bm.stability(by_fold, {0: 0, 1: 0, 5: 1}).set_index("drug")
    assert table.loc["d", "within_repeat"] == pytest.approx(1.0)  # folds 0 and 1: the same order
    assert table.loc["d", "across_repeats"] == pytest.approx(-1.0)  # fold 5 against 0 and 1: reversed


def test_aggregate_counts_a_feature_a_fold_left_out_as_zero():
    by_fold = pd.DataFrame({"drug": "d", "feature": ["a", "b", "a"], "importance": [4.0, 2.0, 2.0], "slope": 1.0,
                            "fold": [0, 0, 1]})
    table = bm.aggregate(by_fold).set_index("feature")
    assert table.loc["a", "importance"] == 3.0 and table.loc["b", "importance"] == 1.0
    assert table.loc["b", "folds"] == 1 and table.loc["a", "rank"] == 1


def test_canonical_biomarkers_rank_the_feature_for_drugs_of_its_targets():
    importance = bm.aggregate(pd.DataFrame({
        "drug": ["braf_i"] * 3 + ["other"] * 3, "feature": ["expression:X", "mutation:BRAF", "cnv:Y"] * 2,
        "importance": [1.0, 5.0, 0.5, 1.0, 0.1, 2.0], "slope": [0.0, 1.5, 0.0, 0.0, 0.0, 0.0], "fold": 0}))
    table = bm.canonical_biomarkers(importance, {"braf_i": {"BRAF"}, "other": {"TOP2A"}})
    row = table[table.feature == "mutation:BRAF"].iloc[0]
    assert row.drug == "braf_i" and row["rank"] == 1 and row.percentile == 100.0 and row.slope == 1.5
    assert "other" not in set(table.drug)


def test_read_targets(tmp_path):
    path = tmp_path / "targets.tsv"
    path.write_text("# source: somewhere\ndrug\tgenes\nA\tBRAF, MAP2K1\nNA\t\n")
    assert bm.read_targets(path) == {"A": {"BRAF", "MAP2K1"}, "NA": set()}
    (tmp_path / "bad.tsv").write_text("drug\ttarget\nA\tBRAF\n")
    with pytest.raises(ValueError, match="expected drug and genes"):
        bm.read_targets(tmp_path / "bad.tsv")


def test_the_null_deals_target_sets_among_the_scored_drugs_only():
    """Drugs whose targets are not among the features must not shape the null: here their genes would look
    unimportant on the scored drugs, and a null built with them would make chance look significant."""
    importance = random_importance(drugs=40, genes=100, seed=5)
    low = importance.feature.isin([f"expression:G{j}" for j in range(90, 100)])
    importance.loc[low, "importance"] = 0.0  # genes 90-99 matter little for every drug
    rng = np.random.default_rng(1)
    targets = {f"d{d}": {f"G{j}" for j in rng.choice(90, size=2, replace=False)} for d in range(20)}  # scored
    targets |= {f"x{d}": {f"G{90 + d % 10}"} for d in range(20)}  # drugs without features: not scored
    per_drug, summary = bm.target_enrichment(importance, targets, null_permutations=300, seed=0)
    assert summary["drugs_scored"] == 20 and summary["p_value"] > 0.05
    assert abs(summary["null_mean"] - summary["mean_auroc"]) < 0.1


def test_stability_of_independent_folds_is_near_zero_despite_different_selections():
    rng = np.random.default_rng(0)
    frames = []
    for fold in range(4):  # each fold uses 100 shared and 50 features of its own, importance independent
        features = [f"expression:S{j}" for j in range(100)] + [f"expression:F{fold}_{j}" for j in range(50)]
        frames.append(pd.DataFrame({"drug": "d", "feature": features, "importance": rng.exponential(size=150),
                                    "slope": 0.0, "fold": fold}))
    table = bm.stability(pd.concat(frames, ignore_index=True), {0: 0, 1: 0, 2: 1, 3: 1})
    assert abs(table.within_repeat.iloc[0]) < 0.15 and abs(table.across_repeats.iloc[0]) < 0.15
