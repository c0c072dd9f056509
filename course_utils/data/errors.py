"""Errors of the data layer. Every message says what was wrong, where we looked, and how to fix it."""

from __future__ import annotations


class DataError(RuntimeError):
    """Base class for data problems a learner can fix."""


class UnknownDatasetError(DataError, ValueError):
    """A dataset name, size or split the course does not know."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """The dataset is not on disk and could not be downloaded."""


class CorruptDataError(DataError):
    """A file is present but does not match its official checksum (truncated, tampered, wrong version)."""


class UnreadableDataError(DataError):
    """A file or folder exists but cannot be read or written here (permissions, a file where a folder belongs)."""


def describe_os_error(error: OSError, doing: str) -> str:
    """A one-line message for an OSError met while `doing` something: what, where, and how to fix it."""
    import errno as errno_codes

    where = error.filename or "a course data path"
    reason = error.strerror or type(error).__name__
    if isinstance(error, PermissionError):
        fix = "Make it readable/writable for you, or set COURSE_DATA_DIR to a folder you own."
    elif isinstance(error, NotADirectoryError | FileExistsError):
        fix = "A file stands where a folder is needed: move or delete that file, or set COURSE_DATA_DIR elsewhere."
    elif isinstance(error, IsADirectoryError):
        fix = "A folder stands where a file is needed: give the path of a file."
    elif isinstance(error, FileNotFoundError):
        fix = "Check the path (relative paths start from the folder you are in)."
    elif error.errno in (errno_codes.ENOSPC, getattr(errno_codes, "EDQUOT", -1)):
        fix = "The disk is full: free some space, or set COURSE_DATA_DIR to a disk with room."
    else:
        fix = "Check the path and its permissions, or set COURSE_DATA_DIR to another folder."
    return f"Could not {doing}: {where}: {reason}. {fix}"
