"""Trained runs for a workshop: `pack` puts a profile's completed runs in one zip; `unpack` checks, installs.

    python -m course_utils.runs pack course-runs.zip [--profile smoke|cpu|gpu]   # where `make course` ran
    python -m course_utils.runs list [course-runs.zip]   # what pack would take, or what a bundle holds
    python -m course_utils.runs unpack course-runs.zip [--replace]               # in the room

A **run** is one checkpoint file under the checkpoint root (`COURSE_CHECKPOINT_DIR`): `<run folder>/last.pt`
of a `train_gan` run, one cached classifier in `domain_classifier_<flag><size>/`, one cached result of
notebook 04's classifiers (`04_classifiers_.../<regime>.pt`), or one result cached by
`course_utils.checkpoint.cached_result` (01's toy GANs, 03's evaluation, 05's two-sample tests, 06's
non-local-means grid and lesion test, 07's shortcut tests, critic ranking, validation and test scores, 08's scores
that 09 loads too, 10's scores and step sweep). It is **completed** when
it loads with `torch.load(weights_only=True)`, stores its settings and (for `train_gan`) has all its planned
epochs; hidden names (temp files, staging) are passed over, anything else is skipped and named. A run folder
belongs to a profile when the profile is one of the `_`-separated words of its name
(`02_dcgan_pneumoniamnist28_smoke`); a folder that names no profile (the domain-classifier caches) is shared
by every profile and always travels.

The zip holds the files and `COURSE_RUNS.json`: the profile, the course version, a fingerprint of every
notebook's settings for that profile (`settings_fingerprint`), and each file's size, SHA-256 and stored
settings. `unpack` refuses the whole bundle, before installing anything, when it is not a readable zip, the
manifest is missing or malformed, a name is unsafe (absolute, `..`, a drive letter, a backslash, hidden, a
link, deeper than `<run>/<file>.pt`) or appears twice, an entry is not in the manifest (or a listed one is
missing), a size is over the cap (`MAX_FILE_BYTES`, `MAX_TOTAL_BYTES`) or the free disk space, or the
fingerprint is not this course's: the notebooks would then ask for other runs. Files are extracted into a
hidden staging folder beside the target and installed only after every size and SHA-256 matches and every
file loads weights-only, as a completed run, with the settings the manifest lists. Each file is then renamed
into place on its own (atomic: a crash leaves the old or the new copy of a run, never half of one).

The checksums catch damage and edits made after packing; they cannot vouch for whoever packed the bundle.
What keeps a hostile bundle harmless is the weights-only load (no code runs), the path rules and the caps.
A run already present with other contents is kept unless `--replace` is given (then the bundle's copy
replaces it); an identical one is left as it is; other files in the checkpoint root are never touched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import course_utils
from course_utils.checkpoint import (
    CONFIG_KEY,
    CheckpointError,
    UnsafeCheckpointError,
    config_differences,
    load_checkpoint,
)
from course_utils.config import NOTEBOOK_SETTINGS, PROFILES, active_profile, settings_for, step_cap
from course_utils.data.staging import clean_stale, staged_path
from course_utils.locations import CHECKPOINT_ENV, checkpoint_root

MANIFEST_NAME = "COURSE_RUNS.json"
FORMAT = 1
MAX_FILE_BYTES = 4 * 10**9  # one checkpoint file
MAX_TOTAL_BYTES = 16 * 10**9  # a whole bundle
MANIFEST_MAX_BYTES = 16 << 20  # about 1 kB of settings per run
CHUNK = 1 << 20
Files = Mapping[str, Mapping[str, Any]]  # the manifest's {name: {size, sha256, settings}}
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")  # a folder or file name: no spaces, no separators
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
FRESH_COPY = ("Ask for a fresh copy, or pack the runs again with `python -m course_utils.runs pack FILE.zip` "
              "on the machine that trained them.")


class RunsBundleError(RuntimeError):
    """A runs bundle cannot be made, read or installed; the message says why and what to do."""


@dataclass(frozen=True)
class RunFile:
    """One completed run's checkpoint file, as found under the checkpoint root."""

    name: str  # "<run folder>/<file>.pt", relative to the checkpoint root
    path: Path
    size: int
    settings: dict[str, Any]  # the settings stored in the checkpoint (what `check_config` compares)
    progress: str  # "2/2 epochs" for a train_gan run, "cache" for a classifier cache


