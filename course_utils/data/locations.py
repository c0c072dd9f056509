"""Where datasets live: `COURSE_DATA_DIR`, then `data/` in the repository, then medmnist's own folder."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "COURSE_DATA_DIR"
OFFLINE_ENV = "COURSE_OFFLINE"
MEDMNIST_SUBDIR = "medmnist"


def repository_root() -> Path | None:
    """The course repository (the folder holding `pyproject.toml` and `notebooks/`), if we are in one."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2], *Path.cwd().resolve().parents, Path.cwd().resolve()]
    for folder in candidates:
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def data_roots() -> list[Path]:
    """Course data folders in search order: `$COURSE_DATA_DIR`, then `<repo>/data` (or `./data`)."""
    roots: list[Path] = []
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    if configured:
        roots.append(Path(configured).expanduser().resolve())
    repo = repository_root()
    roots.append((repo / "data") if repo else (Path.cwd() / "data").resolve())
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def medmnist_default_dir() -> Path:
    """The folder the `medmnist` package downloads to by default (`~/.medmnist`)."""
    try:
        from medmnist.info import DEFAULT_ROOT
    except ImportError:  # pragma: no cover - medmnist is a hard dependency
        DEFAULT_ROOT = "~/.medmnist"
    return Path(DEFAULT_ROOT).expanduser()


def medmnist_dirs() -> list[Path]:
    """Folders searched for MedMNIST `.npz` files, in order."""
    return [root / MEDMNIST_SUBDIR for root in data_roots()] + [medmnist_default_dir()]


def _is_writable(folder: Path) -> bool:
    """True if `folder` exists and is writable, or can be created."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK)


def download_root() -> Path:
    """The first writable data root: where downloads and unbundled files land."""
    for root in data_roots():
        if _is_writable(root):
            return root
    raise PermissionError(
        "None of the course data folders is writable: "
        + ", ".join(str(r) for r in data_roots())
        + f". Set {DATA_DIR_ENV} to a folder you can write to."
    )


def network_allowed() -> bool:
    """False when the learner asked for offline mode with `COURSE_OFFLINE=1`."""
    return os.environ.get(OFFLINE_ENV, "").strip() not in {"1", "true", "yes"}
