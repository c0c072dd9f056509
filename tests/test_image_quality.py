"""PSNR, SSIM and the feature distance, checked against scikit-image and torchmetrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from course_utils.metrics.image_quality import feature_distance, gradient_ratio, psnr, ssim, summarise
from course_utils.models.domain_classifier import DomainClassifier
from course_utils.models.perceptual import DomainFeatureMaps


def _pair(seed=0, shape=(4, 1, 40, 48), noise=0.08):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=g, dtype=torch.float64)
    target = torch.nn.functional.avg_pool2d(target, 3, stride=1, padding=1)  # some structure
    output = (target + noise * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return output, target


def test_psnr_matches_skimage_and_torchmetrics():
    output, target = _pair()
    ours = psnr(output, target)
    reference = [peak_signal_noise_ratio(target[i, 0].numpy(), output[i, 0].numpy(), data_range=1.0) for i in range(4)]
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-10)
    torchmetrics_value = tm_psnr(output[1:2], target[1:2], data_range=1.0)
    assert math.isclose(float(ours[1]), float(torchmetrics_value), rel_tol=1e-6)


def test_psnr_by_hand():
    target = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    output = target + 0.1  # MSE 0.01 → 20 dB
    assert math.isclose(float(psnr(output, target)[0]), 20.0, rel_tol=1e-12)
    assert math.isinf(float(psnr(target, target)[0]))


@pytest.mark.parametrize("noise", [0.02, 0.2])
def test_ssim_matches_skimage_exactly_and_torchmetrics_closely(noise):
    output, target = _pair(seed=1, noise=noise)
    ours = ssim(output, target)
    reference = [structural_similarity(target[i, 0].numpy(), output[i, 0].numpy(), data_range=1.0, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False) for i in range(4)]
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-9)
    if noise < 0.1:  # torchmetrics treats the border (reflected windows) differently: close, not equal
        other = tm_ssim(output.float(), target.float(), data_range=1.0, reduction="none")
        np.testing.assert_allclose(ours.numpy(), other.double().numpy(), atol=5e-3)
    assert torch.allclose(ssim(target, target), torch.ones(4, dtype=torch.float64))


def test_metrics_refuse_other_ranges():
    output, target = _pair()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        psnr(output * 255, target * 255)
    with pytest.raises(ValueError, match="same shape"):
        ssim(output, target[:, :, :32])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(output[..., :8, :8], target[..., :8, :8])


def test_feature_distance_is_zero_for_identical_and_grows_with_damage():
    torch.manual_seed(0)
    network = DomainFeatureMaps(DomainClassifier(width=4, feature_dim=8))
    output, target = _pair(shape=(3, 1, 32, 32), noise=0.05)
    damaged, _ = _pair(shape=(3, 1, 32, 32), noise=0.3)
    same = feature_distance(network, target, target)
    assert same.shape == (3,) and torch.allclose(same, torch.zeros(3, dtype=torch.float64), atol=1e-9)
    near, far = feature_distance(network, output, target), feature_distance(network, damaged, target)
    assert (near > 0).all() and (far > near).all()
    np.testing.assert_allclose(feature_distance(network, output, target, batch_size=1).numpy(), near.numpy(), rtol=1e-5)


def test_summarise():
    mean, sem = summarise(torch.tensor([1.0, 2.0, 3.0]))
    assert mean == 2.0 and math.isclose(sem, 1.0 / math.sqrt(3))


def test_gradient_ratio_sees_blur():
    _, target = _pair(shape=(2, 1, 32, 32))
    blurred = torch.nn.functional.avg_pool2d(target, 3, stride=1, padding=1)
    assert torch.allclose(gradient_ratio(target, target), torch.ones(2, dtype=torch.float64))
    assert (gradient_ratio(blurred, target) < 0.8).all()


def test_lesion_pattern_and_its_contrast():
    from course_utils.metrics.image_quality import add_disc_lesion, disc_mask, lesion_contrast

    background = torch.full((2, 1, 32, 32), 0.4, dtype=torch.float64)
    assert int(disc_mask(32, 32, (16, 16), 3).sum()) == 29  # lattice points within radius 3
    with_lesion = add_disc_lesion(background, (16, 16), 3, 0.2)
    torch.testing.assert_close(lesion_contrast(with_lesion, (16, 16), 3), torch.full((2,), 0.2, dtype=torch.float64))
    torch.testing.assert_close(lesion_contrast(background, (16, 16), 3), torch.zeros(2, dtype=torch.float64))
    blurred = torch.nn.functional.avg_pool2d(with_lesion, 5, stride=1, padding=2, count_include_pad=False)
    assert 0 < float(lesion_contrast(blurred, (16, 16), 3)[0]) < 0.2, "blur lowers the contrast of a small lesion"
