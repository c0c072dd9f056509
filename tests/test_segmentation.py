"""Segmentation training pieces: Dice loss, subject split, whole-volume prediction, and the critic step in train_gan."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from course_utils.data.slicing import pad_to_square, rotate_up
from course_utils.data.splits import split_cases
from course_utils.inference import predict_volume
from course_utils.losses import dice_ce_loss, soft_dice_loss
from course_utils.metrics.segmentation import dice_per_class
from course_utils.models.critics import PatchGANCritic
from course_utils.models.unet import UNet
from course_utils.protocols.segmentation_task import load_segmentation_task
from course_utils.training import TrainConfig, train_gan
from course_utils.training.steps import SegmentationSteps


def test_soft_dice_loss_matches_hand_computation():
    target = torch.tensor([[[0, 1], [2, 2]]])  # (1, 2, 2)
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 40  # confident logits
    assert soft_dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.zeros(1, 3, 2, 2)  # every class probability 1/3
    # class 1: intersection 1/3, sizes 4/3 + 1 -> (2/3 + 1)/(7/3 + 1) = 0.5; class 2: (4/3 + 1)/(4/3 + 2 + 1) = 7/13
    expected = 1 - (0.5 + 7 / 13) / 2
    assert soft_dice_loss(uniform, target).item() == pytest.approx(expected, rel=1e-6)
    assert dice_ce_loss(uniform, target[:, None]).item() == pytest.approx(expected + np.log(3), rel=1e-6)


def test_soft_dice_loss_rejects_mismatched_target():
    with pytest.raises(ValueError, match="matching logits"):
        soft_dice_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, 5, dtype=torch.long))


def test_split_cases_is_disjoint_complete_and_seeded():
    cases = [f"case_{i:03d}" for i in range(50)]
    split = split_cases(cases, seed=3)
    sets = [set(split[name]) for name in ("train", "val", "test")]
    assert sum(len(s) for s in sets) == 50 and set().union(*sets) == set(cases)
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert (len(sets[0]), len(sets[1]), len(sets[2])) == (35, 5, 10)
    assert split == split_cases(cases, seed=3) and split != split_cases(cases, seed=4)
    with pytest.raises(ValueError, match="duplicates"):
        split_cases(["a", "a", "b"])


class ThresholdSegmenter(nn.Module):
    """Class 1 where the image is brighter than 0 *and* in the top half of the slice (a known, position-dependent answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(50.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top_half = (torch.arange(x.shape[-2]) < x.shape[-2] // 2).float()[:, None]  # (H, 1)
        return torch.cat([torch.zeros_like(x), self.scale * x * top_half], dim=1)  # (B, 2, H, W)


def expected_prediction(volume: np.ndarray, axis: int, side: int) -> np.ndarray:
    """What predict_volume must return, derived slice by slice the way hippocampus_slices builds slices."""
    planes = []
    for index in range(volume.shape[axis]):
        plane = rotate_up(np.take(volume, index, axis=axis))  # as in training
        padded = pad_to_square(torch.from_numpy(plane)[None, None], side)[0, 0].numpy()
        top, left = (side - plane.shape[0]) // 2, (side - plane.shape[1]) // 2
        rule = (padded.astype(float) / 127.5 - 1 > 0) & (np.arange(side) < side // 2)[:, None]
        planes.append(np.rot90(rule[top:top + plane.shape[0], left:left + plane.shape[1]], k=-1))
    return np.stack(planes, axis=axis).astype(np.uint8)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_predict_volume_lines_up_with_the_volume(axis):
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 256, size=(9, 13, 11), dtype=np.uint8)
    predicted = predict_volume(ThresholdSegmenter(), volume, side=16, axis=axis, batch_size=4)
    assert predicted.shape == volume.shape and predicted.dtype == np.uint8
    np.testing.assert_array_equal(predicted, expected_prediction(volume, axis, 16))


def test_predict_volume_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8 \\(D, H, W\\)"):
        predict_volume(ThresholdSegmenter(), np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="side >= 20"):
        predict_volume(ThresholdSegmenter(), np.zeros((3, 20, 5), dtype=np.uint8), side=16)


def _toy_data(n: int = 32, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright squares (class 1) and bright discs' centres (class 2) on a dark background, as uint8."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 60, (n, 1, size, size), generator=generator, dtype=torch.uint8)
    masks = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    for i in range(n):
        r, c = (int(v) for v in torch.randint(2, size - 8, (2,), generator=generator))
        masks[i, 0, r:r + 5, c:c + 5] = 1 + i % 2
        images[i, 0, r:r + 5, c:c + 5] = 150 + 80 * (i % 2)
    return images, masks


@pytest.mark.parametrize("adversarial_weight", [0.0, 0.1])
def test_segmentation_steps_train_and_learn(adversarial_weight):
    torch.manual_seed(0)
    images, masks = _toy_data()
    segmenter = UNet(1, 3, width=8, depth=2)
    critic = PatchGANCritic(in_channels=4, width=8, layers=2)
    critic_before = copy.deepcopy(critic.state_dict())
    config = TrainConfig(num_epochs=25, batch_size=8, lr_g=3e-3, lr_d=1e-3, betas=(0.5, 0.999),
                         snapshot_every=0, checkpoint_every=0, num_samples=4)
    steps = SegmentationSteps(num_classes=3, adversarial_weight=adversarial_weight)
    result = train_gan(segmenter, critic, (images, masks), config, steps=steps, progress=False,
                       fixed_noise=images[:4].float() / 127.5 - 1)
    assert ("loss_d" in result.history) == (adversarial_weight > 0)
    critic_changed = any(not torch.equal(v, critic.state_dict()[k]) for k, v in critic_before.items())
    assert critic_changed == (adversarial_weight > 0), "the supervised baseline never trains the critic"
    segmenter.eval()
    with torch.no_grad():
        predicted = segmenter(images.float() / 127.5 - 1).argmax(dim=1)
    dice = dice_per_class(predicted, masks[:, 0], 3)
    assert float(dice[1:].mean()) > 0.8
    assert result.latest_snapshot().shape == (4, 1, 16, 16)


def test_segmentation_steps_need_fixed_images():
    images, masks = _toy_data(8)
    with pytest.raises(ValueError, match="fixed_noise=images"):
        train_gan(UNet(1, 3, width=4, depth=2), PatchGANCritic(4, width=4, layers=2), (images, masks),
                  TrainConfig(num_epochs=1, batch_size=4, checkpoint_every=0), steps=SegmentationSteps(3),
                  progress=False)


def test_task_from_the_mirror_is_split_by_subject(mirror, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(mirror))
    task = load_segmentation_task(size=64, max_train_cases=3, max_eval_cases=2, seed=0)
    assert not task.is_fallback and task.class_names == ("background", "anterior", "posterior")
    assert len(set(task.train.groups.tolist())) == 3 and task.train.images.shape[1:] == (1, 64, 64)
    val, test = [name for name, _, _ in task.val_volumes], [name for name, _, _ in task.test_volumes]
    assert len(val) == len(test) == 2 and not set(val) & set(test)
    name, image, truth = task.test_volumes[0]
    predicted = task.predict(ThresholdSegmenter(), image)
    assert predicted.shape == truth.shape == image.shape


def test_task_falls_back_to_mni152_visibly(empty_data, capsys):
    task = load_segmentation_task(size=32, max_eval_cases=2, download=False)
    assert task.is_fallback and "FALLBACK" in task.description
    assert "hippocampus" in capsys.readouterr().out.lower(), "the missing data is announced"
    assert task.class_names[1:] == ("grey matter", "white matter")
    _, stack, truth = task.test_volumes[0]
    assert stack.shape[1:] == (32, 32) and truth.shape == stack.shape
    assert task.predict(ThresholdSegmenter(), stack).shape == truth.shape
