"""One file for a room without network: `bundle` packs the verified data, `unbundle` checks and installs it.

Only official files travel: MedMNIST `.npz` files (checked against `medmnist.INFO`) and the hippocampus
training volumes (checked against the MD5 list shipped in this package) plus its `dataset.json`. A bundle
never supplies checksums of its own that are trusted. Any other file inside `medmnist/` or `Task04_Hippocampus/`
(a script, a checksum list) is ignored and named; the whole bundle is refused before anything is unpacked when
it is malformed (not a zip, a bad manifest, unsafe paths, unknown top-level or nested folders, missing members),
larger than the official files can be, or larger than the free disk space. Installing replaces folders in the
crash-safe order of `staging` (an existing hippocampus folder is replaced whole, extra files in it included).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from course_utils.data import hippocampus, medmnist_data
from course_utils.data.catalogue import COURSE_MEDMNIST
from course_utils.data.download import md5sum
from course_utils.data.errors import CorruptDataError, DataError, UnknownDatasetError, UnreadableDataError
from course_utils.data.staging import clean_stale, replace_folder, staged_path
from course_utils.locations import MEDMNIST_SUBDIR, download_root

MANIFEST_NAME = "COURSE_BUNDLE.json"
FRESH_COPY = "Ask for a fresh copy of the bundle, or make one with `python -m course_utils.data bundle FILE.zip`."
_MD5 = re.compile(r"^[0-9a-f]{32}$")
MANIFEST_MAX_BYTES = 1 << 20  # the real list of ~530 names and checksums is about 40 kB
SIZE_MARGIN = 1.05  # declared sizes may exceed the official bound by 5 % before a bundle is refused


def _bundle_entries() -> dict[str, Path]:
    """{archive name: local file} for every present, verified official course file."""
    entries: dict[str, Path] = {}
    for flag, size in COURSE_MEDMNIST:
        status, path = medmnist_data.medmnist_status(flag, size)
        if status == "present":
            entries[f"{MEDMNIST_SUBDIR}/{path.name}"] = path
    status, folder = hippocampus.hippocampus_status()
    if status == "present":
        for name in [*sorted(hippocampus.shipped_manifest()), hippocampus.DATASET_JSON]:
            entries[f"{hippocampus.FOLDER}/{name}"] = folder / name
    return entries


def make_bundle(out: Path) -> dict[str, str]:
    """Write a zip of all verified course data plus an MD5 manifest to `out` (atomically); return the manifest."""
    out = Path(out)
    entries = _bundle_entries()
    if not entries:
        raise CorruptDataError("There is no verified course data to bundle; download it first "
                               "(`python -m course_utils.data download all`).")
    manifest = {name: md5sum(path) for name, path in entries.items()}
    temporary = staged_path(out.parent, out.name, "part")
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
            for name, path in entries.items():
                archive.write(path, name)
            archive.writestr(MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(temporary, out)
    except OSError as error:
        raise UnreadableDataError(f"Could not write the bundle {out}: {error}. Pick a folder you can write to "
                                  "with enough free space.") from error
    finally:
        temporary.unlink(missing_ok=True)
    return manifest


def _flag_and_size(file_name: str) -> tuple[str, int]:
    """'breastmnist_64.npz' -> ('breastmnist', 64); 'breastmnist.npz' -> ('breastmnist', 28)."""
    stem = file_name.removesuffix(".npz")
    flag, _, size = stem.rpartition("_")
    return (flag, int(size)) if flag and size.isdigit() else (stem, 28)


def _official_medmnist(file_name: str) -> tuple[str, int] | None:
    """(flag, size) if `file_name` is an official MedMNIST file name, else None."""
    if not file_name.endswith(".npz"):
        return None
    flag, size = _flag_and_size(file_name)
    try:
        if medmnist_data.file_name(flag, size) != file_name:
            return None
    except UnknownDatasetError:
        return None
    try:
        medmnist_data.medmnist_info(flag)
    except UnknownDatasetError:
        return None
    return flag, size


def _size_bound(name: str) -> int:
    """The largest size an official file of this bundle name can have (bytes)."""
    folder, _, rest = name.partition("/")
    if folder == MEDMNIST_SUBDIR:
        return medmnist_data.max_file_bytes(*_official_medmnist(rest))
    if rest == hippocampus.DATASET_JSON:
        return hippocampus.DATASET_JSON_MAX_BYTES
    return hippocampus.MAX_FILE_BYTES


def _total_bound(names: list[str]) -> int:
    """The largest total the official files of these names can have: the hippocampus set counts once."""
    medmnist = sum(_size_bound(name) for name in names if name.startswith(f"{MEDMNIST_SUBDIR}/"))
    has_hippocampus = any(name.startswith(f"{hippocampus.FOLDER}/") for name in names)
    return medmnist + (hippocampus.OFFICIAL_BYTES + hippocampus.DATASET_JSON_MAX_BYTES if has_hippocampus else 0)


def _read_manifest(bundle: Path, archive: zipfile.ZipFile) -> dict[str, str]:
    """The bundle's {name: md5}, or CorruptDataError saying what is wrong with it."""
    try:
        info = archive.getinfo(MANIFEST_NAME)
    except KeyError:
        raise CorruptDataError(f"{bundle} has no {MANIFEST_NAME}; it is not a course data bundle. {FRESH_COPY}") from None
    if info.file_size > MANIFEST_MAX_BYTES:
        raise CorruptDataError(f"{bundle}: {MANIFEST_NAME} declares {info.file_size:,} bytes, far more than a list "
                               f"of the course's files; it was not read. {FRESH_COPY}")
    try:
        manifest = json.loads(archive.read(info))
    except (ValueError, RecursionError) as error:
        raise CorruptDataError(f"{bundle}: {MANIFEST_NAME} is not valid JSON ({type(error).__name__}). {FRESH_COPY}") from None
    if not isinstance(manifest, dict) or not manifest:
        raise CorruptDataError(f"{bundle}: {MANIFEST_NAME} must be a non-empty {{name: md5}} object. {FRESH_COPY}")
    for name, digest in manifest.items():
        if not isinstance(digest, str) or not _MD5.match(digest):
            raise CorruptDataError(f"{bundle}: {MANIFEST_NAME} gives {name!r} the checksum {digest!r}, which is "
                                   f"not an MD5. {FRESH_COPY}")
    return manifest


