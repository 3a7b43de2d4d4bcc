"""Print the README's ablation table (markdown): each idea for the VAE-based models on against off, paired
over the same outer folds.

    .venv/bin/python bench/ablation_table.py --results results --extra all_genes=../all-genes-copy/results

Reads results/<ds>/<mode>/metrics/per_fold.tsv (every model of the run, e.g. config/ablations.yaml's) and the
test/train ratio of statistics/comparison.tsv; ``--extra NAME=DIR`` adds the models of another run on the same
folds (checked: identical splits file) as ``NAME:<model>``, e.g. config/all_genes.yaml's. A row is the mean
difference (on - off) of the fold-level mean per-drug Pearson with the corrected resampled t-test's 95% CI
and p-value (as statistics/comparison.tsv); rows whose models did not run are left out, and said so on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from results_tables import difference, markdown  # noqa: E402

from drp.statistics import corrected_resampled_t  # noqa: E402

ABLATIONS = [  # (idea, model with it, model without it)
    ("generative part (decoder + KL) of Dr.VAE", "drvae", "multitask_mlp"),
    ("seed ensemble (3 seeds)", "drvae_ensemble", "drvae"),
    ("closed-form ridge heads on Dr.VAE's latent, instead of its trained heads", "drvae_latent_ridge", "drvae"),
    ("Dr.VAE's latent next to the genes (per-drug ridge)", "drvae_latent_genes_ridge", "ridge"),
    ("M2 hierarchy", "drvae_m2", "drvae"),
    ("auxiliary responses (GDSC1, CCLE) of the training cell lines", "drvae_auxiliary", "drvae"),
    ("unlabelled cell lines (omics without responses) in the ELBO", "drvae_unlabelled", "drvae"),
    ("stack with the ridge (against Dr.VAE alone)", "ridge_drvae_stack", "drvae"),
    ("stack with Dr.VAE (against the ridge alone)", "ridge_drvae_stack", "ridge"),
    ("seed ensemble inside the stack", "ridge_drvae_ensemble_stack", "ridge_drvae_stack"),
    ("MOICVAE's drug encoder (against a free embedding per drug)", "moicvae", "moicvae_no_drug_encoder"),
    ("all genes instead of the 1000 most variable: Dr.VAE", "all_genes:drvae", "drvae"),
    ("all genes and features of every view: the ridge", "all_genes:ridge", "ridge"),
]


def run_tables(results: Path, dataset: str, mode: str, prefix: str = "") -> tuple[pd.DataFrame, float, str]:
    metrics = results / dataset / mode
    per_fold = pd.read_csv(metrics / "metrics" / "per_fold.tsv", sep="\t")
    ratio = float(pd.read_csv(metrics / "statistics" / "comparison.tsv", sep="\t")["test_train_ratio"].iloc[0])
    splits = (results / dataset / "splits" / f"{mode}.tsv").read_text()
    return per_fold.assign(model=prefix + per_fold["model"]), ratio, splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--dataset", default="gdsc2")
    parser.add_argument("--mode", default="LCO")
    parser.add_argument("--extra", nargs="*", default=[], help="NAME=RESULTS_DIR of another run on the same folds")
    args = parser.parse_args()
    per_fold, ratio, splits = run_tables(args.results, args.dataset, args.mode)
    frames = [per_fold]
    for extra in args.extra:
        name, _, directory = extra.partition("=")
        other, _, other_splits = run_tables(Path(directory), args.dataset, args.mode, f"{name}:")
        if other_splits != splits:
            raise SystemExit(f"{directory}: its {args.mode} splits differ from {args.results}'s; no paired comparison")
        frames.append(other)
    wide = pd.concat(frames).pivot(index="fold", columns="model", values="pearson")
    rows = []
    for idea, on, off in ABLATIONS:
        if on not in wide or off not in wide:
            print(f"left out: {idea} ({on} or {off} did not run)", file=sys.stderr)
            continue
        d = wide[on] - wide[off]
        test = corrected_resampled_t(d.to_numpy(), ratio)
        rows.append({"idea": idea, "with": on, "without": off, "with: pearson": f"{wide[on].mean():.3f}",
                     "without: pearson": f"{wide[off].mean():.3f}",
                     "difference (95% CI)": difference(d.mean(), test["ci_low"], test["ci_high"]),
                     "p": f"{test['p_value']:.2g}", "folds": int(d.notna().sum())})
    print(f"#### Ablations, {args.dataset} {args.mode}: mean per-drug Pearson over the paired folds\n")
    print(markdown(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
