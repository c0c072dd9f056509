"""Shape statistics for sets of binary 3-D masks: is a generator's set of shapes like the real one?

Introduced in notebook 09 (`09_open_challenges`, "3-D"). AdrenalMNIST3D holds
binary shape masks (values {0, 255}, about 1.6 % foreground at 28³), not CT intensities, so the honest checks
of a generator are on shapes:

- `foreground_fraction`, `shape_volume`, `surface_area`, `connected_components`: one number per volume;
- `nearest_real_dice` / `nearest_real`: for each generated volume its best Dice against any real (training)
  volume, and which one. Compare it with the same number for **held-out real** volumes
  (`nearest_real_dice(held_out, train)`): that is what a fresh real shape scores, the value a good generator
  should approach. Far below it: the shapes are not plausible; above it: copies of training masks or
  average-looking shapes (read it with the diversity row).
- `compare_shape_distributions`: per statistic the real and generated mean and sd, their ratio and a
  two-sample Kolmogorov–Smirnov statistic (scipy), a diversity row (each volume's best Dice against the rest
  of its own set: near 1 means mode collapse) and, optionally, the nearest-train Dice row (held-out real →
  train against generated → train); `format_shape_table` prints it.

Volumes are a batch `(N, D, H, W)` or `(N, 1, D, H, W)`, a torch tensor or NumPy array, and are binarised
first (`binarise`): bool as is; uint8 (the `to_uint8` range 0..255) as `> 127.5`; float as `> 0.5`, where
the values must be in [0, 1] (generator outputs in [-1, 1]: pass `threshold=0.0`, or convert with
`to_unit_range`). An explicit `threshold` is applied as `value > threshold` to any dtype.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.ndimage
import scipy.stats
import torch

ArrayLike = Any  # torch.Tensor | np.ndarray

UINT8_THRESHOLD = 127.5  # midpoint of 0..255
FLOAT_THRESHOLD = 0.5  # midpoint of [0, 1]
STATISTICS: tuple[str, ...] = ("foreground_fraction", "volume", "surface_area", "components")
NEAREST_DICE = "nearest_train_dice"  # the row: generated -> train against held-out real -> train
WITHIN_DICE = "nearest_other_dice"  # the row: each volume against the rest of its own set (diversity)


def _to_numpy(volumes: ArrayLike, name: str) -> np.ndarray:
    """A NumPy view of a tensor or array, or a TypeError naming the argument."""
    if isinstance(volumes, torch.Tensor):
        return volumes.detach().cpu().numpy()
    if isinstance(volumes, np.ndarray):
        return volumes
    raise TypeError(f"{name} must be a torch.Tensor or NumPy array of volumes; got {type(volumes).__name__}.")


def binarise(volumes: ArrayLike, threshold: float | None = None, name: str = "volumes") -> np.ndarray:
    """Boolean masks `(N, D, H, W)` from a batch of volumes `(N, D, H, W)` or `(N, 1, D, H, W)`.

    `threshold=None`: bool unchanged, uint8 `> 127.5`, float `> 0.5` (values must then lie in [0, 1]).
    With a threshold, `value > threshold` for any dtype (e.g. `threshold=0.0` for tanh outputs in [-1, 1]).
    """
    array = _to_numpy(volumes, name)
    if array.ndim == 5:
        if array.shape[1] != 1:
            raise ValueError(f"{name} must have one channel, (N, 1, D, H, W); got shape {array.shape}. "
                             "Score each channel on its own: `volumes[:, c]`.")
        array = array[:, 0]
    if array.ndim != 4:
        raise ValueError(f"{name} must be a batch of volumes (N, D, H, W) or (N, 1, D, H, W); got shape "
                         f"{array.shape}. For a single volume use `volume[None]`.")
    if array.shape[0] == 0 or min(array.shape[1:]) == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); it needs at least one volume of non-zero "
                         "size.")
    if array.dtype == np.bool_:
        if threshold is not None:
            raise ValueError(f"{name} is already boolean; leave threshold=None.")
        return array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must hold bool, integer or float values; got dtype {array.dtype}.")
    if threshold is not None:
        if (isinstance(threshold, bool) or not isinstance(threshold, int | float)
                or not math.isfinite(threshold)):
            raise ValueError(f"threshold must be a finite number or None; got {threshold!r}.")
        return array > threshold
    if array.dtype == np.uint8:
        return array > UINT8_THRESHOLD
    if np.issubdtype(array.dtype, np.floating):
        if np.isnan(array).any():
            raise ValueError(f"{name} contains NaN.")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"float {name} must lie in [0, 1] for the default threshold 0.5; got values in [{low:.3g}, "
                f"{high:.3g}]. For generator outputs in [-1, 1] pass threshold=0.0 (or use to_unit_range)."
            )
        return array > FLOAT_THRESHOLD
    raise ValueError(f"integer {name} of dtype {array.dtype}: pass a threshold (e.g. threshold=0 for 0/1 "
                     "label maps; uint8 0..255 uses 127.5 by default).")


def _voxel_size(spacing: float | Sequence[float] | None) -> tuple[float, float, float]:
    """`spacing` as three positive voxel sides in mm (None: 1 voxel = 1)."""
    if spacing is None:
        return (1.0, 1.0, 1.0)
    values = (spacing,) * 3 if isinstance(spacing, int | float) and not isinstance(spacing, bool) else spacing
    try:
        sides = tuple(float(v) for v in values)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        sides = ()
    if len(sides) != 3 or not all(math.isfinite(s) and s > 0 for s in sides):
        raise ValueError(f"spacing must be None, one positive number or three (mm per voxel along D, H, W); "
                         f"got {spacing!r}.")
    return sides  # type: ignore[return-value]


def foreground_fraction(volumes: ArrayLike, threshold: float | None = None) -> np.ndarray:
    """Share of foreground voxels per volume, float64 `(N,)` in [0, 1] (real AdrenalMNIST3D: about 0.016)."""
    masks = binarise(volumes, threshold)
    return masks.reshape(len(masks), -1).mean(axis=1, dtype=np.float64)


def shape_volume(volumes: ArrayLike, spacing: float | Sequence[float] | None = None,
                 threshold: float | None = None) -> np.ndarray:
    """Foreground volume per volume, float64 `(N,)`: a voxel count, or mm³ with `spacing` (mm per voxel)."""
    sides = _voxel_size(spacing)
    masks = binarise(volumes, threshold)
    return masks.reshape(len(masks), -1).sum(axis=1, dtype=np.float64) * (sides[0] * sides[1] * sides[2])


def surface_area(volumes: ArrayLike, spacing: float | Sequence[float] | None = None,
                 threshold: float | None = None) -> np.ndarray:
    """Surface area per volume, float64 `(N,)`, in voxel faces (1 = one voxel side²) or mm² with `spacing`.

    Method: marching cubes (scikit-image `measure.marching_cubes`, level 0.5 on the 0/1 mask padded by one
    background voxel so that shapes touching the border are closed) and `measure.mesh_surface_area` of the
    triangle mesh. On a binary mask the mesh follows the voxel staircase with its corners cut: a voxelised
    ball of radius r (4 ≤ r ≤ 12) gives 4πr² × 1.03 to 1.11 (binary marching cubes overestimates smooth
    surfaces by several %; the tests allow 12 %), where counting exposed voxel faces gives about 1.5 × 4πr².
    An axis-aligned a×a×a cube gives exactly 6(a-1)² + 6√2(a-1) + √3. Empty masks: 0. Compare sets measured
    the same way; the absolute value is an estimate.
    """
    from skimage import measure  # (imported here: scikit-image is slow to import and only needed here)

    sides = _voxel_size(spacing)
    masks = binarise(volumes, threshold)
    areas = np.zeros(len(masks), dtype=np.float64)
    for i, mask in enumerate(masks):
        if not mask.any():
            continue
        padded = np.pad(mask, 1).astype(np.float32)
        verts, faces, _, _ = measure.marching_cubes(padded, level=0.5, spacing=sides)
        areas[i] = measure.mesh_surface_area(verts, faces)
    return areas


def connected_components(volumes: ArrayLike, threshold: float | None = None, min_size: int = 1) -> np.ndarray:
    """Number of 26-connected foreground components of at least `min_size` voxels per volume, int64 `(N,)`.

    Real AdrenalMNIST3D masks have one (a few have two); isolated specks of a generator show up here. With
    `min_size=3` specks of one or two voxels are not counted (to tell specks from a second structure).
    """
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise ValueError(f"min_size must be a positive integer (voxels); got {min_size!r}.")
    masks = binarise(volumes, threshold)
    structure = np.ones((3, 3, 3), dtype=bool)
    counts = np.empty(len(masks), dtype=np.int64)
    for i, mask in enumerate(masks):
        labels, found = scipy.ndimage.label(mask, structure=structure)
        sizes = np.bincount(labels.ravel(), minlength=found + 1)[1:]
        counts[i] = int((sizes >= min_size).sum())
    return counts


class NearestReal(NamedTuple):
    """For each query volume: the best Dice against any reference volume, and that volume's index."""

    dice: np.ndarray  # float64 (Nq,)
    index: np.ndarray  # int64 (Nq,)


