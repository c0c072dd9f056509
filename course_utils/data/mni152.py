"""MNI152 T1 template and its grey/white-matter maps, shipped inside `nilearn`: always available offline.

`mni152_slices` cuts 2-D slice datasets from them with labels for classification (anatomical level) and
masks for segmentation (tissue class).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from course_utils.data.errors import UnknownDatasetError
from course_utils.data.imageset import ImageSet
from course_utils.data.slicing import pad_to_square, resize_images, resize_masks, rotate_up, scale_to_uint8
from course_utils.data.splits import gapped_slice_splits

MNI152_LICENCE = "MNI ICBM152 2009 template: free use with attribution (Fonov et al. 2009/2011), shipped by nilearn"
TISSUE_NAMES: tuple[str, ...] = ("background / CSF", "grey matter", "white matter")
AXIS_NAMES = {0: "sagittal", 1: "coronal", 2: "axial"}
LEVEL_NAMES = {
    0: ("left", "centre", "right"),
    1: ("posterior", "central", "anterior"),
    2: ("inferior", "middle", "superior"),
}


@lru_cache(maxsize=1)
def load_mni152_volumes() -> dict[str, np.ndarray]:
    """The 1 mm MNI152 T1 (0..255 uint8), brain mask, and tissue label map, as RAS arrays `(X, Y, Z)`."""
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=1).get_fdata()
    grey = datasets.load_mni152_gm_template(resolution=1).get_fdata()
    white = datasets.load_mni152_wm_template(resolution=1).get_fdata()
    brain = datasets.load_mni152_brain_mask(resolution=1).get_fdata() > 0.5
    other = np.clip(1.0 - grey - white, 0.0, None)
    tissue = np.argmax(np.stack([other, grey, white]), axis=0).astype(np.uint8)  # 0 other, 1 GM, 2 WM
    tissue[~brain] = 0
    return {"t1": scale_to_uint8(t1, brain), "brain": brain.astype(np.uint8), "tissue": tissue}


def _level_labels(count: int, n_levels: int) -> np.ndarray:
    """Label consecutive slices 0..n_levels-1 in equal parts along the axis."""
    return np.minimum((np.arange(count) * n_levels) // count, n_levels - 1)


def mni152_slices(
    size: int = 64, axis: int = 2, split: str = "all", n_levels: int = 3, min_brain_fraction: float = 0.15
) -> ImageSet:
    """2-D slices of the MNI152 T1 with level labels and tissue masks, uint8 `(N, 1, size, size)`."""
    if axis not in AXIS_NAMES:
        raise UnknownDatasetError(f"axis={axis!r} is not a volume axis; use 0 (sagittal), 1 (coronal) or 2 (axial).")
    if split not in ("all", "train", "val", "test"):
        raise UnknownDatasetError(f"Unknown split {split!r}; use 'all', 'train', 'val' or 'test'.")
    if size < 8:
        raise UnknownDatasetError(f"size={size} is too small for a brain slice; use 16 or more (28, 64, 128).")
    volumes = load_mni152_volumes()
    brain = volumes["brain"]
    area = brain.sum(axis=tuple(a for a in range(3) if a != axis))
    keep = np.flatnonzero(area >= min_brain_fraction * area.max())
    in_plane = [a for a in range(3) if a != axis]
    box = [np.flatnonzero(brain.any(axis=tuple(b for b in range(3) if b != a))) for a in in_plane]
    crop = [slice(int(b[0]), int(b[-1]) + 1) for b in box]

    def cut(name: str, index: int) -> np.ndarray:
        plane = np.moveaxis(volumes[name], axis, 0)[index]  # a view (np.take copied the whole volume per slice)
        return rotate_up(plane[crop[0], crop[1]])

    images = torch.from_numpy(np.stack([cut("t1", i) for i in keep]))[:, None]  # (N, 1, H, W)
    masks = torch.from_numpy(np.stack([cut("tissue", i) for i in keep]))[:, None]
    brain_masks = torch.from_numpy(np.stack([cut("brain", i) for i in keep]))[:, None]
    side = max(images.shape[-2:])
    images = resize_images(pad_to_square(images, side), size)
    masks = resize_masks(pad_to_square(masks, side), size)
    regions = resize_masks(pad_to_square(brain_masks, side), size) > 0  # (N, 1, size, size) inside the brain
    labels = torch.from_numpy(_level_labels(len(keep), n_levels).astype(np.int64))
    names = LEVEL_NAMES[axis] if n_levels == 3 else tuple(f"level {k + 1}" for k in range(n_levels))
    if split != "all":
        chosen = torch.from_numpy(gapped_slice_splits(len(keep)) == split)
        images, masks, labels, regions = images[chosen], masks[chosen], labels[chosen], regions[chosen]
        keep = keep[chosen.numpy()]
    return ImageSet(
        name=f"mni152_{AXIS_NAMES[axis]}", split=split, images=images.contiguous(), labels=labels,
        class_names=names, source="nilearn (MNI152 2009 template, 1 mm)", licence=MNI152_LICENCE,
        masks=masks.contiguous(), mask_names=TISSUE_NAMES, groups=torch.from_numpy(keep.astype(np.int64)),
        regions=regions.contiguous(), region_name="brain (nilearn's MNI152 brain mask)",
    )
