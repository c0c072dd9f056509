"""Checkpoints: atomic save, safe (weights-only) load, config compatibility check, RNG state.

Introduced in notebook 02 (`02_dcgan_medmnist`, "checkpoints and resume"); `course_utils.training.loop` uses it.
`COURSE_REQUIRE_TRAINED=1` makes every run under the checkpoint root that would be trained raise instead
(`refuse_training_if_required`): the check that an unpacked runs bundle (`course_utils.runs`) covers a course.

A checkpoint is one file written by `torch.save` holding a dict: the caller's `state` (state_dicts,
counters, histories, `rng_state()`) plus the run's settings under the key `"config"`. Everything in
it must be a tensor or a plain Python value, so that it loads with `torch.load(weights_only=True)`,
which refuses to run code hidden in a pickle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import inspect
import os
import pickle
import pickletools
import random
import re
import secrets
import shutil
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

from course_utils.checks import process_alive
from course_utils.locations import checkpoint_root

CONFIG_KEY = "config"
REQUIRE_TRAINED_ENV = "COURSE_REQUIRE_TRAINED"  # 1: runs under the checkpoint root are loaded, never trained
_MISSING = "<missing>"
# The temp file `save_checkpoint` writes before the rename: `.{name}.tmp-{pid}-{hex}`.
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)-(?P<token>[0-9a-f]+)")
_DISK_FULL_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)
_FIX_FOLDER = (
    "Pick another folder (the checkpoint_dir argument), or set the environment variable COURSE_CHECKPOINT_DIR "
    "to a writable folder (the notebooks' run folders, `course_utils.locations.run_dir`, live under it)."
)
# Types that torch.load(weights_only=True) rebuilds without running arbitrary code.
_SAFE_LEAVES: tuple[type, ...] = (
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    type(None),
    torch.Size,
    torch.dtype,
    torch.device,
)
_SAFE_TENSORS: tuple[type, ...] = (torch.Tensor, torch.nn.Parameter)
# Globals a state_dict checkpoint legitimately names; anything else is reported as the offender.
_EXPECTED_GLOBAL_PREFIXES: tuple[str, ...] = (
    "torch.",
    "torch ",
    "collections OrderedDict",
    "builtins set",
    "builtins complex",
    "_codecs encode",
)


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read (corrupt, truncated, unreadable)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """There is no checkpoint file at the given path."""

    def __init__(self, message: str, filename: str) -> None:
        super().__init__(message)
        self.errno, self.strerror, self.filename = errno.ENOENT, message, filename

    def __str__(self) -> str:
        return self.strerror


class UnsafeCheckpointError(CheckpointError):
    """The file holds pickled objects other than weights; loading them could run arbitrary code."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint was saved with settings that differ from this run's settings."""

    def __init__(self, message: str, differences: list[tuple[str, Any, Any]]) -> None:
        super().__init__(message)
        self.differences = differences  # [(key, stored value, expected value), ...]


class UntrainedRunError(CheckpointError):
    """COURSE_REQUIRE_TRAINED=1, and a run under the checkpoint root has no finished checkpoint to load."""


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 of the tensors' shapes, dtypes and exact bytes, in order (a cache key for data or weights).

    `tensor_digest(*model.state_dict().values())` names a network's weights: identical on every machine that
    loaded the same checkpoint, different as soon as one weight differs.
    """
    hasher = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        hasher.update(f"{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()


def code_digest(*functions: Callable[..., Any]) -> str:
    """SHA-256 of the functions' source code, in order (a cache key for code a learner may edit).

    A result cached with `cached_result` is only valid for the code that computed it: put
    `code_digest(train_toy_gan, sample_real)` in its settings, and an edited cell computes it again. Functions
    defined in a notebook cell have their source (IPython keeps it); for one without source (built with
    `exec`), its bytecode and constants stand in.
    """
    hasher = hashlib.sha256()
    for function in functions:
        function = inspect.unwrap(function) if callable(function) else function  # the decorated function
        if not inspect.isfunction(function):
            raise TypeError(f"code_digest takes functions (def or lambda), got {type(function).__name__}: "
                            f"{function!r:.80}; for a functools.partial, pass its .func and put its arguments "
                            "in the settings")
        try:
            text = inspect.getsource(function)
        except (OSError, TypeError):
            text = (f"{_bytecode_text(function.__code__)}|{function.__defaults__!r}|"
                    f"{sorted((function.__kwdefaults__ or {}).items())!r}")
        hasher.update(f"{function.__qualname__}|{len(text)}|{text}".encode())
    return hasher.hexdigest()


def _bytecode_text(code: Any) -> str:
    """A code object's bytecode, names and constants as text, nested code included (no addresses or lines)."""
    def constant(value: Any) -> str:
        if inspect.iscode(value):
            return _bytecode_text(value)
        if isinstance(value, frozenset):  # `x in {"a", "b"}`: its repr's order follows the string hash seed
            return "frozenset(" + repr(sorted(repr(item) for item in value)) + ")"
        return repr(value)

    consts = [constant(c) for c in code.co_consts]
    return f"{code.co_code.hex()}|{code.co_names!r}|{code.co_varnames!r}|{code.co_freevars!r}|{consts!r}"