def _classify(bundle: Path, name: str) -> bool:
    """True for an official file; False for an entry to ignore; CorruptDataError for a malformed one."""
    path = PurePosixPath(name)
    if not name.strip() or path.is_absolute() or ".." in path.parts or "\\" in name or name != path.as_posix():
        raise CorruptDataError(f"{bundle} lists an unsafe or empty path {name!r}; nothing was installed. {FRESH_COPY}")
    top, _, rest = name.partition("/")
    if top == MEDMNIST_SUBDIR and "/" not in rest:
        return _official_medmnist(rest) is not None
    if top == hippocampus.FOLDER and rest:
        if hippocampus.is_official_name(rest):
            return True
        if "/" in rest and rest.split("/")[0] not in ("imagesTr", "labelsTr"):
            raise CorruptDataError(f"{bundle} has an unknown folder in {name!r}; nothing was installed. {FRESH_COPY}")
        return False
    raise CorruptDataError(f"{bundle} lists an unexpected path {name!r}; nothing was installed. {FRESH_COPY}")


def check_bundle(bundle: Path, archive: zipfile.ZipFile, root: Path) -> tuple[dict[str, str], list[str]]:
    """({official name: md5}, [ignored names]) after every check that needs no unpacking; DataError otherwise."""
    manifest = _read_manifest(bundle, archive)
    infos = {info.filename: info for info in archive.infolist() if not info.is_dir()}
    unlisted = sorted(set(infos) - set(manifest) - {MANIFEST_NAME})
    official, ignored = {}, []
    for name in [*manifest, *unlisted]:
        if _classify(bundle, name) and name in manifest:
            official[name] = manifest[name]
        else:
            ignored.append(name)
    missing = sorted(name for name in official if name not in infos)
    if missing:
        raise CorruptDataError(f"{bundle} lists {len(missing)} files it does not contain (first: {missing[0]}); "
                               f"it is truncated or was edited. Nothing was installed. {FRESH_COPY}")
    if not official:
        raise CorruptDataError(f"{bundle} holds no official course file; nothing was installed. {FRESH_COPY}")
    declared = sum(infos[name].file_size for name in official)
    bound = _total_bound(list(official))
    too_big = [name for name in official if infos[name].file_size > _size_bound(name) * SIZE_MARGIN]
    if too_big or declared > bound * SIZE_MARGIN:
        first = too_big[0] if too_big else "the whole bundle"
        raise CorruptDataError(
            f"{bundle} declares {declared / 1e6:,.1f} MB of data, more than the official files can take "
            f"({bound / 1e6:,.1f} MB; first offender: {first}). It was refused before unpacking. {FRESH_COPY}")
    free = shutil.disk_usage(root).free
    if declared > free:
        raise UnreadableDataError(
            f"{bundle} needs {declared / 1e6:,.1f} MB but {root} has only {free / 1e6:,.1f} MB free; nothing was "
            "unpacked. Free some space, or unpack elsewhere with `--into FOLDER` (or set COURSE_DATA_DIR).")
    return official, ignored


