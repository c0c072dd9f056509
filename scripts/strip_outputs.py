"""Remove outputs and execution counts from course notebooks before committing them.

Usage: `.venv/bin/python scripts/strip_outputs.py [notebooks/NN_name.ipynb ...]` (no arguments: every notebook).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

from course_utils.runner import REPO_ROOT, course_notebooks, strip_outputs


def main(paths: list[str]) -> None:
    """Strip the named notebooks, or every course notebook when none are named."""
    targets = [Path(p) for p in paths] or course_notebooks(REPO_ROOT / "notebooks")
    for path in targets:
        nbformat.write(strip_outputs(nbformat.read(path, as_version=4)), path)
        print(f"stripped {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
