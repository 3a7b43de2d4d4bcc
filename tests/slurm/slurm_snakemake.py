"""Snakemake's command line with the Slurm executor plugin, with two adjustments for tests.

    python slurm_snakemake.py [--poll-seconds N] [--instant-jobs] -- <snakemake arguments>

--poll-seconds N   ask Slurm for job states at most N seconds apart. The plugin waits 10 s longer after
                   each status check that finds no job finished (up to 3 min): right for a busy cluster,
                   but on the test cluster it would add most of a minute to every stage of the DAG.
--instant-jobs     create each job's output and benchmark files (empty) right after it is submitted, so
                   that a fake ``sacct`` can report it COMPLETED at once and Snakemake goes on with the jobs
                   that depend on it (tests/slurm/test_submission.py, which fakes the Slurm commands).

Everything else is the plugin's own code: how it builds each sbatch call from the job's resources, submits
it, reads job states from sacct, and retries.
"""

import argparse
from pathlib import Path

from snakemake.cli import main
from snakemake.io import is_flagged
from snakemake_executor_plugin_slurm import Executor


def cap_status_poll_interval(seconds: int) -> None:
    def setter(self, value):
        self._next_seconds_between_status_checks = min(value, seconds)

    Executor.next_seconds_between_status_checks = Executor.next_seconds_between_status_checks.setter(setter)


def finish_jobs_on_submission() -> None:
    submit = Executor.run_job

    def submit_and_finish(self, job):
        submit(self, job)
        for member in job.jobs if job.is_group() else [job]:
            for path in [*member.output, *([member.benchmark] if member.benchmark else [])]:
                if is_flagged(path, "directory"):
                    Path(path).mkdir(parents=True, exist_ok=True)
                else:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                    Path(path).touch()

    Executor.run_job = submit_and_finish


if __name__ == "__main__":
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--poll-seconds", type=int)
    parser.add_argument("--instant-jobs", action="store_true")
    parser.add_argument("snakemake_args", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    if options.poll_seconds:
        cap_status_poll_interval(options.poll_seconds)
    if options.instant_jobs:
        finish_jobs_on_submission()
    main(options.snakemake_args[1:] if options.snakemake_args[:1] == ["--"] else options.snakemake_args)
