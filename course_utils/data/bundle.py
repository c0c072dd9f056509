"""One file for a room without network: `bundle` packs the verified data, `unbundle` checks and installs it."""

from __future__ import annotations

import json
import os
import shutil
import uuid
import zipfile
from pathlib import Path, PurePosixPath

from course_utils.data import hippocampus, medmnist_data
from course_utils.data.catalogue import COURSE_MEDMNIST
from course_utils.data.download import md5sum
from course_utils.data.errors import CorruptDataError
from course_utils.data.locations import MEDMNIST_SUBDIR, download_root

MANIFEST_NAME = "COURSE_BUNDLE.json"


def _bundle_entries() -> dict[str, Path]:
    """{archive name: local file} for every present, verified course dataset."""
    entries: dict[str, Path] = {}
    for flag, size in COURSE_MEDMNIST:
        status, path = medmnist_data.medmnist_status(flag, size)
        if status == "present":
            entries[f"{MEDMNIST_SUBDIR}/{path.name}"] = path
    status, folder = hippocampus.hippocampus_status()
    if status == "present":
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.name != "README.md":
                entries[f"{hippocampus.FOLDER}/{path.relative_to(folder).as_posix()}"] = path
    return entries


def make_bundle(out: Path) -> dict[str, str]:
    """Write a zip of all verified course data plus an MD5 manifest to `out` (atomically); return the manifest."""
    out = Path(out)
    entries = _bundle_entries()
    if not entries:
        raise CorruptDataError("There is no verified course data to bundle; download it first "
                               "(`python -m course_utils.data download all`).")
    manifest = {name: md5sum(path) for name, path in entries.items()}
    temporary = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
            for name, path in entries.items():
                archive.write(path, name)
            archive.writestr(MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    return manifest


def unpack_bundle(bundle: Path, root: Path | None = None) -> list[str]:
    """Check every file of a bundle against its manifest and the official checksums, then install it."""
    root = Path(root) if root else download_root()
    staging = root / f".bundle.{uuid.uuid4().hex[:8]}.unpacking"
    try:
        with zipfile.ZipFile(bundle) as archive:
            try:
                manifest = json.loads(archive.read(MANIFEST_NAME))
            except KeyError:
                raise CorruptDataError(f"{bundle} has no {MANIFEST_NAME}; it is not a course data bundle.") from None
            for name in manifest:
                parts = PurePosixPath(name).parts
                if PurePosixPath(name).is_absolute() or ".." in parts or parts[0] not in (MEDMNIST_SUBDIR, hippocampus.FOLDER):
                    raise CorruptDataError(f"{bundle} lists an unexpected path {name!r}; nothing was installed.")
                archive.extract(name, staging)
        bad = [name for name, digest in manifest.items() if md5sum(staging / name) != digest]
        for name in manifest:
            if name.startswith(f"{MEDMNIST_SUBDIR}/"):
                flag, size = _flag_and_size(PurePosixPath(name).name)
                if md5sum(staging / name) != medmnist_data.official_url_md5(flag, size)[1]:
                    bad.append(name)
        if (staging / hippocampus.FOLDER).is_dir():
            bad += [f"{hippocampus.FOLDER}/{n}" for n in hippocampus.verify_folder(staging / hippocampus.FOLDER)]
        if bad:
            raise CorruptDataError(
                f"{bundle}: {len(set(bad))} files do not match their checksums (first: {sorted(set(bad))[0]}); "
                "nothing was installed. Ask for a fresh copy of the bundle."
            )
        installed = []
        for name in sorted(manifest):
            if name.startswith(f"{MEDMNIST_SUBDIR}/"):
                (root / MEDMNIST_SUBDIR).mkdir(parents=True, exist_ok=True)
                os.replace(staging / name, root / name)
                installed.append(name)
        if (staging / hippocampus.FOLDER).is_dir():
            target = root / hippocampus.FOLDER
            if target.exists():
                shutil.rmtree(target)
            (staging / hippocampus.FOLDER).rename(target)
            installed.append(hippocampus.FOLDER + "/")
        return installed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _flag_and_size(file_name: str) -> tuple[str, int]:
    """'breastmnist_64.npz' -> ('breastmnist', 64); 'breastmnist.npz' -> ('breastmnist', 28)."""
    stem = file_name.removesuffix(".npz")
    flag, _, size = stem.rpartition("_")
    return (flag, int(size)) if flag and size.isdigit() else (stem, 28)
