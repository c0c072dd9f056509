"""Mask encodings for the (image, mask) critic of notebook 07: what each one feeds the critic, and the shortcut."""

from __future__ import annotations

import pytest
import torch

from course_utils.metrics.two_sample import two_sample_accuracy
from course_utils.models.critics import PatchGANCritic
from course_utils.models.unet import UNet
from course_utils.training import run_one_step
from course_utils.training.loop import TrainConfig
from course_utils.training.mask_encoding import (
    MASK_ENCODINGS,
    encode_prediction,
    encode_truth,
    one_hot_masks,
    shape_matched_logits,
)
from course_utils.training.steps import SegmentationSteps


def _labels_and_logits(seed: int = 0, n: int = 4, size: int = 8, classes: int = 3):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n, 1, size, size), generator=generator)
    logits = torch.randn(n, classes, size, size, generator=generator) * 2
    return labels, logits


def test_scaling_matches_luc_et_al_by_hand():
    labels = torch.tensor([[[[0, 1]]]])  # (1, 1, 1, 2): pixel 0 is class 0, pixel 1 is class 1
    probabilities = torch.tensor([[0.5, 0.05], [0.3, 0.95], [0.2, 0.0]])  # (K=3, 2 pixels), columns sum to 1
    logits = probabilities.clamp(min=1e-30).log()[None, :, None, :]  # (1, 3, 1, 2)
    truth = encode_truth(labels, logits, "scaling")[0, :, 0]  # (3, 2)
    # pixel 0: s_true = 0.5 < 0.9 -> true class 0.9; the rest 0.1 shared 0.3 : 0.2 -> 0.06, 0.04
    assert torch.allclose(truth[:, 0], torch.tensor([0.9, 0.06, 0.04]), atol=1e-6)
    # pixel 1: s_true = 0.95 >= 0.9 -> kept; the rest 0.05 shared 0.05 : 0.0 -> 0.05, 0
    assert torch.allclose(truth[:, 1], torch.tensor([0.05, 0.95, 0.0]), atol=1e-6)


@pytest.mark.parametrize("encoding", MASK_ENCODINGS)
def test_every_encoding_gives_probability_maps(encoding):
    labels, logits = _labels_and_logits()
    truth, prediction = encode_truth(labels, logits, encoding), encode_prediction(logits, encoding)
    for masks in (truth, prediction):
        assert masks.shape == logits.shape and masks.min() >= -1e-6 and masks.max() <= 1 + 1e-6
        assert torch.allclose(masks.sum(dim=1), torch.ones(4, 8, 8), atol=1e-5)
    assert torch.equal(truth.argmax(dim=1), labels[:, 0]), "the truth's class must stay the most likely"


def test_straight_through_is_one_hot_forward_and_softmax_backward():
    _, logits = _labels_and_logits(1)
    logits.requires_grad_(True)
    hard = encode_prediction(logits, "straight_through")
    assert torch.allclose(hard.detach(), one_hot_masks(logits.argmax(dim=1, keepdim=True), 3), atol=1e-6)
    weights = torch.randn_like(hard)
    (hard * weights).sum().backward()
    reference = logits.detach().clone().requires_grad_(True)
    (reference.softmax(dim=1) * weights).sum().backward()
    assert torch.allclose(logits.grad, reference.grad)


def test_unknown_encoding_and_bad_labels_are_refused():
    labels, logits = _labels_and_logits()
    with pytest.raises(ValueError, match="mask encoding must be one of"):
        encode_prediction(logits, "argmax")
    with pytest.raises(ValueError, match="mask encoding must be one of"):
        SegmentationSteps(3, 0.1, mask_encoding="hard")
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        one_hot_masks(labels[:, 0, 0], 3)


def test_shape_matched_logits_keep_the_confidences_and_take_the_experts_shape():
    labels, logits = _labels_and_logits(2)
    matched = shape_matched_logits(labels, logits)
    assert torch.equal(matched.argmax(dim=1), labels[:, 0])
    assert torch.equal(matched.sort(dim=1).values, logits.sort(dim=1).values), "the same values, swapped"


def test_the_shortcut_is_open_with_softmax_closed_by_straight_through_and_scaling_needs_confidence():
    # a pixelwise (shape-free) classifier averaged over each map, on truth vs a prediction with the truth's
    # shape, from an unsure segmenter: one-hot truth vs softmax is recognised; Luc et al.'s scaling is too,
    # because the truth's class is always >= 0.9 while an unsure softmax often is not; straight-through is not
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (400, 1, 6, 6), generator=generator)
    logits = shape_matched_logits(labels, torch.randn(400, 3, 6, 6, generator=generator))
    accuracy = {}
    for encoding in MASK_ENCODINGS:
        truth, prediction = encode_truth(labels, logits, encoding), encode_prediction(logits, encoding)
        accuracy[encoding] = two_sample_accuracy(truth[:200], prediction[:200], truth[200:], prediction[200:],
                                                 steps=300, width=16, architecture="pixelwise").accuracy
    assert accuracy["softmax"] > 0.95 and accuracy["scaling"] > 0.95, accuracy
    assert accuracy["straight_through"] == 0.5, accuracy


def test_segmentation_steps_feed_the_critic_the_encoded_masks():
    torch.manual_seed(0)
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    masks = torch.randint(0, 3, (4, 1, 16, 16), dtype=torch.uint8)
    seen = []
    critic = PatchGANCritic(4, width=4, layers=2)
    critic.register_forward_pre_hook(lambda module, args: seen.append(args[0][:, 1:].detach().clone()))
    segmenter = UNet(1, 3, width=4, depth=2)
    config = TrainConfig(num_epochs=1, batch_size=4, amp="off", channels_last=False)
    run_one_step(segmenter, critic, (images, masks), config, SegmentationSteps(3, 0.1, mask_encoding="scaling"))
    real, fake = (seen[0] + 1) / 2, (seen[1] + 1) / 2  # the d-step's real and fake masks, back in [0, 1]
    assert real.max(dim=1).values.min() >= 0.9 - 1e-6 and real.max(dim=1).values.max() <= 1
    assert not torch.equal(real, one_hot_masks(masks, 3)), "scaling softens the truth"
    assert torch.allclose(fake.sum(dim=1), torch.ones(4, 16, 16), atol=1e-5)
    assert SegmentationSteps(3, 0.1, mask_encoding="scaling").settings()["mask_encoding"] == "scaling"
