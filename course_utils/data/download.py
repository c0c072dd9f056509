"""Checksummed, atomic downloads: a file appears under its real name only once its MD5 matches."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tqdm.auto import tqdm

from course_utils.data.errors import CorruptDataError, DatasetNotFoundError

CHUNK = 1 << 20


def md5sum(path: Path) -> str:
    """MD5 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, target: Path, md5: str, fix_hint: str, timeout: float = 30.0) -> Path:
    """Fetch `url` to `target` via a temporary `.part` file, renamed only if its MD5 equals `md5`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, leave=False) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
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
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise DatasetNotFoundError(
            f"Could not download {url} ({error}). Check the network and retry with {fix_hint}, or copy "
            f"the file by hand to {target} (expected MD5 {md5})."
        ) from error
    finally:
        partial.unlink(missing_ok=True)
    return target
