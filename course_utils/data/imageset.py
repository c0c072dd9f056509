"""`ImageSet`: a whole dataset split held as uint8 tensors, ready for fast batching on any device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

ArrayLike = Any  # torch.Tensor | np.ndarray
RANGE_TOLERANCE = 1e-6  # float images in [0, 1] may overshoot by this much (round-off)
MIN_IMAGE_SIZE = 8  # the domain classifier halves the image twice


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 `(N, C, H, W)` (or `(N, C, D, H, W)` for 3-D) with integer labels `(N,)`.

    `masks` (same spatial shape as `images`, one channel, integer classes) is set for segmentation data;
    `groups` says which subject or volume each image was cut from.
    `regions` (bool, one channel) marks the pixels that hold anatomy rather than background or padding: image
    metrics are scored inside it (`course_utils.metrics.image_quality`).
    `source` says where the pixels came from; `is_fallback` is True when this stands in for a dataset
    that was not available.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    source: str
    licence: str
    masks: torch.Tensor | None = None
    mask_names: tuple[str, ...] = ()
    groups: torch.Tensor | None = None  # (N,) subject or volume index, for splits by subject
    is_fallback: bool = False
    regions: torch.Tensor | None = None  # bool (N, 1, H, W): the anatomy worth scoring (brain, crop interior)
    region_name: str = ""  # what `regions` marks, e.g. "brain (nilearn's MNI152 brain mask)"

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image, e.g. `(1, 28, 28)`."""
        return tuple(self.images.shape[1:])

    def class_counts(self) -> dict[str, int]:
        """Number of images per class name."""
        counts = torch.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(counts[i]) for i, name in enumerate(self.class_names)}

    def to_model_range(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """All images as float32 in [-1, 1] on `device` (the range models use)."""
        return to_model_range(self.images.to(device))


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float32 [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Float [-1, 1] → float [0, 1] (the range metrics and plots use)."""
    return images.add(1.0).div(2.0).clamp(0.0, 1.0)


def as_model_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images → float32 [-1, 1]; float images are passed on as float32 (already in [-1, 1])."""
    if images.dtype == torch.uint8:
        return to_model_range(images)
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 (0..255) or float in [-1, 1]; got dtype {images.dtype}.")
    return images.float()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float [-1, 1] images → CPU uint8 [0, 255], the inverse of `to_model_range` (values outside are clipped)."""
    return images.detach().float().clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8).cpu()


# ----------------------------------------------------------------------------- checks for metric inputs


def as_image_tensor(images: ArrayLike, name: str) -> torch.Tensor:
    """A CPU tensor from a tensor or NumPy array (no copy where possible)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or a NumPy array of images; got {type(images).__name__}.")
    return images.detach()


def check_unit_images(images: ArrayLike, name: str, channels: tuple[int, ...], min_size: int = MIN_IMAGE_SIZE
                      ) -> torch.Tensor:
    """Validated images `(N, C, H, W)`, uint8 or float in [0, 1], C in `channels`; returned unchanged (CPU or not)."""
    images = as_image_tensor(images, name)
    shape = tuple(images.shape)
    allowed = " or ".join(map(str, channels))
    if images.ndim != 4:
        hint = ""
        if images.ndim == 3:
            hint = " For grey images without a channel axis use `x[:, None]`; for a single image use `x[None]`."
        raise ValueError(f"{name} must be a batch of images (N, C, H, W) with C = {allowed}; received shape {shape}.{hint}")
    if images.shape[1] not in channels:
        hint = ""
        if images.shape[-1] in channels:
            hint = " It looks channels-last (N, H, W, C): use `x.permute(0, 3, 1, 2)`."
        raise ValueError(
            f"{name} has {images.shape[1]} channels (shape {shape}) but this needs C = {allowed}.{hint}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {shape}); need at least one image.")
    if min(images.shape[2:]) < min_size:
        raise ValueError(f"{name} has images of {images.shape[2]}x{images.shape[3]} px; need at least {min_size} px.")
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise ValueError(
            f"{name} has dtype {images.dtype}; pass uint8 images (0..255) or float images in [0, 1]."
        )
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name} contains NaN or infinite values; check the generator that made them.")
    low, high = float(images.min()), float(images.max())
    if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        hint = ""
        if low >= -1.0 - RANGE_TOLERANCE and high <= 1.0 + RANGE_TOLERANCE:
            hint = (" This looks like the model range [-1, 1] (generator output): convert with "
                    "course_utils.data.to_unit_range(images) first.")
        elif low >= 0.0 and high <= 255.0:
            hint = " This looks like 0..255 data stored as float: divide by 255, or pass the uint8 tensor."
        raise ValueError(f"{name} must be uint8 or float in [0, 1]; its values span [{low:.4g}, {high:.4g}].{hint}")
    return images


def as_unit_images(images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """One batch as float32 in [0, 1] on `device`."""
    images = images.to(device)
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float().clamp(0.0, 1.0)
