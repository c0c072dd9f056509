"""MSD Task04 Hippocampus in the official Decathlon layout (`imagesTr/`, `labelsTr/`, `dataset.json`).

The official archive is the Decathlon's `Task04_Hippocampus.tar` (the copy MONAI downloads), checked by MD5
before it is unpacked (also when a learner copies it by hand into a data folder). Every NIfTI file is checked
against the MD5 list shipped inside this package before it is read; that list is the only authority (a folder
never brings its own), and label volumes must match their image's shape and hold only 0, 1 and 2.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import warnings
from importlib import resources
from pathlib import Path, PurePosixPath

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
from course_utils.data.slicing import pad_to_square, resize_images, resize_masks, rotate_up, scale_to_uint8
from course_utils.data.staging import clean_stale, replace_folder, staged_path
from course_utils.locations import data_roots, download_root, network_allowed, offline_hint, present

FOLDER = "Task04_Hippocampus"
ARCHIVE_URL = "https://msd-for-monai.s3-us-west-2.amazonaws.com/Task04_Hippocampus.tar"
ARCHIVE_MD5 = "9d24dba78a72977dbd1d2e110310f31b"
ARCHIVE_NAME = f"{FOLDER}.tar"
LICENCE = "CC BY-SA 4.0"
LABEL_NAMES: tuple[str, ...] = ("background", "anterior", "posterior")
DATASET_JSON = "dataset.json"  # required, but not checksummed: copies of the set differ in it (e.g. numTest)
OFFICIAL_BYTES = 18_961_461  # the 520 labelled training files of the official archive, together
MAX_FILE_BYTES = 104_294  # the largest of them
DATASET_JSON_MAX_BYTES = 1 << 20
LABEL_VALUES: frozenset[int] = frozenset({0, 1, 2})
DOWNLOAD_COMMAND = "python -m course_utils.data download hippocampus"


def shipped_manifest() -> dict[str, str]:
    """{relative path: md5} for the 520 labelled training files, shipped with the package.

    This list is the only authority on the official files: a folder or a bundle never brings its own.
    """
    text = resources.files("course_utils.data").joinpath("manifests/task04_hippocampus.md5").read_text()
    return _parse_manifest(text)


def _parse_manifest(text: str) -> dict[str, str]:
    """Parse `md5  relative/path` lines, skipping comments."""
    entries = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            entries[name.strip()] = digest
    return entries


def is_official_name(name: str) -> bool:
    """True for a path (relative to the dataset folder) of an official file: a training volume or dataset.json."""
    return name == DATASET_JSON or name in shipped_manifest()


def candidate_folders() -> list[Path]:
    """Every `Task04_Hippocampus` folder in the course data folders, in search order."""
    return [root / FOLDER for root in data_roots() if present(root / FOLDER, "dir")]


def find_folder() -> Path | None:
    """The first `Task04_Hippocampus` folder in the course data folders, or None."""
    folders = candidate_folders()
    return folders[0] if folders else None


def _dataset_json_problem(folder: Path) -> str | None:
    """Why `folder/dataset.json` is unusable, or None if it is a JSON object."""
    path = folder / DATASET_JSON
    if not path.is_file():
        return DATASET_JSON
    try:
        if path.stat().st_size > DATASET_JSON_MAX_BYTES or not isinstance(json.loads(path.read_bytes()), dict):
            return f"{DATASET_JSON} (not a JSON object)"
    except (OSError, ValueError):
        return f"{DATASET_JSON} (unreadable or not JSON)"
    return None


def verify_folder(folder: Path) -> list[str]:
    """Relative paths that are missing, unreadable or whose MD5 differs from the shipped list (empty: all good)."""
    bad = []
    for name, digest in shipped_manifest().items():
        try:
            if md5sum(folder / name) != digest:
                bad.append(name)
        except OSError:
            bad.append(name)
    problem = _dataset_json_problem(folder)
    return bad + ([problem] if problem else [])


def folder_states() -> list[tuple[Path, list[str]]]:
    """(folder, its problems) for every candidate folder, in search order; empty problems: intact."""
    return [(folder, verify_folder(folder)) for folder in candidate_folders()]


def hippocampus_status() -> tuple[str, Path | None]:
    """('present' | 'missing' | 'corrupt', folder): the first intact folder wins over a broken one before it."""
    states = folder_states()
    for folder, problems in states:
        if not problems:
            return "present", folder
    return ("corrupt", states[0][0]) if states else ("missing", None)


def _safe_members(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Regular files and folders under Task04_Hippocampus/, skipping macOS `._` files; refuse path tricks."""
    members = []
    for member in archive.getmembers():
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise CorruptDataError(f"The archive contains an unsafe path {member.name!r}; it was not unpacked.")
        if not path.parts or path.parts[0] != FOLDER or path.name.startswith("._"):
            continue
        if member.isfile() or member.isdir():
            members.append(member)
    return members


