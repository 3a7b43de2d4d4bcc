"""drp.download against a package index served on 127.0.0.1 from tmp_path (PEP 503 HTML, PEP 691 JSON)."""

from __future__ import annotations

import collections
import functools
import hashlib
import http.server
import json
import threading
import urllib.parse
from pathlib import Path

import pytest

from drp.download import ChecksumError, DownloadError, fetch_package_file, find_package_file

FILENAME = "pkg-1.0.tar.gz"
FILE_PATH = f"/files/{FILENAME}"
PAGE_PATH = "/simple/pkg/"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
OPTIONS = {"timeout": 5, "retries": 3, "backoff": 0.01, "progress": False}


def synthetic_package_bytes() -> bytes:
    """2.5 MiB, so the download is streamed in more than one 1 MiB chunk."""
    return hashlib.sha256(b"synthetic").digest() * (5 * 2**20 // 64)


class _State:
    """What the server does and what it saw; shared with the handler threads."""

    def __init__(self, root: Path):
        self.root = root
        self.lock = threading.Lock()
        self.requests = collections.Counter()  # path -> number of GET requests
        self.accept = {}                        # path -> last Accept header
        self.fail = collections.defaultdict(list)  # path -> status codes to answer first, in order
        self.truncate = collections.Counter()   # path -> number of answers to cut short

    def next_action(self, path, accept):
        with self.lock:
            self.requests[path] += 1
            self.accept[path] = accept
            if self.fail[path]:
                return "fail", self.fail[path].pop(0)
            if self.truncate[path]:
                self.truncate[path] -= 1
                return "truncate", None
            return "serve", None


class _Handler(http.server.SimpleHTTPRequestHandler):
    state: _State

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        action, code = self.state.next_action(path, self.headers.get("Accept", ""))
        if action == "fail":
            self.send_error(code)
            return
        local = self.state.root / path.lstrip("/")
        if action == "truncate":
            body = local.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.close_connection = True
            return
        json_page = local / "index.json"
        if path.endswith("/") and json_page.exists() and SIMPLE_JSON in self.headers.get("Accept", ""):
            body = json_page.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", SIMPLE_JSON)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


class LocalIndex:
    def __init__(self, root: Path, state: _State, port: int):
        self.root, self.state = root, state
        self.base = f"http://127.0.0.1:{port}"
        self.index_url = f"{self.base}/simple"
        self.file_url = f"{self.base}{FILE_PATH}"
        self.content = synthetic_package_bytes()
        self.sha256 = hashlib.sha256(self.content).hexdigest()
        (root / "files").mkdir()
        (root / "files" / FILENAME).write_bytes(self.content)
        (root / "simple" / "pkg").mkdir(parents=True)
        self.html_page(with_hash=True)

    def html_page(self, with_hash: bool):
        fragment = f"#sha256={self.sha256}" if with_hash else ""
        (self.root / "simple" / "pkg" / "index.html").write_text(
            "<!DOCTYPE html>\n<html><body>\n"
            '<a href="../../files/pkg-0.9.tar.gz#sha256=' + "0" * 64 + '">pkg-0.9.tar.gz</a><br/>\n'
            f'<a href="../../files/{FILENAME}{fragment}">{FILENAME}</a><br/>\n'
            "</body></html>\n")

    def json_page_only(self):
        (self.root / "simple" / "pkg" / "index.html").unlink()
        (self.root / "simple" / "pkg" / "index.json").write_text(json.dumps({
            "meta": {"api-version": "1.0"}, "name": "pkg",
            "files": [{"filename": "pkg-0.9.tar.gz", "url": "../../files/pkg-0.9.tar.gz", "hashes": {}},
                      {"filename": FILENAME, "url": f"../../files/{FILENAME}", "hashes": {"sha256": self.sha256}}],
        }))


@pytest.fixture
def index(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    state = _State(root)
    handler = type("Handler", (_Handler,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield LocalIndex(root, state, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def out_dir(tmp_path):
    directory = tmp_path / "downloads"
    directory.mkdir()
    return directory


def _assert_nothing_left(directory: Path):
    assert list(directory.iterdir()) == [], "a file or a .partial was left behind"


def test_fetch_success(index, out_dir):
    destination = out_dir / FILENAME
    entry = fetch_package_file(index.index_url, "pkg", FILENAME, index.sha256, destination, **OPTIONS)
    assert entry == {"url": index.file_url, "sha256": index.sha256, "bytes": len(index.content), "file": FILENAME}
    assert destination.read_bytes() == index.content
    assert [p.name for p in out_dir.iterdir()] == [FILENAME]  # no .partial left
    assert index.state.requests[PAGE_PATH] == 1 and index.state.requests[FILE_PATH] == 1


def test_fetch_accepts_an_upper_case_pin(index, out_dir):
    entry = fetch_package_file(index.index_url + "/", "pkg", FILENAME, index.sha256.upper(), out_dir / "x.tgz", **OPTIONS)
    assert entry["sha256"] == index.sha256 and entry["file"] == "x.tgz"


def test_find_package_file_reads_the_html_page(index):
    url, digest = find_package_file(index.index_url, "pkg", FILENAME, timeout=5, retries=0)
    assert (url, digest) == (index.file_url, index.sha256)
    index.html_page(with_hash=False)
    assert find_package_file(index.index_url, "pkg", FILENAME, timeout=5, retries=0) == (index.file_url, None)


def test_pin_differing_from_the_index_is_refused_before_downloading(index, out_dir):
    wrong = "f" * 64
    with pytest.raises(ChecksumError) as info:
        fetch_package_file(index.index_url, "pkg", FILENAME, wrong, out_dir / FILENAME, **OPTIONS)
    assert wrong in str(info.value) and index.sha256 in str(info.value)
    assert index.state.requests[FILE_PATH] == 0
    _assert_nothing_left(out_dir)


def test_wrong_checksum_of_the_download_leaves_nothing(index, out_dir):
    index.html_page(with_hash=False)  # the index does not vouch for a hash: the download is checked
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        fetch_package_file(index.index_url, "pkg", FILENAME, wrong, out_dir / FILENAME, **OPTIONS)
    assert index.file_url in str(info.value) and index.sha256 in str(info.value)
    assert index.state.requests[FILE_PATH] == 1  # a checksum mismatch is not retried
    _assert_nothing_left(out_dir)


def test_wrong_checksum_keeps_an_existing_file_untouched(index, out_dir):
    index.html_page(with_hash=False)
    destination = out_dir / FILENAME
    destination.write_bytes(b"the previous, good copy")
    with pytest.raises(ChecksumError):
        fetch_package_file(index.index_url, "pkg", FILENAME, "0" * 64, destination, **OPTIONS)
    assert destination.read_bytes() == b"the previous, good copy"
    assert [p.name for p in out_dir.iterdir()] == [FILENAME]


def test_transient_errors_are_retried(index, out_dir):
    index.state.fail[FILE_PATH] = [503, 503]
    entry = fetch_package_file(index.index_url, "pkg", FILENAME, index.sha256, out_dir / FILENAME, **OPTIONS)
    assert entry["bytes"] == len(index.content)
    assert index.state.requests[FILE_PATH] == 3
    assert (out_dir / FILENAME).read_bytes() == index.content
    assert [p.name for p in out_dir.iterdir()] == [FILENAME]


def test_transient_errors_on_the_index_page_are_retried(index, out_dir):
    index.state.fail[PAGE_PATH] = [502, 429]
    fetch_package_file(index.index_url, "pkg", FILENAME, index.sha256, out_dir / FILENAME, **OPTIONS)
    assert index.state.requests[PAGE_PATH] == 3


def test_a_truncated_download_is_retried(index, out_dir):
    index.state.truncate[FILE_PATH] = 1
    entry = fetch_package_file(index.index_url, "pkg", FILENAME, index.sha256, out_dir / FILENAME, **OPTIONS)
    assert entry["bytes"] == len(index.content)
    assert index.state.requests[FILE_PATH] == 2
    assert [p.name for p in out_dir.iterdir()] == [FILENAME]


def test_retries_run_out(index, out_dir):
    index.state.fail[FILE_PATH] = [503] * 10
    with pytest.raises(DownloadError) as info:
        fetch_package_file(index.index_url, "pkg", FILENAME, index.sha256, out_dir / FILENAME,
                           **{**OPTIONS, "retries": 2})
    assert index.file_url in str(info.value) and "503" in str(info.value)
    assert index.state.requests[FILE_PATH] == 3
    _assert_nothing_left(out_dir)


def test_not_found_fails_immediately(index, out_dir):
    (index.root / "files" / FILENAME).unlink()
    with pytest.raises(DownloadError) as info:
        fetch_package_file(index.index_url, "pkg", FILENAME, index.sha256, out_dir / FILENAME, **OPTIONS)
    assert index.file_url in str(info.value) and "404" in str(info.value)
    assert index.state.requests[FILE_PATH] == 1
    _assert_nothing_left(out_dir)


def test_unknown_project_fails_immediately(index, out_dir):
    with pytest.raises(DownloadError) as info:
        fetch_package_file(index.index_url, "nopkg", FILENAME, index.sha256, out_dir / FILENAME, **OPTIONS)
    assert f"{index.index_url}/nopkg/" in str(info.value) and "404" in str(info.value)
    assert index.state.requests["/simple/nopkg/"] == 1
    _assert_nothing_left(out_dir)


def test_file_missing_from_the_index_page(index, out_dir):
    with pytest.raises(DownloadError, match="pkg-2.0.tar.gz is not listed"):
        fetch_package_file(index.index_url, "pkg", "pkg-2.0.tar.gz", index.sha256, out_dir / "pkg-2.0.tar.gz", **OPTIONS)
    _assert_nothing_left(out_dir)


def test_json_simple_api(index, out_dir):
    index.json_page_only()
    url, digest = find_package_file(index.index_url, "pkg", FILENAME, timeout=5, retries=0)
    assert (url, digest) == (index.file_url, index.sha256)
    assert SIMPLE_JSON in index.state.accept[PAGE_PATH]
    entry = fetch_package_file(index.index_url, "pkg", FILENAME, index.sha256, out_dir / FILENAME, **OPTIONS)
    assert entry == {"url": index.file_url, "sha256": index.sha256, "bytes": len(index.content), "file": FILENAME}
    assert (out_dir / FILENAME).read_bytes() == index.content
    with pytest.raises(ChecksumError):  # the JSON page's hash is checked against the pin too
        fetch_package_file(index.index_url, "pkg", FILENAME, "1" * 64, out_dir / "other", **OPTIONS)
    assert not (out_dir / "other").exists()
