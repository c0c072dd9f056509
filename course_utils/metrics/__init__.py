"""Metrics for the course: distribution metrics for generated sets and the memorisation audit.

Introduced in notebook 03 (`03_evaluating_gans`). Images are float `(B, C, H, W)` in [0, 1] here.
"""

from course_utils.metrics.distribution import (
    class_balance,
    density_coverage,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    knn_radii,
    ks_intensity_test,
    normalised_class_entropy,
    precision_recall,
)
from course_utils.metrics.memorisation import memorisation_audit, nearest_neighbour_distances

__all__ = [
    "class_balance",
    "density_coverage",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "knn_radii",
    "ks_intensity_test",
    "memorisation_audit",
    "nearest_neighbour_distances",
    "normalised_class_entropy",
    "precision_recall",
]
