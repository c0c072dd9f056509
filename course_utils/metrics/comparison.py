"""Comparing two training recipes over seeds and held-out subjects, and a verdict computed from the numbers.

Introduced in notebook 07 (`07_segmentation_gan`); the rule is the one notebooks 05 and 06 state: a recipe is
called better only if

1. the 95 % bootstrap interval of the paired difference (over held-out subjects) excludes 0,
2. every training seed on its own points the same way, and
3. the difference reaches a minimum size that matters (set before looking, in the notebook's settings),

and only with enough subjects for an interval to mean something. Otherwise: "no clear difference".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from course_utils.metrics.image_quality import cluster_bootstrap


@dataclass(frozen=True)
class PairedDifference:
    """a − b on the same held-out units, averaged over seeds, with its interval and the per-seed estimates."""

    estimate: float
    lower: float
    upper: float
    per_seed: tuple[float, ...]  # the estimate of each training seed on its own
    clusters: int  # number of independent units (subjects) the interval is over


def _stack(values: Sequence[torch.Tensor], name: str) -> torch.Tensor:
    if isinstance(values, torch.Tensor) or not len(values):
        raise ValueError(f"{name} must be a non-empty list with one tensor (units,) per training seed.")
    stacked = torch.stack([torch.as_tensor(v).double().flatten() for v in values])  # (seeds, units)
    if not torch.isfinite(stacked).all():
        raise ValueError(f"{name} contains NaN or inf; average over classes with nanmean first, or drop the unit.")
    return stacked


def paired_difference(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], clusters: torch.Tensor | None = None,
                      resamples: int = 2000, seed: int = 0, level: float = 0.95) -> PairedDifference:
    """Paired difference of two recipes: `a[s]`, `b[s]` are per-unit values `(units,)` of training seed `s`.

    Units are in the same order in every tensor (e.g. test subjects, or slices with `clusters` naming each
    slice's subject). The estimate is the mean over clusters of the seed-averaged difference, with a cluster
    bootstrap interval (`cluster_bootstrap`); `per_seed` repeats the estimate for each seed alone.
    """
    a_values, b_values = _stack(a, "a"), _stack(b, "b")
    if a_values.shape != b_values.shape:
        raise ValueError(f"a and b need the same seeds and units; got {tuple(a_values.shape)} and "
                         f"{tuple(b_values.shape)} (seeds, units).")
    units = a_values.shape[1]
    clusters = torch.arange(units) if clusters is None else torch.as_tensor(clusters).flatten()
    if clusters.numel() != units:
        raise ValueError(f"clusters needs one entry per unit ({units}); got {clusters.numel()}.")
    difference = a_values - b_values  # (seeds, units)
    estimate, lower, upper = cluster_bootstrap(difference.mean(dim=0), clusters, resamples, seed, level)
    per_seed = tuple(cluster_bootstrap(row, clusters, 1, seed, level)[0] for row in difference)
    return PairedDifference(estimate, lower, upper, per_seed, int(torch.unique(clusters).numel()))


def verdict(change: PairedDifference, minimum: float, min_clusters: int = 10, unit: str = "subjects") -> str:
    """"higher", "lower", "no clear difference" or f"too few {unit} to tell", by the rule in the module doc."""
    if minimum < 0 or min_clusters < 2:
        raise ValueError(f"need minimum >= 0 and min_clusters >= 2; got {minimum}, {min_clusters}.")
    if change.clusters < min_clusters:
        return f"too few {unit} to tell"
    if change.lower > 0 and all(s > 0 for s in change.per_seed) and change.estimate >= minimum:
        return "higher"
    if change.upper < 0 and all(s < 0 for s in change.per_seed) and change.estimate <= -minimum:
        return "lower"
    return "no clear difference"


__all__ = ["PairedDifference", "paired_difference", "verdict"]
