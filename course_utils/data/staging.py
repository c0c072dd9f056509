"""Crash-safe file and folder replacement, and clean-up of what a killed run left behind.

Everything half-written lives under a hidden name that carries the writer's process id:
`.{name}.{pid}-{hex}.part` (a download), `.{name}.{pid}-{hex}.unpacking` (a folder being filled) and
`.{name}.{pid}-{hex}.old` (the previous copy, kept until the new one is in place). A folder is replaced in
the safe order: old renamed aside, new renamed in, old deleted; a crash at any point leaves either the old
or the new copy under the real name (or the old one aside, which `clean_stale` puts back).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

from course_utils.checks import process_alive

_STAGED = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.(?P<kind>part|unpacking|old)$")


def staged_path(folder: Path, name: str, kind: str) -> Path:
    """A fresh hidden path in `folder` for `name` while it is being written (`kind`: part, unpacking, old)."""
    if kind not in ("part", "unpacking", "old"):
        raise ValueError(f"kind must be 'part', 'unpacking' or 'old'; got {kind!r}.")
    return Path(folder) / f".{name}.{os.getpid()}-{secrets.token_hex(4)}.{kind}"


def _remove(path: Path) -> None:
    """Delete a file or a folder tree, whichever `path` is."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(folder: Path) -> list[str]:
    """Remove what killed runs left in `folder`; put back an old copy whose replacement never arrived.

    Only names of processes that no longer run are touched (and names of older course versions, which carry
    no process id). Returns the names that were removed or restored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cleaned = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _STAGED.match(entry.name)
        if match is None:
            continue
        pid = match["pid"]
        if pid is not None and (int(pid) == os.getpid() or process_alive(int(pid))):
            continue
        target = folder / match["name"]
        try:
            if match["kind"] == "old" and not target.exists():
                entry.rename(target)  # the crash came between "old aside" and "new in": the old copy returns
                cleaned.append(f"restored {target.name}")
            else:
                _remove(entry)
                cleaned.append(f"removed {entry.name}")
        except OSError:
            continue  # not ours to clean (read-only folder): leave it
    return cleaned


def replace_folder(new: Path, target: Path) -> Path:
    """Put the finished folder `new` at `target`: old aside, new in, old deleted (never a moment with neither)."""
    new, target = Path(new), Path(target)
    aside = None
    if target.exists():
        aside = staged_path(target.parent, target.name, "old")
        target.rename(aside)
    try:
        new.rename(target)
    except BaseException:
        if aside is not None:
            aside.rename(target)  # undo: the old copy stays in force
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return target
