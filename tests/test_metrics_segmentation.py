"""Dice and IoU agree with scikit-learn and a plain NumPy reference; empty classes and bad input behave."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score

from course_utils.metrics.segmentation import (
    case_scores,
    dice_per_class,
    iou_per_class,
    overlap_counts,
    summarise_scores,
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
