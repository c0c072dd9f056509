"""Dice and IoU agree with scikit-learn and NumPy; HD95 and NSD with MONAI (2-D, 3-D, spacing, MSD cases);
the conventions for absent classes are checked against MONAI's, and bad input is explained."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score

from course_utils.metrics.segmentation import (
    case_scores,
    dice_per_class,
    field_of_view_diagonal,
    hd95_per_class,
    iou_per_class,
    nsd_per_class,
    overlap_counts,
    summarise_scores,
    surface_distances,
    surface_scores,
)


def numpy_dice(prediction: np.ndarray, target: np.ndarray, label: int) -> float:
    p, t = prediction == label, target == label
    return 2 * np.logical_and(p, t).sum() / (p.sum() + t.sum())


@pytest.mark.parametrize("shape", [(32, 32), (7, 20, 24)])
def test_dice_and_iou_match_sklearn_and_numpy(shape):
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, size=shape)
    prediction = np.where(rng.random(shape) < 0.7, target, rng.integers(0, 3, size=shape))  # 70 % kept
    dice = dice_per_class(prediction, target, 3).numpy()
    iou = iou_per_class(torch.from_numpy(prediction), torch.from_numpy(target), 3).numpy()
    reference_dice = f1_score(target.ravel(), prediction.ravel(), labels=[0, 1, 2], average=None)
    reference_iou = jaccard_score(target.ravel(), prediction.ravel(), labels=[0, 1, 2], average=None)
    np.testing.assert_allclose(dice, reference_dice, rtol=1e-12)
    np.testing.assert_allclose(iou, reference_iou, rtol=1e-12)
    np.testing.assert_allclose(dice, [numpy_dice(prediction, target, c) for c in range(3)], rtol=1e-12)
    np.testing.assert_allclose(iou, dice / (2 - dice), rtol=1e-12)  # the identity between the two


def test_hand_computed_example():
    target = torch.tensor([[0, 1, 1, 0], [0, 2, 2, 2]])
    prediction = torch.tensor([[0, 1, 0, 0], [1, 2, 2, 0]])
    # class 1: P = 2 pixels, T = 2, overlap 1 -> Dice 2*1/4 = 0.5, IoU 1/3
    # class 2: P = 2, T = 3, overlap 2 -> Dice 4/5 = 0.8, IoU 2/3
    assert overlap_counts(prediction, target, 3)[1].tolist() == [1, 2, 2]
    assert dice_per_class(prediction, target, 3)[1:].tolist() == pytest.approx([0.5, 0.8])
    assert iou_per_class(prediction, target, 3)[1:].tolist() == pytest.approx([1 / 3, 2 / 3])


def test_empty_class_is_nan_and_false_alarm_is_zero():
    target = torch.zeros(4, 4, dtype=torch.long)
    prediction = target.clone()
    prediction[0, 0] = 2  # class 2 predicted where there is none; class 1 absent from both
    dice = dice_per_class(prediction, target, 3)
    assert math.isnan(dice[1]) and dice[2] == 0.0
    assert math.isnan(iou_per_class(prediction, target, 3)[1])


def test_case_scores_and_summary_skip_undefined_cases():
    targets = [torch.tensor([[1, 1], [2, 0]]), torch.tensor([[0, 0], [2, 2]])]
    predictions = [torch.tensor([[1, 1], [2, 0]]), torch.tensor([[0, 0], [2, 0]])]
    scores = case_scores(predictions, targets, 3)
    assert scores["dice"].shape == (2, 3)
    summary = summarise_scores(scores["dice"], ("background", "anterior", "posterior"))
    assert summary["anterior"] == (1.0, pytest.approx(float("nan"), nan_ok=True), 1)  # defined in case 1 only
    assert summary["posterior"][0] == pytest.approx((1.0 + 2 / 3) / 2)
    # per-case mean over defined foreground classes: case 1 -> 1.0, case 2 -> 2/3
    assert summary["mean"][0] == pytest.approx((1.0 + 2 / 3) / 2)
    assert summary["mean"][2] == 2


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="same shape"):
        dice_per_class(torch.zeros(4, 4, dtype=torch.long), torch.zeros(4, 5, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="argmax"):
        dice_per_class(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="num_classes = 3"):
        dice_per_class(torch.full((2, 2), 3), torch.zeros(2, 2, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="num_classes"):
        dice_per_class(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="2 predictions but 1 targets"):
        case_scores([torch.zeros(2, 2, dtype=torch.long)] * 2, [torch.zeros(2, 2, dtype=torch.long)], 3)


# ----------------------------------------------------------------------------- surface metrics against MONAI


def monai_metrics():
    """MONAI's metrics module (a dev dependency); skips only the calling test where it is missing."""
    return pytest.importorskip("monai.metrics")


