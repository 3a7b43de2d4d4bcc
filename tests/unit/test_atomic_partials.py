"""atomic_path removes the hidden ``.<name>.<random>.partial`` files that a killed job (``kill -9``) left beside its
target when the target is written again, and only those: partials of other targets may belong to running jobs."""

import logging
import os
import subprocess
import sys

import pandas as pd
import pytest

from drp.io import atomic_path, remove_stale_partials, write_table, write_text


def _partial(directory, name, random="k1ll3d_x", size=1000):
    path = directory / f".{name}.{random}.partial"
    path.write_bytes(b"\0" * size)
    return path


def test_stale_partial_of_the_target_is_removed(tmp_path, caplog):
    target = tmp_path / "results.tsv"
    stale = _partial(tmp_path, "results.tsv", size=1234)
    older = _partial(tmp_path, "results.tsv", random="ab_12cd9")
    with caplog.at_level(logging.WARNING, logger="drp.io"):
        write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert not stale.exists() and not older.exists()
    assert str(stale) in caplog.text and "1234 bytes" in caplog.text
    assert [p.name for p in tmp_path.iterdir()] == ["results.tsv"]  # nor does this write leave one


def test_partials_of_other_targets_are_left_alone(tmp_path):
    others = [_partial(tmp_path, "results.tsv.gz"),  # a longer name sharing the prefix
              _partial(tmp_path, "results"),  # a shorter one
              _partial(tmp_path, "other.tsv"),
              tmp_path / ".results.tsv.part",  # download.py's resumable .part: not ours
              tmp_path / "results.tsv.abc.partial"]  # not hidden: not a name atomic_path makes
    for path in others[-2:]:
        path.write_text("x")
    (tmp_path / "sub").mkdir()
    nested = _partial(tmp_path / "sub", "results.tsv")  # same name in another directory: another target
    write_table(tmp_path / "results.tsv", pd.DataFrame({"drug": ["NA"], "response": [1.0]}))
    assert all(path.exists() for path in [*others, nested])
    assert pd.read_csv(tmp_path / "results.tsv", sep="\t", keep_default_na=False)["drug"].tolist() == ["NA"]


def test_own_partial_survives_while_writing(tmp_path):
    """The clean-up runs before the job's own partial exists, so it never deletes the file being written."""
    target = tmp_path / "model.json"
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
        assert remove_stale_partials(tmp_path / "other.json") == []
        assert tmp.exists()
    assert target.read_text() == "{}"


def test_partial_left_by_a_killed_process_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "view.h5ad"
    script = ("import sys, time\nfrom drp.io import atomic_path\n"
              "with atomic_path(sys.argv[1]) as tmp:\n"
              "    tmp.write_bytes(b'half' * 1000); print(tmp, flush=True); time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        partial = child.stdout.readline().strip()
    finally:
        child.kill()  # SIGKILL: no clean-up runs
        child.wait()
    assert partial and os.path.exists(partial) and not target.exists()
    write_text(target, "complete")
    assert target.read_text() == "complete" and not os.path.exists(partial)


@pytest.mark.parametrize("name", ["a[1].tsv", "x*y.parquet", "dots...json"])
def test_names_with_pattern_characters(tmp_path, name):
    stale, other = _partial(tmp_path, name), _partial(tmp_path, "a1.tsv")
    write_text(tmp_path / name, "ok")
    assert not stale.exists() and other.exists() and (tmp_path / name).read_text() == "ok"
