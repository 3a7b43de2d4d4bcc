"""Print the README's result tables (markdown) from a finished run's outputs.

    .venv/bin/python bench/results_tables.py --dataset gdsc2 --modes LCO LTO

Reads results/<ds>/<mode>/metrics/{summary,repeats,tuning,view_ablation}.tsv, statistics/{comparison,
error_tests_summary}.tsv, results/cross_study/table.tsv and results/<ds>/LCO/cross_study/<target>/comparison.tsv;
prints nothing it did not read. The metric
columns are means over folds of the mean over drugs within a fold, ± the sd over repeats when there are several;
the difference to the strongest baseline has the corrected resampled t-test's 95% CI, then (when comparison.tsv
has it) the 95% bootstrap CI over cell lines; "n/a" where a model has no finite difference.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from drp.statistics import critical_difference  # noqa: E402

METRICS = ["pearson", "pearson_beyond_mean_effects", "spearman", "rmse", "auroc", "aupr"]  # per drug


def markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = ["| " + " | ".join("n/a" if pd.isna(v) else f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def interval(low: float, high: float) -> str:
    """"(low, high)" with signs, or "n/a" unless both bounds are finite."""
    return f"({low:+.3f}, {high:+.3f})" if math.isfinite(low) and math.isfinite(high) else "n/a"


def difference(mean: float, low: float, high: float) -> str:
    """"+0.004 (-0.008, +0.017)"; "n/a" without a finite difference (a model with no value in any fold, e.g. a
    prediction constant within every drug), the mean alone when only the interval is missing."""
    if not math.isfinite(mean):
        return "n/a"
    bounds = interval(low, high)
    return f"{mean:+.3f}" + ("" if bounds == "n/a" else f" {bounds}")


def mode_tables(run_dir: Path, controls: list[str]) -> str:
    summary = pd.read_csv(run_dir / "metrics" / "summary.tsv", sep="\t")
    models = list(dict.fromkeys(summary.model))
    repeats = pd.read_csv(run_dir / "metrics" / "repeats.tsv", sep="\t")
    n_repeats = int(repeats["repeats"].max())

    def cell(model, metric):
        row = repeats[(repeats.model == model) & (repeats.metric == metric)].iloc[0]
        return "n/a" if pd.isna(row["mean"]) else f"{row['mean']:.3f}" + (f" ± {row['sd']:.3f}" if n_repeats > 1 else "")

    table = pd.DataFrame({"model": models, **{metric: [cell(m, metric) for m in models] for metric in METRICS}})
    table["drevalpy normalized_pearson (pooled)"] = [cell(m, "pooled_normalized_pearson") for m in models]
    per_cell = summary[(summary.scope == "per_cell_line_mean") & (summary.metric == "pearson")].set_index("model")["value"]
    table["per-cell-line pearson"] = [f"{per_cell.get(m, float('nan')):.3f}" for m in models]
    comparison = pd.read_csv(run_dir / "statistics" / "comparison.tsv", sep="\t").set_index("model")
    reference = comparison.reference.iloc[0]
    table["difference to " + reference + " (95% CI)"] = [
        "reference" if m == reference else difference(comparison.loc[m, "mean_difference"],
                                                      comparison.loc[m, "ci_low"], comparison.loc[m, "ci_high"])
        for m in models]
    if {"bootstrap_ci_low", "bootstrap_ci_high"} <= set(comparison.columns):  # runs before the bootstrap lack them
        table["bootstrap 95% CI (cell lines)"] = [
            "reference" if m == reference else interval(comparison.loc[m, "bootstrap_ci_low"],
                                                        comparison.loc[m, "bootstrap_ci_high"])
            for m in models]
    tests = pd.read_csv(run_dir / "statistics" / "error_tests_summary.tsv", sep="\t").set_index("model")
    table["drugs better / worse"] = [
        "reference" if m == reference else f"{tests.loc[m, 'better']} / {tests.loc[m, 'worse']} of {tests.loc[m, 'drugs_tested']}"
        for m in models]
    folds = int(comparison.folds.max())
    parts = [f"#### {run_dir.parent.name} {run_dir.name}: mean per-drug metrics over {folds} folds "
             f"({n_repeats} repeat{'s' if n_repeats > 1 else ''}{', mean ± sd over repeats' if n_repeats > 1 else ''})",
             markdown(table)]
    per_drug = pd.read_csv(run_dir / "metrics" / "per_drug.tsv", sep="\t", dtype={"drug": str})
    ranking = critical_difference(per_drug, "pearson", [m for m in models if m not in controls])
    ranks = ", ".join(f"{m} {r:.2f}" for m, r in ranking["average_ranks"].items())
    parts.append(f"Mean rank by per-drug Pearson over {ranking['n_drugs']} drugs (Friedman p = "
                 f"{ranking['friedman_p_value']:.1e}, Nemenyi CD = {ranking['critical_difference']:.2f}; drugs are "
                 "not independent, so read it as description"
                 + (f"; not ranked, no finite value: {', '.join(ranking['models_without_values'])}"
                    if ranking["models_without_values"] else "") + f"): {ranks}.")
    ablation = run_dir / "metrics" / "view_ablation.tsv"
    if ablation.exists():
        change = pd.read_csv(ablation, sep="\t").query("shuffled_view != 'none'")
        wide = change.pivot(index="model", columns="shuffled_view", values="change").reindex(models).reset_index()
        parts += ["View randomization (change of mean per-drug Pearson with the view shuffled):", markdown(wide)]
    tuning = pd.read_csv(run_dir / "metrics" / "tuning.tsv", sep="\t")
    budget = tuning.groupby("model")["candidates"].max().reindex(models).reset_index()
    budget["refit"] = tuning.groupby("model")["refit"].any().reindex(models).values
    budget["training seconds (all folds, candidates and refits)"] = \
        tuning.groupby("model")["seconds"].sum().reindex(models).round().astype(int).values
    parts += ["Tuning (grid candidates per fold, refit on all non-test pairs, fitting time):", markdown(budget)]
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--dataset", default="gdsc2")
    parser.add_argument("--modes", nargs="+", default=["LCO", "LTO"])
    parser.add_argument("--controls", nargs="*", default=["mlp_permuted", "ridge_permuted", "drvae_permuted"],
                        help="models tested but not ranked")
    args = parser.parse_args()
    for mode in args.modes:
        run_dir = args.results / args.dataset / mode
        if (run_dir / "statistics" / "error_tests_summary.tsv").exists():
            print(mode_tables(run_dir, args.controls), end="\n\n")
    cross = args.results / "cross_study" / "table.tsv"
    if cross.exists():
        table = pd.read_csv(cross, sep="\t")
        metric = table.columns[3]
        wide = table.pivot_table(index="model", columns="test", values=metric, sort=False)
        drugs = table.groupby("test")["drugs"].max()
        wide.columns = [f"{test} ({drugs[test]} drugs)" for test in wide.columns]
        print(f"#### Cross-study: mean per-drug {metric}, trained on {', '.join(table.train.unique())}\n")
        print(markdown(wide.reset_index()))
    for comparison in sorted(args.results.glob(f"{args.dataset}/LCO/cross_study/*/comparison.tsv")):
        table = pd.read_csv(comparison, sep="\t")
        rows = pd.DataFrame({
            "model": table.model,
            "pearson": [f"{m:.3f}" + (f" ± {sd:.3f}" if math.isfinite(sd) else "") for m, sd in zip(table["mean"], table.sd)],
            f"vs {table.reference.iloc[0]} (95% bootstrap CI)": [
                difference(m, low, high) for m, low, high in
                zip(table.mean_difference, table.bootstrap_ci_low, table.bootstrap_ci_high)]})
        print(f"\n#### Cross-study {args.dataset} -> {comparison.parent.name}: mean per-drug pearson per repeat "
              f"(± sd over {table.repeats.max()} repeats), against the strongest baseline\n")
        print(markdown(rows))


if __name__ == "__main__":
    main()
