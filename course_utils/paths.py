"""Where runs keep their checkpoints: `$COURSE_CHECKPOINT_DIR`, else `checkpoints/` in the repository (or cwd).

A relative `COURSE_CHECKPOINT_DIR` is taken relative to the repository root, not to the working folder, so the
command line (run from the repository root) and the notebooks (whose kernels start in `notebooks/`) share one
folder; outside a repository it is relative to the current folder. `~` is expanded; an absolute path is used
as given (only normalised).
"""

from __future__ import annotations

import os
from pathlib import Path

from course_utils.data import locations

CHECKPOINT_ENV = "COURSE_CHECKPOINT_DIR"


def checkpoint_root() -> Path:
    """The folder that holds every run's checkpoints (created on demand)."""
    configured = os.environ.get(CHECKPOINT_ENV, "").strip()
    if configured:
        root = locations.resolve_course_dir(configured)
    else:
        root = (locations.repository_root() or Path.cwd()) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_dir(name: str) -> Path:
    """A named run's folder under the checkpoint root, e.g. `run_dir("02_dcgan_pneumoniamnist28_cpu")`."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"Run name {name!r} must be a plain folder name such as '02_dcgan_cpu'.")
    folder = checkpoint_root() / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
