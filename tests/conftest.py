"""Shared fixtures: a package index on 127.0.0.1 that serves local files (PEP 503 HTML pages)."""

from __future__ import annotations

import functools
import http.server
import shutil
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
