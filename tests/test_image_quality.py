"""PSNR, SSIM and the feature distance, checked against scikit-image and torchmetrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from course_utils.metrics.image_quality import (
    cluster_bootstrap,
    feature_distance,
    gradient_ratio,
    psnr,
    ssim,
    summarise,
)
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


def _disc_masks(shape=(4, 1, 40, 48)) -> torch.Tensor:
    rows, columns = torch.meshgrid(torch.arange(shape[-2]), torch.arange(shape[-1]), indexing="ij")
    radii = torch.tensor([10.0, 12.0, 14.0, 16.0])[:, None, None, None]
    return ((rows - 20) ** 2 + (columns - 24) ** 2)[None, None] <= radii**2  # (4, 1, 40, 48)


def test_masked_psnr_and_ssim_match_skimage_on_the_masked_region():
    output, target = _pair()
    mask = _disc_masks()
    ours_psnr, ours_ssim = psnr(output, target, mask), ssim(output, target, mask)
    for i in range(4):
        inside = mask[i, 0].numpy()
        reference = peak_signal_noise_ratio(target[i, 0].numpy()[inside], output[i, 0].numpy()[inside], data_range=1.0)
        assert math.isclose(float(ours_psnr[i]), reference, rel_tol=1e-10)
        _, full = structural_similarity(target[i, 0].numpy(), output[i, 0].numpy(), data_range=1.0, full=True,
                                        gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        centred = np.zeros_like(inside)
        centred[5:-5, 5:-5] = True  # skimage's map holds border windows too; ours keeps the full windows
        assert math.isclose(float(ours_ssim[i]), float(full[inside & centred].mean()), rel_tol=1e-9)
    everywhere = torch.ones_like(mask)
    torch.testing.assert_close(psnr(output, target, everywhere), psnr(output, target))
    torch.testing.assert_close(ssim(output, target, everywhere), ssim(output, target))
    torch.testing.assert_close(gradient_ratio(output, target, everywhere), gradient_ratio(output, target))


def test_black_padding_flatters_whole_image_scores_but_not_masked_ones():
    output, target = _pair()
    pad = (24, 24, 20, 20)  # the same images inside a black frame, three times their area
    padded_output, padded_target = (torch.nn.functional.pad(x, pad) for x in (output, target))
    interior = torch.nn.functional.pad(torch.ones_like(target, dtype=torch.bool), pad)
    assert (psnr(padded_output, padded_target) > psnr(output, target) + 4).all()  # about +6 dB for 4x the pixels
    torch.testing.assert_close(psnr(padded_output, padded_target, interior), psnr(output, target))
    assert (ssim(padded_output, padded_target) > ssim(output, target)).all()


def test_masks_are_checked():
    output, target = _pair()
    with pytest.raises(ValueError, match="mask must be a tensor"):
        psnr(output, target, torch.ones(4, 1, 40, 40, dtype=torch.bool))
    empty = _disc_masks()
    empty[2] = False
    with pytest.raises(ValueError, match=r"empty for image\(s\) \[2\]"):
        psnr(output, target, empty)
    edge_only = torch.zeros(4, 1, 40, 48, dtype=torch.bool)
    edge_only[..., 0, :] = True
    with pytest.raises(ValueError, match="no SSIM window"):
        ssim(output, target, edge_only)


def test_cluster_bootstrap_resamples_subjects_not_images():
    generator = torch.Generator().manual_seed(0)
    subject_effect = torch.randn(200, generator=generator, dtype=torch.float64)  # 200 subjects
    clusters = torch.arange(200).repeat_interleave(5)  # 5 slices each
    values = subject_effect[clusters] + 0.1 * torch.randn(1000, generator=generator, dtype=torch.float64)
    estimate, lower, upper = cluster_bootstrap(values, clusters, resamples=4000, seed=1)
    per_subject = values.view(200, 5).mean(dim=1)
    assert math.isclose(estimate, float(per_subject.mean()), rel_tol=1e-12)
    normal_half_width = 1.96 * float(per_subject.std()) / math.sqrt(200)
    assert abs((upper - lower) / 2 - normal_half_width) < 0.1 * normal_half_width
    per_slice_half_width = 1.96 * summarise(values)[1]  # slices as if independent: far too narrow
    assert per_slice_half_width < 0.5 * normal_half_width
    doubled = cluster_bootstrap(values.repeat(2), clusters.repeat(2), resamples=4000, seed=1)
    assert doubled == pytest.approx((estimate, lower, upper)), "more slices of the same subjects add no information"
    with pytest.raises(ValueError, match="at least 2 clusters"):
        cluster_bootstrap(values, torch.zeros(1000))
    with pytest.raises(ValueError, match="one entry per image"):
        cluster_bootstrap(values, clusters[:10])
