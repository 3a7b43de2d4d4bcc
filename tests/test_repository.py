"""What users get in the repository stands on its own: no code, comment or document points at files that only
the developers have (the design notes beside the checkout)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_no_file_points_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=REPO, check=True).stdout.split()
    offenders = []
    for name in tracked:
        path = REPO / name
        if name == "tests/test_repository.py" or path.suffix not in {".py", ".smk", ".md", ".yaml", ".rst", ".sh", ""}:
            continue
        text = path.read_text(errors="replace") if path.is_file() else ""
        offenders += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1)
                      if "../shared" in line or "shared/docs" in line]
    assert not offenders, offenders
