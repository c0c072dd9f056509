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
    # an independent version with numpy: shift by half a block (Fourier shift theorem, numpy's frequency order),
    # keep the central block of the spectrum, magnitude of its inverse
    height, width = image.shape
    shift = (factor - 1) / 2
    ky, kx = np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :]
    spectrum = np.fft.fft2(image) * np.exp(2j * np.pi * shift * (ky + kx))
    spectrum = np.fft.fftshift(spectrum)
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


def test_kspace_pixels_sit_on_the_box_average_grid():
    # a smooth image: every downsampling samples it at the block centres, and bicubic brings it back
    rows, columns = torch.meshgrid(*(torch.arange(64, dtype=torch.float64),) * 2, indexing="ij")
    hr = (0.5 + 0.2 * torch.cos(2 * math.pi * 3 * rows / 64 + 0.4) * torch.cos(2 * math.pi * 2 * columns / 64))[None, None]
    for method in ("kspace", "bicubic"):
        lr = downsample(hr, 4, method)
        # the same grid: only the box's slight blur differs (a 1.5 px shift would differ by up to 0.085 here)
        assert float((lr - downsample(hr, 4, "area")).abs().max()) < 0.03, method
        assert float((upsample_bicubic(lr, 4) - hr).abs().max()) < 0.06, method


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


# ----------------------------------------------------- sigma from the background, Rician bias correction