@dataclass
class PackReport:
    """What `pack_runs` put into the bundle and what it left out."""

    out: Path
    profile: str
    files: list[RunFile]
    skipped: list[str]  # "name: why"
    other_profiles: list[str]  # run folders of other profiles (not packed)


@dataclass
class UnpackReport:
    """What `unpack_runs` installed into the checkpoint root."""

    root: Path
    profile: str
    installed: list[str] = field(default_factory=list)  # new runs
    replaced: list[str] = field(default_factory=list)  # runs that were there with other contents (--replace)
    unchanged: list[str] = field(default_factory=list)  # runs already there, byte for byte


# ----------------------------------------------------------------------------- what the notebooks ask for


def settings_fingerprint(profile: str) -> str:
    """SHA-256 of every notebook's settings under `profile` (and COURSE_STEP_CAP): what they will ask for."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # settings_for warns once per notebook under COURSE_STEP_CAP
        text = repr([(name, settings_for(name, profile)) for name in sorted(NOTEBOOK_SETTINGS)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_belongs(folder_name: str, profile: str) -> bool:
    """True when a run folder's name has `profile` as one of its `_`-separated words, or names no profile."""
    words = set(folder_name.split("_"))
    return profile in words or not words & set(PROFILES)


def _not_completed(payload: Mapping[str, Any]) -> str | None:
    """Why a loaded checkpoint is not a completed run, or None when it is one."""
    if not isinstance(payload.get(CONFIG_KEY), Mapping):
        return "it stores no settings (not written by save_checkpoint)"
    if "train_config" not in payload and "epoch" not in payload:
        return None  # a cache, written once after its training (the domain classifier)
    epoch, step, train_config = payload.get("epoch"), payload.get("step"), payload.get("train_config")
    planned = train_config.get("num_epochs") if isinstance(train_config, Mapping) else None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (epoch, step, planned)):
        return "its epoch counters are missing"
    if step != 0 or epoch < planned:
        return f"unfinished: epoch {epoch} of {planned}" + (f", {step} steps into the next" if step else "")
    return None


def _progress(payload: Mapping[str, Any]) -> str:
    """'2/2 epochs' for a train_gan checkpoint, 'cache' otherwise."""
    if "epoch" in payload and isinstance(payload.get("train_config"), Mapping):
        return f"{payload['epoch']}/{payload['train_config'].get('num_epochs')} epochs"
    return "cache"


def _first_sentence(error: BaseException) -> str:
    """The first sentence of an error message, on one line (checkpoint errors are long)."""
    text = " ".join(str(error).split())
    return text.split(". ")[0][:200]


def find_runs(root: Path, profile: str) -> tuple[list[RunFile], list[str], list[str]]:
    """(completed runs of `profile` under `root`, ['name: why skipped', ...], [other profiles' folders])."""
    found: list[RunFile] = []
    skipped: list[str] = []
    others: list[str] = []
    for folder in sorted(Path(root).iterdir()):
        if folder.name.startswith("."):
            continue  # staging folders and temp files
        if folder.is_symlink() or not folder.is_dir():
            skipped.append(f"{folder.name}: not a run folder")
            continue
        if not run_belongs(folder.name, profile):
            others.append(folder.name)
            continue
        for path in sorted(folder.iterdir()):
            name = f"{folder.name}/{path.name}"
            if path.name.startswith("."):
                continue  # save_checkpoint's temp files (`.last.pt.tmp-...`)
            if not (_PART.match(folder.name) and _PART.match(path.name) and path.suffix == ".pt"):
                skipped.append(f"{name}: not a checkpoint file with a plain name (<run>/<name>.pt)")
                continue
            if path.is_symlink() or not path.is_file():
                skipped.append(f"{name}: not a plain file")
                continue
            try:
                payload = load_checkpoint(path)  # weights_only=True: refuses pickled code
            except CheckpointError as error:
                unsafe = "not weights-only, " if isinstance(error, UnsafeCheckpointError) else ""
                skipped.append(f"{name}: {unsafe}{_first_sentence(error)}")
                continue
            why = _not_completed(payload)
            if why is not None:
                skipped.append(f"{name}: {why}")
                continue
            settings = dict(payload[CONFIG_KEY])
            found.append(RunFile(name, path, path.stat().st_size, settings, _progress(payload)))
    return found, skipped, others


# ----------------------------------------------------------------------------- pack


