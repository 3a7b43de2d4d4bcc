"""Training throughput of a neural model on one real fold: epochs/s and cell lines/s, on CPU and CUDA.

    .venv/bin/python bench/benchmark_training.py                      # drvae, GDSC2 LCO fold 0, cpu (+ cuda if present)
    .venv/bin/python bench/benchmark_training.py --epochs 50 --batch-sizes full 64 --devices cuda

Needs the fold's features from the default run (`make run`, or
`.venv/bin/snakemake --cores 2 results/gdsc2/LCO/fold0/features/expression.h5ad`). The model's
parameters come from config/config.yaml; early stopping is switched off so every run does --epochs
epochs. The first epoch (allocation, CUDA warm-up) is excluded from the timing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from drp import input_names, models  # noqa: E402
from drp.dataset import read_drugs  # noqa: E402
from drp.models.base import TrainingData  # noqa: E402
from drp.stages.train import cell_line_data, fold_pairs  # noqa: E402


def load_fold(dataset: str, mode: str, fold: int, views: list[str]) -> TrainingData:
    root = REPO / "results" / dataset
    paths = {"response": root / "data" / "response.parquet", "splits": root / "splits" / f"{mode}.tsv",
             **{input_names.features(v): root / mode / f"fold{fold}" / "features" / f"{v}.h5ad" for v in views}}
    pairs = fold_pairs(paths, fold)
    columns = ["cell_line", "drug", "response"]
    train, validation = pairs.loc[pairs.role == "train", columns], pairs.loc[pairs.role == "validation", columns]
    cells = cell_line_data(paths).subset(sorted(set(train.cell_line) | set(validation.cell_line)))
    return TrainingData(cells, train.reset_index(drop=True), validation.reset_index(drop=True),
                        read_drugs(root / "data" / "drugs.tsv"), lower_is_sensitive=True, seed=0)


def time_fit(spec: dict, data: TrainingData, device: str, batch_size: int | None, epochs: int) -> dict:
    params = {**spec.get("params", {}), "device": device, "batch_size": batch_size, "max_epochs": epochs,
              "patience": epochs + 1, "progress": False, "checkpoint_every": 0}
    model = models.create({"class": spec["class"], "params": params})
    started = time.perf_counter()
    model.fit(data)
    if device == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - started
    seconds = model.history["seconds"].iloc[1:].sum()  # skip the warm-up epoch
    n_cells = data.train.cell_line.nunique()
    return {"device": device, "batch": batch_size or "full", "epochs": epochs, "total_s": round(total, 2),
            "s_per_epoch": round(seconds / (epochs - 1), 4), "epochs_per_s": round((epochs - 1) / seconds, 2),
            "cell_lines_per_s": round((epochs - 1) * n_cells / seconds, 1),
            "pairs_per_s": round((epochs - 1) * len(data.train) / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="drvae", help="a model name under `models` in the config")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--dataset", default="gdsc2")
    parser.add_argument("--mode", default="LCO")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-sizes", nargs="+", default=["full", "64"])
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    spec = yaml.safe_load(args.config.read_text())["models"][args.model]
    data = load_fold(args.dataset, args.mode, args.fold, spec.get("params", {}).get("views", ["expression"]))
    print(f"{args.model} on {args.dataset} {args.mode} fold {args.fold}: {data.train.cell_line.nunique()} training "
          f"cell lines, {len(data.train)} training pairs, {data.train.drug.nunique()} drugs; "
          f"torch {torch.__version__}, {args.threads} CPU threads"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    rows = [time_fit(spec, data, device, None if batch == "full" else int(batch), args.epochs)
            for device in args.devices for batch in args.batch_sizes]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
