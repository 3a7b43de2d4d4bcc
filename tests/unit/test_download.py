"""drp.acquire.download against a package index served on 127.0.0.1 from tmp_path (PEP 503 HTML, PEP 691 JSON); the
figshare and Zenodo resolvers and drp.acquire.fetch.fetch_source against fake APIs on the fault_server fixture."""

from __future__ import annotations

import collections
import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import tarfile
import threading
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from drp.acquire.archive import ArchiveError
from drp.acquire.download import (ChecksumError, DownloadError, download, find_package_file, resolve_figshare_file,
                                  resolve_package_file, resolve_zenodo_file)
from drp.acquire.fetch import fetch_source

FILENAME = "pkg-1.0.tar.gz"
FILE_PATH = f"/files/{FILENAME}"
PAGE_PATH = "/simple/pkg/"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
OPTIONS = {"timeout": 5, "retries": 3, "backoff": 0.01, "progress": False}


def fetch_package_file(index_url: str, project: str, filename: str, sha256: str, destination, **options) -> dict:
    """A package file as the download rule fetches one (drp.acquire.fetch): resolved on the index, then downloaded."""
    lookup = {k: v for k, v in options.items() if k in ("timeout", "retries", "backoff")}
    pin = resolve_package_file(index_url, project, filename, sha256, **lookup)
    options.setdefault("pinned_by", pin["pinned_by"])
    return download(pin["url"], destination, sha256=pin["sha256"], **options)


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


def _expected_entry(index: LocalIndex, destination: Path) -> dict:
    """download()'s manifest entry for one clean, uncached fetch of the package file."""
    return {"url": index.file_url, "file": destination.name, "path": str(destination), "bytes": len(index.content),
            "sha256": index.sha256, "md5": hashlib.md5(index.content).hexdigest(), "resumed": False,
            "attempts": 1, "from_cache": False}


def _assert_nothing_left(directory: Path):
    assert list(directory.iterdir()) == [], "a file or a .partial was left behind"


def test_fetch_success(index, out_dir):
    destination = out_dir / FILENAME
    entry = fetch_package_file(index.index_url, "pkg", FILENAME, index.sha256, destination, **OPTIONS)
    assert entry == _expected_entry(index, destination)
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
    # This server (SimpleHTTPRequestHandler) ignores Range, so the second request is read from zero.
    assert not entry["resumed"] and entry["attempts"] == 2
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
    assert entry == _expected_entry(index, out_dir / FILENAME)
    assert (out_dir / FILENAME).read_bytes() == index.content
    with pytest.raises(ChecksumError):  # the JSON page's hash is checked against the pin too
        fetch_package_file(index.index_url, "pkg", FILENAME, "1" * 64, out_dir / "other", **OPTIONS)
    assert not (out_dir / "other").exists()


# --- figshare and Zenodo resolution, and fetch_source end to end (on the fault_server fixture) ------------------

def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def _tar_gz_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FIGSHARE_PAGE = "/figshare/articles/{article}/files?page={page}&page_size=1000"


def publish_figshare(server, article: int, files: dict[int, tuple[str, bytes]], filler: int = 0) -> str:
    """An article's file list on the API (``filler`` dummy entries first, to make it span pages)."""
    entries = [{"id": 10_000 + i, "name": f"other{i}.csv", "size": 1, "computed_md5": "0" * 32,
                "download_url": server.url(f"/nd/{10_000 + i}")} for i in range(filler)]
    for file_id, (name, data) in files.items():
        server.serve(f"/nd/files/{file_id}", data)
        entries.append({"id": file_id, "name": name, "size": len(data), "computed_md5": _md5(data),
                        "download_url": server.url(f"/nd/files/{file_id}")})
    pages = [entries[i:i + 1000] for i in range(0, len(entries) + 1, 1000)]  # a last short (maybe empty) page
    for number, page in enumerate(pages, start=1):
        server.serve_json(FIGSHARE_PAGE.format(article=article, page=number), page)
    return server.url("/figshare")


def publish_zenodo(server, record: int, files: dict[str, bytes], rdm_form: bool = False) -> str:
    entries = []
    for name, data in files.items():
        server.serve(f"/zenodo-files/{record}/{name}", data)
        entries.append({"key": name, "size": len(data), "checksum": f"md5:{_md5(data)}",
                        "links": {"self": server.url(f"/zenodo-files/{record}/{name}")}})
    listing = {"enabled": True, "entries": {e["key"]: e for e in entries}} if rdm_form else entries
    server.serve_json(f"/zenodo/records/{record}", {"id": record, "files": listing})
    return server.url("/zenodo")