def _root(folder: str | Path | None) -> Path:
    """The checkpoint root: `folder` if given, else COURSE_CHECKPOINT_DIR, else <repository>/checkpoints."""
    if folder is None:
        return checkpoint_root()
    root = Path(folder).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _format_bytes(count: int) -> str:
    """'3.20 GB', '41.0 MB' (decimal units)."""
    return f"{count / 1e9:.2f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"


def _copy_hashing(source: BinaryIO, target: BinaryIO, limit: int) -> tuple[int, str]:
    """Copy at most `limit` + 1 bytes from `source` to `target`; (bytes copied, their SHA-256)."""
    digest, copied = hashlib.sha256(), 0
    while copied <= limit:
        chunk = source.read(min(CHUNK, limit + 1 - copied))
        if not chunk:
            break
        digest.update(chunk)
        target.write(chunk)
        copied += len(chunk)
    return copied, digest.hexdigest()


def _check_pack_size(found: list[RunFile], profile: str, root: Path) -> None:
    """RunsBundleError when the runs would make a bundle over the caps (which unpack would refuse)."""
    too_big = [run.name for run in found if run.size > MAX_FILE_BYTES]
    total = sum(run.size for run in found)
    if too_big or total > MAX_TOTAL_BYTES:
        raise RunsBundleError(
            f"The {profile} runs in {root} take {_format_bytes(total)}; a runs bundle holds at most "
            f"{_format_bytes(MAX_TOTAL_BYTES)}, {_format_bytes(MAX_FILE_BYTES)} per file (first too big: "
            f"{too_big[0] if too_big else 'the whole set'}). Pack fewer runs (another --checkpoint-dir).")


def pack_runs(out: str | Path, profile: str | None = None, root: str | Path | None = None) -> PackReport:
    """Write every completed run of `profile` under the checkpoint root into the zip `out` (atomically)."""
    out = Path(out)
    profile = profile or active_profile()
    root = _root(root)
    found, skipped, others = find_runs(root, profile)
    if not found:
        raise RunsBundleError(
            f"There is no completed run of the {profile} profile in {root} to pack (skipped: {len(skipped)}, "
            f"other profiles' folders: {len(others)}). Run the course first (`COURSE_PROFILE={profile} make "
            f"course`), or point --checkpoint-dir (or {CHECKPOINT_ENV}) at the folder that holds the runs.")
    _check_pack_size(found, profile, root)
    files: dict[str, dict[str, Any]] = {}
    temporary = staged_path(out.parent, out.name, "part")
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for run in found:
                with run.path.open("rb") as source, archive.open(run.name, "w", force_zip64=True) as target:
                    size, digest = _copy_hashing(source, target, run.size)
                if size != run.size:
                    raise RunsBundleError(
                        f"{run.path} changed while it was packed ({run.size:,} bytes when checked, {size:,} "
                        "read): a notebook is training. Pack again when no notebook runs.")
                files[run.name] = {"size": size, "sha256": digest, "settings": run.settings}
            manifest = {
                "format": FORMAT, "profile": profile, "course_version": course_utils.__version__,
                "settings_fingerprint": settings_fingerprint(profile), "step_cap": step_cap(), "files": files,
            }
            try:
                text = json.dumps(manifest, indent=1, sort_keys=True)
            except (TypeError, ValueError) as error:  # settings JSON cannot hold (bytes, complex numbers)
                raise RunsBundleError(f"A run's stored settings cannot be written to {MANIFEST_NAME} "
                                      f"({error}); those of the course's notebooks always can.") from None
            archive.writestr(MANIFEST_NAME, text)
        os.replace(temporary, out)
    except OSError as error:
        raise RunsBundleError(f"Could not write the runs bundle {out}: {error}. Pick a folder you can write "
                              "to, with enough free space.") from error
    finally:
        temporary.unlink(missing_ok=True)
    return PackReport(out, profile, found, skipped, others)


