"""Differentiable augmentation for GANs on small datasets (DiffAugment, Zhao et al., 2020).

Introduced in notebook 08 (`08_stabilizing_gans`, "small data"). With a few hundred
training images the discriminator memorises them and its feedback to the generator becomes useless.
Augmenting only the real images would teach the generator to make augmented-looking images, so DiffAugment
applies the same *kind* of random transformation to **real and fake** images right before the
discriminator, in the d-step and in the g-step. Every transformation here is differentiable with respect to
the images, so the generator's gradient flows back through it.

Images are float `(B, C, H, W)` (2-D) or `(B, C, D, H, W)` (3-D) in `[-1, 1]`; every function returns the same
shape and keeps values in `[-1, 1]`. Each sample gets its own random parameters, drawn from `generator`
(a `torch.Generator` on the images' device; `DCGANSteps` passes the run's checkpointed noise generator, so a
resumed run draws the same augmentations).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

POLICIES: tuple[str, ...] = ("color", "translation", "cutout")  # in the order DiffAugment applies them
FILL_VALUE = -1.0  # what translation and cutout expose: black in the [-1, 1] model range (X-ray background)


def _check_images(images: torch.Tensor) -> None:
    """ValueError unless `images` is a float (B, C, H, W) or (B, C, D, H, W) tensor."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.dim() not in (4, 5):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(
            f"DiffAugment expects float images (B, C, H, W) or (B, C, D, H, W) in [-1, 1]; got {shape}. "
            "Convert uint8 images with `course_utils.data.to_model_range` first."
        )


def _uniform(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One U(0, 1) number per sample, shaped to broadcast over `images`: (B, 1, 1, 1[, 1])."""
    shape = (images.shape[0], *([1] * (images.dim() - 1)))
    return torch.rand(shape, device=images.device, dtype=images.dtype, generator=generator)


def brightness(images: torch.Tensor, strength: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add one random offset in [-strength, strength] per image, clamped to [-1, 1] (introduced in notebook 08).

    DiffAugment's brightness uses U(-0.5, 0.5) on [0, 1] images; on [-1, 1] images that is twice as large,
    so the default `strength=0.5` here is half of DiffAugment's shift in relative terms (X-rays are dim).
    """
    _check_images(images)
    offset = (_uniform(images, generator) * 2.0 - 1.0) * strength  # (B, 1, 1, 1)
    return (images + offset).clamp(-1.0, 1.0)


def contrast(images: torch.Tensor, low: float = 0.5, high: float = 1.5,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each image's deviation from its own mean by a random factor in [low, high], clamped (notebook 08)."""
    _check_images(images)
    factor = low + _uniform(images, generator) * (high - low)  # (B, 1, 1, 1)
    mean = images.mean(dim=tuple(range(1, images.dim())), keepdim=True)  # (B, 1, 1, 1)
    return ((images - mean) * factor + mean).clamp(-1.0, 1.0)


def _random_offsets(images: torch.Tensor, limit: int, generator: torch.Generator | None) -> torch.Tensor:
    """Integer offsets in [-limit, limit], one per sample and spatial axis: (B, spatial dims), int64."""
    batch, spatial = images.shape[0], images.dim() - 2
    return torch.randint(-limit, limit + 1, (batch, spatial), device=images.device, generator=generator)


def translation(images: torch.Tensor, ratio: float = 0.125, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by up to `ratio` of its size along every spatial axis; uncovered pixels are black.

    Introduced in notebook 08. A pixel gather, so it is differentiable w.r.t. the pixels (not the shift).
    """
    _check_images(images)
    spatial = images.shape[2:]
    limit = int(min(spatial) * ratio + 0.5)
    if limit == 0:
        return images
    offsets = _random_offsets(images, limit, generator)  # (B, S)
    pad = [limit] * (2 * len(spatial))  # F.pad order: last axis first, (before, after) per axis
    padded = torch.nn.functional.pad(images, pad, value=FILL_VALUE)  # (B, C, H + 2L, W + 2L)
    out = padded
    for axis, size in enumerate(spatial):  # crop each axis at its own per-sample start
        dim = 2 + axis
        start = limit - offsets[:, axis]  # (B,): where the shifted window begins in the padded axis
        index = start[:, None] + torch.arange(size, device=images.device)  # (B, size)
        view = [images.shape[0]] + [1] * (out.dim() - 1)
        view[dim] = size
        expand = list(out.shape)
        expand[dim] = size
        out = torch.gather(out, dim, index.reshape(view).expand(expand))
    return out


def cutout(images: torch.Tensor, ratio: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Black out one random square (cube in 3-D) of side `ratio` × size per image (introduced in notebook 08).

    As in DiffAugment the square's centre is anywhere in the image, so it can be partly outside.
    """
    _check_images(images)
    spatial = images.shape[2:]
    mask = torch.ones((images.shape[0], 1, *spatial), device=images.device, dtype=images.dtype)  # (B, 1, H, W)
    inside = torch.ones_like(mask, dtype=torch.bool)
    for axis, size in enumerate(spatial):
        side = int(size * ratio + 0.5)
        centre = torch.randint(0, size + (1 - side % 2), (images.shape[0],), device=images.device, generator=generator)
        coords = torch.arange(size, device=images.device)  # (size,)
        low = centre - side // 2  # (B,)
        axis_inside = (coords[None, :] >= low[:, None]) & (coords[None, :] < (low + side)[:, None])  # (B, size)
        shape = [images.shape[0]] + [1] * (len(spatial) + 1)
        shape[2 + axis] = size
        inside = inside & axis_inside.reshape(shape)
    mask = mask.masked_fill(inside, 0.0)
    return images * mask + FILL_VALUE * (1.0 - mask)


def diff_augment(images: torch.Tensor, policy: Sequence[str] = POLICIES,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the DiffAugment `policy` ('color' = brightness + contrast, 'translation', 'cutout') (notebook 08)."""
    unknown = [p for p in policy if p not in POLICIES]
    if isinstance(policy, str) or unknown:
        raise ValueError(f"policy must be a sequence of names from {POLICIES}; got {policy!r}.")
    for name in POLICIES:  # always in DiffAugment's order, whatever order the policy lists
        if name not in policy:
            continue
        if name == "color":
            images = contrast(brightness(images, generator=generator), generator=generator)
        elif name == "translation":
            images = translation(images, generator=generator)
        else:
            images = cutout(images, generator=generator)
    return images


class DiffAugment:
    """A callable `augment(images, generator)` for `DCGANSteps(augment=...)` (introduced in notebook 08)."""

    def __init__(self, policy: Sequence[str] = POLICIES) -> None:
        diff_augment(torch.zeros(1, 1, 4, 4), policy)  # validates the policy now, not in the first step
        self.policy = tuple(policy)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augmented images, same shape, in [-1, 1]."""
        return diff_augment(images, self.policy, generator)

    def __repr__(self) -> str:
        return f"DiffAugment(policy={self.policy!r})"


__all__ = ["FILL_VALUE", "POLICIES", "DiffAugment", "brightness", "contrast", "cutout", "diff_augment", "translation"]
