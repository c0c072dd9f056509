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
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
                    if time.monotonic() - started > deadline_s:
                        raise TimeoutError(f"the download took longer than its deadline of {deadline_s:.0f} s")
            if total is not None and out.tell() != total:
                raise CorruptDataError(
                    f"Download of {url} stopped after {out.tell()} of {total} bytes. "
                    f"Nothing was saved; run it again: {fix_hint}"
                )
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != md5:
            raise CorruptDataError(
                f"Downloaded {url} but its MD5 is {digest.hexdigest()}, expected {md5}. "
                f"The file was discarded (a partial or altered download). Try again: {fix_hint}"
            )
        os.replace(partial, target)
    except OSError as error:
        if isinstance(error, urllib.error.URLError | TimeoutError | ConnectionError) or error.errno is None:
            raise DatasetNotFoundError(
                f"Could not download {url} ({error}). Check the network and retry with {fix_hint}, or copy "
                f"the file by hand to {target} (expected MD5 {md5})."
            ) from error
        if error.errno in _DISK_FULL:
            raise UnreadableDataError(
                f"The disk is full while saving {target} ({_free_space(target.parent)}); nothing was saved. "
                f"Free some space, or set COURSE_DATA_DIR to a disk with room, then retry with {fix_hint}."
            ) from error
        raise UnreadableDataError(describe_os_error(error, f"save the download of {url}")) from error
    except http.client.HTTPException as error:
        raise DatasetNotFoundError(
            f"Could not download {url} ({type(error).__name__}: {error}). Check the network and retry with "
            f"{fix_hint}, or copy the file by hand to {target} (expected MD5 {md5})."
        ) from error
    finally:
        partial.unlink(missing_ok=True)
    return target
