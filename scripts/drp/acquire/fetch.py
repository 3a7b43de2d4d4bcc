"""Download every pinned file of a source, extract the archives it asks for, and record what was fetched.

A file spec under ``sources.<name>.files.<key>`` is one of (config/README.md):

* ``{project, filename, sha256}``: a file of a package on ``index_url`` (PEP 503/691 Simple API);
* ``{url, filename, sha256 and/or md5}``: a plain URL with a pinned checksum;
* ``{figshare_file, article, filename}``: resolved through the figshare API, which gives the md5;
* ``{zenodo_record, filename}``: resolved through the Zenodo API, which gives the md5.

Any of them may add ``extract: true`` (zip, tar, tar.gz): the archive stays in the download cache and is
extracted, safely, into ``resources/<source>/<key>/``. The output paths come from the rule
(``source_file_outputs`` in workflow/rules/common.smk), so the adapters get exactly these paths.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..io import write_json
from .archive import ArchiveError, safe_extract
from .download import (FIGSHARE_API, ZENODO_API, ChecksumError, DownloadError, default_cache_dir, download,
                        resolve_figshare_file, resolve_package_file, resolve_zenodo_file)

log = logging.getLogger(__name__)


def fetch_source(source: dict, outputs: dict[str, str], manifest_path: str | Path,
                 cache_dir: str | Path | None = None, progress: bool = True, backoff: float = 1.0) -> dict:
    """Fetch each of ``source["files"]`` to ``outputs[key]``; write and return the manifest.

    ``cache_dir`` defaults to ``$DRP_DOWNLOAD_CACHE`` or ``resources/.cache``. Errors name the source
    (the manifest's folder), the file key, the url and what was expected.
    """
    name = Path(manifest_path).parent.name
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    options = {"timeout": source.get("timeout_s", 120), "retries": source.get("retries", 3), "backoff": backoff}
    entries = {}
    for key, spec in source["files"].items():
        try:
            entries[key] = _fetch_file(source, spec, Path(outputs[key]), cache_dir, progress, options)
        except (DownloadError, ArchiveError) as error:
            raise type(error)(f"sources.{name}.files.{key}: {error}") from error
    manifest = {"type": source["type"], "files": entries, "cache": str(cache_dir),
                "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if "index_url" in source:
        manifest["index_url"] = source["index_url"]
    write_json(manifest_path, manifest)
    return manifest


def verify_downloaded(manifest_path: str | Path, paths) -> None:
    """Check that each downloaded file among ``paths`` still has the sha256 its manifest recorded. A download
    is a hard link into the cache where the file system allows: a file edited in place after the download
    changes the cached copy too, and a build must not read it as the pinned data. Extracted archives are
    copies (the archive stays in the cache), so their folders are not checked here."""
    import hashlib
    import json

    manifest = json.loads(Path(manifest_path).read_text())
    wanted = {str(Path(p)) for p in paths}
    for key, entry in manifest["files"].items():
        path = Path(entry["path"])
        if "extracted_files" in entry or str(path) not in wanted:
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != entry["sha256"]:
            raise DownloadError(f"{path} (files.{key}): its sha256 {digest.hexdigest()} is not the {entry['sha256']} "
                                f"recorded when it was downloaded ({manifest_path}): it was changed afterwards. Delete "
                                f"{path} and {manifest_path} and rerun to fetch it again (the download cache "
                                "re-checks its copy and fetches anew if that was changed too)")


def _fetch_file(source: dict, spec: dict, output: Path, cache_dir: Path, progress: bool, options: dict) -> dict:
    started = time.perf_counter()
    pin = resolve_spec(source, spec, **options)
    archive = bool(spec.get("extract"))
    # An archive lives only in the cache; its output is the folder it is extracted into.
    got = download(pin["url"], None if archive else output, sha256=pin.get("sha256"), md5=pin.get("md5"),
                   cache_dir=cache_dir, progress=progress, pinned_by=pin["pinned_by"], **options)
    entry = {"url": pin["url"], "filename": spec["filename"], "path": str(output), "bytes": got["bytes"],
             "sha256": got["sha256"], "md5": got["md5"], "pinned_by": pin["pinned_by"], "resumed": got["resumed"],
             "attempts": got["attempts"], "from_cache": got["from_cache"]}
    if archive:
        entry["extracted_files"] = len(safe_extract(got["path"], output, name=spec["filename"]))
    log.info("%s: %d bytes, %s verified (pinned by %s)%s, in %.1f s", spec["filename"], got["bytes"],
             " and ".join(a for a in ("sha256", "md5") if pin.get(a)), pin["pinned_by"],
             " from the cache" if got["from_cache"] else "", time.perf_counter() - started)
    return entry


def resolve_spec(source: dict, spec: dict, timeout: float = 120, retries: int = 3, backoff: float = 1.0) -> dict:
    """Where to fetch a file spec from and what to verify it against: {url, sha256?, md5?, pinned_by}."""
    lookup = {"timeout": timeout, "retries": retries, "backoff": backoff}
    filename = spec["filename"]
    if "project" in spec:
        return resolve_package_file(source["index_url"], spec["project"], filename, spec["sha256"], **lookup)
    if "url" in spec:
        return {"url": spec["url"], "sha256": spec.get("sha256"), "md5": spec.get("md5"), "pinned_by": "config"}
    if "figshare_file" in spec:
        found = resolve_figshare_file(spec["article"], spec["figshare_file"], filename,
                                      api=source.get("figshare_api") or FIGSHARE_API, **lookup)
        return _merge_pins(found, spec, "figshare API")
    if "zenodo_record" in spec:
        found = resolve_zenodo_file(spec["zenodo_record"], filename,
                                    api=source.get("zenodo_api") or ZENODO_API, **lookup)
        return _merge_pins(found, spec, "Zenodo API")
    raise ValueError(f"{filename}: a file spec needs one of project, url, figshare_file, zenodo_record: {spec}")


def _merge_pins(found: dict, spec: dict, api: str) -> dict:
    """The API's checksum plus any the config pins; a config pin that contradicts the API is an error."""
    pins = {"url": found["url"], "pinned_by": api}
    for algo in ("sha256", "md5"):
        ours, theirs = spec.get(algo), found.get(algo)
        if ours and theirs and ours.lower() != theirs.lower():
            raise ChecksumError(f"{spec['filename']} ({found['url']}): the {api} reports {algo} {theirs}, "
                                f"but the config pins {ours}")
        if ours or theirs:
            pins[algo] = (ours or theirs).lower()
        if ours:
            pins["pinned_by"] = f"{api} and config"
    return pins
