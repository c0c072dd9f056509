"""Degradations: exact low/high-resolution pairing, and noise whose statistics match their parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from skimage.transform import downscale_local_mean

from course_utils.data.degradations import (
    add_gaussian_noise,
    add_poisson_noise,
    add_rician_noise,
    degrade,
    downsample,
    kspace_downsample,
    rician_mean,
    rician_variance,
    upsample_bicubic,
    zero_fill_upsample,
)


def _images(shape=(3, 1, 32, 48), seed=0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("factor", [2, 4])
def test_area_downsampling_is_the_block_mean(factor):
    hr = _images()
    lr = downsample(hr, factor)
    assert lr.shape == (3, 1, 32 // factor, 48 // factor)
    reference = downscale_local_mean(hr.numpy(), (1, 1, factor, factor))
    np.testing.assert_allclose(lr.numpy(), reference, atol=1e-12)
    assert lr.min() >= hr.min() and lr.max() <= hr.max(), "a block mean stays in the range"


def test_bicubic_downsampling_is_antialiased():
    # a checkerboard at the highest frequency must average away, not alias into a pattern
    board = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2
    hr = board.double()[None, None]
    for method in ("area", "bicubic"):
        lr = downsample(hr, 4, method)
        assert lr.shape == (1, 1, 8, 8)
        assert float(lr.std()) < 0.02 and abs(float(lr.mean()) - 0.5) < 0.02, method


def _numpy_kspace_crop(image: np.ndarray, factor: int) -> np.ndarray:
    # an independent version with numpy: centre block of the shifted spectrum, magnitude of its inverse
    height, width = image.shape
    spectrum = np.fft.fftshift(np.fft.fft2(image))
    h, w = height // factor, width // factor
    top, left = height // 2 - h // 2, width // 2 - w // 2
    low = np.fft.ifft2(np.fft.ifftshift(spectrum[top:top + h, left:left + w])) * (h * w) / (height * width)
    return np.clip(np.abs(low), 0, 1)


@pytest.mark.parametrize("factor", [2, 4])
def test_kspace_downsampling_matches_numpy_and_keeps_the_mean(factor):
    hr = _images()
    lr = downsample(hr, factor, method="kspace")
    assert lr.shape == (3, 1, 32 // factor, 48 // factor) and lr.dtype == hr.dtype
    for i in range(3):
        np.testing.assert_allclose(lr[i, 0].numpy(), _numpy_kspace_crop(hr[i, 0].numpy(), factor), atol=1e-12)
    flat = torch.full((1, 1, 32, 32), 0.4, dtype=torch.float64)
    torch.testing.assert_close(kspace_downsample(flat, factor), torch.full((1, 1, 32 // factor, 32 // factor), 0.4,
                                                                          dtype=torch.float64))


def test_zero_fill_recovers_a_band_limited_image():
    # a positive image made only of frequencies inside the kept block survives truncation + zero filling exactly
    rows, columns = torch.meshgrid(*(torch.arange(64, dtype=torch.float64),) * 2, indexing="ij")
    image = 0.5 + 0.2 * torch.cos(2 * math.pi * 3 * rows / 64) + 0.1 * torch.sin(2 * math.pi * 5 * columns / 64)
    hr = image.double()[None, None]
    recovered = zero_fill_upsample(kspace_downsample(hr, 4), 4)
    torch.testing.assert_close(recovered, hr, atol=1e-10, rtol=0)
    assert float((upsample_bicubic(downsample(hr, 4), 4) - hr).abs().max()) > 0.01, "the box average loses it"


def test_kspace_truncation_rings_at_an_edge_and_the_box_average_does_not():
    # Gibbs: a sharp step seen through a sinc PSF overshoots by about 9 % of the step height
    hr = torch.full((1, 1, 64, 64), 0.2, dtype=torch.float64)
    hr[..., :, 16:48] = 0.6
    ringing = zero_fill_upsample(kspace_downsample(hr, 4), 4)
    overshoot = (float(ringing.max()) - 0.6) / 0.4
    assert 0.05 < overshoot < 0.15, overshoot
    box = downsample(hr, 4)
    assert float(box.max()) <= 0.6 + 1e-12 and float(box.min()) >= 0.2 - 1e-12


def test_upsample_shapes_and_range():
    lr = _images((2, 1, 16, 16))
    up = upsample_bicubic(lr, 4)
    assert up.shape == (2, 1, 64, 64) and float(up.min()) >= 0 and float(up.max()) <= 1
    flat = torch.full((1, 1, 8, 8), 0.3, dtype=torch.float64)
    torch.testing.assert_close(upsample_bicubic(flat, 2), torch.full((1, 1, 16, 16), 0.3, dtype=torch.float64))


def test_downsample_errors_are_explained():
    with pytest.raises(ValueError, match="divisible by factor=4"):
        downsample(torch.rand(1, 1, 30, 32), 4)
    with pytest.raises(ValueError, match="factor must be an integer >= 2"):
        downsample(torch.rand(1, 1, 32, 32), 1)
    with pytest.raises(TypeError, match="float tensor"):
        downsample(torch.zeros(1, 1, 32, 32, dtype=torch.uint8), 2)
    with pytest.raises(ValueError, match="method must be one of"):
        downsample(torch.rand(1, 1, 32, 32), 2, method="nearest")


def test_gaussian_noise_has_its_sigma():
    clean = torch.full((1, 1, 400, 400), 0.5, dtype=torch.float64)
    noisy = add_gaussian_noise(clean, 0.1, torch.Generator().manual_seed(1))
    residual = (noisy - clean).flatten().numpy()
    assert abs(residual.mean()) < 0.002 and abs(residual.std() - 0.1) < 0.002
    assert stats.kstest(residual / 0.1, "norm").pvalue > 1e-3


@pytest.mark.parametrize("signal", [0.0, 0.05, 0.2, 0.6])
def test_rician_noise_matches_the_analytic_moments_and_scipy(signal):
    sigma = 0.08
    clean = torch.full((1, 1, 500, 500), signal, dtype=torch.float64)
    noisy = add_rician_noise(clean, sigma, torch.Generator().manual_seed(2)).flatten().numpy()
    expected_mean, expected_var = float(rician_mean(signal, sigma)), float(rician_variance(signal, sigma))
    reference = stats.rice(signal / sigma, scale=sigma)  # scipy's Rice distribution, an independent formula
    assert math.isclose(expected_mean, reference.mean(), rel_tol=1e-9)
    assert math.isclose(expected_var, reference.var(), rel_tol=1e-9)
    standard_error = math.sqrt(expected_var / noisy.size)
    assert abs(noisy.mean() - expected_mean) < 5 * standard_error
    assert abs(noisy.var() / expected_var - 1) < 0.02
    if signal == 0.0:  # Rayleigh background: biased upwards by sigma * sqrt(pi / 2)
        assert math.isclose(expected_mean, sigma * math.sqrt(math.pi / 2), rel_tol=1e-12)


def test_rician_is_nearly_gaussian_at_high_snr():
    assert abs(float(rician_mean(0.9, 0.01)) - 0.9) < 1e-4
    assert abs(math.sqrt(float(rician_variance(0.9, 0.01))) - 0.01) < 1e-4


@pytest.mark.parametrize("dose", [20.0, 200.0])
def test_poisson_variance_equals_mean_at_the_dose(dose):
    level = 0.4
    clean = torch.full((1, 1, 400, 400), level, dtype=torch.float64)
    noisy = add_poisson_noise(clean, dose, torch.Generator().manual_seed(3))
    counts = (noisy * dose).flatten().numpy()
    assert np.allclose(counts, np.round(counts)), "photon counts are whole numbers"
    assert abs(counts.mean() / (dose * level) - 1) < 0.01
    assert abs(counts.var() / counts.mean() - 1) < 0.03, "Poisson: variance = mean"
    assert abs(float(noisy.var()) - level / dose) / (level / dose) < 0.03


def test_noise_is_reproducible_and_clipped():
    clean = _images()
    a = degrade(clean, "rician", 0.1, torch.Generator().manual_seed(5))
    b = degrade(clean, "rician", 0.1, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, degrade(clean, "rician", 0.1, torch.Generator().manual_seed(6)))


def test_noise_errors_are_explained():
    with pytest.raises(ValueError, match="sigma must be a positive number"):
        add_gaussian_noise(_images(), 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        add_rician_noise(_images() - 0.5, 0.1)
    with pytest.raises(ValueError, match="dose must be a positive number"):
        add_poisson_noise(_images(), -1)
    with pytest.raises(ValueError, match="model must be one of"):
        degrade(_images(), "speckle", 0.1)


def test_noise_sigma_estimate_is_close_on_an_image_with_structure():
    from course_utils.data.degradations import estimate_noise_sigma

    rows, columns = np.mgrid[0:128, 0:128]
    clean = 0.5 + 0.3 * np.sin(rows / 9.0) * np.cos(columns / 13.0)  # smooth anatomy-like structure
    noisy = clean + 0.05 * np.random.default_rng(0).standard_normal(clean.shape)
    estimate, method = estimate_noise_sigma(noisy)
    assert abs(estimate - 0.05) < 0.005, (estimate, method)
    with pytest.raises(ValueError, match="2-D"):
        estimate_noise_sigma(noisy[None])
