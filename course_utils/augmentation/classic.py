"""Classic data augmentation for training classifiers: flips, small affine warps, intensity changes — batched on tensors.

Introduced in notebook 04 (`04_conditional_gan_augmentation`) as the baseline a GAN has to beat. Every function
works on a whole batch at once, on any device, with one set of random parameters per image drawn from the
`generator` passed in (no per-sample PIL conversion, no Python loop over images).

Images are float `(B, C, H, W)` in the model range `[-1, 1]`; the output has the same shape and range.
- `random_flip`: mirror left-right with probability `p` (for chest X-rays this swaps the heart's side, so the
  default policy of notebook 04 flips ultrasound but a careful study of X-rays might not).
- `random_affine`: rotation up to `degrees`, translation up to `translate` x size, scale in `scale`, applied
  with `torch.nn.functional.affine_grid` / `grid_sample` (bilinear); pixels coming from outside the image get
  `fill` (-1 = black).
- `random_intensity`: brightness offset up to `brightness` and contrast factor in `contrast` (around each
  image's mean), then clamped to [-1, 1].

(Notebook 08's `course_utils.augmentation.diffaugment.DiffAugment` is a different tool: *differentiable* augmentation inside GAN
training. This module augments a classifier's training images.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _check_images(images: torch.Tensor) -> None:
    """ValueError unless `images` is a float (B, C, H, W) tensor."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        dtype = getattr(images, "dtype", "")
        raise ValueError(
            f"augmentation expects float images (B, C, H, W) in [-1, 1]; got {shape} {dtype}. Convert uint8 images "
            "with `course_utils.data.to_model_range` first."
        )


def _uniform(count: int, low: float, high: float, images: torch.Tensor, generator: torch.Generator | None
             ) -> torch.Tensor:
    """`count` numbers from U(low, high) on the images' device, float32 `(count,)`."""
    return low + (high - low) * torch.rand(count, device=images.device, generator=generator)


def random_flip(images: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability `p` (introduced in notebook 04)."""
    _check_images(images)
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < p  # (B,)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def affine_matrices(angle_deg: torch.Tensor, shift_xy: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """`affine_grid` matrices `(B, 2, 3)` that rotate by `angle_deg` `(B,)` (counter-clockwise, as torchvision), scale
    by `scale` `(B,)` and shift by `shift_xy` `(B, 2)` (fractions of the image size; +x = right, +y = down), about the
    image centre (notebook 04).

    `affine_grid` maps *output* coordinates to *input* coordinates in [-1, 1], so the matrix is the inverse of the
    forward transform: a rotation by -angle, divided by the scale, and a shift of -2 * shift.
    """
    theta = -torch.deg2rad(angle_deg.float())  # y points down in the grid: this makes +angle counter-clockwise
    cos, sin = torch.cos(theta) / scale, torch.sin(theta) / scale  # (B,)
    rotation = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # (B, 2, 2), inverse map
    offset = -2.0 * shift_xy.float()  # (B, 2): a shift of t image widths is 2t in [-1, 1] units
    translation = (rotation @ offset[:, :, None])  # (B, 2, 1): shift first, then undo the rotation and scale
    return torch.cat([rotation, translation], dim=2)  # (B, 2, 3)


def warp(images: torch.Tensor, matrices: torch.Tensor, fill: float = -1.0) -> torch.Tensor:
    """Apply `affine_grid` matrices `(B, 2, 3)` to images `(B, C, H, W)` (bilinear); outside pixels get `fill`."""
    _check_images(images)
    grid = F.affine_grid(matrices.to(images.dtype), list(images.shape), align_corners=False)  # (B, H, W, 2)
    # sample (images - fill) with zero padding, then add fill back: outside pixels become exactly `fill`
    return F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def random_affine(images: torch.Tensor, degrees: float = 10.0, translate: float = 0.06,
                  scale: tuple[float, float] = (0.95, 1.05), fill: float = -1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate (±`degrees`), shift (±`translate` x size in x and y) and scale (in `scale`) each image (notebook 04)."""
    _check_images(images)
    batch = images.shape[0]
    angle = _uniform(batch, -degrees, degrees, images, generator)  # (B,)
    shift = _uniform(2 * batch, -translate, translate, images, generator).reshape(batch, 2)  # (B, 2)
    factor = _uniform(batch, scale[0], scale[1], images, generator)  # (B,)
    return warp(images, affine_matrices(angle, shift, factor), fill)


def random_intensity(images: torch.Tensor, brightness: float = 0.1, contrast: tuple[float, float] = (0.9, 1.1),
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Add a brightness offset in ±`brightness` and scale contrast about each image's mean; clamp to [-1, 1]."""
    _check_images(images)
    batch = images.shape[0]
    offset = _uniform(batch, -brightness, brightness, images, generator)[:, None, None, None]  # (B, 1, 1, 1)
    factor = _uniform(batch, contrast[0], contrast[1], images, generator)[:, None, None, None]
    mean = images.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return ((images - mean) * factor + mean + offset).clamp(-1.0, 1.0)


@dataclass(frozen=True)
class ClassicAugment:
    """Flip, affine and intensity augmentation as one callable `augment(images, generator)` (notebook 04).

    Pass it to `course_utils.training.supervised.train_classifier(augment=ClassicAugment())`.
    """

    flip_p: float = 0.5
    degrees: float = 10.0
    translate: float = 0.06  # 0.06 x 28 px = about 1.7 px
    scale: tuple[float, float] = (0.95, 1.05)
    brightness: float = 0.1  # in [-1, 1] units: 5 % of the intensity range
    contrast: tuple[float, float] = (0.9, 1.1)

    def __post_init__(self) -> None:
        """Reject settings that are not augmentations."""
        if not 0.0 <= self.flip_p <= 1.0:
            raise ValueError(f"flip_p must be a probability in [0, 1]; got {self.flip_p!r}.")
        if not (0.0 <= self.degrees <= 180.0 and 0.0 <= self.translate < 0.5 and self.brightness >= 0.0):
            raise ValueError("degrees must be in [0, 180], translate in [0, 0.5), brightness >= 0; got "
                             f"{self.degrees!r}, {self.translate!r}, {self.brightness!r}.")
        for name in ("scale", "contrast"):
            low, high = getattr(self, name)
            if not (0.0 < low <= high and math.isfinite(high)):
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high; got {getattr(self, name)!r}.")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augmented images, same shape, in [-1, 1]."""
        images = random_flip(images, self.flip_p, generator)
        images = random_affine(images, self.degrees, self.translate, self.scale, generator=generator)
        return random_intensity(images, self.brightness, self.contrast, generator)


__all__ = ["ClassicAugment", "affine_matrices", "random_affine", "random_flip", "random_intensity", "warp"]
