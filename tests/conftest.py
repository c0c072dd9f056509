"""Shared fixtures: the dataset mirror (when present), isolated data folders, a loopback file server."""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import matplotlib
import pytest

from course_utils.locations import resolve_course_dir

matplotlib.use("Agg")
os.environ.setdefault("COURSE_HEADLESS", "1")

# tests/browser (JupyterLab + headless Chromium, minutes) runs in `make test-browser` only, not in `make test`
collect_ignore = [] if os.environ.get("COURSE_BROWSER_TESTS") == "1" else ["browser"]

_CONFIGURED = os.environ.get("COURSE_DATA_DIR", "").strip()
MIRROR = (resolve_course_dir(_CONFIGURED) if _CONFIGURED
          else (Path(__file__).resolve().parents[2] / "shared" / "data").resolve())


def mirror_or_skip() -> Path:
    """The dataset mirror folder; skip (visibly, with the reason) where this machine has none."""
    if not (MIRROR / "medmnist" / "breastmnist.npz").is_file():
        pytest.skip(f"needs the dataset mirror (COURSE_DATA_DIR); none at {MIRROR}")
    return MIRROR


@pytest.fixture
def mirror(monkeypatch) -> Path:
    """The dataset mirror, with COURSE_DATA_DIR pointing at it for this test (whatever the shell set)."""
    folder = mirror_or_skip()
    monkeypatch.setenv("COURSE_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def empty_data(tmp_path, monkeypatch) -> Path:
    """A fresh, empty COURSE_DATA_DIR; the repo's data/ and ~/.medmnist are hidden; offline by default."""
    root = tmp_path / "course-data"
    root.mkdir()
    monkeypatch.setenv("COURSE_DATA_DIR", str(root))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    from course_utils import locations

    monkeypatch.setattr(locations, "repository_root", lambda: None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(locations, "medmnist_default_dir", lambda: tmp_path / "no-medmnist-home")
    return root


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[bytes, int | None]] = {}

    def do_GET(self):  # noqa: N802 - http.server API
        body, declared = self.routes.get(self.path, (None, None))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(declared if declared is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)  # when declared > len(body) the connection closes early: an interrupted download

    def log_message(self, *args):
        pass


@pytest.fixture
def file_server():
    """Serve byte strings on 127.0.0.1: `serve(path, body, declared_length=None) -> url`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.routes = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(path: str, body: bytes, declared_length: int | None = None) -> str:
        _Handler.routes[path] = (body, declared_length)
        return f"http://127.0.0.1:{server.server_address[1]}{path}"

    yield serve
    server.shutdown()
    server.server_close()


@pytest.fixture
def one_thread():
    """Run a test with one CPU thread (steadier for small models when other programs share the CPU)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