def refuse_training_if_required(folder: str | Path, detail: str) -> None:
    """UntrainedRunError when COURSE_REQUIRE_TRAINED=1 and a run under the checkpoint root would train.

    Runs elsewhere (a notebook's demo in a temporary folder) may still train: only the checkpoint root's runs
    can come from a runs bundle. `detail` says why it would train, e.g. 'no checkpoint' or 'epoch 1 of 2'.
    """
    value = os.environ.get(REQUIRE_TRAINED_ENV, "").strip()
    if value.lower() not in ("1", "true", "yes", "on"):
        return
    root = checkpoint_root().resolve()
    folder = Path(folder).resolve()
    if not folder.is_relative_to(root):
        return
    raise UntrainedRunError(
        f"{REQUIRE_TRAINED_ENV}={value}: the run {folder.name} would be trained now ({detail}), but every "
        f"run under the checkpoint folder {root} must be loaded, not trained. Unpack the runs bundle of this "
        "profile (`python -m course_utils.runs unpack FILE.zip`; `list FILE.zip` shows what it holds), or "
        f"unset {REQUIRE_TRAINED_ENV} to train the run here."
    )


# ----------------------------------------------------------------------------- config


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass instance or mapping of settings as a plain dict (paths become strings)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        raw = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        raw = dict(config)
    else:
        raise TypeError(
            f"config must be a dataclass instance or a dict of settings, got {type(config).__name__}. "
            "Pass the run's settings object (e.g. `settings_for(...)`) or a dict such as {'latent_dim': 100}."
        )
    return {str(key): _plain_value(value, f"config[{key!r}]") for key, value in raw.items()}


