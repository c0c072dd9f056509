"""Where things live: datasets (`COURSE_DATA_DIR`, then `data/` in the repository, then medmnist's own folder)
and run checkpoints (`COURSE_CHECKPOINT_DIR`, else `checkpoints/` in the repository, or in the current folder).

A relative `COURSE_DATA_DIR` (or `COURSE_CHECKPOINT_DIR`) is read against the repository root, not the
current folder, so the command line (started in the repository) and the notebooks (whose kernels start in
`notebooks/`) use the same folder. Outside a repository it is read against the current folder.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

DATA_DIR_ENV = "COURSE_DATA_DIR"
CHECKPOINT_ENV = "COURSE_CHECKPOINT_DIR"
OFFLINE_ENV = "COURSE_OFFLINE"
MEDMNIST_SUBDIR = "medmnist"
_TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off", "n", "f"})


def repository_root() -> Path | None:
    """The course repository (the folder holding `pyproject.toml` and `notebooks/`), if we are in one."""
    here = Path(__file__).resolve()  # <repo>/course_utils/locations.py in a clone (also an editable install)
    cwd = Path.cwd().resolve()
    candidates = [here.parents[1], cwd, *cwd.parents]
    for folder in candidates:
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def resolve_course_dir(value: str) -> Path:
    """An absolute folder for a `COURSE_*_DIR` value: `~` expanded, relative paths taken from the repository root."""
    path = Path(value.strip()).expanduser()
    if not path.is_absolute():
        path = (repository_root() or Path.cwd()) / path
    return path.resolve()


def data_roots() -> list[Path]:
    """Course data folders in search order: `$COURSE_DATA_DIR`, then `<repo>/data` (or `./data`)."""
    roots: list[Path] = []
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    if configured:
        roots.append(resolve_course_dir(configured))
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
    """True if `folder` exists and is a writable folder, or can be created."""
    probe = folder
    try:
        while not probe.exists():
            probe = probe.parent
        return probe.is_dir() and os.access(probe, os.W_OK)
    except OSError:  # an unreadable folder on the way
        return False


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


def offline_requested() -> bool:
    """True when `COURSE_OFFLINE` asks for no network: 1/true/yes/on in any case (0/false/no/off: online)."""
    value = os.environ.get(OFFLINE_ENV, "").strip().lower()
    if value in _TRUE_WORDS:
        return True
    if value in _FALSE_WORDS:
        return False
    warnings.warn(
        f"{OFFLINE_ENV}={os.environ[OFFLINE_ENV]!r} is not a yes/no value; treating it as offline (no downloads). "
        f"Use {OFFLINE_ENV}=1 for offline or {OFFLINE_ENV}=0 to allow downloads.",
        stacklevel=2,
    )
    return True


def network_allowed() -> bool:
    """False when the learner asked for offline mode (`COURSE_OFFLINE=1`, `true`, `yes`, `on`)."""
    return not offline_requested()


def offline_hint() -> str:
    """How to allow downloads again, for messages shown when `COURSE_OFFLINE` forbids them."""
    return (f"Downloads are off because {OFFLINE_ENV}={os.environ.get(OFFLINE_ENV, '')!r}; allow them with "
            f"`unset {OFFLINE_ENV}` (or `{OFFLINE_ENV}=0`), or in a notebook `%env {OFFLINE_ENV}=0`.")


def present(path: Path, kind: str = "file") -> bool:
    """True if `path` is a file (or folder, `kind="dir"`) or cannot be looked at (so it is reported, not skipped)."""
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except OSError:  # e.g. PermissionError on a folder we may not enter: a copy we must report as unreadable
        return True


def checkpoint_root() -> Path:
    """The folder that holds every run's checkpoints (created on demand)."""
    configured = os.environ.get(CHECKPOINT_ENV, "").strip()
    root = resolve_course_dir(configured) if configured else (repository_root() or Path.cwd()) / "checkpoints"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(error.errno, f"cannot create the checkpoint folder {root} ({error.strerror}); set "
                      f"{CHECKPOINT_ENV} to a folder you can write to", str(root)) from error
    return root


def run_dir(name: str) -> Path:
    """A named run's folder under the checkpoint root, e.g. `run_dir("02_dcgan_pneumoniamnist28_cpu")`."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"Run name {name!r} must be a plain folder name such as '02_dcgan_cpu'.")
    folder = checkpoint_root() / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
