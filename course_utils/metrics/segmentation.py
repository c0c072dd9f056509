"""Segmentation overlap metrics: Dice and IoU per class, for 2-D slices or 3-D volumes.

Introduced in notebook 07 (`07_segmentation_gan`).

Inputs are integer label maps of the same shape (any number of dimensions: a slice `(H, W)`, a batch of
slices `(B, H, W)`, a volume `(D, H, W)`), with values in `0 .. num_classes - 1`; 0 is the background.
For one class c with predicted set P and true set T:

    Dice = 2 |P ∩ T| / (|P| + |T|)        IoU = |P ∩ T| / |P ∪ T|        (IoU = Dice / (2 - Dice))

When a class is absent from both prediction and truth the overlap is undefined (0 / 0). We return NaN for
it, as MONAI's `DiceMetric(ignore_empty=True)` does, so means over cases use `nanmean` and a slice without
hippocampus neither rewards nor punishes the model. When the class is absent from the truth but predicted,
the score is 0 (a false alarm).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

ArrayLike = Any  # torch.Tensor | np.ndarray


def _as_label_map(labels: ArrayLike, name: str, num_classes: int) -> torch.Tensor:
    """A CPU int64 tensor of labels in 0..num_classes-1, or a ValueError that says what was wrong."""
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(labels))
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or NumPy array of integer labels; got {type(labels).__name__}.")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"{name} must hold integer class labels, not {labels.dtype}; for network outputs (B, K, H, W) "
            "use `logits.argmax(dim=1)` first."
        )
    labels = labels.detach().cpu().long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{name} has labels from {int(labels.min())} to {int(labels.max())}, but num_classes = {num_classes} "
            f"allows 0..{num_classes - 1}."
        )
    return labels


def _check_pair(prediction: ArrayLike, target: ArrayLike, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated (prediction, target) label maps of the same shape."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 (background plus at least one class); got {num_classes!r}.")
    prediction = _as_label_map(prediction, "prediction", num_classes)
    target = _as_label_map(target, "target", num_classes)
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target must have the same shape; got {tuple(prediction.shape)} and "
            f"{tuple(target.shape)}. Crop or pad the prediction back to the image's shape first."
        )
    if prediction.numel() == 0:
        raise ValueError("prediction and target are empty; pass at least one pixel.")
    return prediction, target


def overlap_counts(prediction: ArrayLike, target: ArrayLike, num_classes: int) -> torch.Tensor:
    """Per class: (|P ∩ T|, |P|, |T|) as an int64 tensor `(num_classes, 3)`, counted over every pixel/voxel."""
    prediction, target = _check_pair(prediction, target, num_classes)
    classes = torch.arange(num_classes)
    pred_onehot = prediction.flatten()[None, :] == classes[:, None]  # (K, N)
    true_onehot = target.flatten()[None, :] == classes[:, None]  # (K, N)
    intersection = (pred_onehot & true_onehot).sum(dim=1)
    return torch.stack([intersection, pred_onehot.sum(dim=1), true_onehot.sum(dim=1)], dim=1)


def dice_per_class(prediction: ArrayLike, target: ArrayLike, num_classes: int) -> torch.Tensor:
    """Dice of every class (background included, index 0) as float64 `(num_classes,)`; NaN where 0 / 0."""
    counts = overlap_counts(prediction, target, num_classes).double()
    intersection, predicted, true = counts.unbind(dim=1)
    denominator = predicted + true
    dice = 2 * intersection / denominator.clamp(min=1)
    return torch.where(denominator > 0, dice, torch.full_like(dice, float("nan")))


def iou_per_class(prediction: ArrayLike, target: ArrayLike, num_classes: int) -> torch.Tensor:
    """IoU (Jaccard) of every class as float64 `(num_classes,)`; NaN where the class is in neither map."""
    counts = overlap_counts(prediction, target, num_classes).double()
    intersection, predicted, true = counts.unbind(dim=1)
    union = predicted + true - intersection
    iou = intersection / union.clamp(min=1)
    return torch.where(union > 0, iou, torch.full_like(iou, float("nan")))


def case_scores(
    predictions: list[ArrayLike], targets: list[ArrayLike], num_classes: int
) -> dict[str, torch.Tensor]:
    """Dice and IoU per case and class: `{"dice": (cases, K), "iou": (cases, K)}` (each case scored on its own).

    A case is one volume for 3-D scores (pass whole volumes) or one slice for slice-wise scores.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"got {len(predictions)} predictions but {len(targets)} targets; pass one of each per case.")
    if not predictions:
        raise ValueError("no cases to score; pass at least one (prediction, target) pair.")
    dice = torch.stack([dice_per_class(p, t, num_classes) for p, t in zip(predictions, targets, strict=True)])
    iou = torch.stack([iou_per_class(p, t, num_classes) for p, t in zip(predictions, targets, strict=True)])
    return {"dice": dice, "iou": iou}


def summarise_scores(scores: torch.Tensor, class_names: tuple[str, ...] | list[str],
                     foreground_only: bool = True) -> dict[str, tuple[float, float, int]]:
    """Mean, sd (ddof 1) and number of defined cases per class and for the mean over classes, ignoring NaN.

    `scores` is `(cases, K)` from `case_scores`. "mean" averages each case over the foreground classes (or all
    classes with `foreground_only=False`) first, then over cases.
    """
    if scores.ndim != 2 or scores.shape[1] != len(class_names):
        raise ValueError(f"scores must be (cases, {len(class_names)}) for classes {tuple(class_names)}; "
                         f"got shape {tuple(scores.shape)}.")
    values = scores.double().numpy()
    first = 1 if foreground_only else 0
    summary: dict[str, tuple[float, float, int]] = {}

    def describe(column: np.ndarray) -> tuple[float, float, int]:
        defined = column[~np.isnan(column)]
        if defined.size == 0:
            return float("nan"), float("nan"), 0
        sd = float(np.std(defined, ddof=1)) if defined.size > 1 else float("nan")
        return float(np.mean(defined)), sd, int(defined.size)

    for index in range(first, len(class_names)):
        summary[class_names[index]] = describe(values[:, index])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice" for a case without any class
        per_case_mean = np.nanmean(values[:, first:], axis=1)  # NaN only when no class is defined in the case
    summary["mean"] = describe(per_case_mean)
    return summary