def test_figshare_file_is_resolved_across_pages(fault_server):
    api = publish_figshare(fault_server, 24667905, {43746708: ("Model.csv", b"ModelID\nACH-000001\n")}, filler=1000)
    found = resolve_figshare_file(24667905, 43746708, "Model.csv", api=api, timeout=5, retries=0)
    assert found == {"url": fault_server.url("/nd/files/43746708"), "md5": _md5(b"ModelID\nACH-000001\n"),
                     "size": 19, "name": "Model.csv"}
    assert [r.query for r in fault_server.requests_to("/figshare/articles/24667905/files")] == \
        ["page=1&page_size=1000", "page=2&page_size=1000"]


def test_figshare_file_by_name_when_the_id_is_absent(fault_server):
    api = publish_figshare(fault_server, 1, {5: ("Model.csv", b"x")})
    assert resolve_figshare_file(1, 999, "Model.csv", api=api, retries=0)["url"].endswith("/nd/files/5")


def test_figshare_errors_name_the_article_and_what_it_has(fault_server):
    api = publish_figshare(fault_server, 1, {5: ("Model.csv", b"x")})
    with pytest.raises(DownloadError, match=r"figshare article 1 .*no file with id 6 or name 'Gone.csv'.*Model.csv"):
        resolve_figshare_file(1, 6, "Gone.csv", api=api, retries=0)
    with pytest.raises(DownloadError, match="file 5 is named 'Model.csv', but the config names it 'OmicsCNGene.csv'"):
        resolve_figshare_file(1, 5, "OmicsCNGene.csv", api=api, retries=0)
    with pytest.raises(DownloadError, match="HTTP 404"):
        resolve_figshare_file(2, 5, "Model.csv", api=api, retries=0)


def test_figshare_web_download_host_is_replaced():
    from drp.acquire.download import _figshare_download_url
    assert _figshare_download_url("https://figshare.com/ndownloader/files/43746708") == \
        "https://ndownloader.figshare.com/files/43746708"
    other = "https://ndownloader.figshare.com/files/1"
    assert _figshare_download_url(other) == other


@pytest.mark.parametrize("rdm_form", [False, True])
def test_zenodo_file_is_resolved(fault_server, rdm_form):
    api = publish_zenodo(fault_server, 21807175, {"meta.zip": b"zip bytes", "CTRPv2.zip": b"other"}, rdm_form)
    found = resolve_zenodo_file(21807175, "meta.zip", api=api, retries=0)
    assert found == {"url": fault_server.url("/zenodo-files/21807175/meta.zip"), "md5": _md5(b"zip bytes"),
                     "size": 9, "name": "meta.zip"}
    with pytest.raises(DownloadError,
                       match=r"Zenodo record 21807175 .*no file named 'GDSC9.zip'.*'CTRPv2.zip', 'meta.zip'"):
        resolve_zenodo_file(21807175, "GDSC9.zip", api=api, retries=0)


def test_zenodo_url_is_built_when_the_record_has_no_link(fault_server):
    fault_server.serve_json("/zenodo/records/7", {"files": [{"key": "a b.csv", "checksum": "md5:" + "1" * 32}]})
    found = resolve_zenodo_file(7, "a b.csv", api=fault_server.url("/zenodo"), retries=0)
    assert found["url"] == fault_server.url("/zenodo/records/7/files/a%20b.csv/content")


def _source_outputs(name: str, source: dict, root: Path) -> dict[str, str]:
    """What source_file_outputs in workflow/rules/common.smk gives the rule (under ``root``)."""
    return {key: str(root / "resources" / name / (key if spec.get("extract") else spec["filename"]))
            for key, spec in source["files"].items()}


