"""Execute notebooks in the smoke profile and store only the expected outputs of `# NBVAL_CHECK_OUTPUT` cells.

Usage: `.venv/bin/python scripts/refresh_checked_outputs.py notebooks/01_gan_theory_and_loss_math.ipynb`.
Without arguments it only strips outputs (keeping existing checked outputs) of every notebook.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

from course_utils.runner import REPO_ROOT, course_notebooks, execute_notebook, strip_outputs


def main(paths: list[str]) -> None:
    """Refresh the named notebooks, or strip all of them when none are named."""
    if not paths:
        for path in course_notebooks(REPO_ROOT / "notebooks"):
            nbformat.write(strip_outputs(nbformat.read(path, as_version=4)), path)
        return
    for name in paths:
        path = Path(name)
        notebook = nbformat.read(path, as_version=4)
        execute_notebook(notebook, path.parent, "smoke")
        nbformat.write(strip_outputs(notebook), path)
        print(f"refreshed {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