def _head_phantom(count: int = 4, size: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images `(count, 1, size, size)`: a textured ellipse ('brain', intensities 0.3-0.9) on a black background."""
    rows, columns = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                                   indexing="ij")
    region = ((rows - size / 2) / (0.36 * size)) ** 2 + ((columns - size / 2) / (0.3 * size)) ** 2 <= 1
    texture = torch.rand((count, 1, size // 8, size // 8), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.float64)
    texture = torch.nn.functional.interpolate(texture, size=(size, size), mode="bilinear", align_corners=False)
    region = region[None, None].expand(count, 1, size, size)
    return torch.where(region, 0.3 + 0.6 * texture, torch.zeros_like(texture)), region


@pytest.mark.parametrize("method", ["median", "second_moment"])
@pytest.mark.parametrize("sigma", [0.03, 0.06, 0.1])
def test_background_sigma_is_recovered_where_the_wavelet_estimate_is_biased_low(method, sigma):
    from course_utils.data.degradations import estimate_noise_sigma, estimate_rician_sigma_background

    clean, region = _head_phantom()
    noisy = add_rician_noise(clean, sigma, torch.Generator().manual_seed(7))
    estimates = estimate_rician_sigma_background(noisy, region, margin=4, method=method)
    assert estimates.shape == (4,)
    assert torch.all((estimates / sigma - 1).abs() < 0.03), estimates  # within 3 % on every image
    wavelet = np.mean([estimate_noise_sigma(image)[0] for image in noisy[:, 0].numpy()])
    assert wavelet < 0.9 * sigma, f"the wavelet estimate should be pulled low by the Rayleigh background: {wavelet}"


def test_background_sigma_ignores_the_region_and_explains_errors():
    from course_utils.data.degradations import background_mask, estimate_rician_sigma_background

    clean, region = _head_phantom(count=1)
    noisy = add_rician_noise(clean, 0.05, torch.Generator().manual_seed(8))
    bright = noisy.clone()
    bright[region] = 1.0  # whatever the anatomy does, only the background counts
    torch.testing.assert_close(estimate_rician_sigma_background(bright, region),
                               estimate_rician_sigma_background(noisy, region))
    grown = ~background_mask(region, 3)
    assert bool(grown[region].all()) and int(grown.sum()) > int(region.sum()), "the margin grows the region"
    with pytest.raises(ValueError, match="background pixels"):
        estimate_rician_sigma_background(noisy, torch.ones_like(region))
    with pytest.raises(ValueError, match="method must be"):
        estimate_rician_sigma_background(noisy, region, method="mode")


@pytest.mark.parametrize("signal", [0.0, 0.05, 0.3, 0.8])
def test_rician_bias_correction_of_the_mean_square_is_exact_in_expectation(signal):
    from course_utils.data.degradations import rician_bias_correction

    sigma = 0.06
    clean = torch.full((1, 1, 1000, 1000), signal, dtype=torch.float64)
    noisy = add_rician_noise(clean, sigma, torch.Generator().manual_seed(9))
    mean_square = noisy.square().mean().reshape(1, 1, 1, 1)  # a smoother that averages a million pixels
    corrected = float(rician_bias_correction(mean_square, sigma))
    # at 0 the result is the square root of a fluctuation: allow 3 standard errors of the mean square, 2 sigma^2 / 1000
    tolerance = 2e-3 if signal else math.sqrt(3 * 2 * sigma**2 / 1000)
    assert abs(corrected - signal) < tolerance, corrected
    if signal <= 0.05:  # without the correction the magnitude is biased far upwards at low signal
        assert float(noisy.mean()) - signal > 0.02
    per_image = rician_bias_correction(mean_square.expand(2, 1, 1, 1), torch.tensor([sigma, 2 * sigma]))
    assert float(per_image[1]) < float(per_image[0]) or signal == 0.0, "one sigma per image is broadcast"


def test_rician_bias_correction_of_few_pixel_averages_has_the_stated_bias():
    from course_utils.data.degradations import rician_bias_correction

    sigma, pixels = 0.06, 4  # a smoother that averages only 4 pixels
    for signal, sign in ((0.0, +1), (0.1, -1)):
        clean = torch.full((1, 1, 400, 400 * pixels), signal, dtype=torch.float64)
        noisy = add_rician_noise(clean, sigma, torch.Generator().manual_seed(10))
        mean_square = noisy.square().reshape(1, 1, 400 * 400, pixels).mean(dim=-1, keepdim=True)
        bias = float(rician_bias_correction(mean_square, sigma).mean()) - signal
        assert sign * bias > 2e-3, (signal, bias)  # above the truth at 0 (the max), below it where x > sigma


# ------------------------------------------------------------------- Beer-Lambert low-dose X-ray


@pytest.mark.parametrize("brightness", [0.1, 0.5, 0.9])
def test_beer_lambert_counts_are_poisson_with_the_attenuated_mean(brightness):
    from course_utils.data.degradations import beer_lambert_counts

    photons, mu_max = 500.0, 3.0
    clean = torch.full((1, 1, 400, 400), brightness, dtype=torch.float64)
    counts = beer_lambert_counts(clean, photons, mu_max, torch.Generator().manual_seed(11)).flatten().numpy()
    expected = photons * math.exp(-mu_max * brightness)  # Beer-Lambert: I0 exp(-mu)
    assert np.allclose(counts, np.round(counts)), "photon counts are whole numbers"
    assert abs(counts.mean() / expected - 1) < 0.01
    assert abs(counts.var() / expected - 1) < 0.03, "Poisson: variance = mean"


def test_beer_lambert_noise_is_largest_in_dense_tissue_and_grows_as_the_dose_falls():
    from course_utils.data.degradations import add_beer_lambert_noise

    mu_max, photons = 3.0, 2000.0
    clean = torch.cat([torch.full((1, 1, 300, 300), value, dtype=torch.float64) for value in (0.1, 0.9)])

    def spread(i0: float, seed: int) -> torch.Tensor:
        shown = add_beer_lambert_noise(clean, i0, mu_max, torch.Generator().manual_seed(seed))
        return shown.flatten(1).std(dim=1)  # (2,): noise at brightness 0.1 and 0.9

    full, half = spread(photons, 12), spread(photons / 2, 13)
    ratio = float(full[1] / full[0])
    assert ratio > 2, "bright = dense = few photons = more noise"
    assert abs(ratio / math.exp(mu_max * 0.8 / 2) - 1) < 0.1, ratio  # delta method: sd ~ exp(mu / 2)
    assert torch.all(((half / full) / math.sqrt(2) - 1).abs() < 0.03), half / full  # half the dose: sqrt(2)
    predicted = 1 / (mu_max * torch.sqrt(photons * torch.exp(-mu_max * torch.tensor([0.1, 0.9]))))
    assert torch.all((full / predicted - 1).abs() < 0.05), (full, predicted)
    shown = add_beer_lambert_noise(clean, photons, mu_max, torch.Generator().manual_seed(14))
    assert torch.allclose(shown.flatten(1).mean(dim=1), torch.tensor([0.1, 0.9], dtype=torch.float64), atol=5e-3)


def test_beer_lambert_guards_zero_counts_and_explains_errors():
    from course_utils.data.degradations import add_beer_lambert_noise, beer_lambert_display

    dark = torch.ones((1, 1, 64, 64), dtype=torch.float64)  # mu = 6 with 10 photons: mostly k = 0
    shown = add_beer_lambert_noise(dark, 10.0, 6.0, torch.Generator().manual_seed(15))
    assert torch.isfinite(shown).all()
    assert float(shown.max()) == pytest.approx(math.log(10.0) / 6.0), "k = 0 is read as one photon"
    torch.testing.assert_close(beer_lambert_display(torch.tensor([100.0]), 100.0, 2.0), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="photons must be a positive number"):
        add_beer_lambert_noise(dark, 0.0)
    with pytest.raises(ValueError, match="negative values"):
        add_beer_lambert_noise(dark - 2, 100.0)
