"""How the cost of the split, preprocessing, training and evaluation stages grows with data size.

    nice -n 10 .venv/bin/python bench/scaling.py                          # factors 1 2 3, after `make run`
    nice -n 10 .venv/bin/python bench/scaling.py --factors 1 2 --models mean_effects elastic_net \\
        --output /tmp/scaling.tsv

The data are SYNTHETIC: the real data set (``--source``, default results/gdsc2/data) scaled up by
resampling. For a factor k every cell line is copied k times (``SYN<c>_<id>``, c = 1..k) and every drug k
times (same SMILES and fingerprint). A cell-line copy is the original profile plus Gaussian noise of
``--noise`` x each feature's SD; in views of integer calls (CNV, mutation) a fraction ``--noise`` of the
entries is redrawn from other cell lines instead, so calls stay calls. The response of a copied pair is the
original plus noise of ``--noise`` x the response SD. A copied pair exists only where the original pair
does, so the missingness pattern is kept; pairs grow as k^2 (GDSC2: about 180k, 720k, 1.6M pairs for
k = 1, 2, 3), cell lines and drugs as k. Factor 1 is perturbed too (``SYN1_``), so every factor is made
the same way.

Each stage runs in a fresh Python process, called as its Snakemake rule calls it (the library's stage
function with a plain dict of paths), so "peak RSS" is that stage's own high-water mark. "wall s" is the
whole process (interpreter start-up and imports included), "work s" the stage function alone; the cost
per million pairs and the growth exponent (slope of log work s against log pairs between the smallest and
the largest factor: about 1 = linear in pairs, 2 = quadratic) use work s, so the fixed start-up cost does
not pull the exponent down.

Models are those of config/config.yaml with ONE candidate (their ``grid`` dropped, so no selection) and
fixed training lengths, so the cost of an epoch or a boosting round is compared across sizes: neural
models train ``--epochs`` epochs (early stopping off, no checkpoints, on the CPU), gradient boosting
``--boosting-iter`` rounds (its internal early stopping may end a fit sooner; the table says how many
rounds ran). Training uses one thread (``threads=1``) and the split is LCO, fold 0, as in the pipeline.

Feasible here (24 GB, 2 cores, no GPU; measured): every stage's peak memory grows about linearly in pairs,
and gradient boosting's is the largest by far, its (pairs x [128 expression features + the fingerprint bits
that vary]) float32 pair matrix and the two parts it is stacked from: 1.3, 4.2 and 9.0 GB at factors 1, 2, 3
(every other stage stays under 3.1 GB). Factor 3 (~1.6M pairs) fits; factor 4 (~2.9M pairs, ~16 GB) only
on an otherwise idle machine; beyond that, leave gradient_boosting out (``--models``). Before each factor
the script scales the previous factor's largest peak by the pair ratio and skips the factor when that
exceeds 90% of the available memory (``--force`` runs it anyway). Time: factors 1, 2, 3 with all six models
took 16 minutes (about 2, 4.5 and 9 minutes); the timings move by up to 3x when other jobs share the cores,
so run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from drp import input_names  # noqa: E402

MODELS = ["mean_effects", "elastic_net", "gradient_boosting", "mlp", "drvae", "moicvae"]
NEURAL = {"mlp", "drvae", "moicvae"}
VIEW_SETTINGS = {"expression": {"n_features": 1000, "scale": True}, "cnv": {"n_features": 500, "scale": True},
                 "mutation": {"n_features": 500, "scale": True}}
EVALUATION_OUTPUTS = {  # the outputs of rule evaluate (workflow/rules/evaluate.smk)
    "predictions": "metrics/predictions.parquet", "per_drug": "metrics/per_drug.tsv",
    "summary": "metrics/summary.tsv", "summary_html": "metrics/summary.html",
    "error_tests": "statistics/error_tests.tsv", "error_tests_summary": "statistics/error_tests_summary.tsv",
    "pairwise": "statistics/pairwise_tests.tsv", "tests_html": "statistics/tests.html",
    "critical_difference": "report/critical_difference.png", "heatmap": "report/per_drug_heatmap.png",
    "tuning": "metrics/tuning.tsv", "distributions": "report/per_drug_metrics.png",
    "scatter": "report/predicted_vs_observed.png", "view_ablation": "metrics/view_ablation.tsv",
}
FOLD, SEED = 0, 42
log = logging.getLogger("scaling")


# --- the synthetic data set --------------------------------------------------------------------------------

def synthetic_ids(ids, k: int) -> list[str]:
    """``SYN<c>_<id>`` for c = 1..k, copy-major (all ids of copy 1, then of copy 2, ...)."""
    return [f"SYN{c}_{i}" for c in range(1, k + 1) for i in ids]


def noisy_copies(X: np.ndarray, k: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """k stacked copies of X, each one perturbed so no two copies are identical.

    Continuous views (expression) get Gaussian noise of ``noise`` x each feature's SD. Views of integer calls
    (CNV -1/0/1, mutation 0/1) must stay integer, since moicvae models them as calls and refuses anything
    else: there each entry is, with probability ``noise``, replaced by the same feature's value in a random
    cell line, which keeps the values and each feature's distribution.
    """
    copies = np.tile(X, (k, 1))
    if np.array_equal(X, np.rint(X)):
        rows, columns = np.nonzero(rng.random(copies.shape, dtype=np.float32) < noise)
        copies[rows, columns] = X[rng.integers(0, len(X), size=len(rows)), columns]
    else:
        sd = X.std(axis=0, dtype=np.float64).astype(np.float32)
        copies += rng.standard_normal(copies.shape, dtype=np.float32) * (noise * sd)
    return copies


def scale_dataset(source, k: int, noise: float, seed: int):
    """The source data set with k noisy copies of every cell line and of every drug (pairs x k^2)."""
    import anndata as ad

    from drp.dataset import Dataset

    rng = np.random.default_rng(seed + k)
    original = Dataset.read(source)
    cells, drugs = synthetic_ids(original.cell_lines, k), synthetic_ids(original.drugs.drug, k)
    views = {}
    for name, view in original.views.items():
        obs = pd.concat([view.obs] * k)
        obs.index = pd.Index(cells, name=view.obs.index.name)
        views[name] = ad.AnnData(X=noisy_copies(np.asarray(view.X, dtype=np.float32), k, noise, rng), obs=obs,
                                 var=view.var.copy())

    # every (cell copy, drug copy) of every measured pair: the original missingness, k^2 times over
    response = original.response
    n = len(response)
    cell_copy, drug_copy = np.repeat(np.arange(1, k + 1), k), np.tile(np.arange(1, k + 1), k)
    scaled = pd.DataFrame({
        "cell_line": np.concatenate([f"SYN{c}_" + response.cell_line.astype(str) for c in cell_copy]),
        "drug": np.concatenate([f"SYN{d}_" + response.drug.astype(str) for d in drug_copy]),
        "response": np.tile(response.response.to_numpy(), k * k)
        + rng.standard_normal(n * k * k) * noise * response.response.std(),
    })
    drug_table = pd.concat([original.drugs] * k, ignore_index=True).assign(drug=drugs)
    return Dataset(views=views, response=scaled, drugs=drug_table, measure=f"SYNTHETIC_{original.measure}",
                   lower_is_sensitive=original.lower_is_sensitive,
                   provenance={"synthetic": True, "source": str(source), "factor": k, "noise_sd": noise,
                               "made_by": "bench/scaling.py"})


def write_scaled(source: Path, k: int, noise: float, seed: int, folder: Path) -> dict:
    """Write the scaled data set and its fingerprints (the original drug's row per copy); returns its summary."""
    import anndata as ad

    from drp.io import write_h5ad

    dataset = scale_dataset(source, k, noise, seed)
    dataset.write(folder)
    fingerprints = ad.read_h5ad(source / "drug_fingerprints.h5ad")
    obs = pd.concat([fingerprints.obs] * k)
    obs.index = pd.Index(synthetic_ids(fingerprints.obs_names, k), name=fingerprints.obs.index.name)
    write_h5ad(folder / "drug_fingerprints.h5ad", ad.AnnData(X=np.tile(np.asarray(fingerprints.X), (k, 1)), obs=obs,
                                                             var=fingerprints.var.copy(), uns=dict(fingerprints.uns)))
    return dataset.summary()


# --- the stages, each in its own process --------------------------------------------------------------------

def model_spec(config: dict, model: str, epochs: int, boosting_iter: int) -> dict:
    """The config's spec of ``model`` with one candidate and a fixed training length."""
    spec = {key: value for key, value in config["models"][model].items() if key not in ("grid", "threads")}
    params = dict(spec.get("params") or {})
    if model in NEURAL:
        params.update(max_epochs=epochs, patience=epochs + 100, progress=False, checkpoint_every=0, device="cpu")
    if model == "gradient_boosting":
        params.update(max_iter=boosting_iter)
    return {**spec, "params": params}


def stage_calls(data: Path, work: Path, models: list[str], views: list[str], config: dict, args) -> list[tuple]:
    """(stage name, "module:function", keyword arguments) in pipeline order, paths as the rules name them."""
    splits = work / "splits" / "LCO.tsv"
    features = {view: work / "features" / f"{view}.h5ad" for view in views}
    fold_dir = work / "LCO" / f"fold{FOLD}"
    train_paths = {"meta": data / "dataset.json", "response": data / "response.parquet", "drugs": data / "drugs.tsv",
                   "drug_features": data / "drug_fingerprints.h5ad", "splits": splits,
                   **{input_names.features(view): path for view, path in features.items()}}
    calls = [
        ("split", "drp.stages.prepare:split_dataset",
         dict(response_path=data / "response.parquet", cell_lines_path=data / "cell_lines.tsv", output=splits,
              mode="LCO", n_folds=5, seed=SEED)),
        ("preprocess", "drp.stages.prepare:preprocess_views",
         dict(view_paths={v: data / f"{v}.h5ad" for v in views}, splits_path=splits, fold=FOLD,
              settings={v: VIEW_SETTINGS.get(v, {}) for v in views}, outputs=features)),
    ]
    model_outputs = {}
    for model in models:
        outputs = {"model": fold_dir / model / "model", "predictions": fold_dir / model / "predictions.parquet",
                   "view_ablation": fold_dir / model / "view_ablation.parquet"}
        model_outputs.update({input_names.model_fold_output(FOLD, model, kind): path for kind, path in outputs.items()})
        calls.append((f"train {model}", "drp.stages.train:train",
                      dict(paths=train_paths, fold=FOLD, seed=SEED, threads=1, outputs=outputs,
                           spec=model_spec(config, model, args.epochs, args.boosting_iter))))
    baselines = [m for m in ("mean_effects", "elastic_net") if m in models]
    calls.append(("evaluate", "drp.stages.evaluate:evaluate",
                  dict(paths={"meta": data / "dataset.json", "response": data / "response.parquet", "splits": splits,
                              **model_outputs},
                       outputs={name: work / "LCO" / path for name, path in EVALUATION_OUTPUTS.items()},
                       models=models, baseline=baselines[0] if baselines else models[0],
                       baselines=baselines or models[:1], controls=[], metric="pearson", min_pairs=10, alpha=0.05,
                       title=f"SYNTHETIC {data.parent.name}")))
    return calls


def run_in_child(name: str, function: str, kwargs: dict, folder: Path) -> dict:
    """Run one stage in a fresh interpreter; wall seconds from here, work seconds and peak RSS from the child."""
    folder.mkdir(parents=True, exist_ok=True)
    slug = name.replace(" ", "_")
    request, result, stage_log = folder / f"{slug}.json", folder / f"{slug}.result.json", folder / f"{slug}.log"
    request.write_text(json.dumps({"function": function, "kwargs": kwargs, "result": str(result)}, default=str))
    started = time.perf_counter()
    with open(stage_log, "w") as handle:
        code = subprocess.call([sys.executable, __file__, "--child", str(request)], stdout=handle,
                               stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"stage {name} failed (exit {code}); see {stage_log}:\n"
                           + "".join(stage_log.read_text().splitlines(keepends=True)[-20:]))
    return {"wall_s": wall, **json.loads(result.read_text())}


def child(request_path: str) -> None:
    """The child side: import the stage function, call it, report work seconds and this process's peak RSS."""
    import importlib

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    request = json.loads(Path(request_path).read_text())
    module_name, _, function_name = request["function"].partition(":")
    started = time.perf_counter()
    function = getattr(importlib.import_module(module_name), function_name)
    imported = time.perf_counter()
    function(**request["kwargs"])
    done = time.perf_counter()
    Path(request["result"]).write_text(json.dumps(
        {"import_s": imported - started, "work_s": done - imported, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux carries that across
    fork and exec, so a child would report the parent's peak whenever it is the larger."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def training_note(model_dir: Path) -> str:
    """The fit's own seconds (selection.tsv: fit and validation score, no data loading or prediction) and the
    epochs (neural models) or boosting rounds that ran."""
    parts = []
    if (model_dir / "selection.tsv").exists():
        parts.append(f"fit {pd.read_csv(model_dir / 'selection.tsv', sep=chr(9))['seconds'].iloc[0]:.1f} s")
    if (model_dir / "history.tsv").exists():
        parts.append(f"{len(pd.read_csv(model_dir / 'history.tsv', sep=chr(9)))} epochs")
    rounds = json.loads((model_dir / "model.json").read_text())["state"].get("n_iterations")
    if rounds is not None:
        parts.append(f"{rounds} rounds")
    return ", ".join(parts)


# --- the report ---------------------------------------------------------------------------------------------

def growth_exponents(table: pd.DataFrame) -> pd.Series:
    """Per stage: slope of log work s against log pairs between its smallest and largest factor."""
    def slope(rows: pd.DataFrame) -> float:
        first, last = rows.loc[rows.pairs.idxmin()], rows.loc[rows.pairs.idxmax()]
        if first.pairs == last.pairs or min(first.work_s, last.work_s) <= 0:
            return float("nan")
        return math.log(last.work_s / first.work_s) / math.log(last.pairs / first.pairs)

    return pd.Series({stage: slope(rows) for stage, rows in table.groupby("stage", sort=False)})


def markdown(table: pd.DataFrame) -> str:
    columns = {"stage": "stage", "factor": "factor", "pairs": "pairs", "cell_lines": "cell lines", "drugs": "drugs",
               "wall_s": "wall s", "work_s": "work s", "peak_rss_mb": "peak RSS MB",
               "s_per_million_pairs": "work s / M pairs", "note": "note"}
    shown = table[list(columns)].rename(columns=columns)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    for row in shown.itertuples(index=False):
        cells = [f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, (int, np.integer)) else str(v)
                 for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(table: pd.DataFrame) -> str:
    lines = [markdown(table), "", "Growth exponent (slope of log work s vs log pairs, smallest to largest factor; "
             "1 = linear in pairs, 0.5 = linear in cell lines or drugs, 2 = quadratic in pairs):"]
    for stage, exponent in growth_exponents(table).items():
        flag = "  <-- grows faster than the pairs" if exponent > 1.15 else ""
        lines.append(f"- {stage}: {exponent:.2f}{flag}")
    return "\n".join(lines)


# --- driver -------------------------------------------------------------------------------------------------

def available_mb() -> float:
    import psutil

    return psutil.virtual_memory().available / 2**20


def run_factor(k: int, args, config: dict, root: Path) -> pd.DataFrame:
    data, work = root / f"x{k}" / "data", root / f"x{k}" / "work"
    started = time.perf_counter()
    summary = write_scaled(args.source, k, args.noise, SEED, data)
    log.info("factor %d: SYNTHETIC data set of %d pairs, %d cell lines, %d drugs written to %s in %.0f s", k,
             summary["pairs"], summary["cell_lines"], summary["drugs"], data, time.perf_counter() - started)
    views = sorted(summary["features"])
    rows = []
    for name, function, kwargs in stage_calls(data, work, args.models, views, config, args):
        measured = run_in_child(name, function, kwargs, work / "stages")
        note = training_note(kwargs["outputs"]["model"]) if name.startswith("train ") else ""
        rows.append({"stage": name, "factor": k, "pairs": summary["pairs"], "cell_lines": summary["cell_lines"],
                     "drugs": summary["drugs"], **measured,
                     "s_per_million_pairs": measured["work_s"] / summary["pairs"] * 1e6, "note": note})
        log.info("factor %d, %s: wall %.1f s, work %.1f s, peak RSS %.0f MB %s", k, name, measured["wall_s"],
                 measured["work_s"], measured["peak_rss_mb"], note)
    if not args.keep:
        shutil.rmtree(root / f"x{k}")
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=REPO / "results" / "gdsc2" / "data",
                        help="a built data set (default: results/gdsc2/data of `make run`)")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--epochs", type=int, default=5, help="fixed epochs of the neural models")
    parser.add_argument("--boosting-iter", type=int, default=20, help="boosting rounds of gradient_boosting")
    parser.add_argument("--noise", type=float, default=0.1, help="noise SD of the copies, in SDs of each feature")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--output", type=Path, default=REPO / "results" / "bench" / "scaling.tsv",
                        help="the table as TSV")
    parser.add_argument("--workdir", type=Path, help="where the scaled data sets go (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep each factor's data and outputs")
    parser.add_argument("--force", action="store_true", help="run a factor even when memory looks short")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.source = args.source.resolve()
    config = yaml.safe_load(args.config.read_text())
    root = Path(tempfile.mkdtemp(prefix="drp_scaling_", dir=args.workdir))
    log.info("SYNTHETIC scaling benchmark: factors %s, models %s, %d epochs (neural), %d rounds (boosting), "
             "one candidate per model, LCO fold %d, threads=1; work folder %s", args.factors, args.models,
             args.epochs, args.boosting_iter, FOLD, root)
    started, tables = time.perf_counter(), []
    for k in sorted(args.factors):
        if tables and not args.force:
            # peaks grow about linearly in pairs, so the last factor's largest peak x the pair ratio bounds the next
            last = tables[-1]
            need = last.peak_rss_mb.max() * (k / last.factor.iloc[0]) ** 2
            if need > 0.9 * available_mb():
                log.warning("factor %d skipped: about %.0f MB needed, %.0f MB available (--force runs it)", k, need,
                            available_mb())
                continue
        tables.append(run_factor(k, args, config, root))
        table = pd.concat(tables, ignore_index=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        # written after every factor, so a run stopped early keeps what it measured
        table.round(3).to_csv(args.output, sep="\t", index=False)
    factors = sorted(table.factor.unique().tolist())
    print(f"\nSYNTHETIC data ({args.source} resampled, factors {factors}); one candidate per model, "
          f"neural models {args.epochs} epochs, gradient boosting {args.boosting_iter} rounds, threads=1; "
          f"total {time.perf_counter() - started:.0f} s\n")
    print(report(table))
    print(f"\nTSV: {args.output}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