# ----------------------------------------------------------------------------- check


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: a name listed twice is an error, not 'the last one wins'."""
    counts = Counter(key for key, _ in pairs)
    doubled = [key for key, count in counts.items() if count > 1]
    if doubled:
        raise ValueError(f"duplicated key {doubled[0]!r}")
    return dict(pairs)


def check_name(bundle: Path, name: str, profile: str) -> None:
    """RunsBundleError unless `name` is `<run folder>/<file>.pt`, plain parts, of `profile` (or shared)."""
    parts = name.split("/")
    if len(parts) != 2 or not all(_PART.match(part) for part in parts) or not name.endswith(".pt"):
        raise RunsBundleError(f"{bundle} names an unsafe or unexpected path {name!r} (a run is <run "
                              f"folder>/<file>.pt with plain names); nothing was installed. {FRESH_COPY}")
    if not run_belongs(parts[0], profile):
        raise RunsBundleError(f"{bundle} is a {profile} bundle but holds {name!r}, a run of another profile; "
                              f"nothing was installed. {FRESH_COPY}")


def read_manifest(bundle: Path, archive: zipfile.ZipFile) -> dict[str, Any]:
    """The bundle's manifest after checking its every field; RunsBundleError saying what is wrong."""
    try:
        info = archive.getinfo(MANIFEST_NAME)
    except KeyError:
        raise RunsBundleError(f"{bundle} has no {MANIFEST_NAME}; it is not a runs bundle (a data bundle "
                              "is unpacked with `python -m course_utils.data unbundle`). "
                              f"{FRESH_COPY}") from None
    if info.file_size > MANIFEST_MAX_BYTES:
        raise RunsBundleError(f"{bundle}: {MANIFEST_NAME} declares {info.file_size:,} bytes, more than a "
                              f"list of runs can take ({MANIFEST_MAX_BYTES:,}); it was not read. "
                              f"{FRESH_COPY}")
    try:
        manifest = json.loads(archive.read(info), object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as error:
        raise RunsBundleError(f"{bundle}: {MANIFEST_NAME} is not valid JSON ({type(error).__name__}: "
                              f"{_first_sentence(error)}). {FRESH_COPY}") from None
    problem = _manifest_problem(manifest)
    if problem:
        raise RunsBundleError(f"{bundle}: {MANIFEST_NAME} is malformed: {problem}. {FRESH_COPY}")
    for name in manifest["files"]:
        check_name(bundle, name, manifest["profile"])
    return manifest


def _is_count(value: Any) -> bool:
    """A whole number >= 0 that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry_problem(name: str, entry: Any) -> str | None:
    """What is wrong with one file entry of the manifest, or None."""
    if not isinstance(entry, dict) or set(entry) != {"size", "sha256", "settings"}:
        return f"the entry of {name!r} must hold exactly size, sha256 and settings"
    size, digest = entry["size"], entry["sha256"]
    if not _is_count(size) or not isinstance(digest, str) or not _SHA256.match(digest):
        return f"{name!r} has the size {size!r} and checksum {digest!r}, not a size and a SHA-256"
    if not isinstance(entry["settings"], dict):
        return f"the settings of {name!r} are not an object"
    return None


def _manifest_problem(manifest: Any) -> str | None:
    """What is wrong with a decoded manifest, or None."""
    if not isinstance(manifest, dict):
        return "it must be a JSON object"
    expected = {"format", "profile", "course_version", "settings_fingerprint", "step_cap", "files"}
    if set(manifest) != expected:
        return f"its keys must be {sorted(expected)}, got {sorted(manifest)}"
    if manifest["format"] != FORMAT or isinstance(manifest["format"], bool):
        return f"format {manifest['format']!r} is not {FORMAT} (made by another version of the course?)"
    if manifest["profile"] not in PROFILES:
        return f"profile {manifest['profile']!r} is not one of {', '.join(PROFILES)}"
    if not isinstance(manifest["course_version"], str):
        return "course_version must be a string"
    fingerprint = manifest["settings_fingerprint"]
    if not isinstance(fingerprint, str) or not _SHA256.match(fingerprint):
        return "settings_fingerprint is not a SHA-256"
    cap = manifest["step_cap"]
    if cap is not None and not (_is_count(cap) and cap >= 1):
        return f"step_cap {cap!r} is neither null nor a positive number of steps"
    files = manifest["files"]
    if not isinstance(files, dict) or not files:
        return "files must be a non-empty object {name: {size, sha256, settings}}"
    return next((problem for name, entry in files.items() if (problem := _entry_problem(name, entry))), None)


def check_fingerprint(bundle: Path, manifest: Mapping[str, Any]) -> None:
    """RunsBundleError unless this course's notebooks ask for the runs the bundle was packed for."""
    profile, theirs = manifest["profile"], manifest["course_version"]
    if manifest["settings_fingerprint"] == settings_fingerprint(profile):
        return
    ours, cap = course_utils.__version__, step_cap()
    version = (f"course version {theirs}, this course is {ours}" if theirs != ours
               else f"the same course version ({ours}) with other notebook settings")
    capped = (f"; it was packed with COURSE_STEP_CAP={manifest['step_cap']}, here it is "
              f"{'unset' if cap is None else cap}" if manifest["step_cap"] != cap else "")
    raise RunsBundleError(
        f"{bundle} holds runs of the {profile} profile packed by {version}{capped}: this course's notebooks "
        "would ask for other runs (other settings), so nothing was installed. Pack them again with this "
        "version of the course (update the teacher's copy, then `python -m course_utils.runs pack FILE.zip "
        f"--profile {profile}`), or use the course version the bundle was made with.")


def _check_members(bundle: Path, archive: zipfile.ZipFile, files: Files) -> None:
    """RunsBundleError unless the zip's members are the manifest's files exactly: plain, of their sizes."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    counts, folded = Counter(names), Counter(name.casefold() for name in files)
    doubled = sorted(name for name, count in counts.items() if count > 1)
    doubled += sorted(name for name in files if folded[name.casefold()] > 1)
    if doubled:
        raise RunsBundleError(f"{bundle} holds {doubled[0]!r} more than once (or in two spellings that one "
                              f"disk would mix up); nothing was installed. {FRESH_COPY}")
    unlisted = sorted(set(names) - set(files) - {MANIFEST_NAME})
    if unlisted:
        raise RunsBundleError(f"{bundle} holds {len(unlisted)} entries its {MANIFEST_NAME} does not list "
                              f"(first: {unlisted[0]!r}); it was edited after packing. Nothing was "
                              f"installed. {FRESH_COPY}")
    missing = sorted(set(files) - set(names))
    if missing:
        raise RunsBundleError(f"{bundle} lacks {len(missing)} runs its {MANIFEST_NAME} lists (first: "
                              f"{missing[0]}); it is truncated or was edited. Nothing was installed. "
                              f"{FRESH_COPY}")
    for info in infos:
        if info.filename == MANIFEST_NAME:
            continue
        if stat.S_ISLNK(info.external_attr >> 16) or info.is_dir():
            raise RunsBundleError(f"{bundle}: {info.filename!r} is a link or a folder, not a file; nothing "
                                  f"was installed. {FRESH_COPY}")
        if info.file_size != files[info.filename]["size"]:
            raise RunsBundleError(
                f"{bundle}: {info.filename} holds {info.file_size:,} bytes but its {MANIFEST_NAME} lists "
                f"{files[info.filename]['size']:,}; it was tampered with. Nothing was installed. "
                f"{FRESH_COPY}")


def _check_sizes(bundle: Path, files: Files, root: Path) -> None:
    """RunsBundleError when a file or the whole bundle is over the caps or over the free disk space."""
    total = sum(int(entry["size"]) for entry in files.values())
    too_big = [name for name, entry in files.items() if entry["size"] > MAX_FILE_BYTES]
    if too_big or total > MAX_TOTAL_BYTES:
        raise RunsBundleError(
            f"{bundle} declares {_format_bytes(total)} of runs, over the cap of a runs bundle "
            f"({_format_bytes(MAX_TOTAL_BYTES)} in all, {_format_bytes(MAX_FILE_BYTES)} per file; first "
            f"offender: {too_big[0] if too_big else 'the whole bundle'}). It was refused before unpacking. "
            f"{FRESH_COPY}")
    free = shutil.disk_usage(root).free
    if total > free:
        raise RunsBundleError(
            f"{bundle} needs {_format_bytes(total)} but {root} has only {_format_bytes(free)} free; nothing "
            "was unpacked. Free some space, or unpack elsewhere with --checkpoint-dir (then set "
            "COURSE_CHECKPOINT_DIR to it).")


def _sha256(path: Path) -> str:
    """The SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _existing(bundle: Path, root: Path, files: Files) -> tuple[list[str], list[str]]:
    """(runs already in `root` byte for byte, runs present there with other contents)."""
    same, different = [], []
    for name, entry in files.items():
        folder, target = root / name.split("/")[0], root / name
        odd_folder = folder.is_symlink() or (folder.exists() and not folder.is_dir())
        if odd_folder or target.is_symlink() or (target.exists() and not target.is_file()):
            raise RunsBundleError(f"{target} (or its folder) is a link or not a plain file or folder, so "
                                  f"{name} from {bundle} cannot be installed there; nothing was installed. "
                                  "Move it away, or unpack into another folder with --checkpoint-dir.")
        if target.is_file():
            (same if _sha256(target) == entry["sha256"] else different).append(name)
    return same, different


# ----------------------------------------------------------------------------- unpack


def _extract(bundle: Path, archive: zipfile.ZipFile, files: Files, names: list[str], staging: Path) -> None:
    """Copy the named members into `staging`, each checked against its size and SHA-256 on the way."""
    for name in names:
        entry = files[name]
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(name) as source, target.open("wb") as out:
            size, digest = _copy_hashing(source, out, int(entry["size"]))
        if size != entry["size"] or digest != entry["sha256"]:
            raise RunsBundleError(f"{bundle}: {name} does not match its SHA-256 in {MANIFEST_NAME} (damaged "
                                  f"or tampered with); nothing was installed. {FRESH_COPY}")


def _verify_staged(bundle: Path, files: Files, names: list[str], staging: Path) -> None:
    """Each staged file loads weights-only, is a completed run and stores the settings the manifest lists."""
    for name in names:
        try:
            payload = load_checkpoint(staging / name)  # torch.load(weights_only=True)
        except CheckpointError as error:
            what = ("is not weights-only (it asks to run code when loaded)"
                    if isinstance(error, UnsafeCheckpointError) else "is not a readable checkpoint")
            raise RunsBundleError(f"{bundle}: {name} {what}; nothing was installed. {FRESH_COPY}") from None
        why = _not_completed(payload)
        problem = f"is not a completed run ({why})" if why is not None else None
        if problem is None and config_differences(payload[CONFIG_KEY], files[name]["settings"]):
            problem = f"stores other settings than {MANIFEST_NAME} lists for it"
        if problem is not None:
            raise RunsBundleError(f"{bundle}: {name} {problem}; nothing was installed. {FRESH_COPY}")


def _check_bundle(bundle: Path, archive: zipfile.ZipFile, root: Path) -> dict[str, Any]:
    """The manifest, after every check that needs no unpacking."""
    manifest = read_manifest(bundle, archive)
    check_fingerprint(bundle, manifest)
    _check_members(bundle, archive, manifest["files"])
    _check_sizes(bundle, manifest["files"], root)
    return manifest


def unpack_runs(bundle: str | Path, root: str | Path | None = None, replace: bool = False) -> UnpackReport:
    """Check a runs bundle completely, then install its runs into the checkpoint root (see the module doc)."""
    bundle = Path(bundle)
    if not bundle.is_file():
        raise RunsBundleError(f"There is no runs bundle at {bundle}. Check the file name.")
    try:
        root = _root(root)
    except OSError as error:
        raise RunsBundleError(f"Cannot use the checkpoint folder: {error}. Pick another with "
                              "--checkpoint-dir.") from error
    clean_stale(root)  # what a killed unpack left behind
    staging = staged_path(root, "runs", "unpacking")
    try:
        with zipfile.ZipFile(bundle) as archive:
            manifest = _check_bundle(bundle, archive, root)
            files = manifest["files"]
            same, different = _existing(bundle, root, files)
            if different and not replace:
                raise RunsBundleError(
                    f"{root} already holds {len(different)} of these runs with other contents (first: "
                    f"{different[0]}); nothing was installed. Unpack with --replace to put the bundle's "
                    "copies in their place (yours are deleted), or into another folder with "
                    "--checkpoint-dir.")
            names = sorted(set(files) - set(same))
            staging.mkdir()
            _extract(bundle, archive, files, names, staging)
        _verify_staged(bundle, files, names, staging)
        report = UnpackReport(root, manifest["profile"], unchanged=sorted(same))
        for name in names:
            (report.replaced if name in different else report.installed).append(name)
            (root / name).parent.mkdir(exist_ok=True)
            os.replace(staging / name, root / name)  # atomic: the old or the new run, never half of one
        return report
    except RunsBundleError:
        raise
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
            zlib.error) as error:  # (RuntimeError: an encrypted entry; zlib.error: corrupt compressed data)
        raise RunsBundleError(f"{bundle} is not a readable zip bundle ({type(error).__name__}: "
                              f"{_first_sentence(error)}); it is truncated or another kind of file. Nothing "
                              f"was installed. {FRESH_COPY}") from error
    except OSError as error:
        raise RunsBundleError(f"Could not unpack {bundle} into {root}: {error}. Check both paths and the "
                              "free space; runs installed before the error are complete, the others were not "
                              "touched.") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ----------------------------------------------------------------------------- command line