def nearest_real(generated: ArrayLike, real: ArrayLike, threshold: float | None = None,
                 exclude_self: bool = False, chunk: int = 256) -> NearestReal:
    """Best Dice of each generated mask against any real mask, and the index of that real mask (vectorised).

    Dice(a, b) = 2|a ∩ b| / (|a| + |b|); two empty masks are identical shapes and score 1 here (one empty
    mask against a non-empty one scores 0). The intersections are one matrix product per block of `chunk`
    generated volumes (float32, exact for counts below 2²⁴). With `exclude_self=True` `generated` and `real`
    are the same set and volume i is not matched with itself (a duplicate elsewhere still is).
    `threshold` applies to both sets (see `binarise`).
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer (generated volumes per block); got {chunk!r}.")
    queries = binarise(generated, threshold, "generated")
    reference = binarise(real, threshold, "real")
    if queries.shape[1:] != reference.shape[1:]:
        raise ValueError(f"generated volumes {queries.shape[1:]} and real volumes {reference.shape[1:]} must "
                         "have the same size; resample one set first.")
    if exclude_self and (len(queries) != len(reference) or len(reference) < 2):
        raise ValueError("exclude_self=True needs the same set twice, with at least two volumes.")
    ref = torch.from_numpy(reference.reshape(len(reference), -1).astype(np.float32))  # (Nr, V)
    ref_sizes = ref.sum(dim=1)  # (Nr,)
    best = np.empty(len(queries), dtype=np.float64)
    index = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        block = torch.from_numpy(queries[start:start + chunk].reshape(-1, ref.shape[1]).astype(np.float32))
        intersections = (block @ ref.T).double()  # (b, Nr)
        sizes = block.sum(dim=1).double()[:, None] + ref_sizes.double()[None, :]  # (b, Nr)
        dice = torch.where(sizes > 0, 2 * intersections / sizes.clamp_min(1), torch.ones_like(sizes))
        if exclude_self:
            rows = torch.arange(len(block))
            dice[rows, rows + start] = -1.0
        values, where = dice.max(dim=1)
        best[start:start + len(block)] = values.numpy()
        index[start:start + len(block)] = where.numpy()
    return NearestReal(best, index)


def nearest_real_dice(generated: ArrayLike, real: ArrayLike, threshold: float | None = None,
                      exclude_self: bool = False) -> np.ndarray:
    """For each generated mask, its best Dice against any real mask, float64 `(N,)` (see `nearest_real`).

    The reference value: `nearest_real_dice(held_out_real, train)` (e.g. the test split against the training
    split), what a fresh real shape scores; compare `nearest_real_dice(generated, train)` with it.
    """
    return nearest_real(generated, real, threshold=threshold, exclude_self=exclude_self).dice


def shape_statistics(volumes: ArrayLike, spacing: float | Sequence[float] | None = None,
                     threshold: float | None = None) -> dict[str, np.ndarray]:
    """Every per-volume statistic of `STATISTICS`, `{name: (N,) array}` (volume in voxels or mm³)."""
    masks = binarise(volumes, threshold)
    return {
        "foreground_fraction": foreground_fraction(masks),
        "volume": shape_volume(masks, spacing),
        "surface_area": surface_area(masks, spacing),
        "components": connected_components(masks).astype(np.float64),
    }


@dataclass(frozen=True)
class StatisticComparison:
    """One statistic, real against generated: means, sds, the mean ratio and the two-sample KS test."""

    real_mean: float
    real_sd: float
    generated_mean: float
    generated_sd: float
    ks_statistic: float  # largest gap between the two empirical CDFs: 0 identical, 1 disjoint
    ks_pvalue: float
    n_real: int
    n_generated: int

    @property
    def ratio(self) -> float:
        """generated mean / real mean (inf when the real mean is 0 and the generated one is not)."""
        if self.real_mean == 0:
            return 1.0 if self.generated_mean == 0 else math.inf
        return self.generated_mean / self.real_mean

    def within_factor(self, factor: float = 1.5) -> bool:
        """Whether the generated mean is within `factor` of the real mean (both ways)."""
        return 1 / factor <= self.ratio <= factor


def compare_samples(real: ArrayLike, generated: ArrayLike) -> StatisticComparison:
    """Compare two 1-D samples of a statistic: mean and sd (ddof=1) of each, and scipy's `ks_2samp`."""
    a = np.asarray(real, dtype=np.float64).ravel()
    b = np.asarray(generated, dtype=np.float64).ravel()
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"each sample needs at least two values; got {len(a)} real and {len(b)} generated.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("the samples contain NaN or infinite values.")
    ks = scipy.stats.ks_2samp(a, b)
    return StatisticComparison(float(a.mean()), float(a.std(ddof=1)), float(b.mean()), float(b.std(ddof=1)),
                               float(ks.statistic), float(ks.pvalue), len(a), len(b))


