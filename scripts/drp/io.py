"""File helpers shared by every stage: atomic writes and checksums."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _partial_pattern(name: str) -> re.Pattern:
    """The names ``atomic_path`` gives the temporary files of target ``name``: ``.<name>.<random>.partial``,
    the random part (mkstemp's) holding no dot, so a partial of ``x.tsv.gz`` is never taken for one of ``x.tsv``."""
    return re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]+{re.escape(PARTIAL_SUFFIX)}")


def remove_stale_partials(path: str | Path) -> list[Path]:
    """Delete the temporary files that earlier writes of ``path`` left beside it (a job killed with
    ``kill -9``, or out of memory or time, never reaches the rename nor the clean-up); log each one with its
    size; return them. Only the partials of this one target are touched: a workflow has a single job writing
    a given output at a time, so when that job starts writing, every other partial of its target is stale,
    and the partials of other targets, perhaps written by running jobs, are left alone."""
    path = Path(path)
    pattern, removed = _partial_pattern(path.name), []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        with contextlib.suppress(FileNotFoundError):  # gone already: another clean-up was first
            size = entry.stat(follow_symlinks=False).st_size
            os.unlink(entry.path)
            log.warning("removed %s (%d bytes), a partial write of %s left by an interrupted job", entry.path,
                        size, path.name)
            removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or an exception never leaves a half-written file under the final name, and an existing
    file stays untouched until the new one is complete. Partials of ``path`` that an interrupted earlier
    write left behind (``.<name>.<random>.partial``) are deleted first (``remove_stale_partials``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_table(path: str | Path, frame) -> None:
    """Write a DataFrame as parquet or TSV, chosen by the suffix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif path.suffix == ".tsv":
            frame.to_csv(tmp, sep="\t", index=False)
        else:
            raise ValueError(f"{path}: unsupported table format (expected .parquet or .tsv)")


def write_h5ad(path: str | Path, adata) -> None:
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def sha256sum(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
