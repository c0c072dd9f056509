"""MSD Task04 Hippocampus in the official Decathlon layout (`imagesTr/`, `labelsTr/`, `dataset.json`).

The official archive is the Decathlon's `Task04_Hippocampus.tar` (the copy MONAI downloads), checked by MD5
before it is unpacked. Every NIfTI file is checked against a manifest of MD5s before it is read.
"""

from __future__ import annotations

import shutil
import tarfile
import uuid
from importlib import resources
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from course_utils.data.download import download_file, md5sum
from course_utils.data.errors import CorruptDataError, DatasetNotFoundError, UnknownDatasetError
from course_utils.data.imageset import ImageSet
from course_utils.data.locations import data_roots, download_root, network_allowed
from course_utils.data.slicing import pad_to_square, resize_images, resize_masks, rotate_up, scale_to_uint8

FOLDER = "Task04_Hippocampus"
ARCHIVE_URL = "https://msd-for-monai.s3-us-west-2.amazonaws.com/Task04_Hippocampus.tar"
ARCHIVE_MD5 = "9d24dba78a72977dbd1d2e110310f31b"
LICENCE = "CC BY-SA 4.0"
LABEL_NAMES: tuple[str, ...] = ("background", "anterior", "posterior")
LOCAL_MANIFEST = ".course_manifest.md5"  # written when we unpack an archive whose MD5 we checked
DOWNLOAD_COMMAND = "python -m course_utils.data download hippocampus"


def shipped_manifest() -> dict[str, str]:
    """{relative path: md5} for the 520 labelled training files, shipped with the package."""
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


def manifest_for(folder: Path) -> dict[str, str]:
    """The manifest to check `folder` against: its own (written at unpack time) or the shipped one."""
    local = folder / LOCAL_MANIFEST
    return _parse_manifest(local.read_text()) if local.is_file() else shipped_manifest()


def find_folder() -> Path | None:
    """The first `Task04_Hippocampus` folder in the course data folders, or None."""
    for root in data_roots():
        if (root / FOLDER / "dataset.json").is_file():
            return root / FOLDER
    return None


def verify_folder(folder: Path) -> list[str]:
    """Relative paths that are missing or whose MD5 differs from the manifest (empty: all good)."""
    return [name for name, digest in manifest_for(folder).items()
            if not (folder / name).is_file() or md5sum(folder / name) != digest]


def hippocampus_status() -> tuple[str, Path | None]:
    """('present' | 'missing' | 'corrupt', folder)."""
    folder = find_folder()
    if folder is None:
        return "missing", None
    return ("corrupt" if verify_folder(folder) else "present"), folder


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
    """Unpack a verified Task04 tar into `root/Task04_Hippocampus` via a temporary folder, then rename."""
    staging = root / f".{FOLDER}.{uuid.uuid4().hex[:8]}.unpacking"
    try:
        with tarfile.open(archive_path) as archive:
            for member in _safe_members(archive):
                if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: refuse links and devices too
                    archive.extract(member, staging, set_attrs=False, filter="data")
                else:  # pragma: no cover - older patch releases
                    archive.extract(member, staging, set_attrs=False)
        unpacked = staging / FOLDER
        missing = [n for n in shipped_manifest() if not (unpacked / n).is_file()]
        if missing:
            raise CorruptDataError(
                f"{archive_path} unpacked without {len(missing)} expected files (e.g. {missing[0]}); "
                f"it is not the official Task04 archive. Download it again: `{DOWNLOAD_COMMAND}`."
            )
        lines = [f"{md5sum(p)}  {p.relative_to(unpacked).as_posix()}" for p in sorted(unpacked.rglob("*.nii.gz"))]
        (unpacked / LOCAL_MANIFEST).write_text("\n".join(lines) + "\n")
        target = root / FOLDER
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_hippocampus(root: Path | None = None) -> Path:
    """Download the official archive (MD5-checked), unpack it, and return the dataset folder."""
    root = root or download_root()
    archive = download_file(ARCHIVE_URL, root / f"{FOLDER}.tar", ARCHIVE_MD5, fix_hint=f"`{DOWNLOAD_COMMAND}`")
    folder = unpack_archive(archive, root)
    archive.unlink()
    return folder


def ensure_hippocampus(download: bool = True) -> Path:
    """A verified Task04 folder, downloaded if allowed and needed."""
    status, folder = hippocampus_status()
    if status == "present":
        return folder
    if status == "corrupt":
        bad = verify_folder(folder)
        raise CorruptDataError(
            f"{folder} has {len(bad)} missing or altered files (first: {bad[0]}), so it was not loaded. "
            f"Delete the folder and fetch a fresh copy: `{DOWNLOAD_COMMAND}` (archive {ARCHIVE_URL})."
        )
    looked = ", ".join(str(r / FOLDER) for r in data_roots())
    if not (download and network_allowed()):
        raise DatasetNotFoundError(
            f"The MSD hippocampus set is not on this machine (looked in: {looked}) and downloads are off. "
            f"Fetch it with `{DOWNLOAD_COMMAND}` or from {ARCHIVE_URL} (MD5 {ARCHIVE_MD5})."
        )
    try:
        return download_hippocampus()
    except DatasetNotFoundError as error:
        raise DatasetNotFoundError(
            f"The MSD hippocampus set is not on this machine (looked in: {looked}) and the download failed. {error}"
        ) from error


def case_ids(folder: Path) -> list[str]:
    """Case names (e.g. 'hippocampus_001') of the labelled training set, sorted."""
    return sorted(Path(n).name.removesuffix(".nii.gz") for n in manifest_for(folder) if n.startswith("imagesTr/"))


def load_case(folder: Path, case: str) -> tuple[np.ndarray, np.ndarray]:
    """One case's image (uint8, 0..255 rescaled) and label volume (uint8 0/1/2), MD5-checked first."""
    import nibabel as nib

    manifest = manifest_for(folder)
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
    return scale_to_uint8(image.astype(np.float32)), label.astype(np.uint8)


def hippocampus_slices(
    folder: Path, cases: list[str], size: int = 64, axis: int = 0, only_labelled: bool = True
) -> ImageSet:
    """2-D slices with masks from the given cases, zero-padded to a square and resized to `size`."""
    images, masks, groups = [], [], []
    side = 64  # every Task04 crop is at most 59 voxels along any axis
    for number, case in enumerate(cases):
        image, label = load_case(folder, case)
        for index in range(image.shape[axis]):
            mask_plane = np.take(label, index, axis=axis)
            if only_labelled and not mask_plane.any():
                continue
            images.append(torch.from_numpy(rotate_up(np.take(image, index, axis=axis)))[None])
            masks.append(torch.from_numpy(rotate_up(mask_plane))[None])
            groups.append(number)
    if not images:
        raise UnknownDatasetError(f"No slices found in cases {cases[:3]}…; pass at least one labelled case.")
    image_stack = resize_images(torch.stack([pad_to_square(i[None], side)[0] for i in images]), size)
    mask_stack = resize_masks(torch.stack([pad_to_square(m[None], side)[0] for m in masks]), size)
    has_hippocampus = (mask_stack.flatten(1) > 0).any(dim=1).long()
    return ImageSet(
        name="hippocampus", split="custom", images=image_stack, labels=has_hippocampus,
        class_names=("no hippocampus", "hippocampus"), source=str(folder), licence=LICENCE,
        masks=mask_stack, mask_names=LABEL_NAMES, groups=torch.tensor(groups),
    )
