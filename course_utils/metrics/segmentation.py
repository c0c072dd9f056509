"""Segmentation metrics per class, for 2-D slices or 3-D volumes: overlap (Dice, IoU) and surface (HD95, NSD).

Introduced in notebook 07 (`07_segmentation_gan`).

Inputs are integer label maps of the same shape (any number of dimensions: a slice `(H, W)`, a batch of
slices `(B, H, W)`, a volume `(D, H, W)`), with values in `0 .. num_classes - 1`; 0 is the background.
For one class c with predicted set P and true set T:

    Dice = 2 |P ∩ T| / (|P| + |T|)        IoU = |P ∩ T| / |P ∪ T|        (IoU = Dice / (2 - Dice))

Conventions for a class that is absent (Dice and IoU):
- absent from both prediction and truth: the overlap is undefined (0 / 0) and we return NaN, so means over
  cases use `nanmean` and a slice without hippocampus neither rewards nor punishes the model;
- absent from the truth but predicted (a false alarm), or present in the truth but not predicted (a miss):
  the score is 0.
MONAI's `DiceMetric` differs: with `ignore_empty=True` it returns NaN whenever the truth is empty, so a false
alarm is NaN there and 0 here; with `ignore_empty=False` a class absent from both scores 1 there and NaN here.
Only a class present in the truth scores the same in all three (see tests/test_metrics_segmentation.py).

Surface metrics (`surface_distances`, `hd95_per_class`, `nsd_per_class`, `surface_scores`) look at the
boundaries: the voxels of a class that have a 6-neighbour (4 in 2-D) outside it or lie on the image edge,
and the Euclidean distance in mm (with the voxel `spacing`) from each boundary voxel of one map to the
nearest boundary voxel of the other. They take one slice `(H, W)` or one volume `(D, H, W)`: a batch of
slices must be scored slice by slice, never as a volume.
- HD95 = max(95th percentile of the distances prediction → truth, 95th percentile of truth → prediction),
  linearly interpolated: MONAI's `compute_hausdorff_distance(..., percentile=95)` and DeepMind's
  `surface-distance` convention. (medpy's `hd95` takes the 95th percentile of both directions pooled,
  which can be smaller.)
- NSD at tolerance τ mm (Nikolov et al. 2021) = (boundary voxels of either map within τ of the other's
  boundary) / (all boundary voxels of both): MONAI's `compute_surface_dice` without sub-voxel areas.
  DeepMind's original weights each boundary element by its surface area; counting voxels differs slightly.
Conventions for an absent class (surface metrics):
- absent from both: NaN for HD95 and NSD (undefined, skipped by `nanmean`; MONAI: NaN too);
- absent from exactly one map (a miss or a false alarm): NSD = 0 (as MONAI) and HD95 = the diagonal of the
  field of view in mm, the largest distance the image can hold: the worst-case value Metrics Reloaded
  (Maier-Hein et al., Nature Methods 2024) recommends, so a missed structure counts against the model.
  MONAI 1.6 returns NaN there (older versions inf), which would drop the worst cases from a mean.
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



# ----------------------------------------------------------------------------- surface metrics (HD95, NSD)

NSD_TOLERANCE_MM = 1.0  # the default tolerance of the normalised surface Dice


def _check_spacing(spacing: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Voxel spacing in mm as float64 `(ndim,)`: one positive finite number per axis (None: 1 mm each)."""
    if len(shape) not in (2, 3):
        raise ValueError(
            f"surface metrics take one slice (H, W) or one volume (D, H, W); got shape {shape}. Score a batch "
            "of slices slice by slice (surface_scores), never as a volume."
        )
    if spacing is None:
        return np.ones(len(shape))
    values = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if values.size == 1:
        values = np.full(len(shape), float(values[0]))
    if values.size != len(shape) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(
            f"spacing must be one positive number or one per axis of the {len(shape)}-D map (in mm, in the "
            f"array's axis order, e.g. nibabel's header.get_zooms()); got {spacing!r}."
        )
    return values


def _boundary(mask: np.ndarray) -> np.ndarray:
    """The voxels of a boolean mask with a face neighbour outside it (the image's edge counts as outside)."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _distances_to(boundary_from: np.ndarray, boundary_to: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance in mm from each voxel of `boundary_from` to the nearest voxel of `boundary_to` (non-empty)."""
    from scipy import ndimage

    distance_map = ndimage.distance_transform_edt(~boundary_to, sampling=spacing)  # 0 on boundary_to
    return distance_map[boundary_from]


def field_of_view_diagonal(shape: tuple[int, ...], spacing: Any = None) -> float:
    """The largest distance (mm) between two voxel centres of a map: the HD95 of a missed or invented class."""
    spacing_mm = _check_spacing(spacing, tuple(shape))
    return float(np.sqrt(np.sum(((np.asarray(shape) - 1) * spacing_mm) ** 2)))


