"""Shared by the Slurm tests: the real Slurm profile, the small fixture config of
tests/integration/test_pipeline.py (imported from there, so that both run the same fixture data), and
readers for the sbatch calls that the Slurm plugin makes."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
sys.path.insert(0, str(REPO / "tests" / "integration"))

from test_pipeline import FIXTURE, fixture_config  # noqa: E402

__all__ = ["FIXTURE", "PROFILE", "REPO", "fixture_config", "load_profile", "option", "wrapped_jobs"]


def load_profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def wrapped_jobs(sbatch_args: list[str]) -> list[tuple[str, tuple]]:
    """(rule, sorted (wildcard, value) pairs) of every job that one sbatch call runs: one, or several for a
    group job. They are read from the Snakemake command that the plugin wraps (``--wrap=...``), whose
    ``--target-jobs`` lists them as ``rule:name=value,...``.
    """
    wrap = next(arg.removeprefix("--wrap=") for arg in sbatch_args if arg.startswith("--wrap="))
    words = shlex.split(wrap)
    start = words.index("--target-jobs") + 1
    targets = []
    for word in words[start:]:
        if word.startswith("--"):
            break
        rule, _, wildcards = word.partition(":")
        targets.append((rule, tuple(sorted(tuple(pair.split("=", 1)) for pair in wildcards.split(",") if pair))))
    return targets


def option(sbatch_args: list[str], name: str) -> str | None:
    """The value of ``name value`` or ``name=value`` in an sbatch call, None when absent."""
    for index, arg in enumerate(sbatch_args):
        if arg == name:
            return sbatch_args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None
