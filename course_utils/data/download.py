"""Checksummed, atomic downloads: a file appears under its real name only once its MD5 matches."""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from course_utils.data.errors import (
    CorruptDataError,
    DatasetNotFoundError,
    UnreadableDataError,
    describe_os_error,
)
from course_utils.data.staging import clean_stale, staged_path

CHUNK = 1 << 20
DEADLINE_S = 1800.0  # a whole download may take at most this long (a stalled mirror must not hang a class)
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def md5sum(path: Path) -> str:
    """MD5 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _free_space(folder: Path) -> str:
    """Free space of the disk holding `folder`, in words."""
    try:
        return f"{shutil.disk_usage(folder).free / 1e6:,.0f} MB free"
    except OSError:
        return "free space unknown"


class _LocalWriteError(Exception):
    """An OSError while writing the local file (disk full, permissions), told apart from network errors."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _write_local(operation, *args):
    """Run a local file operation; its OSError becomes a `_LocalWriteError`."""
    try:
        return operation(*args)
    except OSError as error:
        raise _LocalWriteError(error) from error


def download_file(url: str, target: Path, md5: str, fix_hint: str, timeout: float = 30.0,
                  deadline_s: float = DEADLINE_S) -> Path:
    """Fetch `url` to `target` via a hidden `.part` file, renamed only if its MD5 equals `md5`.

    `timeout` bounds each network wait, `deadline_s` the whole download.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UnreadableDataError(describe_os_error(error, "create the download folder")) from error
    clean_stale(target.parent)
    partial = staged_path(target.parent, target.name, "part")
    digest = hashlib.md5()
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, leave=False) as bar:
                # read1: whatever has arrived (up to 1 MiB), so a trickling server cannot outlast the deadline
                for block in iter(lambda: response.read1(CHUNK), b""):
                    _write_local(out.write, block)
                    digest.update(block)
                    bar.update(len(block))
                    if time.monotonic() - started > deadline_s:
                        raise TimeoutError(f"the download took longer than its deadline of {deadline_s:.0f} s")
            if total is not None and out.tell() != total:
                raise CorruptDataError(
                    f"Download of {url} stopped after {out.tell()} of {total} bytes. "
                    f"Nothing was saved; run it again: {fix_hint}"
                )
            _write_local(out.flush)
            _write_local(os.fsync, out.fileno())
        if digest.hexdigest() != md5:
            raise CorruptDataError(
                f"Downloaded {url} but its MD5 is {digest.hexdigest()}, expected {md5}. "
                f"The file was discarded (a partial or altered download). Try again: {fix_hint}"
            )
        _write_local(os.replace, partial, target)
    except _LocalWriteError as wrapped:
        error = wrapped.error
        if error.errno in _DISK_FULL:
            raise UnreadableDataError(
                f"The disk is full while saving {target} ({_free_space(target.parent)}); nothing was saved. "
                f"Free some space, or set COURSE_DATA_DIR to a disk with room, then retry with {fix_hint}."
            ) from error
        raise UnreadableDataError(describe_os_error(error, f"save the download of {url}")) from error
    except OSError as error:  # everything else on the way in is the network's (DNS, TLS, proxies, time-outs)
        raise DatasetNotFoundError(
            f"Could not download {url} ({type(error).__name__}: {error}). Check the network and retry with "
            f"{fix_hint}, or copy the file by hand to {target} (expected MD5 {md5})."
        ) from error
    except http.client.HTTPException as error:
        raise DatasetNotFoundError(
            f"Could not download {url} ({type(error).__name__}: {error}). Check the network and retry with "
            f"{fix_hint}, or copy the file by hand to {target} (expected MD5 {md5})."
        ) from error
    finally:
        partial.unlink(missing_ok=True)
    return target