def compare_shape_distributions(generated: ArrayLike, real: ArrayLike, *, train: ArrayLike | None = None,
                                held_out: ArrayLike | None = None,
                                spacing: float | Sequence[float] | None = None,
                                threshold: float | None = None) -> dict[str, StatisticComparison]:
    """Per statistic of `STATISTICS`: real vs generated mean ± sd and KS statistic, `{name: comparison}`.

    Two more rows compare sets rather than single shapes:

    - `"nearest_other_dice"` (diversity): each volume's best Dice against the *other* volumes of its own set,
      real against generated. Near 1 for the generated set: mode collapse (many near-identical shapes). It
      grows with the set size, so pass sets of equal size (e.g. as many generated volumes as real ones).
    - `"nearest_train_dice"`, with `train` and `held_out` (real volumes the generator never saw, e.g. the test
      split): its real side is `nearest_real_dice(held_out, train)`, what a fresh real shape scores (the value
      a good model approaches), its generated side `nearest_real_dice(generated, train)`. Far below it:
      implausible shapes. Above it: copies of training masks, *or* typical (average-looking) shapes: one mean
      shape repeated scores above real shapes, so read it together with the diversity row and the KS columns.

    `threshold` applies to all sets.
    """
    if (train is None) != (held_out is None):
        raise ValueError("pass both train and held_out (for the nearest-train Dice row), or neither.")
    generated_masks = binarise(generated, threshold, "generated")
    real_masks = binarise(real, threshold, "real")
    if generated_masks.shape[1:] != real_masks.shape[1:]:
        raise ValueError(f"generated volumes {generated_masks.shape[1:]} and real volumes "
                         f"{real_masks.shape[1:]} must have the same size.")
    real_stats = shape_statistics(real_masks, spacing)
    generated_stats = shape_statistics(generated_masks, spacing)
    table = {name: compare_samples(real_stats[name], generated_stats[name]) for name in STATISTICS}
    if len(real_masks) >= 2 and len(generated_masks) >= 2:
        real_within = nearest_real_dice(real_masks, real_masks, exclude_self=True)
        generated_within = nearest_real_dice(generated_masks, generated_masks, exclude_self=True)
        table[WITHIN_DICE] = compare_samples(real_within, generated_within)
    if train is not None:
        train_masks = binarise(train, threshold, "train")
        held_out_dice = nearest_real_dice(binarise(held_out, threshold, "held_out"), train_masks)
        table[NEAREST_DICE] = compare_samples(held_out_dice, nearest_real_dice(generated_masks, train_masks))
    return table


