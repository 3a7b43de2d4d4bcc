"""Where the time of a finished run went, per stage (rule): jobs, wall and CPU seconds, memory, start-up.

    .venv/bin/python bench/profile_run.py [--workdir DIR] [--log .snakemake/log/<run>.snakemake.log]

Reads the Snakemake log of the run (default: the newest with finished jobs under <workdir>/.snakemake/log/,
or a saved copy of `make run`'s output), which names every job's rule, log and benchmark file and stamps its start and end;
each job's benchmark file (benchmarks/...: wall seconds, CPU seconds, peak memory); and the ``timing:`` line
that every rule script writes into its job log (drp.workflow.run_stage: seconds from the process start to
the stage's import, of the import, of the work), where there is one. Prints a markdown table, a row per rule
and totals: the run's wall time from the first job's start to the last job's end, and the jobs' own time
split into training (rules train*) and everything else.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
RULE = re.compile(r"^(?:local)?rule (\S+):$")
FIELD = re.compile(r"^    (jobid|log|benchmark): (.+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")
PER_DATASET = r"^(download|build_dataset|build_perturbations|features|predict_cross_study)_\w+$"
TIMING = re.compile(r"timing: start-up ([\d.]+) s, imports ([\d.]+) s, work ([\d.]+) s")


def parse_log(path: Path) -> pd.DataFrame:
    """One row per job: rule, jobid, log, benchmark, start and end (the log's time stamps, 1 s resolution)."""
    jobs, current, stamp = {}, None, None
    for line in path.read_text(errors="replace").splitlines():
        if match := STAMP.match(line):
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
        elif match := RULE.match(line):
            current = {"rule": match.group(1), "start": stamp}
        elif current is not None and (match := FIELD.match(line)):
            current[match.group(1)] = match.group(2).split(",")[0].strip()
            if match.group(1) == "jobid":
                jobs[current["jobid"]] = current
        elif match := FINISHED.match(line):
            if match.group(1) in jobs:
                jobs[match.group(1)]["end"] = stamp
    table = pd.DataFrame(jobs.values())
    if table.empty or "end" not in table:
        raise SystemExit(f"{path}: no finished job found; is it the log of a run?")
    return table[table["end"].notna()].reset_index(drop=True)


def job_measures(job: pd.Series, workdir: Path) -> dict:
    out = {}
    benchmark = workdir / str(job.get("benchmark", ""))
    if isinstance(job.get("benchmark"), str) and benchmark.is_file():
        row = pd.read_csv(benchmark, sep="\t").iloc[-1]
        out.update(wall=float(row["s"]), cpu=float(row["cpu_time"]), rss_mb=float(row["max_rss"]))
    log = workdir / str(job.get("log", ""))
    if isinstance(job.get("log"), str) and log.is_file():
        timings = TIMING.findall(log.read_text(errors="replace"))
        if timings:
            startup, imports, work = map(float, timings[-1])
            out.update(startup=startup, imports=imports, work=work)
    return out


def profile(jobs: pd.DataFrame, workdir: Path) -> tuple[pd.DataFrame, dict]:
    measures = pd.DataFrame([job_measures(job, workdir) for _, job in jobs.iterrows()], index=jobs.index)
    jobs = jobs.join(measures)
    # rules generated per source or data set (download_<source>, features_<dataset>, ...) count as one stage
    jobs["stage"] = jobs["rule"].str.replace(PER_DATASET, r"\1", regex=True)
    grouped = jobs.groupby("stage", sort=False)
    table = pd.DataFrame({
        "jobs": grouped.size(),
        "wall s (sum)": grouped["wall"].sum(min_count=1),
        "CPU s (sum)": grouped["cpu"].sum(min_count=1),
        "wall s per job": grouped["wall"].mean(),
        "s to the stage call per job": (grouped["startup"].mean() + grouped["imports"].mean())
        if "startup" in jobs else float("nan"),
        "peak RSS MB": grouped["rss_mb"].max(),
    })
    training = jobs["rule"].str.startswith("train")
    totals = {
        "jobs": len(jobs),
        "run wall min": (jobs["end"].max() - jobs["start"].min()).total_seconds() / 60,
        "training jobs' wall min": jobs.loc[training, "wall"].sum() / 60,
        "other jobs' wall min": jobs.loc[~training, "wall"].sum() / 60,
        "training jobs' CPU min": jobs.loc[training, "cpu"].sum() / 60,
        "other jobs' CPU min": jobs.loc[~training, "cpu"].sum() / 60,
    }
    if "startup" in jobs:
        totals["other jobs' time to the stage call min"] = (jobs.loc[~training, "startup"]
                                                        + jobs.loc[~training, "imports"]).sum() / 60
    return table, totals


def markdown(table: pd.DataFrame) -> str:
    lines = ["| stage | " + " | ".join(table.columns) + " |", "|---|" + "---|" * len(table.columns)]
    for stage, row in table.iterrows():
        cells = [f"{row['jobs']:.0f}"] + ["n/a" if pd.isna(v) else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"
                                          for v in row.drop("jobs")]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."), help="the run's working directory")
    parser.add_argument("--log", type=Path, help="the Snakemake log of the run (default: the newest in .snakemake/log)")
    args = parser.parse_args()
    # the newest log of a run that finished jobs (`snakemake --report` writes a log of its own, without jobs)
    logs = sorted((args.workdir / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    log = args.log or next((p for p in reversed(logs) if "Finished jobid" in p.read_text(errors="replace")), None)
    if log is None:
        raise SystemExit(f"{args.workdir}/.snakemake/log: no log of a run with finished jobs")
    table, totals = profile(parse_log(log), args.workdir)
    print(f"Run profile from {log}\n")
    print(markdown(table))
    print()
    print(", ".join(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}"
                    for key, value in totals.items()))


if __name__ == "__main__":
    main()
