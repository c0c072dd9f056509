"""`ImageSet`: a whole dataset split held as uint8 tensors, ready for fast batching on any device."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 `(N, C, H, W)` (or `(N, C, D, H, W)` for 3-D) with integer labels `(N,)`.

    `masks` (same spatial shape as `images`, one channel, integer classes) is set for segmentation data;
    `groups` says which subject or volume each image was cut from.
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