def _expected_md5(name: str) -> str:
    """The official checksum of a bundle entry ('' for dataset.json, which is checked by structure)."""
    top, _, rest = name.partition("/")
    if top == MEDMNIST_SUBDIR:
        return medmnist_data.official_url_md5(*_official_medmnist(rest))[1]
    return hippocampus.shipped_manifest().get(rest, "")


def _extract(archive: zipfile.ZipFile, names: list[str], staging: Path) -> None:
    """Copy the named members into `staging` (names were checked: no path tricks)."""
    for name in names:
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(name) as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)


def _install(root: Path, staging: Path, names: list[str]) -> list[str]:
    """Move the checked files from `staging` into `root`; the hippocampus folder in the crash-safe order."""
    installed = []
    for name in sorted(n for n in names if n.startswith(f"{MEDMNIST_SUBDIR}/")):
        (root / MEDMNIST_SUBDIR).mkdir(parents=True, exist_ok=True)
        os.replace(staging / name, root / name)
        installed.append(name)
    if (staging / hippocampus.FOLDER).is_dir():
        replace_folder(staging / hippocampus.FOLDER, root / hippocampus.FOLDER)
        installed.append(hippocampus.FOLDER + "/")
    return installed


def unpack_bundle(bundle: Path, root: Path | None = None) -> list[str]:
    """Check a bundle (structure, sizes, then every file's official checksum) and only then install it."""
    bundle = Path(bundle)
    try:
        root = Path(root) if root else download_root()
    except PermissionError as error:
        raise UnreadableDataError(f"{error} Or name a folder with `--into FOLDER`.") from error
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UnreadableDataError(f"Cannot create the data folder {root}: {error}. Pick another with --into.") from error
    clean_stale(root)
    staging = staged_path(root, "bundle", "unpacking")
    try:
        with zipfile.ZipFile(bundle) as archive:
            official, ignored = check_bundle(bundle, archive, root)
            if ignored:
                print(f"Ignored {len(ignored)} entries that are not official course files (not installed): "
                      + ", ".join(ignored[:5]) + (" ..." if len(ignored) > 5 else ""))
            _extract(archive, list(official), staging)
        bad = [name for name, digest in official.items() if md5sum(staging / name) != digest]
        bad += [name for name in official if _expected_md5(name) and md5sum(staging / name) != _expected_md5(name)]
        if (staging / hippocampus.FOLDER).is_dir():
            bad += [f"{hippocampus.FOLDER}/{n}" for n in hippocampus.verify_folder(staging / hippocampus.FOLDER)]
        if bad:
            raise CorruptDataError(
                f"{bundle}: {len(set(bad))} files are missing or do not match their official checksums (first: "
                f"{sorted(set(bad))[0]}); nothing was installed. {FRESH_COPY}"
            )
        try:
            return _install(root, staging, list(official))
        except OSError as error:
            raise UnreadableDataError(f"Installing {bundle} into {root} failed part-way ({error}); the files "
                                      "checked so far may be in place, the hippocampus folder is the old or the "
                                      "new one, never a mix. Free space or fix the folder's permissions and run "
                                      "unbundle again.") from error
    except DataError:
        raise
    except FileNotFoundError as error:
        raise UnreadableDataError(f"There is no bundle at {bundle} ({error.strerror}). Check the file name.") from error
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, NotImplementedError, RuntimeError, zlib.error) as error:
        # (RuntimeError: an encrypted entry; zlib.error: corrupt compressed data)
        raise CorruptDataError(f"{bundle} is not a readable zip bundle ({type(error).__name__}: {error}); it is "
                               f"truncated or another kind of file. Nothing was installed. {FRESH_COPY}") from error
    except OSError as error:
        raise UnreadableDataError(f"Could not unpack {bundle} into {root}: {error}. Check both paths and the free "
                                  "space; nothing was installed.") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
