"""The datasets the course uses, their status on this machine, licences and citations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from course_utils.data import hippocampus, medmnist_data
from course_utils.data.mni152 import MNI152_LICENCE

MEDMNIST_CITATION = (
    "Yang et al., MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical image "
    "classification, Scientific Data 10, 41 (2023)"
)
HIPPOCAMPUS_CITATION = (
    "Simpson et al., arXiv:1902.09063 (2019); Antonelli et al., The Medical Segmentation Decathlon, "
    "Nature Communications 13, 4128 (2022)"
)
MNI152_CITATION = (
    "Fonov et al., NeuroImage 54(1) 2011 and 47(S1) 2009 (ICBM 2009 nonlinear template); shipped by nilearn"
)
# (flag, size) pairs the notebooks use; 64/128 px are the gpu profile's choices.
COURSE_MEDMNIST: tuple[tuple[str, int], ...] = (
    ("pneumoniamnist", 28), ("pneumoniamnist", 64), ("pneumoniamnist", 128),
    ("breastmnist", 28), ("breastmnist", 64), ("breastmnist", 128),
    ("retinamnist", 28), ("adrenalmnist3d", 28), ("adrenalmnist3d", 64),
)


@dataclass(frozen=True)
class DatasetStatus:
    """One row of `python -m course_utils.data status`."""

    name: str
    status: str  # present / missing / corrupt / unreadable / built-in
    bytes: int
    location: str
    licence: str
    citation: str
    problem: str = ""  # for a corrupt or unreadable copy: what is wrong with it


def _size_of(path: Path | None) -> int:
    """Bytes of a file, or of every file in a folder; 0 for None or what cannot be read."""
    if path is None:
        return 0
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return 0


def course_status() -> list[DatasetStatus]:
    """Status of every dataset the course uses."""
    rows = []
    for flag, size in COURSE_MEDMNIST:
        good, bad = medmnist_data.locate(flag, size)
        info = medmnist_data.medmnist_info(flag)
        name = medmnist_data.file_name(flag, size).removesuffix(".npz")
        copies = ([(good, "present")] if good else []) + bad
        for path, status in copies or [(None, "missing")]:
            problem = {"corrupt": "MD5 differs from the official one", "unreadable": "cannot be read"}.get(status, "")
            rows.append(DatasetStatus(name, status, _size_of(path), str(path) if path else "-", info["license"],
                                      MEDMNIST_CITATION, problem))
    states = hippocampus.folder_states()
    intact = [folder for folder, problems in states if not problems]
    copies = [(intact[0], "present", "")] if intact else []
    copies += [(folder, "corrupt", _problems_in_words(problems)) for folder, problems in states if problems]
    for folder, status, problem in copies or [(None, "missing", "")]:
        rows.append(DatasetStatus("hippocampus (MSD Task04)", status, _size_of(folder), str(folder) if folder else "-",
                                  hippocampus.LICENCE, HIPPOCAMPUS_CITATION, problem))
    rows.append(DatasetStatus("mni152 (T1 + GM/WM maps)", "built-in", 0, "inside nilearn", MNI152_LICENCE, MNI152_CITATION))
    return rows


def _problems_in_words(problems: list[str]) -> str:
    """'3 files missing or altered: a, b, c' (at most three named)."""
    named = ", ".join(problems[:3]) + (", ..." if len(problems) > 3 else "")
    return f"{len(problems)} missing or altered: {named}"


def format_status(rows: list[DatasetStatus]) -> str:
    """A plain-text table of the status rows."""
    header = f"{'dataset':<28} {'status':<9} {'size':>9}  {'licence':<14} location"
    lines = [header, "-" * len(header)]
    for row in rows:
        size = f"{row.bytes / 1e6:.1f} MB" if row.bytes else "-"
        licence = row.licence if len(row.licence) <= 14 else row.licence.split(":")[0][:14]
        lines.append(f"{row.name:<28} {row.status:<9} {size:>9}  {licence:<14} {row.location}")
    return "\n".join(lines)
