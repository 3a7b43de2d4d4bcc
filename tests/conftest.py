"""Shared fixtures: a package index on 127.0.0.1 that serves local files (PEP 503 HTML pages), and a
fault-injecting HTTP server on 127.0.0.1 for download tests (``fault_server``)."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import re
import shutil
import socket
import threading
from pathlib import Path

import pytest

from drp.io import sha256sum


@pytest.fixture(scope="module")
def package_index(tmp_path_factory):
    """Call with {project: file}; returns the index URL. The server stops when the module ends."""
    root = tmp_path_factory.mktemp("index")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def publish(files: dict[str, Path]) -> str:
        for project, path in files.items():
            (root / "files").mkdir(exist_ok=True)
            shutil.copy(path, root / "files" / path.name)
            page = root / "simple" / project
            page.mkdir(parents=True, exist_ok=True)
            (page / "index.html").write_text(
                f'<html><body><a href="../../files/{path.name}#sha256={sha256sum(path)}">{path.name}</a></body></html>\n')
        return f"http://127.0.0.1:{server.server_address[1]}/simple"

    yield publish
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output readable
        pass


@dataclasses.dataclass
class Fault:
    """What ``fault_server`` does to one request instead of serving it plainly (every field optional)."""

    status: int | None = None       # answer this HTTP status, without the file
    drop_after: int | None = None   # announce the full Content-Length, send this many bytes, close the connection
    ignore_range: bool = False      # answer 200 with the whole file even when a Range is asked for
    stall_s: float = 0.0            # wait this long before answering (or, with stall_after, in mid-body)
    stall_after: int | None = None  # with stall_s: send the headers and this many bytes first, then wait
    redirect: str | None = None     # answer 302 pointing to this path on the same server
    headers: dict | None = None     # extra response headers (e.g. {"Retry-After": "1"})


@dataclasses.dataclass
class SeenRequest:
    path: str
    query: str
    headers: object      # the request's http.client.HTTPMessage: .get("Range") is case-insensitive
    status: int = 0      # what the server answered
    sent: int = 0        # body bytes the server wrote


class FaultServer:
    """A local HTTP server for download tests: serves ``{path: bytes}``, supports Range, injects faults.

    Use it through the ``fault_server`` fixture::

        fault_server.serve("/f.csv", data)              # or .serve_json("/api/x", obj)
        url = fault_server.url("/f.csv")
        fault_server.drop("/f.csv", after=1000)         # 1st request: connection dropped after 1000 bytes
        fault_server.fail("/f.csv", 503, times=2)       # next 2 requests: HTTP 503
        fault_server.always("/f.csv", fault_server.Fault(ignore_range=True))  # later requests: Range ignored
        fault_server.script("/f.csv", fault_server.Fault(status=503), fault_server.Fault(stall_s=2))
        ... download ...
        [r.headers.get("Range") for r in fault_server.requests_to("/f.csv")]  # and r.status, r.sent

    Faults (``fault_server.Fault``, fields below) are consumed one per request to the path, in the order
    they were added; once used up, the ``always`` fault (if any) applies, else the file is served
    normally: 200, or 206 with Content-Range for ``Range: bytes=N-`` / ``bytes=N-M``, 416 for a range past
    the end, 404 for an unknown path. A path registered with a query string (``/api?page=2``) is matched
    before the bare path. Stalls end early when the server stops, so a test never waits for them.
    """

    Fault = Fault  # so that test modules reach it through the fixture, without importing a conftest

    def __init__(self):
        self.files: dict[str, tuple[bytes, str]] = {}
        self.requests: list[SeenRequest] = []
        self._scripts: dict[str, list[Fault]] = {}
        self._always: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        handler = type("Handler", (_FaultHandler,), {"owner": self})
        self._server = _QuietThreadingServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        self.files[path] = (body, content_type)
        return self.url(path)

    def serve_json(self, path: str, obj) -> str:
        return self.serve(path, json.dumps(obj).encode(), "application/json")

    def script(self, path: str, *faults: Fault) -> None:
        with self._lock:
            self._scripts.setdefault(path, []).extend(faults)

    def fail(self, path: str, status: int, times: int = 1, headers: dict | None = None) -> None:
        self.script(path, *[Fault(status=status, headers=headers) for _ in range(times)])

    def drop(self, path: str, after: int, times: int = 1) -> None:
        self.script(path, *[Fault(drop_after=after) for _ in range(times)])

    def always(self, path: str, fault: Fault) -> None:
        self._always[path] = fault

    def requests_to(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def next_fault(self, path: str, seen: SeenRequest) -> Fault:
        with self._lock:
            self.requests.append(seen)
            script = self._scripts.get(path)
            if script:
                return script.pop(0)
            return self._always.get(path, Fault())

    def lookup(self, path: str, query: str):
        return self.files.get(f"{path}?{query}") if query and f"{path}?{query}" in self.files \
            else self.files.get(path)

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _QuietThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler stalled on purpose must not hold up the end of the test

    def handle_error(self, request, client_address):
        pass  # a client that timed out or hung up on purpose makes the handler's writes fail: expected


class _FaultHandler(http.server.BaseHTTPRequestHandler):
    owner: FaultServer

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        path, _, query = self.path.partition("?")
        seen = SeenRequest(path, query, self.headers)
        fault = self.owner.next_fault(path, seen)
        if fault.stall_s and fault.stall_after is None:
            self.owner.stopping.wait(fault.stall_s)
        if fault.redirect:
            return self._answer(seen, 302, b"", {"Location": self.owner.url(fault.redirect)})
        if fault.status:
            return self._answer(seen, fault.status, b"fault injected by the test\n", fault.headers or {})
        found = self.owner.lookup(path, query)
        if found is None:
            return self._answer(seen, 404, b"not found\n", {})
        body, content_type = found
        status, headers, payload = self._ranged(body, None if fault.ignore_range else self.headers.get("Range"))
        headers = {"Content-Type": content_type, "Accept-Ranges": "bytes", **headers, **(fault.headers or {})}
        self._answer(seen, status, payload, headers, fault)

    @staticmethod
    def _ranged(body: bytes, range_header: str | None):
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
        if not match:
            return 200, {}, body
        start = int(match.group(1))
        end = min(int(match.group(2)), len(body) - 1) if match.group(2) else len(body) - 1
        if start >= len(body):
            return 416, {"Content-Range": f"bytes */{len(body)}"}, b""
        return 206, {"Content-Range": f"bytes {start}-{end}/{len(body)}"}, body[start:end + 1]

    def _answer(self, seen: SeenRequest, status: int, payload: bytes, headers: dict, fault: Fault | None = None):
        seen.status = status
        self.send_response(status)
        for name, value in {"Content-Length": str(len(payload)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        fault = fault or Fault()
        cut = len(payload) if fault.drop_after is None else min(fault.drop_after, len(payload))
        first = cut if fault.stall_after is None else min(fault.stall_after, cut)
        self.wfile.write(payload[:first])
        seen.sent = first
        if fault.stall_after is not None:
            self.wfile.flush()
            self.owner.stopping.wait(fault.stall_s)
            self.wfile.write(payload[first:cut])
            seen.sent = cut
        if cut < len(payload):  # the fault: close the connection with the body incomplete
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.close_connection = True


@pytest.fixture
def fault_server():
    """A ``FaultServer`` on 127.0.0.1 (see its docstring), stopped at the end of the test."""
    server = FaultServer()
    yield server
    server.stop()
