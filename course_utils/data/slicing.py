"""Cutting 2-D slices out of 3-D volumes: orientation, square padding, resizing, intensity scaling."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def rotate_up(plane: np.ndarray) -> np.ndarray:
    """Rotate a RAS slice so anterior (axial) or superior (coronal, sagittal) points up on screen."""
    return np.ascontiguousarray(np.rot90(plane))


def screen_orientation(axis: int) -> dict[str, str]:
    """Which way the patient faces on screen after `rotate_up` of a slice of a RAS volume along `axis`.

    `{"left": .., "right": .., "top": .., "bottom": ..}` with R/L (right/left), A/P (anterior/posterior),
    S/I (superior/inferior). Axial and coronal slices show the patient's right on the screen's right
    (the *neurological* convention; radiology shows it on the left).
    """
    edges = {0: ("P", "A", "S", "I"), 1: ("L", "R", "S", "I"), 2: ("L", "R", "A", "P")}
    if axis not in edges:
        raise ValueError(f"axis must be 0 (sagittal), 1 (coronal) or 2 (axial); got {axis!r}.")
    return dict(zip(("left", "right", "top", "bottom"), edges[axis], strict=True))


def scale_to_uint8(volume: np.ndarray, mask: np.ndarray | None = None, percentile: float = 99.5) -> np.ndarray:
    """Map intensities to 0..255, clipping at the given percentile (of the mask, if given)."""
    values = volume[mask > 0] if mask is not None else volume[volume > 0]
    high = float(np.percentile(values, percentile)) if values.size else float(volume.max() or 1.0)
    scaled = np.clip(volume / max(high, 1e-8), 0.0, 1.0)
    return np.round(scaled * 255.0).astype(np.uint8)


def pad_to_square(stack: torch.Tensor, side: int | None = None) -> torch.Tensor:
    """Zero-pad `(N, C, H, W)` symmetrically to `(N, C, S, S)` with S = max(H, W) or `side`."""
    height, width = stack.shape[-2:]
    side = side or max(height, width)
    if side < max(height, width):
        raise ValueError(f"Cannot pad {height}x{width} slices into a {side}x{side} square; use side >= {max(height, width)}.")
    top, left = (side - height) // 2, (side - width) // 2
    return F.pad(stack, (left, side - width - left, top, side - height - top))


def resize_images(stack: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 `(N, C, S, S)` images to `size` with antialiasing; returns uint8."""
    if stack.shape[-1] == size and stack.shape[-2] == size:
        return stack
    resized = F.interpolate(stack.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)


def erode(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Shrink a boolean mask `(N, 1, H, W)` by `pixels` (square neighbourhood); pixels beyond the border count as outside."""
    if pixels < 0:
        raise ValueError(f"pixels must be >= 0; got {pixels}.")
    if pixels == 0:
        return mask.bool()
    outside = F.pad((~mask.bool()).float(), (pixels,) * 4, value=1.0)
    return F.max_pool2d(outside, 2 * pixels + 1, stride=1) == 0


def resize_masks(stack: torch.Tensor, size: int) -> torch.Tensor:
    """Resize integer label maps `(N, 1, S, S)` with nearest-neighbour sampling (labels stay labels)."""
    if stack.shape[-1] == size and stack.shape[-2] == size:
        return stack
    return F.interpolate(stack.float(), size=(size, size), mode="nearest-exact").to(stack.dtype)
