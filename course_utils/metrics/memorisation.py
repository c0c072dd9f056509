"""Memorisation (privacy) audit: are generated images suspiciously close copies of training images?

Introduced in notebook 03 (`03_evaluating_gans`).

A generator trained on patient images must not hand them back. The audit measures, for every
generated image, the Euclidean distance to its nearest *training* image, and compares it with the
baseline a fresh real image gets: the distance from each *held-out test* image to its nearest
training image. A generator that copies sits far below that baseline; one that generalises looks
like the test set. Distances are on flattened pixels (images `(B, C, H, W)` in [0, 1]) or on any
feature matrix `(N, D)`; all three sets must use the same representation. Computed on the CPU in float64.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from course_utils.metrics.distribution import _as_feature_matrix, _as_float64_tensor, _nearest

ArrayLike = Any  # torch.Tensor | np.ndarray


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
) -> dict[str, Any]:
    """Compare generated→train nearest distances with the test→train baseline; see the keys below.

    Inputs: images `(N, C, H, W)` in [0, 1] (or features `(N, D)`), the same representation for all three.
    Returns a dict with
      generated_to_train (Ng,) float64 and generated_nearest_train_index (Ng,) long: each generated
        sample's nearest training sample;
      test_to_train (Nt,): the same for held-out real images, the baseline of "a new image from the
        same population";
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
    test_to_train, _ = _nearest(test_matrix, train_matrix, chunk=chunk)  # (Nt,)
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
