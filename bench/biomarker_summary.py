"""The README's "Biomarkers" numbers from a finished biomarker run (rules biomarkers and associations):

    .venv/bin/python bench/biomarker_summary.py --results results --dataset gdsc2 --model ridge --model drvae

Per model: the target enrichment against its null and the stability (summary.json); the drugs whose putative
target is among their 10 most important features; the features most often in drugs' top 10 (what the model
leans on across drugs); the share of each drug's top 20 features that the association test also finds (FDR
below 0.05, same sign of effect); and the canonical biomarkers' ranks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def model_lines(base: Path, model: str, associations: pd.DataFrame, targets: dict, fdr: float) -> list[str]:
    folder = base / model
    summary = json.loads((folder / "summary.json").read_text())
    e = summary["target_enrichment"]
    importance = pd.read_parquet(folder / "importance.parquet")
    lines = [f"## {model}",
             f"target AUROC {e['mean_auroc']:.3f} over {e['drugs_scored']} drugs; null {e['null_mean']:.3f} "
             f"(95% {e['null_low']:.3f}-{e['null_high']:.3f}); p = {e['p_value']:.4f}; stability within repeat "
             f"{summary['stability_within_repeat']:.3f}, across repeats {summary['stability_across_repeats']:.3f}"]
    top10 = importance[importance["rank"] <= 10]
    gene = top10.feature.str.split(":", n=1).str[1]
    hits = top10[[g in targets.get(d, set()) for d, g in zip(top10.drug, gene)]]
    lines.append(f"drugs with a target in their top 10: {hits.drug.nunique()} of "
                 f"{sum(1 for d in importance.drug.unique() if targets.get(d))} with targets: "
                 + ", ".join(f"{r.drug} ({r.feature} #{r.rank})" for r in hits.sort_values("rank").itertuples()))
    common = top10.feature.value_counts().head(8)
    lines.append("most frequent top-10 features (drugs): " + ", ".join(f"{f} ({n})" for f, n in common.items()))
    top20 = importance[importance["rank"] <= 20].merge(
        associations[["drug", "feature", "partial_r", "fdr"]], on=["drug", "feature"], how="left")
    agree = (top20.fdr < fdr) & ((top20.partial_r > 0) == (top20.slope > 0))  # tissue-adjusted, as the test
    lines.append(f"top-20 features also found by the association test (FDR < {fdr}, same sign): "
                 f"{agree.mean():.3f} ({int(agree.sum())} of {len(top20)})")
    canonical = pd.read_csv(folder / "canonical.tsv", sep="\t")
    present = canonical.dropna(subset=["rank"])
    lines.append(f"canonical biomarkers in the model's features: {len(present)} of {len(canonical)}: "
                 + ", ".join(f"{r.feature}/{r.drug} #{int(r.rank)} of {r.features} (slope {r.slope:+.3f})"
                             for r in present.itertuples()))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--dataset", default="gdsc2")
    parser.add_argument("--mode", default="LCO")
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--targets", type=Path, default=Path("config/drug_targets.tsv"))
    parser.add_argument("--fdr", type=float, default=0.05)
    args = parser.parse_args()
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from drp.biomarkers import read_targets

    targets = read_targets(args.targets)
    associations = pd.read_parquet(args.results / args.dataset / "biomarkers" / "associations.parquet")
    significant = associations[associations.fdr < args.fdr]
    print(f"association test: {len(associations)} tests, {len(significant)} with FDR < {args.fdr}; by view: "
          + ", ".join(f"{v} {n}" for v, n in significant.view.value_counts().items()))
    for row in associations.nsmallest(8, "p_value").itertuples():
        print(f"  {row.drug} / {row.feature}: partial r {row.partial_r:+.3f}, FDR {row.fdr:.2g}")
    base = args.results / args.dataset / args.mode / "biomarkers"
    for model in args.model:
        print("\n".join(model_lines(base, model, associations, targets, args.fdr)))


if __name__ == "__main__":
    main()
