"""Which views the out-of-distribution score should use: flag rates of held-out checks' samples (real cell
lines the final features never saw) and of their gene-shuffled profiles, per combination of views.

Run after the held-out checks (config/samples.yaml) in the same working directory:
    .venv/bin/python bench/ood_views.py --sample-set heldout_lines --sample-set heldout_skin
It reads results/samples/<set>/input (the held-out lines' raw omics) and results/<ds>_without_<set>/final/features
(the final features), and scores them as predict_samples does (drp.uncertainty), for each view combination.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from drp.samples_io import read_sample_set, transform_samples  # noqa: E402
from drp.stages.samples import shuffled_model_inputs  # noqa: E402
from drp.uncertainty import NeighbourDistance, ood_matrix  # noqa: E402


def flag_rates(results: Path, sample_set: str, dataset: str, k: int, quantile: float, seed: int) -> pd.DataFrame:
    final = results / f"{dataset}_without_{sample_set}" / "final" / "features"
    fitted = {path.stem: ad.read_h5ad(path) for path in sorted(final.glob("*.h5ad"))}
    raw, _, _ = read_sample_set({"folder": str(results / "samples" / sample_set / "input"), "views": list(fitted)})
    views, _ = transform_samples(raw, fitted)
    scrambled, _ = transform_samples(shuffled_model_inputs(raw, fitted, seed), fitted)
    rows = []
    for size in range(1, len(fitted) + 1):
        for names in itertools.combinations(sorted(fitted), size):
            ood = NeighbourDistance(k, quantile).fit(ood_matrix(fitted, list(names)))
            rows.append({"sample_set": sample_set, "views": "+".join(names), "samples": views[names[0]].n_obs,
                         "flag_rate": float(np.mean(ood.flag(ood.score(ood_matrix(views, list(names)))))),
                         "shuffled_flag_rate": float(np.mean(ood.flag(ood.score(ood_matrix(scrambled, list(names))))))})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--dataset", default="gdsc2")
    parser.add_argument("--sample-set", action="append", required=True)
    parser.add_argument("--neighbours", type=int, default=5)
    parser.add_argument("--quantile", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    table = pd.concat([flag_rates(args.results, name, args.dataset, args.neighbours, args.quantile, args.seed)
                       for name in args.sample_set], ignore_index=True)
    print(table.round(3).to_markdown(index=False) if hasattr(table, "to_markdown") else table.round(3).to_string())


if __name__ == "__main__":
    main()