def _plain_value(value: Any, where: str) -> Any:
    """`value` with paths turned into strings; TypeError for anything weights-only loading refuses."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()  # NumPy scalar -> Python number
    if type(value) in _SAFE_LEAVES:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain_value(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_plain_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__} ({value!r}); a checkpoint's "
        "config may hold only numbers, strings, booleans, None, paths and lists/tuples/dicts of those. "
        "Convert it (e.g. `.item()` for NumPy scalars, `str(...)` for other objects)."
    )


def config_differences(stored: Mapping[str, Any], expected: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, stored, expected) for every setting that differs; nested keys are dotted, absent is '<missing>'."""
    flat_stored, flat_expected = _flatten(stored), _flatten(expected)
    differences = []
    for key in sorted(set(flat_stored) | set(flat_expected)):
        old, new = flat_stored.get(key, _MISSING), flat_expected.get(key, _MISSING)
        if _comparable(old) != _comparable(new):
            differences.append((key, old, new))
    return differences


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys: {'opt': {'lr': 1}} -> {'opt.lr': 1}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def _comparable(value: Any) -> Any:
    """A form where a tuple equals the list with the same items and a path equals its string."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, list | tuple):
        return [_comparable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _comparable(v) for k, v in value.items()}
    return value


def check_config(path: str | Path, stored: Any, expected: Any) -> None:
    """Raise CheckpointMismatchError (listing every differing key) unless stored == expected."""
    expected_dict = config_to_dict(expected)
    if not isinstance(stored, Mapping):
        raise CheckpointMismatchError(
            f"Checkpoint {path} has no stored settings (no {CONFIG_KEY!r} entry), so it cannot be checked "
            "against this run's configuration. It was probably not written by `save_checkpoint`. "
            "Start a fresh run in another folder, or load it without `expected_config` if you know it matches.",
            differences=[],
        )
    differences = config_differences(stored, expected_dict)
    if differences:
        lines = "\n".join(f"  - {key}: stored {old!r}, expected {new!r}" for key, old, new in differences)
        raise CheckpointMismatchError(
            f"Checkpoint {path} was saved with different settings than this run:\n{lines}\n"
            "Resuming would mix two experiments (or fail on mismatched weight shapes). Either run with the "
            "settings stored in the checkpoint (same profile / Configuration values), or start a fresh run "
            "in another folder (a new checkpoint directory).",
            differences=differences,
        )


# ----------------------------------------------------------------------------- save


def _check_weights_only_safe(value: Any, where: str) -> None:
    """TypeError naming the first entry that torch.load(weights_only=True) would refuse to rebuild."""
    if type(value) in _SAFE_TENSORS or type(value) in _SAFE_LEAVES:  # exact: np.float64 is a float subclass
        return
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            _check_weights_only_safe(key, f"{where} key {key!r}")
            _check_weights_only_safe(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple, set):
        for index, item in enumerate(value):
            _check_weights_only_safe(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"Cannot save checkpoint: {where} is a {type(value).__module__}.{type(value).__qualname__}, which "
        "torch.load(weights_only=True) refuses to load. Store only tensors, state_dicts and plain Python "
        "values (numbers, strings, None, lists, tuples, dicts): e.g. `.item()` or `torch.from_numpy(...)` "
        "for NumPy values, `str(...)` for paths, `dataclasses.asdict(...)` for dataclasses."
    )


def save_checkpoint(path: str | Path, state: Mapping[str, Any], config: Any) -> Path:
    """Write `state` plus `config` to `path` atomically (temp file, fsync, rename); return the path.

    A crash or Ctrl-C mid-write leaves the previous file at `path` untouched and no temp file behind. A failed
    write (full disk, I/O error) raises CheckpointError saying how much space the folder has left; Ctrl-C
    passes through unchanged. (A hard kill can leave the temp file; `prepare_checkpoint_dir` removes it.)
    """
    path = Path(path)
    if not isinstance(state, Mapping):
        raise TypeError(
            f"state must be a dict (e.g. {{'generator': generator.state_dict()}}), got {type(state).__name__}."
        )
    if CONFIG_KEY in state:
        raise ValueError(
            f"state has a key {CONFIG_KEY!r}, which save_checkpoint reserves for the run's settings. "
            "Pass the settings as the `config` argument and rename the key in `state`."
        )
    payload = dict(state)
    payload[CONFIG_KEY] = config_to_dict(config)
    _check_weights_only_safe(payload, "state")
    if path.is_dir():
        raise IsADirectoryError(
            f"Checkpoint path {path} is a folder; give a file name such as {path / 'last.pt'}."
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(temp, "xb") as handle:  # "x": fails rather than overwrite an existing file
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)  # atomic on POSIX and Windows: readers see the old or the new file
    except BaseException as err:  # also KeyboardInterrupt: never leave a half-written temp file
        written = _size_or_none(temp)
        temp.unlink(missing_ok=True)
        if not isinstance(err, Exception):
            raise  # KeyboardInterrupt, SystemExit: unchanged
        raise _write_failed(path, err, written) from err
    _fsync_directory(path.parent)
    return path


def _size_or_none(path: Path) -> int | None:
    """The file's size in bytes, or None when it cannot be read (or does not exist)."""
    try:
        return path.stat().st_size
    except OSError:
        return None


def _format_bytes(count: int) -> str:
    """A byte count as '3.21 GB', '512.0 MB' or '12.3 kB' (decimal units, as disks are labelled)."""
    if count >= 1e9:
        return f"{count / 1e9:.2f} GB"
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.1f} kB"


def _looks_like_full_disk(err: BaseException) -> bool:
    """True for ENOSPC/EDQUOT and for torch's zip writer failing to write (how a full disk shows up in torch.save)."""
    if isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS:
        return True
    text = str(err).lower()
    return any(words in text for words in ("file write failed", "no space left", "quota exceeded", "disk full"))


