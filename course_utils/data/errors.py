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
