"""The README's "Synthetic data" tables from a finished synthetic run (rule synthetic_report):

    .venv/bin/python bench/synthetic_summary.py --results results --dataset gdsc2 --mode LCO

Per generator: fidelity on expression (the view every generator makes), on all its views and of the responses
(against the held-out cell lines' screened ones), utility (mean
per-drug Pearson of the ridge trained on real or on synthetic cell lines, and the paired loss), privacy; each as
the mean over folds with its 95 % t-interval; then the small-tissue augmentation per generator.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def with_interval(row: pd.Series, column: str, digits: int = 3) -> str:
    return (f"{row[column]:.{digits}f} ({row[f'{column}_ci_low']:.{digits}f}-{row[f'{column}_ci_high']:.{digits}f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--dataset", default="gdsc2")
    parser.add_argument("--mode", default="LCO")
    args = parser.parse_args()
    base = args.results / args.dataset / args.mode / "synthetic"
    summary = pd.read_csv(base / "summary.tsv", sep="\t")
    print("| generator | views | classifier AUROC, expression | all views | mean KS, expression | correlation distance "
          "| response KS | response correlation distance | ridge Pearson, real | on synthetic | loss | DCR close share "
          "| MIA AUROC | privacy passes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for generator, rows in summary.groupby("generator", sort=False):
        by_view = rows.set_index("view")
        expression = by_view.loc["expression"]
        overall = by_view.loc["all"] if "all" in by_view.index else expression
        views = "+".join(v for v in by_view.index if v not in ("all", "response"))
        response = by_view.loc["response"]
        print(f"| {generator} | {views} | {with_interval(expression, 'classifier_auroc')} | "
              f"{overall['classifier_auroc']:.3f} | {expression['mean_ks']:.3f} | "
              f"{overall['correlation_distance']:.3f} | {response['mean_ks']:.3f} | "
              f"{response['correlation_distance']:.3f} | {with_interval(overall, 'pearson_real')} | "
              f"{with_interval(overall, 'pearson_synthetic')} | {with_interval(overall, 'pearson_loss')} | "
              f"{with_interval(overall, 'dcr_close_share')} | {with_interval(overall, 'mia_auroc')} | "
              f"{overall['privacy_passes']:.0%} |")
    augmentation = pd.read_csv(base / "augmentation.tsv", sep="\t")
    if len(augmentation):
        print("\nsmall-tissue augmentation (mean per-drug Pearson within the tissue's held-out cell lines):")
        for generator, rows in augmentation.groupby("generator", sort=False):
            print(f"{generator}: {len(rows)} tissues, real {rows.pearson_real.mean():.3f}, real + synthetic "
                  f"{rows.pearson_real_plus_synthetic.mean():.3f}, difference {rows.difference.mean():+.3f} "
                  f"(range {rows.difference.min():+.3f} to {rows.difference.max():+.3f}), improved in "
                  f"{int((rows.difference > 0).sum())}: " + ", ".join(
                      f"{r.tissue} ({r.cell_lines}) {r.difference:+.3f}" for r in rows.itertuples()))


if __name__ == "__main__":
    main()
