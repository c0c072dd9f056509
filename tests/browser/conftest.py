"""Fixtures of the browser test (`make test-browser`): a JupyterLab server and a headless Chromium page."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from browser_setup import find_chromium  # noqa: E402


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.fail("no Chromium: run `make test-browser` (it installs one) or set CHROMIUM=/path/to/chromium")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """(base URL, token, folder): JupyterLab on a free port serving copies of the notebooks, smoke profile.

    The notebooks are copies so that JupyterLab's autosave never writes outputs into notebooks/. Checkpoints go
    to a fresh folder, so notebook 02 really trains instead of loading an earlier run.
    """
    root = tmp_path_factory.mktemp("lab")
    folder = root / "notebooks"
    folder.mkdir()
    for path in sorted((REPO_ROOT / "notebooks").glob("0[12]_*.ipynb")):
        shutil.copy2(path, folder / path.name)
    settings = root / "settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "apputils-extension").mkdir(parents=True)
    # every cell in the page (JupyterLab 4 otherwise renders only the cells in view)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    # no "Would you like to get notified about official Jupyter news?" toast over the notebook, no news fetch
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    port, token = free_port(), secrets.token_hex(16)
    env = {key: value for key, value in os.environ.items() if key not in ("COURSE_HEADLESS", "MPLBACKEND")}
    env.update(COURSE_PROFILE="smoke", COURSE_CHECKPOINT_DIR=str(root / "checkpoints"),
               JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(root / "settings"))
    log = open(root / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
         "--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start; log:\n{(root / 'jupyterlab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield base, token, folder
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()
