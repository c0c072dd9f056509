"""Install what `make test-browser` needs when it is missing: Playwright for Python and a Chromium.

Playwright comes from PyPI (into the running environment); Chromium is Debian's `chromium` package (with
`chromium-driver`), installed with apt when this runs as root on a machine with apt-get. Playwright drives that
browser through `executable_path`, so Playwright's own browser download is not needed. `CHROMIUM=/path` names
another Chromium or Chrome. Prints the browser it found; exits 1 with what to install when it cannot.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The Chromium to drive: `$CHROMIUM`, else the first of CANDIDATES on PATH."""
    configured = os.environ.get("CHROMIUM", "").strip()
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return next((path for path in map(shutil.which, CANDIDATES) if path), None)


def main() -> int:
    """Install the missing parts, then report the browser; 1 when something is still missing."""
    if importlib.util.find_spec("playwright") is None:
        print("browser test: installing Playwright for Python with pip ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "playwright>=1.40"], check=True)
    chromium = find_chromium()
    if chromium is None and shutil.which("apt-get") and os.geteuid() == 0:
        print("browser test: installing Debian's chromium and chromium-driver with apt-get ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"],
                       check=True, env=env)
        chromium = find_chromium()
    if chromium is None:
        print("browser test: no Chromium found. Install one (Debian/Ubuntu: `sudo apt install chromium "
              "chromium-driver`) or set CHROMIUM=/path/to/chromium.", file=sys.stderr)
        return 1
    print(f"browser test: using {chromium}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
