"""Memorisation (privacy) audit: are generated images suspiciously close copies of training images?

Introduced in notebook 03 (`03_evaluating_gans`).

A generator trained on patient images must not hand them back. The audit measures, for every
generated image, the Euclidean distance to its nearest *training* image, and compares it with the
baseline a fresh real image gets: the distance from each *held-out* real image (from the same source
as the training split, e.g. the validation split) to its nearest training image. A generator that
copies sits far below that baseline; one that generalises looks like the held-out images. Distances are
on flattened pixels (images `(B, C, H, W)` in [0, 1]) or on any feature matrix `(N, D)`; all three sets
must use the same representation. Computed on the CPU in float64.

- `find_training_copies`: which held-out images are exact or near copies of a training image (public
  datasets contain them); leave them out of the baseline, or the threshold flags only exact copies.
- `perturbed_copies`: training images with a small change (noise, brightness, a shift, a mirror image),
  the copies a pixel-space audit misses: use them to show what an audit cannot see.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch

from course_utils.metrics.distribution import (
    _as_feature_matrix,
    _as_float64_tensor,
    _as_unit_images,
    _nearest,
)

ArrayLike = Any  # torch.Tensor | np.ndarray
Perturbation = Literal["noise", "brightness", "shift", "flip"]
PERTURBATIONS: tuple[str, ...] = ("noise", "brightness", "shift", "flip")


def _as_flat_samples(samples: ArrayLike, name: str, min_samples: int = 1) -> torch.Tensor:
    """Validated float64 `(N, D)` matrix: images `(N, C, H, W)` flattened to one row each, features unchanged."""
    tensor = _as_float64_tensor(samples, name)
    if tensor.ndim < 2:
        raise ValueError(
            f"{name} must be images (N, C, H, W) or a feature matrix (N, D) with one sample per row; "
            f"received shape {tuple(tensor.shape)}. For a single sample use `x[None]`."
        )
    return _as_feature_matrix(tensor.flatten(1), f"{name} (flattened to one row per sample)", min_samples)


def _check_same_sample_shape(shapes: dict[str, tuple[int, ...]]) -> None:
    """ValueError unless every set has the same per-sample shape (everything after the batch axis)."""
    per_sample = {name: shape[1:] for name, shape in shapes.items()}
    if len(set(per_sample.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(
            f"All sets must have the same shape per sample (same C, H, W or same D); received {listed}. "
            "Resize the images or use the same feature extractor for every set."
        )


def _sample_shape(samples: ArrayLike) -> tuple[int, ...]:
    """The shape of `samples` as a tuple (tensor or array)."""
    return tuple(getattr(samples, "shape", ()))


def nearest_neighbour_distances(
    queries: ArrayLike, reference: ArrayLike, exclude_self: bool = False, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance from each query to its nearest reference sample: distances float64 `(Nq,)`, indices `(Nq,)`.

    Samples are images `(N, C, H, W)` (flattened) or features `(N, D)`. With `exclude_self=True` the two
    sets are the same set and row i is not matched with itself (a duplicate elsewhere still is).
    Distances are computed in blocks of `chunk` x `chunk`, so memory stays small for any N.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer (rows per distance block); got {chunk!r}.")
    _check_same_sample_shape({"queries": _sample_shape(queries), "reference": _sample_shape(reference)})
    query_matrix = _as_flat_samples(queries, "queries")  # (Nq, D)
    reference_matrix = _as_flat_samples(
        reference, "reference", min_samples=2 if exclude_self else 1
    )  # (Nr, D)
    if exclude_self and query_matrix.shape[0] != reference_matrix.shape[0]:
        raise ValueError(
            f"exclude_self=True means queries and reference are the same set, but they have "
            f"{query_matrix.shape[0]} and {reference_matrix.shape[0]} samples. Pass the same tensor twice, "
            "or exclude_self=False for two different sets."
        )
    return _nearest(query_matrix, reference_matrix, exclude_self=exclude_self, chunk=chunk)


def memorisation_audit(
    generated: ArrayLike,
    train: ArrayLike,
    test: ArrayLike,
    percentile: float = 1.0,
    num_pairs: int = 8,
    chunk: int = 1024,
    test_to_train: ArrayLike | None = None,
) -> dict[str, Any]:
    """Compare generated→train nearest distances with the test→train baseline; see the keys below.

    Inputs: images `(N, C, H, W)` in [0, 1] (or features `(N, D)`), the same representation for all three;
    `test` is the baseline set of held-out real images (from the training data's source, e.g. the validation
    split, without copies of training images: `find_training_copies`).
    Returns a dict with
      generated_to_train (Ng,) float64 and generated_nearest_train_index (Ng,) long: each generated
        sample's nearest training sample;
      test_to_train (Nt,): the same for held-out real images, the baseline of "a new image from the
        same population" (pass the `test_to_train` of an earlier call with the same train and test to
        skip recomputing it when auditing many sets);
      threshold: the `percentile`-th percentile of test_to_train;
      fraction_suspiciously_close: fraction of generated samples with distance <= threshold
        (about percentile / 100 — the key expected_fraction — for a generator that does not copy;
        about 1 for a copier);
      median_ratio: median(generated_to_train) / median(test_to_train) (about 1 when generalising,
        near 0 when copying, above 1 when samples are far from any real image);
      closest_generated_indices, closest_train_indices, closest_distances (num_pairs,): the closest
        generated/training pairs, closest first, to show side by side.
    """
    if isinstance(percentile, bool) or not isinstance(percentile, int | float) or not 0 < percentile < 100:
        raise ValueError(
            f"percentile must be a number in (0, 100), e.g. 1.0 for the 1st percentile; got {percentile!r}."
        )
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 0:
        raise ValueError(f"num_pairs must be a non-negative integer; got {num_pairs!r}.")
    _check_same_sample_shape(
        {"generated": _sample_shape(generated), "train": _sample_shape(train), "test": _sample_shape(test)}
    )
    generated_matrix = _as_flat_samples(generated, "generated")  # (Ng, D)
    train_matrix = _as_flat_samples(train, "train")  # (Ntrain, D)
    test_matrix = _as_flat_samples(test, "test")  # (Nt, D)

    if float(generated_matrix.min()) < 0 <= min(float(train_matrix.min()), float(test_matrix.min())):
        warnings.warn(
            "generated has negative values but train and test do not: if the generated images are in the "
            "model range [-1, 1], convert them with course_utils.data.to_unit_range first, or the distances "
            "compare different scales.",
            RuntimeWarning,
            stacklevel=2,
        )
    if test_matrix.shape[0] * percentile / 100 < 1:
        warnings.warn(
            f"With {test_matrix.shape[0]} test samples the {percentile:g}th percentile is no better than the "
            "smallest test distance; use at least "
            f"{int(100 / percentile) + 1} test samples or a larger percentile for a meaningful threshold.",
            RuntimeWarning,
            stacklevel=2,
        )

    generated_to_train, nearest_train = _nearest(generated_matrix, train_matrix, chunk=chunk)  # (Ng,), (Ng,)
    if test_to_train is None:
        test_to_train, _ = _nearest(test_matrix, train_matrix, chunk=chunk)  # (Nt,)
    else:
        test_to_train = _as_float64_tensor(test_to_train, "test_to_train").reshape(-1)
        if test_to_train.shape[0] != test_matrix.shape[0]:
            raise ValueError(
                f"test_to_train has {test_to_train.shape[0]} distances but test has {test_matrix.shape[0]} samples; "
                "pass the test_to_train of an audit with the same train and test sets."
            )
    threshold = float(torch.quantile(test_to_train, percentile / 100))
    if threshold == 0.0:
        warnings.warn(
            "Some test images are exact copies of training images (test→train distance 0), so the threshold "
            "is 0: the split leaks. Remove duplicates between train and test before auditing.",
            RuntimeWarning,
            stacklevel=2,
        )
    fraction = float((generated_to_train <= threshold).double().mean())
    baseline_median = float(test_to_train.median())
    generated_median = float(generated_to_train.median())
    median_ratio = generated_median / baseline_median if baseline_median > 0 else float("nan")

    order = torch.argsort(generated_to_train)[:num_pairs]  # (num_pairs,) closest first
    return {
        "generated_to_train": generated_to_train,
        "generated_nearest_train_index": nearest_train,
        "test_to_train": test_to_train,
        "percentile": float(percentile),
        "threshold": threshold,
        "fraction_suspiciously_close": fraction,
        "expected_fraction": float(percentile) / 100,
        "median_ratio": median_ratio,
        "closest_generated_indices": order,
        "closest_train_indices": nearest_train[order],
        "closest_distances": generated_to_train[order],
    }


def find_training_copies(
    images: ArrayLike, train: ArrayLike, near_copy_ratio: float = 0.5, chunk: int = 1024
) -> dict[str, torch.Tensor]:
    """Which `images` are exact or near copies of a training image? A check of the audit's baseline set.

    An image is an *exact* copy when its nearest training image is at distance 0, and a *near* copy when
    that distance is below `near_copy_ratio` times the median nearest-training distance of all `images`
    (closer than half the typical distance, by default). Near copies are re-exports, crops or other scans of
    the same patient as often as chance look-alikes: look at them. Returns `distances` float64 `(N,)`,
    `nearest_train_index` `(N,)`, and boolean masks `exact`, `near` (excludes exact) and `keep` (neither).
    Images `(N, C, H, W)` or features `(N, D)`, the same representation for both sets.
    """
    if isinstance(near_copy_ratio, bool) or not isinstance(near_copy_ratio, int | float) or not 0 <= near_copy_ratio < 1:
        raise ValueError(
            f"near_copy_ratio must be a number in [0, 1) (a fraction of the median distance; 0 finds exact copies "
            f"only); got {near_copy_ratio!r}."
        )
    distances, nearest = nearest_neighbour_distances(images, train, chunk=chunk)  # (N,), (N,)
    exact = distances == 0
    near = (distances < near_copy_ratio * float(distances.median())) & ~exact
    return {"distances": distances, "nearest_train_index": nearest, "exact": exact, "near": near,
            "keep": ~(exact | near)}


def perturbed_copies(
    images: ArrayLike,
    kind: Perturbation,
    *,
    noise_sd: float = 0.05,
    brightness: float = 0.05,
    shift_pixels: int = 1,
    seed: int = 0,
) -> torch.Tensor:
    """Copies of `images` `(N, C, H, W)` in [0, 1] with one small change, clipped to [0, 1] (float32, CPU).

    kind: "noise" adds Gaussian noise of sd `noise_sd`; "brightness" adds `brightness` to every pixel;
    "shift" moves the image `shift_pixels` to the right (the left edge column repeated); "flip" mirrors it
    left-right. Each is still the training image to a human eye, so an audit that misses it is blind to
    that kind of copy. Noise is drawn from `seed`.
    """
    unit = _as_unit_images(images, "images")
    if unit.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W); received shape {tuple(unit.shape)}.")
    unit = unit.float()
    if kind == "noise":
        noise = torch.randn(unit.shape, generator=torch.Generator().manual_seed(seed))
        changed = unit + noise_sd * noise
    elif kind == "brightness":
        changed = unit + brightness
    elif kind == "shift":
        if isinstance(shift_pixels, bool) or not isinstance(shift_pixels, int) or not 0 < shift_pixels < unit.shape[-1]:
            raise ValueError(f"shift_pixels must be an integer in 1..{unit.shape[-1] - 1}; got {shift_pixels!r}.")
        edge = unit[..., :1].expand(*unit.shape[:-1], shift_pixels)
        changed = torch.cat([edge, unit[..., :-shift_pixels]], dim=-1)
    elif kind == "flip":
        changed = unit.flip(-1)
    else:
        raise ValueError(f"kind must be one of {PERTURBATIONS}; got {kind!r}.")
    return changed.clamp(0.0, 1.0)


__all__ = ["PERTURBATIONS", "find_training_copies", "memorisation_audit", "nearest_neighbour_distances",
           "perturbed_copies"]