def _write_failed(path: Path, err: Exception, written: int | None) -> CheckpointError:
    """The error for a save whose write, flush, fsync or rename failed (the temp file is already removed)."""
    detail = (str(err).strip().splitlines() or ["no detail"])[0][:200]
    try:
        free = f"{_format_bytes(shutil.disk_usage(path.parent).free)} free"
    except OSError:
        free = "free space unknown"
    full = _looks_like_full_disk(err)
    what = "the disk looks full" if full else "writing the file failed"
    reached = f" after {_format_bytes(written)} had been written" if written else ""
    previous_size = _size_or_none(path)
    if previous_size is not None:
        previous = (f"The previous checkpoint at {path} ({_format_bytes(previous_size)}) is intact and unchanged, "
                    "and no partial file was left behind.")
    else:
        previous = f"No checkpoint existed at {path} before, none was written, and no partial file was left behind."
    fix = (
        "free up space on that disk (e.g. delete old runs' checkpoints)"
        if full
        else f"check that {path.parent} is writable and its disk healthy and not full"
    )
    return CheckpointError(
        f"Could not save checkpoint {path}: {what} ({type(err).__name__}: {detail}){reached}; the folder "
        f"{path.parent} has {free}. {previous} To fix: {fix}, or point COURSE_CHECKPOINT_DIR (or the "
        "checkpoint_dir argument) at a folder on another disk, then run again (train_gan resumes from the "
        "previous checkpoint)."
    )


# ----------------------------------------------------------------------------- checkpoint folder


