"""Fetch pinned files over HTTP(S): streamed, checksummed, atomically renamed.

Package files are located through the Python package index's Simple API (PEP 691 JSON, or the PEP 503
HTML page that every mirror serves), so a cluster behind a PyPI mirror only changes ``index_url``.
We do not call ``pip download``: for an sdist it runs the package's setup code before any checksum
could be verified.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .io import atomic_path

log = logging.getLogger(__name__)

_SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
_TRANSIENT_HTTP = {429, 500, 502, 503, 504}


class ChecksumError(RuntimeError):
    pass


class DownloadError(RuntimeError):
    pass


def _open(url: str, timeout: float, accept: str | None = None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    return urllib.request.urlopen(request, timeout=timeout)


def _with_retries(action, what: str, retries: int, backoff: float):
    for attempt in range(retries + 1):
        try:
            return action()
        except urllib.error.HTTPError as error:
            if error.code not in _TRANSIENT_HTTP or attempt == retries:
                raise DownloadError(f"{what}: HTTP {error.code} {error.reason}") from error
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            if attempt == retries:
                raise DownloadError(f"{what}: {error}") from error
        wait = backoff * 2**attempt
        log.warning("%s failed (attempt %d of %d); retrying in %.1f s", what, attempt + 1, retries + 1, wait)
        time.sleep(wait)


def find_package_file(index_url: str, project: str, filename: str, timeout: float = 60,
                      retries: int = 3, backoff: float = 1.0) -> tuple[str, str | None]:
    """Return (url, sha256 the index reports or None) of ``filename`` in ``project`` on the index."""
    page_url = f"{index_url.rstrip('/')}/{project}/"

    def read_page():
        with _open(page_url, timeout, accept=f"{_SIMPLE_JSON}, text/html;q=0.1") as response:
            return response.headers.get("Content-Type", ""), response.read().decode()

    content_type, body = _with_retries(read_page, f"index page {page_url}", retries, backoff)
    if _SIMPLE_JSON in content_type or body.lstrip().startswith("{"):
        for entry in json.loads(body)["files"]:
            if entry["filename"] == filename:
                return urllib.parse.urljoin(page_url, entry["url"]), entry.get("hashes", {}).get("sha256")
    else:
        for href in re.findall(r'href="([^"]+)"', body):
            url, _, fragment = urllib.parse.urljoin(page_url, href).partition("#")
            if url.rsplit("/", 1)[-1] == filename:
                digest = fragment.partition("sha256=")[2] or None
                return url, digest
    raise DownloadError(f"{filename} is not listed on the package index page {page_url}")


def download(url: str, destination: str | Path, sha256: str, timeout: float = 60, retries: int = 3,
             backoff: float = 1.0, progress: bool = True) -> dict:
    """Stream ``url`` to ``destination`` and verify its sha256 before it appears under that name.

    Returns a manifest entry (url, sha256, bytes). On a checksum mismatch nothing is left behind.
    """
    destination = Path(destination)

    def fetch():
        with atomic_path(destination) as tmp, _open(url, timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            digest, size = hashlib.sha256(), 0
            with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=destination.name,
                                              disable=not progress, mininterval=1.0) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
            if total is not None and size != total:
                raise ConnectionError(f"connection closed after {size} of {total} bytes")
            if digest.hexdigest() != sha256.lower():
                raise ChecksumError(
                    f"{url}: sha256 is {digest.hexdigest()}, expected {sha256} (from the config). "
                    f"The file was not kept; check the pinned checksum or the source."
                )
            return size

    size = _with_retries(fetch, f"download {url}", retries, backoff)
    return {"url": url, "sha256": sha256.lower(), "bytes": size, "file": destination.name}


def fetch_package_file(index_url: str, project: str, filename: str, sha256: str, destination: str | Path,
                       **options) -> dict:
    """Locate a pinned package file on the index, download it and verify it."""
    url, index_sha256 = find_package_file(index_url, project, filename,
                                          **{k: v for k, v in options.items() if k != "progress"})
    if index_sha256 and index_sha256.lower() != sha256.lower():
        raise ChecksumError(
            f"{filename}: the package index reports sha256 {index_sha256}, but the config pins {sha256}"
        )
    return download(url, destination, sha256, **options)
