"""Metrics: they only measure. Distribution metrics for generated sets, the memorisation audit, feature spaces,
classification and segmentation scores.

Introduced in notebook 03 (`03_evaluating_gans`). Images are float `(B, C, H, W)` in [0, 1] here
(the feature extractors also take uint8).
"""

from course_utils.metrics.classification import (
    Fold,
    LeakageError,
    classification_metrics,
    paired_fold_test,
    stratified_folds,
    summarise_folds,
)
from course_utils.metrics.distribution import (
    class_balance,
    density_coverage,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    inception_score,
    kid,
    knn_radii,
    ks_intensity_test,
    normalised_class_entropy,
    precision_recall,
)
from course_utils.metrics.features import (
    InceptionWeightsUnavailableError,
    classifier_accuracy,
    extract_features,
    imagenet_inception_score,
    inception_fid,
    predict_labels,
    predict_logits,
)
from course_utils.metrics.memorisation import (
    find_training_copies,
    memorisation_audit,
    nearest_neighbour_distances,
    perturbed_copies,
)
from course_utils.metrics.segmentation import case_scores, dice_per_class, iou_per_class, summarise_scores

__all__ = [
    "Fold",
    "LeakageError",
    "classification_metrics",
    "paired_fold_test",
    "stratified_folds",
    "summarise_folds",
    "InceptionWeightsUnavailableError",
    "class_balance",
    "case_scores",
    "classifier_accuracy",
    "density_coverage",
    "dice_per_class",
    "extract_features",
    "find_training_copies",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "imagenet_inception_score",
    "inception_fid",
    "inception_score",
    "iou_per_class",
    "kid",
    "knn_radii",
    "ks_intensity_test",
    "memorisation_audit",
    "nearest_neighbour_distances",
    "normalised_class_entropy",
    "perturbed_copies",
    "precision_recall",
    "predict_labels",
    "predict_logits",
    "summarise_scores",
]