def onehot(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """(1, K, *spatial) float one-hot, MONAI's input format."""
    return torch.nn.functional.one_hot(torch.as_tensor(labels).long(), num_classes).movedim(-1, 0)[None].float()


def monai_surface(prediction: np.ndarray, target: np.ndarray, num_classes: int, spacing, tolerance: float,
                  include_background: bool = True):
    """MONAI's HD95 and NSD per class, float64 numpy `(K,)` each (NaN for the background when it is left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns for empty classes
        p, t = onehot(prediction, num_classes), onehot(target, num_classes)
        first = 0 if include_background else 1
        hd95 = monai_metrics().compute_hausdorff_distance(p, t, include_background=include_background, percentile=95,
                                                        spacing=list(spacing))
        nsd = monai_metrics().compute_surface_dice(p, t, [tolerance] * (num_classes - first),
                                                 include_background=include_background, spacing=list(spacing))
    pad = np.full(first, np.nan)
    return np.concatenate([pad, hd95[0].double().numpy()]), np.concatenate([pad, nsd[0].double().numpy()])


def blobs(shape: tuple[int, ...], seed: int, num_classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random label map and a perturbed copy of it (a plausible prediction)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    target = np.digitize(field, np.quantile(field, [0.5, 0.8])[: num_classes - 1])
    noisy = ndimage.gaussian_filter(field + 0.6 * ndimage.gaussian_filter(rng.normal(size=shape), 1.5), 1.0)
    prediction = np.digitize(noisy, np.quantile(noisy, [0.45, 0.82])[: num_classes - 1])
    return prediction, target


@pytest.mark.parametrize(("shape", "spacing", "tolerance"), [
    ((40, 36), (1.0, 1.0), 1.0),
    ((40, 36), (0.7, 1.3), 2.0),  # anisotropic pixels, tolerance in mm
    ((14, 20, 18), (2.0, 1.0, 0.8), 1.0),
])
def test_hd95_and_nsd_match_monai(shape, spacing, tolerance):
    prediction, target = blobs(shape, seed=len(shape) + int(10 * spacing[0]))
    reference_hd95, reference_nsd = monai_surface(prediction, target, 3, spacing, tolerance)
    hd95 = hd95_per_class(prediction, target, 3, spacing=spacing).numpy()
    nsd = nsd_per_class(torch.from_numpy(prediction), torch.from_numpy(target), 3, spacing=spacing,
                        tolerance_mm=tolerance).numpy()
    assert np.all(hd95 > 0) and np.all((nsd > 0) & (nsd < 1))  # a non-trivial case
    np.testing.assert_allclose(hd95, reference_hd95, rtol=1e-5)
    np.testing.assert_allclose(nsd, reference_nsd, rtol=1e-6)


def test_hand_computed_square_shift():
    target = np.zeros((12, 12), dtype=np.int64)
    target[3:7, 3:7] = 1
    prediction = np.roll(target, 2, axis=1)  # the square moved two columns
    # each boundary is a ring of 12 voxels; 4 of them lie on the other ring (0), 4 are 1 away, 4 are 2 away
    forward, backward = surface_distances(prediction == 1, target == 1)
    assert sorted(forward.tolist()) == sorted(backward.tolist()) == [0.0] * 4 + [1.0] * 4 + [2.0] * 4
    assert float(hd95_per_class(prediction, target, 2)[1]) == pytest.approx(2.0)
    assert float(hd95_per_class(prediction, target, 2, spacing=(1.0, 0.5))[1]) == pytest.approx(1.0)  # columns 0.5 mm
    assert float(nsd_per_class(prediction, target, 2, tolerance_mm=1.0)[1]) == pytest.approx(16 / 24)
    assert float(nsd_per_class(prediction, target, 2, tolerance_mm=0.0)[1]) == pytest.approx(8 / 24)
    assert float(hd95_per_class(target, target, 2)[1]) == 0.0 and float(nsd_per_class(target, target, 2)[1]) == 1.0


def test_absent_classes_follow_the_documented_convention_and_differ_from_monai_where_stated():
    target = np.zeros((10, 10), dtype=np.int64)
    target[2:5, 2:5] = 1  # class 1 only in the truth (a miss); class 2 only in the prediction (a false alarm)
    prediction = np.zeros_like(target)
    prediction[6:8, 6:8] = 2
    hd95, nsd = hd95_per_class(prediction, target, 4).numpy(), nsd_per_class(prediction, target, 4).numpy()
    diagonal = field_of_view_diagonal((10, 10))
    assert diagonal == pytest.approx(9 * math.sqrt(2))
    assert hd95[1] == hd95[2] == pytest.approx(diagonal)  # worst case for a miss and a false alarm
    assert nsd[1] == nsd[2] == 0.0
    assert math.isnan(hd95[3]) and math.isnan(nsd[3])  # class 3 in neither: undefined
    assert float(hd95_per_class(prediction, target, 4, spacing=(2.0, 1.0))[1]) == pytest.approx(math.hypot(18, 9))
    reference_hd95, reference_nsd = monai_surface(prediction, target, 4, (1.0, 1.0), 1.0)
    np.testing.assert_array_equal(reference_nsd[1:], nsd[1:])  # NSD: the same convention as MONAI (nan == nan)
    assert np.isnan(reference_hd95[1:]).all() or np.isinf(reference_hd95[1:3]).all()  # MONAI: NaN (inf before 1.6)


def test_dice_conventions_against_monai():
    target = np.zeros((1, 8, 8), dtype=np.int64)
    target[0, 1:4, 1:4] = 1  # class 1 present; class 2 a false alarm; class 3 in neither
    prediction = target.copy()
    prediction[0, 1, 1] = 0
    prediction[0, 6, 6] = 2
    dice = dice_per_class(prediction, target, 4).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, t = onehot(prediction[0], 4), onehot(target[0], 4)
        ignoring = monai_metrics().compute_dice(p, t, include_background=True, ignore_empty=True)[0].double().numpy()
        counting = monai_metrics().compute_dice(p, t, include_background=True, ignore_empty=False)[0].double().numpy()
    np.testing.assert_allclose(dice[:2], ignoring[:2], rtol=1e-6)  # classes in the truth: all agree
    np.testing.assert_allclose(dice[:2], counting[:2], rtol=1e-6)
    assert dice[2] == 0.0 and math.isnan(ignoring[2]) and counting[2] == 0.0  # false alarm: 0 here, NaN in MONAI
    assert math.isnan(dice[3]) and math.isnan(ignoring[3]) and counting[3] == 1.0  # in neither: NaN, or 1


def test_surface_scores_per_case_and_summary():
    target = np.zeros((2, 9, 9), dtype=np.int64)
    target[:, 2:6, 2:6] = 1
    prediction = target.copy()
    prediction[1] = np.roll(target[1], 1, axis=0)
    scores = surface_scores(list(prediction), list(target), 2, spacing=[(1.0, 1.0), (2.0, 1.0)])
    assert scores["hd95"].shape == scores["nsd"].shape == (2, 2)
    assert scores["hd95"][:, 1].tolist() == [0.0, pytest.approx(2.0)]  # case 2: one row of 2 mm
    np.testing.assert_allclose(scores["nsd"][1], nsd_per_class(prediction[1], target[1], 2, spacing=(2.0, 1.0)))
    assert summarise_scores(scores["hd95"], ("background", "hippocampus"))["hippocampus"][0] == pytest.approx(1.0)


def test_surface_metrics_explain_bad_input():
    labels = np.zeros((4, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="slice by slice"):
        hd95_per_class(np.zeros((2, 2, 4, 4), dtype=np.int64), np.zeros((2, 2, 4, 4), dtype=np.int64), 2)
    with pytest.raises(ValueError, match="spacing must be"):
        hd95_per_class(labels, labels, 2, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing must be"):
        nsd_per_class(labels, labels, 2, spacing=(1.0, -1.0))
    with pytest.raises(ValueError, match="tolerance_mm"):
        nsd_per_class(labels, labels, 2, tolerance_mm=float("inf"))
    with pytest.raises(ValueError, match="same shape"):
        surface_distances(labels, np.zeros((4, 5)))


@pytest.mark.parametrize("case", ["001", "003"])
def test_hd95_and_nsd_match_monai_on_msd_hippocampus(mirror, case):
    """Real MSD Task04 labels (1 mm voxels, spacing from the NIfTI header) against a perturbed copy: the anterior
    mask moved one voxel diagonally, the posterior one eroded by one voxel and moved two voxels along the last axis."""
    import nibabel as nib
    from scipy import ndimage

    path = mirror / "Task04_Hippocampus" / "labelsTr" / f"hippocampus_{case}.nii.gz"
    if not path.is_file():
        pytest.skip(f"the mirror has no MSD Task04 case {case} at {path}")
    volume = nib.load(path)
    spacing = tuple(float(z) for z in volume.header.get_zooms())
    target = np.asarray(volume.dataobj).astype(np.int64)  # (D, H, W) labels 0/1/2
    prediction = np.zeros_like(target)
    prediction[np.roll(target == 1, (1, 1), axis=(0, 1))] = 1
    posterior = np.roll(ndimage.binary_erosion(target == 2), 2, axis=2)
    prediction[posterior & (prediction == 0)] = 2
    reference_hd95, reference_nsd = monai_surface(prediction, target, 3, spacing, 1.0, include_background=False)
    hd95 = hd95_per_class(prediction, target, 3, spacing=spacing).numpy()
    nsd = nsd_per_class(prediction, target, 3, spacing=spacing).numpy()
    assert np.all(hd95[1:] >= 1.0) and np.all(nsd[1:] < 1.0)  # the perturbation is seen
    np.testing.assert_allclose(hd95[1:], reference_hd95[1:], rtol=1e-5)
    np.testing.assert_allclose(nsd[1:], reference_nsd[1:], rtol=1e-6)
