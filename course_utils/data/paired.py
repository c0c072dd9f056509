"""Paired 2-D datasets for image-to-image learning: clean slices split without neighbours, and their degraded copies.

Introduced in notebook 05 (`05_srgan_mri_super_resolution`) and reused by notebook 06 (`06_denoising_gan`).

- `mni152_clean_splits`: MNI152 T1 slices (always offline) in train / val / test by **slice ranges**:
  blocks of consecutive slices go to one split and one slice between blocks is left out, so no held-out
  slice is the direct neighbour of a training slice (neighbouring 1 mm slices are nearly identical images;
  testing on them would measure memory, not generalisation). `split_report` checks exactly that.
- `hippocampus_clean_splits`: MSD Task04 hippocampus MRI slices, split **by subject**.
- Each split carries `regions`: where the anatomy is (the MNI152 brain mask; the hippocampus crop's interior,
  not its zero padding). Image metrics are scored there (`psnr(..., mask=)`); whole-image numbers go beside.
- `noisy_pairs` / `sr_pairs`: (input, target) pairs in [0, 1] made with `course_utils.data.degradations`.
- `dihedral_augment`: flips and 90° turns, a cheap way to multiply a small training set of slices.

Clean images are float `(N, 1, H, W)` in [0, 1] (the metrics range); models get `x * 2 - 1`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from course_utils.data.degradations import degrade, downsample
from course_utils.data.errors import UnknownDatasetError
from course_utils.data.slicing import erode
from course_utils.data.splits import gapped_slice_splits, split_cases, split_report

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class CleanSplits:
    """Clean images per split, float `(N, 1, H, W)` in [0, 1], with the slice index or subject of each image."""

    name: str  # e.g. "mni152_axial"
    source: str
    images: dict[str, torch.Tensor]
    groups: dict[str, torch.Tensor]  # (N,) slice index along the axis (MNI152) or subject number (hippocampus)
    group_kind: str  # "slice" or "subject"
    regions: dict[str, torch.Tensor]  # bool (N, 1, H, W): where the metrics are scored (brain / crop interior)
    region_name: str

    def sizes(self) -> dict[str, int]:
        """Number of images per split."""
        return {split: int(images.shape[0]) for split, images in self.images.items()}


def mni152_clean_splits(size: int = 128, axis: int = 2) -> CleanSplits:
    """MNI152 T1 slices in train / val / test by gapped slice blocks, float `(N, 1, size, size)` in [0, 1]."""
    from course_utils.data.mni152 import AXIS_NAMES, mni152_slices

    data = mni152_slices(size=size, axis=axis, split="all")  # cut once, then split like mni152_slices(split=...)
    names = gapped_slice_splits(len(data))  # blocks of 8 slices: train, train, train, val, test; 1 slice gap each
    images, groups, regions = {}, {}, {}
    for split in SPLITS:
        chosen = torch.from_numpy(names == split)
        images[split] = data.images[chosen].float() / 255.0  # (N, 1, size, size)
        groups[split] = data.groups[chosen]
        regions[split] = data.regions[chosen]
    report = split_report(groups, "slice")
    if report["shared"] or report["neighbours"]:  # a guard: the split helper must keep its gaps
        raise RuntimeError(f"MNI152 split leaks between splits: {report}.")
    return CleanSplits(f"mni152_{AXIS_NAMES[axis]}", data.source, images, groups, "slice", regions, data.region_name)


def hippocampus_clean_splits(folder, cases: list[str], size: int = 64, axis: int = 0, seed: int = 0,
                             fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), margin: int = 0) -> CleanSplits:
    """MSD hippocampus slices split by subject (no subject in two splits), float `(N, 1, size, size)` in [0, 1].

    `regions` is each crop's interior (not the zero padding around it), shrunk by `margin` pixels so that the
    artificial edge where the crop was cut out of the scan is not scored either.
    """
    from course_utils.data.hippocampus import hippocampus_slices

    if len(cases) < 3:
        raise UnknownDatasetError(f"Need at least 3 hippocampus subjects for a split by subject; got {len(cases)}.")
    by_split = split_cases(cases, fractions, seed=seed)
    images, groups, regions, region_name = {}, {}, {}, ""
    for split in SPLITS:
        data = hippocampus_slices(folder, by_split[split], size=size, axis=axis, only_labelled=True)
        images[split] = data.images.float() / 255.0
        numbers = torch.tensor([cases.index(by_split[split][g]) for g in data.groups.tolist()])
        groups[split] = numbers  # subject number in `cases`
        regions[split] = erode(data.regions, margin)
        region_name = data.region_name + (f", {margin} px in from its edge" if margin else "")
    return CleanSplits("hippocampus", str(folder), images, groups, "subject", regions, region_name)


def dihedral_augment(images: torch.Tensor, copies: int = 4) -> torch.Tensor:
    """`images` `(N, C, H, W)` followed by up to 7 flipped / turned copies: `(copies * N, C, H, W)`."""
    if isinstance(copies, bool) or not isinstance(copies, int) or not 1 <= copies <= 8:
        raise ValueError(f"copies must be an integer from 1 to 8 (the symmetries of a square); got {copies!r}.")
    variants = [images, images.flip(-1), images.flip(-2), images.flip(-1).flip(-2),
                images.transpose(-1, -2), images.transpose(-1, -2).flip(-1), images.transpose(-1, -2).flip(-2),
                images.transpose(-1, -2).flip(-1).flip(-2)]
    return torch.cat(variants[:copies])


def sr_pairs(clean: torch.Tensor, factor: int, method: str = "area") -> tuple[torch.Tensor, torch.Tensor]:
    """(low-resolution input `(N, C, H/f, W/f)`, high-resolution target `(N, C, H, W)`), both in [0, 1]."""
    return downsample(clean, factor, method), clean


def noisy_pairs(clean: torch.Tensor, model: str, level: float, seed: int,
                copies: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy input, clean target), `copies` independent noise draws per image, `(copies * N, C, H, W)` in [0, 1]."""
    generator = torch.Generator(device=clean.device).manual_seed(seed)
    targets = clean.repeat(copies, 1, 1, 1)
    return degrade(targets, model, level, generator), targets



def random_crops(images: torch.Tensor, size: int, count: int, seed: int) -> torch.Tensor:
    """`count` random `size x size` crops `(count, C, size, size)` of `images` `(N, C, H, W)`, drawn with `seed`."""
    height, width = images.shape[-2:]
    if size > min(height, width):
        raise ValueError(f"crop size {size} is larger than the images ({height}x{width}).")
    generator = torch.Generator().manual_seed(seed)
    which = torch.randint(images.shape[0], (count,), generator=generator)
    tops = torch.randint(height - size + 1, (count,), generator=generator)
    lefts = torch.randint(width - size + 1, (count,), generator=generator)
    return torch.stack([images[i, :, top:top + size, left:left + size] for i, top, left in
                        zip(which.tolist(), tops.tolist(), lefts.tolist(), strict=True)])