def prepare_checkpoint_dir(folder: str | Path) -> Path:
    """Create `folder` (and its parents), check that files can be written in it, and return it as a Path.

    Call it before training, so that an unusable folder (a file, read-only, under a file) is reported at
    once rather than at the first save, after the training time was spent. It also removes temp files
    (`.{name}.tmp-{pid}-{hex}`) that `save_checkpoint` left behind when its process was killed hard; only
    those whose process no longer exists (files of this process and of live processes are kept). Process ids
    are those of this machine: do not share one checkpoint folder between runs on several machines or
    containers at the same time. Raises CheckpointError saying what is wrong and how to fix it.
    """
    folder = Path(folder)
    probe = folder / f".write-probe-{os.getpid()}-{secrets.token_hex(4)}"
    created = False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        created = True
        try:
            with open(probe, "xb") as handle:  # the module's `open`, so that tests can make it fail
                handle.write(b"probe")
        finally:
            probe.unlink(missing_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        where = "" if blocker == folder else f", so {folder} cannot be created inside it"
        raise _unusable(folder, f"{blocker} is a file, not a folder{where}") from err
    except PermissionError as err:
        what = (
            "it is not writable (permission denied when writing a test file in it)"
            if created
            else f"it could not be created: permission denied for {err.filename or folder} (its parent folder "
            "is not writable)"
        )
        raise _unusable(folder, what) from err
    except OSError as err:
        raise _unusable(folder, _os_error_words(err)) from err
    _remove_stale_temp_files(folder)
    return folder


def _os_error_words(err: OSError) -> str:
    """What an OSError from creating or writing in a folder means, in words."""
    if err.errno == errno.EROFS:
        return "it is on a read-only file system"
    if err.errno in _DISK_FULL_ERRNOS:
        return "the disk is full (or the disk quota is exceeded)"
    return f"files cannot be written there ({type(err).__name__}: {err.strerror or err})"


def _unusable(folder: Path, what: str) -> CheckpointError:
    """The error for a checkpoint folder that cannot be used."""
    shown = str(folder) if folder.is_absolute() else f"{folder} (absolute: {folder.absolute()})"
    return CheckpointError(f"Cannot use checkpoint folder {shown}: {what}. {_FIX_FOLDER}")


def _remove_stale_temp_files(folder: Path) -> None:
    """Delete `save_checkpoint` temp files in `folder` whose writing process is gone (best effort)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows; leave the files
        return
    me = os.getpid()
    try:
        with os.scandir(folder) as entries:
            stale = [
                entry.path
                for entry in entries
                if (match := _TEMP_NAME.fullmatch(entry.name)) is not None
                and entry.is_file(follow_symlinks=False)
                and int(match["pid"]) != me
                and not process_alive(int(match["pid"]))
            ]
    except OSError:  # the folder cannot be listed: nothing to clean up that we could see
        return
    for name in stale:
        with contextlib.suppress(OSError):  # removed meanwhile, or not ours to delete: leave it
            os.unlink(name)


def _fsync_directory(folder: Path) -> None:
    """Make the rename durable on POSIX (a no-op where folders cannot be opened, e.g. Windows)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- load


def load_checkpoint(
    path: str | Path,
    expected_config: Any = None,
    map_location: str | torch.device | None = "cpu",
) -> dict[str, Any]:
    """Load a checkpoint with `torch.load(weights_only=True)`; check its settings if `expected_config` is given.

    Returns the saved `state` dict with the run's settings under `"config"`.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))
        hint = f" It contains: {', '.join(found)}." if found else ""
        raise CheckpointError(f"Checkpoint path {path} is a folder, not a file.{hint} Give the file's path.")
    if not path.exists():
        raise CheckpointNotFoundError(
            f"No checkpoint at {path} (absolute: {path.resolve()}). Check the path and the current folder, "
            "or train from scratch if there is nothing to resume.",
            filename=str(path),
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise _classify_unpickling_error(path, err) from err
    except Exception as err:  # zip reader errors, EOFError, OSError, KeyError ... all mean "not readable"
        raise _corrupt(path, err) from err
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"Checkpoint {path} holds a {type(payload).__name__}, not a dict of state; it was not written by "
            "`save_checkpoint`. Save checkpoints with `course_utils.checkpoint.save_checkpoint`."
        )
    if expected_config is not None:
        check_config(path, payload.get(CONFIG_KEY), expected_config)
    return payload


def cached_result(path: str | Path, settings: Mapping[str, Any], compute: Callable[[], Mapping[str, Any]],
                  recompute: bool = False) -> tuple[dict[str, Any], bool]:
    """`(result, loaded)`: the result cached at `path` for exactly `settings`, else `compute()` saved there.

    For a computation that several runs of a notebook would repeat (e.g. notebook 07's shortcut test): put the
    digests of everything it depends on (weights: `tensor_digest(*model.state_dict().values())`, data, seeds,
    step counts) in `settings`. A cached file with other settings, or one that does not load, is named and
    recomputed (and overwritten); the write is atomic (`save_checkpoint`), the load weights-only, so `result`
    holds tensors and plain values only. `recompute=True` ignores the cached file and overwrites it (a notebook's
    "train again" switch). Under `COURSE_REQUIRE_TRAINED=1` a missing result inside the checkpoint root is an
    `UntrainedRunError`, as a missing run is. Inside the checkpoint root the file is a run for `course_utils.runs`
    (name its folder with the profile to pack it with that profile's runs).
    """
    path = Path(path)
    if path.exists() and not recompute:
        try:
            state = load_checkpoint(path, expected_config=settings, map_location="cpu")
            state.pop(CONFIG_KEY, None)
            return state, True
        except CheckpointError as error:
            differences = ", ".join(str(d[0]) for d in getattr(error, "differences", ())[:5])
            why = f"other {differences}" if differences else f"{type(error).__name__}: {str(error)[:120]}"
            print(f"Not using the cached result {path.name} of {path.parent.name} ({why}); computing it again.")
    refuse_training_if_required(path.parent, f"no cached result {path.name} for these settings")
    result = dict(compute())
    save_checkpoint(path, result, settings)
    return result, False


def _corrupt(path: Path, err: BaseException) -> CheckpointError:
    """The error for a file that exists but cannot be read as a checkpoint."""
    detail = (str(err).strip().splitlines() or ["no detail"])[0]
    detail = detail if len(detail) <= 160 else detail[:160] + "..."
    return CheckpointError(
        f"Checkpoint {path} could not be read: it looks truncated or corrupted ({type(err).__name__}: {detail}). "
        "This happens when a save was interrupted without an atomic write (crash, full disk) or a copy or "
        "download is incomplete. Use another checkpoint (e.g. an earlier epoch), copy the file again, or "
        "start a fresh run."
    )


def _classify_unpickling_error(path: Path, err: pickle.UnpicklingError) -> CheckpointError:
    """UnsafeCheckpointError when the pickle asks for non-weight objects; CheckpointError when it is broken."""
    names, complete = _pickle_globals(path)
    offenders = [name for name in names if not name.startswith(_EXPECTED_GLOBAL_PREFIXES)]
    if not offenders and not complete:
        return _corrupt(path, err)  # the pickle stream is cut short or is not a pickle at all
    reason = (
        f"it asks to import and call {', '.join(n.replace(' ', '.') for n in offenders)}"
        if offenders
        else "it uses pickle instructions or objects that are not plain weights (it is not a torch weights file)"
    )
    return UnsafeCheckpointError(
        f"Refused to load {path}: {reason}. The safe loader (torch.load with weights_only=True) only "
        "unpickles tensors and plain values (numbers, strings, lists, dicts), and refused to unpickle the "
        "non-weight objects in this file. Unpickling is a security risk because a pickle can name any Python "
        "function and have it called while loading, so a checkpoint from the internet or a shared folder "
        "could run commands, delete files or install malware on your machine. What to do: use checkpoints "
        "written by `save_checkpoint`; if this file is your own and you trust it, load it once with "
        "`torch.load(path, weights_only=False)` and re-save its state_dicts with `save_checkpoint`. Never do "
        f"that for files from someone else. (torch said: {_first_line(err)})"
    )


def _first_line(err: BaseException) -> str:
    """The most telling line of torch's (long) weights-only error message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    telling = [line for line in lines if "GLOBAL" in line or "Unsupported" in line or "unsupported" in line]
    return (telling or lines or ["no detail"])[0][:200]


def _pickle_globals(path: Path) -> tuple[list[str], bool]:
    """Globals ('module name') a pickle names, read without executing it; and whether the stream was complete."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                data = archive.read(member) if member else b""
        else:
            data = path.read_bytes()
    except (OSError, zipfile.BadZipFile, KeyError, EOFError):
        return [], False
    names: list[str] = []
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):  # parses opcodes only; runs nothing
            if opcode.name == "GLOBAL":
                names.append(str(arg))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]} {strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:
        return names, False
    return names, True


# ----------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    """Torch (CPU + CUDA), Python `random` and NumPy global RNG states, as weights-only-safe values."""
    version, internal, gauss_next = random.getstate()
    name, key, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),  # uint8 tensor
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],  # one per GPU
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),  # (625,) Mersenne Twister words + index
            "gauss_next": None if gauss_next is None else float(gauss_next),
        },
        "numpy": {
            "bit_generator": str(name),
            "key": torch.from_numpy(key.astype(np.int64)),  # (624,) uint32 words stored as int64
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the RNG states captured by `rng_state()` (also after a save/load round trip)."""
    missing = [key for key in ("torch", "cuda", "python", "numpy") if key not in state]
    if missing:
        raise ValueError(
            f"RNG state is missing {', '.join(missing)}; got keys {sorted(state)}. "
            "Pass the dict returned by `rng_state()` (e.g. `checkpoint['rng']`)."
        )
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    cuda_states = list(state["cuda"])
    if cuda_states:
        if not torch.cuda.is_available():
            warnings.warn(
                "The checkpoint holds CUDA RNG states but this machine has no CUDA GPU; they were not "
                "restored, so GPU-side random numbers will differ from the original run.",
                stacklevel=2,
            )
        else:
            count = min(len(cuda_states), torch.cuda.device_count())
            if count < len(cuda_states) or count < torch.cuda.device_count():
                warnings.warn(
                    f"The checkpoint holds {len(cuda_states)} CUDA RNG states but this machine has "
                    f"{torch.cuda.device_count()} GPUs; restored the first {count}.",
                    stacklevel=2,
                )
            for device, cuda_state in enumerate(cuda_states[:count]):
                torch.cuda.set_rng_state(cuda_state.cpu().to(torch.uint8), device)
    python = state["python"]
    internal = tuple(int(v) for v in torch.as_tensor(python["internal"]).tolist())
    random.setstate((int(python["version"]), internal, python["gauss_next"]))
    numpy_state = state["numpy"]
    key = torch.as_tensor(numpy_state["key"]).cpu().numpy().astype(np.uint32)  # (624,)
    np.random.set_state(
        (
            str(numpy_state["bit_generator"]),
            key,
            int(numpy_state["pos"]),
            int(numpy_state["has_gauss"]),
            float(numpy_state["cached_gaussian"]),
        )
    )