def describe_bundle(bundle: str | Path) -> str:
    """A bundle's profile, version, whether it fits this course, and its runs (its manifest is checked)."""
    bundle = Path(bundle)
    try:
        with zipfile.ZipFile(bundle) as archive:
            manifest = read_manifest(bundle, archive)
    except FileNotFoundError as error:
        raise RunsBundleError(f"There is no runs bundle at {bundle} ({error.strerror}).") from error
    except zipfile.BadZipFile as error:
        raise RunsBundleError(f"{bundle} is not a readable zip bundle ({error}). {FRESH_COPY}") from error
    files = manifest["files"]
    fits = manifest["settings_fingerprint"] == settings_fingerprint(manifest["profile"])
    total = sum(entry["size"] for entry in files.values())
    lines = [f"{bundle}: {len(files)} runs of the {manifest['profile']} profile ({_format_bytes(total)}), "
             f"course version {manifest['course_version']}; "
             + ("matches this course's notebooks." if fits else "does NOT match this course's notebooks.")]
    return "\n".join(lines + [f"  {name}" for name in sorted(files)])


def _print_pack(report: PackReport) -> None:
    """What pack took and left out, and the learners' next step."""
    total = sum(run.size for run in report.files)
    print(f"Packed {len(report.files)} completed runs of the {report.profile} profile "
          f"({_format_bytes(total)}) into {report.out}:")
    for run in report.files:
        print(f"  {run.name} ({run.progress})")
    for line in report.skipped:
        print(f"  not packed: {line}")
    if report.other_profiles:
        print(f"  ({len(report.other_profiles)} run folders of other profiles were left out)")
    print(f"In the room: `python -m course_utils.runs unpack {report.out.name}`, then "
          f"`COURSE_PROFILE={report.profile} make course` (nothing is trained).")


