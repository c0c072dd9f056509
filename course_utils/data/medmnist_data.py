"""MedMNIST through the `medmnist` package's registry (`medmnist.INFO`: URLs, MD5s, labels, licences).

Files are found in the course data folders (see `locations`), verified against the official MD5 before
they are read, and held as uint8 tensors: no per-sample PIL conversion anywhere.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from course_utils.data.download import download_file, md5sum
from course_utils.data.errors import (
    CorruptDataError,
    DatasetNotFoundError,
    UnknownDatasetError,
    UnreadableDataError,
    describe_os_error,
)
from course_utils.data.imageset import ImageSet
from course_utils.locations import (
    MEDMNIST_SUBDIR,
    download_root,
    medmnist_dirs,
    network_allowed,
    offline_hint,
    present,
)

SPLITS: tuple[str, ...] = ("train", "val", "test")
SIZES_2D: tuple[int, ...] = (28, 64, 128, 224)
SIZES_3D: tuple[int, ...] = (28, 64)
_VERIFIED: dict[tuple[str, int, int], str] = {}


def medmnist_info(flag: str) -> dict:
    """The official registry entry of `flag` (e.g. 'pneumoniamnist')."""
    from medmnist import INFO

    key = flag.lower()
    if key not in INFO:
        raise UnknownDatasetError(
            f"Unknown MedMNIST dataset {flag!r}. Known names: {', '.join(sorted(INFO))}."
        )
    return INFO[key]


def is_3d(flag: str) -> bool:
    """True for the volumetric MedMNIST sets (names ending in '3d')."""
    return flag.lower().endswith("3d")


def check_size(flag: str, size: int) -> None:
    """Raise a clear error if MedMNIST does not publish `flag` at `size` pixels."""
    sizes = SIZES_3D if is_3d(flag) else SIZES_2D
    if size not in sizes:
        raise UnknownDatasetError(
            f"{flag} is published at sizes {', '.join(map(str, sizes))}; size={size!r} does not exist. "
            "Pick one of those (28 is the classic MedMNIST resolution)."
        )


def file_name(flag: str, size: int) -> str:
    """The file name medmnist uses: `{flag}.npz` at 28 px, `{flag}_{size}.npz` otherwise."""
    check_size(flag, size)
    return f"{flag.lower()}.npz" if size == 28 else f"{flag.lower()}_{size}.npz"


def official_url_md5(flag: str, size: int) -> tuple[str, str]:
    """The official download URL and MD5 of `flag` at `size`, from `medmnist.INFO`."""
    info = medmnist_info(flag)
    check_size(flag, size)
    suffix = "" if size == 28 else f"_{size}"
    return info[f"url{suffix}"], info[f"MD5{suffix}"]


def download_command(flag: str, size: int) -> str:
    """The exact command that fetches this file."""
    return f"python -m course_utils.data download {flag.lower()} --size {size}"


def find_files(flag: str, size: int) -> list[Path]:
    """Every copy of the file in the search folders, in search order."""
    name = file_name(flag, size)
    return [folder / name for folder in medmnist_dirs() if present(folder / name)]


def find_file(flag: str, size: int) -> Path | None:
    """The first copy of the file in the search folders, or None."""
    copies = find_files(flag, size)
    return copies[0] if copies else None


def copy_state(path: Path, expected_md5: str) -> str:
    """'present' if `path` has the expected MD5, 'corrupt' if not, 'unreadable' if it cannot be read.

    The checksum is cached per path, size and modification time.
    """
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _VERIFIED:
            _VERIFIED[key] = md5sum(path)
    except OSError:
        return "unreadable"
    return "present" if _VERIFIED[key] == expected_md5 else "corrupt"


def verify_file(path: Path, expected_md5: str) -> bool:
    """True if `path` is readable and has the expected MD5."""
    return copy_state(path, expected_md5) == "present"


def locate(flag: str, size: int) -> tuple[Path | None, list[tuple[Path, str]]]:
    """(the first verified copy or None, [(path, 'corrupt' | 'unreadable') for every bad copy])."""
    _, md5 = official_url_md5(flag, size)
    good, bad = None, []
    for path in find_files(flag, size):
        state = copy_state(path, md5)
        if state == "present" and good is None:
            good = path
        elif state != "present":
            bad.append((path, state))
    return good, bad


def corrupt_message(path: Path, flag: str, size: int) -> str:
    """What to say about a present file whose checksum is wrong."""
    _, md5 = official_url_md5(flag, size)
    return (
        f"{path} does not match the official MD5 {md5} (it is truncated, altered or another version), "
        f"so it was not loaded. Delete it and fetch a fresh copy: `{download_command(flag, size)}`."
    )


def _bad_copy_message(path: Path, state: str, flag: str, size: int) -> str:
    """One bad copy, in words."""
    if state == "unreadable":
        return f"{path} cannot be read (check its permissions), so it was not loaded."
    return corrupt_message(path, flag, size)


def ensure_file(flag: str, size: int = 28, download: bool = True) -> Path:
    """Return a verified local copy of `flag` at `size`, downloading it if allowed and needed.

    The first verified copy in the search order wins; a corrupt or unreadable copy before it is reported
    (a warning) and skipped.
    """
    url, md5 = official_url_md5(flag, size)
    good, bad = locate(flag, size)
    if good is not None:
        for path, state in bad:
            warnings.warn(f"{_bad_copy_message(path, state, flag, size)} Using the intact copy {good}.", stacklevel=2)
        return good
    if bad:
        path, state = bad[0]
        error = UnreadableDataError if state == "unreadable" else CorruptDataError
        raise error(_bad_copy_message(path, state, flag, size))
    looked = ", ".join(str(d) for d in medmnist_dirs())
    if not download or not network_allowed():
        why = offline_hint() if not network_allowed() else "downloads are off for this call (download=False)."
        raise DatasetNotFoundError(
            f"{file_name(flag, size)} is not on this machine (looked in: {looked}). {why} "
            f"Then fetch it with `{download_command(flag, size)}`, download it from {url} into "
            f"{medmnist_dirs()[0]}, or unpack a teacher's bundle with `python -m course_utils.data unbundle FILE.zip`."
        )
    try:
        target = download_root() / MEDMNIST_SUBDIR / file_name(flag, size)
    except PermissionError as error:
        raise UnreadableDataError(str(error)) from error
    try:
        return download_file(url, target, md5, fix_hint=f"`{download_command(flag, size)}`")
    except DatasetNotFoundError as error:
        raise DatasetNotFoundError(
            f"{file_name(flag, size)} is not on this machine (looked in: {looked}) and the download failed. "
            f"{error} Teachers can prepare a bundle on a connected machine: "
            "`python -m course_utils.data bundle course-data.zip`."
        ) from error


def _check_split(split: str) -> None:
    """Raise a clear error for a split name MedMNIST does not have."""
    if split not in SPLITS:
        raise UnknownDatasetError(f"Unknown split {split!r}; MedMNIST splits are {', '.join(SPLITS)}.")


def load_medmnist(flag: str, split: str = "train", size: int = 28, download: bool = True) -> ImageSet:
    """Load one split of a MedMNIST dataset as uint8 tensors `(N, C, H, W)` / `(N, 1, D, H, W)`."""
    _check_split(split)
    info = medmnist_info(flag)
    path = ensure_file(flag, size, download=download)
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = archive[f"{split}_images"]
            labels = archive[f"{split}_labels"]
    except OSError as error:
        raise UnreadableDataError(describe_os_error(error, f"read {path}")) from error
    tensor = torch.from_numpy(np.ascontiguousarray(images))
    if is_3d(flag):
        tensor = tensor.unsqueeze(1)  # (N, 1, D, H, W)
    elif tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)  # (N, 1, H, W)
    else:
        tensor = tensor.permute(0, 3, 1, 2).contiguous()  # (N, H, W, 3) -> (N, 3, H, W)
    label_tensor = torch.from_numpy(labels.astype(np.int64))
    if label_tensor.ndim == 2 and label_tensor.shape[1] == 1:
        label_tensor = label_tensor[:, 0]
    names = tuple(info["label"][str(i)] for i in range(len(info["label"])))
    return ImageSet(
        name=flag.lower(), split=split, images=tensor, labels=label_tensor, class_names=names,
        source=str(path), licence=info["license"],
    )


def medmnist_status(flag: str, size: int) -> tuple[str, Path | None]:
    """('present' | 'missing' | 'corrupt' | 'unreadable', path) for one MedMNIST file: the copy that loads."""
    good, bad = locate(flag, size)
    if good is not None:
        return "present", good
    if bad:
        return bad[0][1], bad[0][0]
    return "missing", None


def max_file_bytes(flag: str, size: int) -> int:
    """An upper bound on the official file's size: every pixel and label stored uncompressed, +1 %, +1 MB."""
    info = medmnist_info(flag)
    check_size(flag, size)
    count = sum(info["n_samples"].values())
    pixels = size ** (3 if is_3d(flag) else 2) * info["n_channels"]
    labels = len(info["label"]) if info["task"].startswith("multi-label") else 1
    return int(count * (pixels + labels) * 1.01) + (1 << 20)