def unpack_archive(archive_path: Path, root: Path) -> Path:
    """Unpack a verified Task04 tar into `root/Task04_Hippocampus` via a staging folder, replaced in safe order."""
    staging = staged_path(root, FOLDER, "unpacking")
    try:
        root.mkdir(parents=True, exist_ok=True)
        clean_stale(root)
        with tarfile.open(archive_path) as archive:
            for member in _safe_members(archive):
                if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: refuse links and devices too
                    archive.extract(member, staging, set_attrs=False, filter="data")
                else:  # pragma: no cover - older patch releases
                    archive.extract(member, staging, set_attrs=False)
        unpacked = staging / FOLDER
        bad = verify_folder(unpacked)
        if bad:
            raise CorruptDataError(
                f"{archive_path} unpacked with {len(bad)} missing or altered files (e.g. {bad[0]}); "
                f"it is not the official Task04 archive. Download it again: `{DOWNLOAD_COMMAND}`."
            )
        return replace_folder(unpacked, root / FOLDER)
    except (tarfile.TarError, EOFError) as error:
        raise CorruptDataError(
            f"{archive_path} is not a readable tar archive ({error}); nothing was unpacked. "
            f"Download it again: `{DOWNLOAD_COMMAND}`."
        ) from error
    except OSError as error:  # a full disk, a read-only folder: the old folder (if any) is still in place
        raise UnreadableDataError(describe_os_error(error, f"unpack {archive_path} into {root}")) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_hippocampus(root: Path | None = None) -> Path:
    """Download the official archive (MD5-checked), unpack it, and return the dataset folder."""
    root = root or download_root()
    archive = download_file(ARCHIVE_URL, root / ARCHIVE_NAME, ARCHIVE_MD5, fix_hint=f"`{DOWNLOAD_COMMAND}`")
    folder = unpack_archive(archive, root)
    archive.unlink()
    return folder


def _hand_copied_archive() -> Path | None:
    """The first official archive a learner copied into a data folder by hand (MD5-checked), or None.

    A bad copy is skipped with a warning when a good one follows; with no good copy, the first bad one is an error.
    """
    problems = []
    for root in data_roots():
        archive = root / ARCHIVE_NAME
        if not present(archive):
            continue
        try:
            digest = md5sum(archive)
        except OSError as error:
            problems.append(UnreadableDataError(describe_os_error(error, "read the hippocampus archive")))
            continue
        if digest != ARCHIVE_MD5:
            problems.append(CorruptDataError(
                f"{archive} is not the official Task04 archive (MD5 {digest}, expected {ARCHIVE_MD5}): it is "
                f"truncated or another file. Delete it and copy or download it again: `{DOWNLOAD_COMMAND}`."
            ))
            continue
        for problem in problems:
            warnings.warn(f"{problem} Using the intact archive {archive}.", stacklevel=3)
        return archive
    if problems:
        raise problems[0]
    return None


def ensure_hippocampus(download: bool = True) -> Path:
    """A verified Task04 folder: found, unpacked from a hand-copied archive, or downloaded if allowed."""
    states = folder_states()
    for folder, problems in states:
        if not problems:
            for other, other_problems in states:
                if other != folder and other_problems:
                    warnings.warn(f"{other} is incomplete or altered ({other_problems[0]}) and was skipped; "
                                  f"using the intact copy {folder}.", stacklevel=2)
                    break
            return folder
    archive = _hand_copied_archive()
    if archive is not None:
        target_root = archive.parent if os.access(archive.parent, os.W_OK) else download_root()
        print(f"Unpacking the hand-copied archive {archive} (MD5 checked) into {target_root / FOLDER} ...")
        return unpack_archive(archive, target_root)
    if states:
        folder, bad = states[0]
        raise CorruptDataError(
            f"{folder} has {len(bad)} missing or altered files (first: {bad[0]}), so it was not loaded. "
            f"Delete the folder and fetch a fresh copy: `{DOWNLOAD_COMMAND}` (archive {ARCHIVE_URL})."
        )
    looked = ", ".join(str(r / FOLDER) for r in data_roots())
    by_hand = f"or copy the archive {ARCHIVE_URL} (MD5 {ARCHIVE_MD5}) to {data_roots()[0] / ARCHIVE_NAME}"
    if not download or not network_allowed():
        why = offline_hint() if not network_allowed() else "Downloads are off for this call (download=False)."
        raise DatasetNotFoundError(
            f"The MSD hippocampus set is not on this machine (looked in: {looked}). {why} "
            f"Then fetch it with `{DOWNLOAD_COMMAND}`, {by_hand}."
        )
    try:
        return download_hippocampus()
    except DatasetNotFoundError as error:
        raise DatasetNotFoundError(
            f"The MSD hippocampus set is not on this machine (looked in: {looked}) and the download failed. "
            f"{error} You can also {by_hand.removeprefix('or ')}."
        ) from error
    except PermissionError as error:
        raise UnreadableDataError(str(error)) from error


