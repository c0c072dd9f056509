"""The classifier two-sample test: about 0.5 on two samples of one distribution, near 1 when they differ."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.metrics.two_sample import pixelwise_classifier, two_sample_accuracy


def _textures(count: int, seed: int) -> torch.Tensor:
    # random smooth textures in [0, 1], (N, 1, 16, 16)
    noise = torch.rand(count, 1, 16, 16, generator=torch.Generator().manual_seed(seed))
    return F.avg_pool2d(noise, 3, stride=1, padding=1)


def test_two_samples_of_one_distribution_cannot_be_told_apart():
    images = _textures(800, seed=0)
    result = two_sample_accuracy(images[:200], images[200:400], images[400:600], images[600:], steps=60, width=8, seed=0)
    assert result.correct.shape == (400,) and result.correct.dtype == torch.bool
    assert abs(result.accuracy - 0.5) < 0.1, result.accuracy  # chance, within about 2.8 binomial s.d. (0.035)


def test_blurred_images_are_recognised():
    real = _textures(600, seed=1)
    blurred = F.avg_pool2d(real, 5, stride=1, padding=2)  # the same images, smoother: what a pixel loss produces
    result = two_sample_accuracy(real[:200], blurred[200:400], real[400:500], blurred[500:], steps=60, width=8, seed=0)
    assert result.accuracy > 0.9 and result.train_accuracy > 0.9, result


def test_the_same_seed_gives_the_same_answer_and_inputs_are_checked():
    real, fake = _textures(40, seed=2), _textures(40, seed=3)
    first = two_sample_accuracy(real[:20], fake[:20], real[20:], fake[20:], steps=5, seed=4)
    second = two_sample_accuracy(real[:20], fake[:20], real[20:], fake[20:], steps=5, seed=4)
    assert torch.equal(first.correct, second.correct)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        two_sample_accuracy(real * 2 - 1, fake, real, fake, steps=1)
    with pytest.raises(ValueError, match="one image shape"):
        two_sample_accuracy(real, fake[..., :8, :8], real, fake, steps=1)


def test_the_pixelwise_classifier_sees_values_but_not_arrangements():
    real = _textures(600, seed=5)
    shuffled = real.flatten(1)[:, torch.randperm(256, generator=torch.Generator().manual_seed(0))].view_as(real)
    blind = two_sample_accuracy(real[:200], shuffled[200:400], real[400:500], shuffled[500:], steps=60, width=8,
                                architecture="pixelwise")
    seeing = two_sample_accuracy(real[:200], shuffled[200:400], real[400:500], shuffled[500:], steps=60, width=8)
    assert abs(blind.accuracy - 0.5) < 0.1 and seeing.accuracy > 0.9, (blind.accuracy, seeing.accuracy)
    with pytest.raises(ValueError, match="architecture must be one of"):
        two_sample_accuracy(real[:4], real[:4], real[:4], real[:4], steps=1, architecture="mlp")


def test_the_pixelwise_classifier_is_a_stack_of_1x1_convolutions():
    # the same network as 1 x 1 convolutions and a mean over pixels; the same initial weights for a seed
    torch.manual_seed(3)
    model = pixelwise_classifier(width=8, channels=3)
    torch.manual_seed(3)
    reference = nn.Sequential(
        nn.Conv2d(3, 8, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 8, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(0),
    )
    for linear, conv in zip(model.per_pixel[::2], reference[:5:2], strict=True):
        assert torch.equal(linear.weight, conv.weight.flatten(1)) and torch.equal(linear.bias, conv.bias)
    images = torch.rand(5, 3, 9, 7) * 2 - 1
    torch.testing.assert_close(model(images), reference(images))
    # shape-free: shuffling the pixels of an image changes nothing
    order = torch.randperm(63, generator=torch.Generator().manual_seed(1))
    shuffled = images.flatten(2)[:, :, order].view_as(images)
    torch.testing.assert_close(model(shuffled), model(images))