def _print_unpack(report: UnpackReport) -> None:
    """What unpack installed, and the next step."""
    count = len(report.installed) + len(report.replaced)
    print(f"Installed {count} runs of the {report.profile} profile into {report.root}:")
    for name in report.installed:
        print(f"  new       {name}")
    for name in report.replaced:
        print(f"  replaced  {name}")
    for name in report.unchanged:
        print(f"  unchanged {name} (already there)")
    print(f"Next: `COURSE_PROFILE={report.profile} make course` loads these runs instead of training them "
          "(with COURSE_REQUIRE_TRAINED=1 a run that would still train is an error).")


def _print_list(profile: str | None, folder: Path | None) -> None:
    """What `pack` would take from the checkpoint root."""
    profile = profile or active_profile()
    root = _root(folder)
    found, skipped, others = find_runs(root, profile)
    print(f"{root}: {len(found)} completed runs of the {profile} profile would be packed:")
    for run in found:
        print(f"  {run.name} ({run.progress})")
    for line in skipped:
        print(f"  not packed: {line}")
    if others:
        print(f"  ({len(others)} run folders of other profiles)")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m course_utils.runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="put every completed run of a profile into one zip")
    pack.add_argument("out", type=Path)
    pack.add_argument("--profile", choices=PROFILES, default=None,
                      help="default: COURSE_PROFILE, else gpu with CUDA, else cpu")
    unpack = commands.add_parser("unpack", help="check a runs bundle and install its runs")
    unpack.add_argument("file", type=Path)
    unpack.add_argument("--replace", action="store_true",
                        help="replace runs that are there with other contents")
    show = commands.add_parser("list", help="what `pack` would take, or what a bundle holds")
    show.add_argument("file", type=Path, nargs="?", default=None)
    show.add_argument("--profile", choices=PROFILES, default=None)
    for command in (pack, unpack, show):
        command.add_argument("--checkpoint-dir", type=Path, default=None,
                             help=f"the checkpoint root (default: {CHECKPOINT_ENV}, else checkpoints/)")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            _print_pack(pack_runs(args.out, args.profile, args.checkpoint_dir))
        elif args.command == "unpack":
            _print_unpack(unpack_runs(args.file, args.checkpoint_dir, replace=args.replace))
        elif args.file is not None:
            print(describe_bundle(args.file))
        else:
            _print_list(args.profile, args.checkpoint_dir)
        return 0
    except RunsBundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an unreadable or unwritable folder, a file where a folder belongs ...
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