@pytest.fixture
def every_kind(fault_server, tmp_path):
    """A source with one file of each kind, two of them archives to extract."""
    package, plain = b"package bytes" * 1000, b"cell_line,auc\nA,0.5\n"
    model, meta = b"ModelID\nACH-000001\n", _zip_bytes({"meta/tissue_mapping.csv": b"a,b\n", "meta/x.txt": b"x"})
    expanded = _tar_gz_bytes({"CTRPv2/v20.meta.per_compound.txt": b"master_cpd_id\n1\n"})
    fault_server.serve("/files/pkg-1.0.tar.gz", package)
    fault_server.serve("/simple/pkg/", f'<a href="../../files/pkg-1.0.tar.gz#sha256={_sha256(package)}">x</a>'.encode(),
                       "text/html")
    fault_server.serve("/gdsc/GDSC2.csv", plain)
    fault_server.serve("/ctrp/expanded.tar.gz", expanded)
    source = {"type": "drevalpy", "timeout_s": 5, "retries": 2,
              "index_url": fault_server.url("/simple"),
              "figshare_api": publish_figshare(fault_server, 24667905, {43746708: ("Model.csv", model)}),
              "zenodo_api": publish_zenodo(fault_server, 21807175, {"meta.zip": meta}),
              "files": {"package": {"project": "pkg", "filename": "pkg-1.0.tar.gz", "sha256": _sha256(package)},
                        "response": {"url": fault_server.url("/gdsc/GDSC2.csv"), "filename": "GDSC2.csv",
                                     "sha256": _sha256(plain)},
                        "models": {"figshare_file": 43746708, "article": 24667905, "filename": "Model.csv"},
                        "meta": {"zenodo_record": 21807175, "filename": "meta.zip", "extract": True},
                        "ctrp": {"url": fault_server.url("/ctrp/expanded.tar.gz"), "filename": "expanded.tar.gz",
                                 "md5": _md5(expanded), "extract": True}}}
    root = tmp_path / "work"
    return source, _source_outputs("mixed", source, root), root / "resources" / "mixed" / "manifest.json", \
        tmp_path / "cache", {"package": package, "response": plain, "models": model, "meta": meta, "ctrp": expanded}


def test_fetch_source_fetches_every_kind_and_extracts_archives(fault_server, every_kind):
    source, outputs, manifest_path, cache, contents = every_kind
    manifest = fetch_source(source, outputs, manifest_path, cache_dir=cache, progress=False, backoff=0.01)
    assert json.loads(manifest_path.read_text()) == manifest and manifest["type"] == "drevalpy"
    for key in ("package", "response", "models"):
        assert Path(outputs[key]).read_bytes() == contents[key]
    assert (Path(outputs["meta"]) / "meta" / "tissue_mapping.csv").read_bytes() == b"a,b\n"
    assert (Path(outputs["ctrp"]) / "CTRPv2" / "v20.meta.per_compound.txt").is_file()
    assert not any(name.endswith(".zip") for name in os.listdir(Path(outputs["meta"]).parent))  # archives: cache only
    files = manifest["files"]
    assert {key: entry["pinned_by"] for key, entry in files.items()} == {
        "package": "config and package index", "response": "config", "models": "figshare API",
        "meta": "Zenodo API", "ctrp": "config"}
    for key, entry in files.items():
        assert entry["sha256"] == _sha256(contents[key]) and entry["md5"] == _md5(contents[key])
        assert entry["bytes"] == len(contents[key]) and entry["path"] == outputs[key]
        assert entry["filename"] == source["files"][key]["filename"] and entry["url"].startswith(fault_server.base)
        assert entry["attempts"] == 1 and entry["resumed"] is False and entry["from_cache"] is False
    assert files["meta"]["extracted_files"] == 2 and files["ctrp"]["extracted_files"] == 1


def test_fetch_source_again_uses_the_cache(fault_server, every_kind):
    source, outputs, manifest_path, cache, contents = every_kind
    fetch_source(source, outputs, manifest_path, cache_dir=cache, progress=False, backoff=0.01)
    file_requests = len([r for r in fault_server.requests if r.path.startswith(("/files/", "/gdsc/", "/nd/", "/ctrp/",
                                                                                "/zenodo-files/"))])
    for path in outputs.values():  # every output deleted, as `snakemake --forcerun` would
        shutil.rmtree(path) if Path(path).is_dir() else os.unlink(path)
    manifest = fetch_source(source, outputs, manifest_path, cache_dir=cache, progress=False, backoff=0.01)
    assert all(entry["from_cache"] and entry["attempts"] == 0 for entry in manifest["files"].values())
    assert len([r for r in fault_server.requests if r.path.startswith(("/files/", "/gdsc/", "/nd/", "/ctrp/",
                                                                       "/zenodo-files/"))]) == file_requests == 5
    assert (Path(outputs["meta"]) / "meta" / "x.txt").read_bytes() == b"x"