def surface_distances(prediction_mask: ArrayLike, target_mask: ArrayLike,
                      spacing: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Boundary-to-boundary distances in mm of two binary masks `(H, W)` or `(D, H, W)` (notebook 07).

    Returns `(prediction → truth, truth → prediction)`: for every boundary voxel of one mask, the Euclidean
    distance (with `spacing`, mm per axis) to the nearest boundary voxel of the other, as float64 arrays. A side
    is empty when its own mask is; where only the *other* mask is empty the distances are +inf.
    """
    prediction = np.asarray(torch.as_tensor(prediction_mask).detach().cpu().numpy()).astype(bool)
    target = np.asarray(torch.as_tensor(target_mask).detach().cpu().numpy()).astype(bool)
    if prediction.shape != target.shape:
        raise ValueError(f"prediction and target masks must have the same shape; got {prediction.shape} and "
                         f"{target.shape}.")
    spacing_mm = _check_spacing(spacing, prediction.shape)
    edge_prediction, edge_target = _boundary(prediction), _boundary(target)
    if not edge_target.any():
        forward = np.full(int(edge_prediction.sum()), np.inf)
    else:
        forward = _distances_to(edge_prediction, edge_target, spacing_mm)
    if not edge_prediction.any():
        backward = np.full(int(edge_target.sum()), np.inf)
    else:
        backward = _distances_to(edge_target, edge_prediction, spacing_mm)
    return forward, backward


def _per_class_surfaces(prediction: ArrayLike, target: ArrayLike, num_classes: int,
                        spacing: Any) -> tuple[list[tuple[np.ndarray, np.ndarray] | None], np.ndarray]:
    """Per class, the two distance arrays (None when the class is in neither map), and the spacing."""
    prediction, target = _check_pair(prediction, target, num_classes)
    spacing_mm = _check_spacing(spacing, tuple(prediction.shape))
    labels_p, labels_t = prediction.numpy(), target.numpy()
    surfaces: list[tuple[np.ndarray, np.ndarray] | None] = []
    for c in range(num_classes):
        mask_p, mask_t = labels_p == c, labels_t == c
        surfaces.append(surface_distances(mask_p, mask_t, spacing_mm) if mask_p.any() or mask_t.any() else None)
    return surfaces, spacing_mm


def _hd95(forward: np.ndarray, backward: np.ndarray, worst_case: float) -> float:
    """max of the two directed 95th percentiles; `worst_case` where one mask is empty."""
    if forward.size == 0 or backward.size == 0 or np.isinf(forward).any() or np.isinf(backward).any():
        return worst_case
    return float(max(np.percentile(forward, 95), np.percentile(backward, 95)))


def _nsd(forward: np.ndarray, backward: np.ndarray, tolerance_mm: float) -> float:
    """Fraction of both boundaries within the tolerance of the other (0 where one mask is empty)."""
    within = np.count_nonzero(forward <= tolerance_mm) + np.count_nonzero(backward <= tolerance_mm)
    return within / (forward.size + backward.size)


def _check_tolerance(tolerance_mm: float) -> float:
    """A finite tolerance >= 0 in mm."""
    if isinstance(tolerance_mm, bool) or not isinstance(tolerance_mm, int | float) or not (
            np.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise ValueError(f"tolerance_mm must be a finite number >= 0 (mm); got {tolerance_mm!r}.")
    return float(tolerance_mm)


def hd95_per_class(prediction: ArrayLike, target: ArrayLike, num_classes: int, spacing: Any = None) -> torch.Tensor:
    """95 % Hausdorff distance (mm) of every class of one slice or volume, float64 `(num_classes,)` (notebook 07).

    MONAI's convention (max of the two directed 95th percentiles). NaN for a class in neither map; the field of
    view's diagonal (`field_of_view_diagonal`) for a class in only one of them (see the module docstring).
    """
    surfaces, spacing_mm = _per_class_surfaces(prediction, target, num_classes, spacing)
    worst = field_of_view_diagonal(tuple(torch.as_tensor(target).shape), spacing_mm)
    return torch.tensor([float("nan") if s is None else _hd95(*s, worst) for s in surfaces], dtype=torch.float64)


def nsd_per_class(prediction: ArrayLike, target: ArrayLike, num_classes: int, spacing: Any = None,
                  tolerance_mm: float = NSD_TOLERANCE_MM) -> torch.Tensor:
    """Normalised surface Dice at `tolerance_mm` of every class, float64 `(num_classes,)` in [0, 1] (notebook 07).

    MONAI's `compute_surface_dice` (boundary voxels counted). NaN for a class in neither map, 0 for a class in
    only one of them.
    """
    tolerance_mm = _check_tolerance(tolerance_mm)
    surfaces, _ = _per_class_surfaces(prediction, target, num_classes, spacing)
    return torch.tensor([float("nan") if s is None else _nsd(*s, tolerance_mm) for s in surfaces],
                        dtype=torch.float64)


def surface_scores(predictions: list[ArrayLike], targets: list[ArrayLike], num_classes: int,
                   spacing: Any = None, tolerance_mm: float = NSD_TOLERANCE_MM) -> dict[str, torch.Tensor]:
    """HD95 and NSD per case and class: `{"hd95": (cases, K), "nsd": (cases, K)}`, like `case_scores`.

    Each case is one slice `(H, W)` or one volume `(D, H, W)`. `spacing` is one spacing for every case or a list
    with one per case (mm per axis). Feed the result to `summarise_scores`.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"got {len(predictions)} predictions but {len(targets)} targets; pass one of each per case.")
    if not predictions:
        raise ValueError("no cases to score; pass at least one (prediction, target) pair.")
    tolerance_mm = _check_tolerance(tolerance_mm)
    per_case = isinstance(spacing, list | tuple) and len(spacing) == len(predictions) and all(
        isinstance(s, list | tuple | np.ndarray) for s in spacing)
    spacings = list(spacing) if per_case else [spacing] * len(predictions)
    hd95, nsd = [], []
    for prediction, target, case_spacing in zip(predictions, targets, spacings, strict=True):
        surfaces, spacing_mm = _per_class_surfaces(prediction, target, num_classes, case_spacing)
        worst = field_of_view_diagonal(tuple(torch.as_tensor(target).shape), spacing_mm)
        hd95.append([float("nan") if s is None else _hd95(*s, worst) for s in surfaces])
        nsd.append([float("nan") if s is None else _nsd(*s, tolerance_mm) for s in surfaces])
    return {"hd95": torch.tensor(hd95, dtype=torch.float64), "nsd": torch.tensor(nsd, dtype=torch.float64)}