def format_shape_table(comparison: Mapping[str, StatisticComparison], factor: float = 1.5) -> str:
    """A text table of `compare_shape_distributions`' result (close: the means within a factor `factor`)."""
    header = (f"{'statistic':<20} | {'real mean ± sd':>20} | {'generated mean ± sd':>20} | {'ratio':>6} | "
              f"{'KS':>5} | close (×{factor:g})")
    lines = [header, "-" * len(header)]
    for name, row in comparison.items():
        real = f"{row.real_mean:.4g} ± {row.real_sd:.3g}"
        fake = f"{row.generated_mean:.4g} ± {row.generated_sd:.3g}"
        lines.append(f"{name:<20} | {real:>20} | {fake:>20} | {row.ratio:>6.2f} | {row.ks_statistic:>5.2f} | "
                     f"{'yes' if row.within_factor(factor) else 'no'}")
    return "\n".join(lines)


def random_blob_masks(count: int, size: int, foreground: float, seed: int = 0,
                      blur_sd: float = 2.0) -> torch.Tensor:
    """A no-learning baseline: smooth random blobs with a given foreground fraction, uint8 {0, 255}.

    Gaussian noise, blurred with a Gaussian of `blur_sd` voxels along each axis, thresholded per volume at its
    (1 - `foreground`) quantile: every mask has the real foreground fraction (so that statistic cannot tell it
    apart) but blobs anywhere and of no particular shape. A generator that only learned how many voxels are
    foreground scores like this on the shape rows. Returns `(count, 1, size, size, size)`.
    """
    for name, value in (("count", count), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if isinstance(foreground, bool) or not isinstance(foreground, int | float) or not 0 < foreground < 1:
        raise ValueError(f"foreground must be a fraction strictly between 0 and 1 (e.g. 0.016); got {foreground!r}.")
    if not blur_sd > 0:
        raise ValueError(f"blur_sd must be > 0 voxels; got {blur_sd!r}.")
    noise = torch.randn(count, 1, size, size, size, generator=torch.Generator().manual_seed(seed))
    radius = max(1, math.ceil(2 * blur_sd))
    kernel = torch.exp(-torch.arange(-radius, radius + 1).float() ** 2 / (2 * blur_sd ** 2))
    kernel = kernel / kernel.sum()
    for axis in range(3):  # separable Gaussian blur
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = len(kernel)
        noise = torch.nn.functional.conv3d(noise, kernel.reshape(shape), padding="same")
    level = torch.quantile(noise.flatten(1), 1 - float(foreground), dim=1)[:, None, None, None, None]
    return (noise > level).to(torch.uint8) * 255


__all__ = [
    "NEAREST_DICE",
    "STATISTICS",
    "WITHIN_DICE",
    "NearestReal",
    "StatisticComparison",
    "binarise",
    "compare_samples",
    "compare_shape_distributions",
    "connected_components",
    "foreground_fraction",
    "format_shape_table",
    "nearest_real",
    "nearest_real_dice",
    "random_blob_masks",
    "shape_statistics",
    "shape_volume",
    "surface_area",
]