def test_fetch_source_config_pin_must_agree_with_the_api(fault_server, every_kind):
    source, outputs, manifest_path, cache, _ = every_kind
    source["files"] = {"meta": {**source["files"]["meta"], "md5": "f" * 32}}
    with pytest.raises(ChecksumError) as info:
        fetch_source(source, outputs, manifest_path, cache_dir=cache, progress=False, backoff=0.01)
    assert "sources.mixed.files.meta:" in str(info.value) and "f" * 32 in str(info.value)
    assert "Zenodo API reports md5" in str(info.value)
    assert fault_server.requests_to("/zenodo-files/21807175/meta.zip") == [] and not manifest_path.exists()


def test_fetch_source_reports_a_broken_archive_by_key_and_file(fault_server, every_kind):
    source, outputs, manifest_path, cache, contents = every_kind
    broken = contents["ctrp"][: len(contents["ctrp"]) // 2]  # the source itself publishes a cut archive
    fault_server.serve("/ctrp/expanded.tar.gz", broken)
    source["files"] = {"ctrp": {**source["files"]["ctrp"], "md5": _md5(broken)}}
    with pytest.raises(ArchiveError) as info:
        fetch_source(source, outputs, manifest_path, cache_dir=cache, progress=False, backoff=0.01)
    message = str(info.value)
    assert "sources.mixed.files.ctrp:" in message and "expanded.tar.gz" in message and "truncated" in message
    assert not Path(outputs["ctrp"]).exists() and not manifest_path.exists()


def test_fetch_source_refuses_a_zip_slip_archive(fault_server, every_kind, tmp_path):
    source, outputs, manifest_path, cache, _ = every_kind
    evil = _zip_bytes({"ok.txt": b"ok", "../../escaped.txt": b"pwned"})
    fault_server.serve("/evil.zip", evil)
    source["files"] = {"meta": {"url": fault_server.url("/evil.zip"), "filename": "evil.zip", "sha256": _sha256(evil),
                                "extract": True}}
    with pytest.raises(ArchiveError, match="'../../escaped.txt' points outside"):
        fetch_source(source, outputs, manifest_path, cache_dir=cache, progress=False, backoff=0.01)
    assert not list(tmp_path.rglob("escaped.txt")) and not Path(outputs["meta"]).exists()


def test_fetch_source_error_names_the_source_and_key(fault_server, every_kind):
    source, outputs, manifest_path, cache, _ = every_kind
    source["files"] = {"response": {**source["files"]["response"], "url": fault_server.url("/gdsc/gone.csv")}}
    expected = r"sources\.mixed\.files\.response: download .*/gdsc/gone.csv \(GDSC2.csv\): HTTP 404"
    with pytest.raises(DownloadError, match=expected):
        fetch_source(source, outputs, manifest_path, cache_dir=cache, progress=False, backoff=0.01)


def test_a_download_changed_after_fetching_is_refused_before_the_build(tmp_path):
    """SYNTHETIC: a downloaded file is a hard link into the cache; edited in place, it was read by the build
    as if it were the pinned data (and the cache was corrupted with it)."""
    import hashlib
    import json

    from drp.acquire.fetch import verify_downloaded
    from drp.stages.prepare import build_dataset

    data = tmp_path / "resources" / "src" / "table.csv"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"a,b\n1,2\n")
    manifest = tmp_path / "resources" / "src" / "manifest.json"
    manifest.write_text(json.dumps({"files": {"table": {"path": str(data), "sha256": hashlib.sha256(data.read_bytes()).hexdigest()}}}))
    verify_downloaded(manifest, [data])  # unchanged: fine
    data.write_bytes(b"a,b\n1,3\n")  # edited in place
    with pytest.raises(DownloadError, match=r"table.csv \(files.table\): its sha256 .* is not the .* recorded when it "
                                            r"was downloaded .*Delete"):
        verify_downloaded(manifest, [data])
    with pytest.raises(DownloadError, match="changed afterwards"):  # the build stage checks before any source code reads
        build_dataset({"table": str(data), "download_manifest": str(manifest)}, "gdsc", {}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
