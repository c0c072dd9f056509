"""The course's data layer: MedMNIST, MSD Task04 hippocampus, MNI152 slices, checks, bundles.

Search order for files: `$COURSE_DATA_DIR` (a relative value counts from the repository root), then `data/`
in the repository, then medmnist's own folder; the first intact copy wins; then a download if the network
allows. Nothing corrupt is ever loaded. With no data at all the loaders
here fall back, visibly, to slices of the MNI152 template that ships inside nilearn.
"""

from __future__ import annotations

from course_utils.data.catalogue import course_status, format_status
from course_utils.data.errors import (
    CorruptDataError,
    DataError,
    DatasetNotFoundError,
    UnknownDatasetError,
    UnreadableDataError,
)
from course_utils.data.hippocampus import case_ids, ensure_hippocampus, hippocampus_slices
from course_utils.data.imageset import ImageSet, to_model_range, to_unit_range
from course_utils.data.medmnist_data import load_medmnist
from course_utils.data.mni152 import load_mni152_volumes, mni152_slices
from course_utils.report import note_fallback

__all__ = [
    "CorruptDataError", "DataError", "DatasetNotFoundError", "ImageSet", "UnknownDatasetError", "UnreadableDataError",
    "case_ids", "course_status", "ensure_hippocampus", "format_status", "hippocampus_slices",
    "load_classification_data", "load_medmnist", "load_mni152_volumes", "load_segmentation_cases",
    "mni152_slices", "to_model_range", "to_unit_range",
]


def load_classification_data(flag: str, split: str = "train", size: int = 28, download: bool = True) -> ImageSet:
    """A MedMNIST split, or (visibly) MNI152 axial slices labelled by anatomical level if it is unavailable."""
    try:
        return load_medmnist(flag, split, size, download=download)
    except (DatasetNotFoundError, CorruptDataError, UnreadableDataError) as error:
        print(f"Data note: {error}")
        note_fallback(f"{flag}@{size}", "mni152 axial slices by level", type(error).__name__)
        fallback = mni152_slices(size=size, axis=2, split=split)
        return ImageSet(**{**fallback.__dict__, "is_fallback": True})


def load_segmentation_cases(download: bool = True):
    """(folder, case ids) of the hippocampus set, or (None, []) with a visible note if it is unavailable."""
    try:
        folder = ensure_hippocampus(download=download)
    except (DatasetNotFoundError, CorruptDataError, UnreadableDataError) as error:
        print(f"Data note: {error}")
        note_fallback("hippocampus", "mni152 grey/white-matter maps", type(error).__name__)
        return None, []
    return folder, case_ids(folder)