def case_ids(folder: Path) -> list[str]:
    """Case names (e.g. 'hippocampus_001') of the labelled training set, sorted."""
    return sorted(Path(n).name.removesuffix(".nii.gz") for n in shipped_manifest() if n.startswith("imagesTr/"))


def load_case(folder: Path, case: str) -> tuple[np.ndarray, np.ndarray]:
    """One case's image (uint8, 0..255 rescaled) and label volume (uint8 0/1/2), MD5-checked first."""
    import nibabel as nib

    manifest = shipped_manifest()
    arrays = []
    for sub in ("imagesTr", "labelsTr"):
        name = f"{sub}/{case}.nii.gz"
        if name not in manifest:
            raise UnknownDatasetError(f"{case!r} is not a Task04 training case; see case_ids(folder).")
        if md5sum(folder / name) != manifest[name]:
            raise CorruptDataError(
                f"{folder / name} does not match its MD5 {manifest[name]}; it was not loaded. "
                f"Fetch a fresh copy: `{DOWNLOAD_COMMAND}`."
            )
        arrays.append(np.asarray(nib.load(folder / name).dataobj))
    image, label = arrays
    check_label_volume(image, label, folder / f"labelsTr/{case}.nii.gz")
    return scale_to_uint8(image.astype(np.float32)), label.astype(np.uint8)


def check_label_volume(image: np.ndarray, label: np.ndarray, where: Path | str) -> None:
    """CorruptDataError unless `label` has the image's shape and holds only the classes 0, 1, 2."""
    if label.shape != image.shape:
        raise CorruptDataError(
            f"{where} has shape {label.shape} but its image has {image.shape}; a label volume must match its "
            f"image voxel for voxel. It was not loaded. Fetch a fresh copy: `{DOWNLOAD_COMMAND}`."
        )
    values = np.unique(label)
    unexpected = [v.item() for v in values if v.item() not in LABEL_VALUES]
    if unexpected:
        raise CorruptDataError(
            f"{where} holds label values {unexpected[:5]}; Task04 labels are only 0 (background), 1 (anterior) "
            f"and 2 (posterior). It was not loaded. Fetch a fresh copy: `{DOWNLOAD_COMMAND}`."
        )


def hippocampus_slices(
    folder: Path, cases: list[str], size: int = 64, axis: int = 0, only_labelled: bool = True
) -> ImageSet:
    """2-D slices with masks from the given cases, zero-padded to a square and resized to `size`."""
    images, masks, groups, interiors = [], [], [], []
    side = 64  # every Task04 crop is at most 59 voxels along any axis
    for number, case in enumerate(cases):
        image, label = load_case(folder, case)
        for index in range(image.shape[axis]):
            mask_plane = np.take(label, index, axis=axis)
            if only_labelled and not mask_plane.any():
                continue
            images.append(torch.from_numpy(rotate_up(np.take(image, index, axis=axis)))[None])
            masks.append(torch.from_numpy(rotate_up(mask_plane))[None])
            interiors.append(torch.ones_like(masks[-1], dtype=torch.uint8))  # the crop, before zero padding
            groups.append(number)
    if not images:
        raise UnknownDatasetError(f"No slices found in cases {cases[:3]}…; pass at least one labelled case.")
    image_stack = resize_images(torch.stack([pad_to_square(i[None], side)[0] for i in images]), size)
    mask_stack = resize_masks(torch.stack([pad_to_square(m[None], side)[0] for m in masks]), size)
    interior_stack = resize_masks(torch.stack([pad_to_square(m[None], side)[0] for m in interiors]), size) > 0
    has_hippocampus = (mask_stack.flatten(1) > 0).any(dim=1).long()
    return ImageSet(
        name="hippocampus", split="custom", images=image_stack, labels=has_hippocampus,
        class_names=("no hippocampus", "hippocampus"), source=str(folder), licence=LICENCE,
        masks=mask_stack, mask_names=LABEL_NAMES, groups=torch.tensor(groups),
        regions=interior_stack, region_name="crop interior (the scanned crop, not its zero padding)",
    )
