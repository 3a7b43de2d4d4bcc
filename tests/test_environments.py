"""The conda environments that cluster users get pin the same versions as the pip lock CI installs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}  # conda-forge names that differ from PyPI names


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[canonical(name)] = version
    return pins


ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


def test_there_are_environments():
    assert {path.stem for path in ENV_FILES} >= {"data", "models", "evaluate"}


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_conda_environment_matches_pip_lock(env_file):
    lock = pip_lock()
    env = yaml.safe_load(env_file.read_text())
    assert "conda-forge" in env["channels"]
    for entry in env["dependencies"]:
        assert isinstance(entry, str), f"{env_file.name}: nested pip sections are not used here: {entry}"
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)=([0-9][^=\s]*)", entry)
        assert match, f"{env_file.name}: {entry!r} is not pinned to one exact version (name=version)"
        name, version = match.groups()
        if name == "python":
            assert version == "{}.{}.{}".format(*sys.version_info[:3]), f"{env_file.name}: python {version}"
            continue
        pip_name = canonical(CONDA_TO_PIP.get(name, name))
        assert pip_name in lock, f"{env_file.name}: {name} is not in requirements.lock"
        assert lock[pip_name] == version, f"{env_file.name}: {name}={version} but requirements.lock has {lock[pip_name]}"


def test_every_rule_has_a_known_environment():
    rules = "\n".join(path.read_text() for path in (REPO / "workflow" / "rules").glob("*.smk"))
    named = set(re.findall(r'"\.\./\.\./envs/([a-z_]+)\.yaml"', rules))
    assert named and named <= {path.stem for path in ENV_FILES}
    assert rules.count("conda:") == rules.count("script:")
