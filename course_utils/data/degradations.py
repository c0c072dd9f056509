"""Degradations that make paired training data: downsampling for super-resolution, noise models for denoising.

Introduced in notebooks 05 (`05_srgan_mri_super_resolution`: `downsample`, `upsample_bicubic`) and 06
(`06_denoising_gan`: `add_gaussian_noise`, `add_rician_noise`, `add_poisson_noise`, `add_beer_lambert_noise`,
`degrade`, `estimate_rician_sigma_background`, `rician_bias_correction`).

All functions take and return float images `(B, C, H, W)` in the metrics range [0, 1] (intensity 1 = the
brightest tissue of the slice), work on any device, and draw random numbers only from the `generator`
passed in, so a degraded test set is the same in every run.

**The low/high-resolution pairing is exact**: `downsample(hr, factor)` requires H and W divisible by
`factor` and returns `lr` of shape `(B, C, H / factor, W / factor)`.
- `method="area"` (default): every low-resolution pixel is the mean of the `factor x factor` block of
  high-resolution pixels it covers, `lr[i, j] = mean(hr[f*i : f*i + f, f*j : f*j + f])`. This is what a
  scanner that acquires larger voxels measures (each voxel integrates the signal over its volume), and the
  box average is itself an anti-aliasing filter. It equals `skimage.transform.downscale_local_mean`.
- `method="bicubic"`: bicubic resampling with anti-aliasing (PyTorch's `antialias=True`, the same filter
  as Pillow's `Image.resize(..., BICUBIC)`), the usual choice of the SRGAN literature.
- `method="kspace"`: **k-space truncation**, how an MRI scanner makes a low *in-plane* resolution. The
  scanner samples the image's 2-D Fourier transform (k-space) and a coarser matrix simply samples fewer
  frequencies: keep the central `H/factor x W/factor` block of the 2-D FFT, inverse-transform it, and take the
  magnitude (what a magnitude MRI shows). Its point-spread function is a sinc, so sharp edges ring (Gibbs
  ringing, an overshoot of about 9 % of the step). `zero_fill_upsample` is its inverse on the scanner's side:
  pad k-space with zeros back to the large matrix (sinc interpolation, a scanner's "zero-fill interpolation").
  The box average of `method="area"` instead models **thick slices** (through-plane resolution), where each
  voxel integrates the signal over its extent.
Without anti-aliasing, fine detail above the new Nyquist frequency would fold back as false patterns (aliasing).

**Noise models** (`sigma` and `dose` are in units of the [0, 1] intensity range):
- Gaussian: `y = x + sigma * n`, `n ~ N(0, 1)`; additive, signal-independent (a generic model; the
  thermal noise of an MRI receiver is Gaussian in the complex k-space data).
- Rician (magnitude MRI): the complex image has Gaussian noise of standard deviation `sigma` in the real
  and in the imaginary channel; the magnitude `y = sqrt((x + sigma n1)^2 + (sigma n2)^2)` is Rician
  distributed with mean `sigma sqrt(pi/2) L_{1/2}(-x^2 / (2 sigma^2))` and second moment `x^2 + 2 sigma^2`.
  Where there is no signal (x = 0, background) it is Rayleigh: mean `sigma sqrt(pi/2)` > 0, so the
  background is biased *upwards*; where x >> sigma it is nearly Gaussian with standard deviation sigma.
- Poisson counting of the *displayed* intensity (`add_poisson_noise`): `k ~ Poisson(dose * x)`, `y = k / dose`,
  mean `x`, variance `x / dose`. This is emission imaging (brightness = detected photons: nuclear medicine,
  fluorescence), **not** transmission X-ray, where bright means *few* photons.
- Beer–Lambert (low-dose X-ray and CT, `add_beer_lambert_noise`): a radiograph shows attenuation, so the
  displayed brightness `x` is read as the attenuation line integral `mu = mu_max * x` (bone bright, air dark).
  The detector behind it counts `k ~ Poisson(I0 exp(-mu))` photons of the `I0` sent, and the image shown is
  `-ln(k / I0) / mu_max` (back in [0, 1] units; a pixel with k = 0 is read as k = 1, the smallest count a
  logarithm can take). By the delta method its variance is about `1 / (mu_max^2 I0 exp(-mu))`: the noise is
  **largest where the tissue is dense** (few photons get through), and halving `I0` raises it by sqrt(2).

**Estimating sigma of magnitude MRI from the background** (`estimate_rician_sigma_background`): outside the
head the signal is 0 and the magnitude is Rayleigh, `P(M <= m) = 1 - exp(-m^2 / (2 sigma^2))`, so
`median(M) = sigma sqrt(2 ln 2)` and `E[M^2] = 2 sigma^2`. Wavelet estimators (`estimate_noise_sigma`) assume
Gaussian noise everywhere and are pulled low by the background, where the Rayleigh spread is only
`sqrt(2 - pi/2) sigma = 0.66 sigma`. `rician_bias_correction` is Wiest-Daesslé et al.'s (2008) correction of a
smoothed *squared* magnitude: `sqrt(max(S - 2 sigma^2, 0))`, since `E[M^2] = x^2 + 2 sigma^2`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

DOWNSAMPLE_METHODS: tuple[str, ...] = ("area", "bicubic", "kspace")
NOISE_MODELS: tuple[str, ...] = ("gaussian", "rician", "poisson")


def _check_images(images: torch.Tensor, name: str = "images") -> None:
    """TypeError/ValueError unless `images` is a float `(B, C, H, W)` tensor."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor (B, C, H, W) in [0, 1]; got "
                        f"{type(images).__name__} {getattr(images, 'dtype', '')}. Convert uint8 with `x.float() / 255`.")
    if images.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W); got {tuple(images.shape)}. "
                         "Add the batch and channel axes with `x[None, None]` for one (H, W) image.")


def _check_factor(factor: int) -> int:
    """ValueError unless `factor` is an integer >= 2."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ValueError(f"factor must be an integer >= 2 (e.g. 2 or 4); got {factor!r}.")
    return factor


def downsample(images: torch.Tensor, factor: int, method: str = "area") -> torch.Tensor:
    """Low-resolution images `(B, C, H/factor, W/factor)` from `(B, C, H, W)`, anti-aliased (notebook 05)."""
    _check_images(images)
    factor = _check_factor(factor)
    height, width = images.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(f"H and W must be divisible by factor={factor} so that every low-resolution pixel covers "
                         f"a whole block; got {height}x{width}. Crop or pad the images first.")
    if method == "area":
        return F.avg_pool2d(images, kernel_size=factor)  # mean of each factor x factor block
    if method == "bicubic":
        size = (height // factor, width // factor)
        return F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True)
    if method == "kspace":
        return kspace_downsample(images, factor)
    raise ValueError(f"method must be one of {DOWNSAMPLE_METHODS}; got {method!r}.")


def _centre_window(full: int, part: int) -> slice:
    """The central `part` indices of a centred (fftshift-ed) axis of length `full`."""
    start = full // 2 - part // 2
    return slice(start, start + part)


def _half_block_shift(spectrum: torch.Tensor, shift: float) -> torch.Tensor:
    """`spectrum` (centred, `(..., H, W)`) of the image translated by `-shift` pixels along both axes."""
    height, width = spectrum.shape[-2:]
    ky = torch.arange(height, device=spectrum.device, dtype=torch.float64) - height // 2  # centred frequencies
    kx = torch.arange(width, device=spectrum.device, dtype=torch.float64) - width // 2
    phase = 2 * math.pi * shift * (ky[:, None] / height + kx[None, :] / width)
    return spectrum * torch.polar(torch.ones_like(phase), phase)


def kspace_downsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Low in-plane resolution the scanner's way: keep the central `1/factor` of k-space, `(B, C, H/f, W/f)` in [0, 1].

    The magnitude of the inverse FFT of the central `H/f x W/f` block of `fft2(images)`, scaled by `1/f^2` so
    that the mean intensity is kept, and clipped to [0, 1] like a stored image (Gibbs overshoot can exceed 1).
    The image is first moved by half a block, `(f - 1) / 2` pixels, with a phase ramp, so that low-resolution
    pixel j sits at the centre of high-resolution block j, `f j + (f - 1) / 2`: the same grid as the box average
    and as bicubic interpolation (`align_corners=False`). Without it the two grids differ by 1.5 px at x4.
    This is a retrospective simulation on magnitude images (the scanner's phase is not known).
    """
    _check_images(images)
    factor = _check_factor(factor)
    height, width = images.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(f"H and W must be divisible by factor={factor}; got {height}x{width}. Crop or pad first.")
    spectrum = torch.fft.fftshift(torch.fft.fft2(images.double()), dim=(-2, -1))  # zero frequency in the centre
    spectrum = _half_block_shift(spectrum, (factor - 1) / 2)
    kept = spectrum[..., _centre_window(height, height // factor), _centre_window(width, width // factor)]
    low = torch.fft.ifft2(torch.fft.ifftshift(kept, dim=(-2, -1))) / factor**2  # same mean as the input
    return low.abs().clamp(0.0, 1.0).to(images.dtype)


def zero_fill_upsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Sinc interpolation `(B, C, H, W)` → `(B, C, f H, f W)`: k-space padded with zeros, magnitude, clipped to [0, 1].

    The inverse of `kspace_downsample`'s grid: the result is moved back by half a block, so that
    `zero_fill_upsample(kspace_downsample(x, f), f)` recovers a band-limited image `x` exactly.
    """
    _check_images(images)
    factor = _check_factor(factor)
    height, width = images.shape[-2:]
    spectrum = torch.fft.fftshift(torch.fft.fft2(images.double()), dim=(-2, -1))
    padded = spectrum.new_zeros((*images.shape[:-2], factor * height, factor * width))
    padded[..., _centre_window(factor * height, height), _centre_window(factor * width, width)] = spectrum
    padded = _half_block_shift(padded, -(factor - 1) / 2)
    high = torch.fft.ifft2(torch.fft.ifftshift(padded, dim=(-2, -1))) * factor**2
    return high.abs().clamp(0.0, 1.0).to(images.dtype)


def upsample_bicubic(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Bicubic interpolation `(B, C, H, W)` → `(B, C, factor H, factor W)`, clipped to [0, 1]: the classic baseline."""
    _check_images(images)
    factor = _check_factor(factor)
    up = F.interpolate(images, scale_factor=factor, mode="bicubic", align_corners=False)
    return up.clamp(0.0, 1.0)  # bicubic overshoots at edges (ringing); stored images cannot


def _check_level(value: float, name: str, example: str) -> float:
    """ValueError unless `value` is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number ({example}); got {value!r}.")
    return float(value)


def add_gaussian_noise(images: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """`images + sigma * N(0, 1)` (not clipped), sigma in units of the [0, 1] range (notebook 06)."""
    _check_images(images)
    sigma = _check_level(sigma, "sigma", "e.g. 0.05 for 5 % of the intensity range")
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return images + sigma * noise


def add_rician_noise(images: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Magnitude of the image with complex Gaussian noise: `sqrt((x + sigma n1)^2 + (sigma n2)^2)` (notebook 06)."""
    _check_images(images)
    sigma = _check_level(sigma, "sigma", "e.g. 0.05 for 5 % of the intensity range")
    if float(images.min()) < 0:
        raise ValueError("Rician noise models a magnitude image of a non-negative signal; the images have negative "
                         "values. Pass images in [0, 1] (convert model outputs with `to_unit_range`).")
    real = images + sigma * torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    imaginary = sigma * torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return torch.sqrt(real.square() + imaginary.square())


def add_poisson_noise(images: torch.Tensor, dose: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Counting of the displayed intensity, `Poisson(dose * x) / dose`: emission imaging, not X-ray (see the module)."""
    _check_images(images)
    dose = _check_level(dose, "dose", "expected photon count at intensity 1, e.g. 100 for a low dose")
    if float(images.min()) < 0:
        raise ValueError("Poisson noise models photon counts of a non-negative intensity; the images have negative "
                         "values. Pass images in [0, 1].")
    return torch.poisson(images * dose, generator=generator) / dose


def beer_lambert_counts(images: torch.Tensor, photons: float, mu_max: float,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Detected photons `k ~ Poisson(I0 exp(-mu_max x))` behind each pixel of brightness `x` in [0, 1] (notebook 06)."""
    _check_images(images)
    photons = _check_level(photons, "photons", "unattenuated photons per pixel I0, e.g. 1000")
    mu_max = _check_level(mu_max, "mu_max", "the attenuation line integral of the brightest pixel, e.g. 3")
    if float(images.min()) < 0:
        raise ValueError("Beer-Lambert noise reads the brightness as attenuation, which is >= 0; the images have "
                         "negative values. Pass images in [0, 1].")
    expected = photons * torch.exp(-mu_max * images.double())  # I0 exp(-mu): fewer photons behind dense tissue
    return torch.poisson(expected, generator=generator).to(images.dtype)


def beer_lambert_display(counts: torch.Tensor, photons: float, mu_max: float) -> torch.Tensor:
    """The image a radiograph shows from photon counts: `-ln(max(k, 1) / I0) / mu_max` (not clipped)."""
    return -torch.log(counts.clamp_min(1.0) / photons) / mu_max


def add_beer_lambert_noise(images: torch.Tensor, photons: float, mu_max: float = 3.0,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """Low-dose X-ray: Beer–Lambert photon counts at `photons` = I0, shown as `-ln(k / I0) / mu_max` (notebook 06).

    Mean about `x` (slightly above it at low counts), variance about `1 / (mu_max^2 I0 exp(-mu_max x))`.
    """
    counts = beer_lambert_counts(images, photons, mu_max, generator)
    return beer_lambert_display(counts, photons, mu_max).to(images.dtype)


def rician_mean(signal: torch.Tensor | float, sigma: float) -> torch.Tensor:
    """Analytic mean of Rician noise: `sigma sqrt(pi/2) L_{1/2}(-x^2/(2 sigma^2))` (tests and notebook 06)."""
    x = torch.as_tensor(signal, dtype=torch.float64)
    half = x.square() / (4 * sigma**2)  # L_{1/2}(-t) = e^{-t/2} ((1 + t) I0(t/2) + t I1(t/2)), t = x^2 / (2 sigma^2)
    t = 2 * half
    laguerre = (1 + t) * torch.special.i0e(half) + t * torch.special.i1e(half)  # i0e(z) = e^{-z} I0(z)
    return sigma * math.sqrt(math.pi / 2) * laguerre


def rician_variance(signal: torch.Tensor | float, sigma: float) -> torch.Tensor:
    """Analytic variance of Rician noise: `x^2 + 2 sigma^2 - mean^2`."""
    x = torch.as_tensor(signal, dtype=torch.float64)
    return x.square() + 2 * sigma**2 - rician_mean(x, sigma).square()


def rician_bias_correction(mean_square: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Wiest-Daesslé et al. (2008): `sqrt(max(S - 2 sigma^2, 0))` for `S` a smoothed squared magnitude (notebook 06).

    Since `E[M^2] = x^2 + 2 sigma^2` for Rician `M`, the correction is exact for the expectation. For an
    average of few pixels it is biased: low where x >> sigma (the square root of an unbiased estimate of
    x^2 is biased low, Jensen) and high where x ~ 0 (the `max(., 0)` keeps only positive fluctuations).
    `sigma` is a number or one value per image `(B,)` for `mean_square` `(B, C, H, W)`.
    """
    sigma = torch.as_tensor(sigma, dtype=mean_square.dtype, device=mean_square.device)
    if sigma.dim() == 1:
        sigma = sigma[:, None, None, None]  # one sigma per image
    return torch.sqrt((mean_square - 2 * sigma.square()).clamp_min(0.0))


def background_mask(region: torch.Tensor, margin: int) -> torch.Tensor:
    """Pixels farther than `margin` px (square neighbourhood) from `region` `(B, 1, H, W)`: the signal-free background."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0 pixels; got {margin}.")
    grown = F.max_pool2d(region.float(), 2 * margin + 1, stride=1, padding=margin) if margin else region.float()
    return grown < 0.5


def estimate_rician_sigma_background(images: torch.Tensor, region: torch.Tensor, margin: int = 4,
                                     method: str = "median") -> torch.Tensor:
    """Noise sigma per image `(B,)` of magnitude images, from the Rayleigh background outside `region` (notebook 06).

    `region` `(B, 1, H, W)` marks where the anatomy is (e.g. the brain mask); the background is every pixel more
    than `margin` px from it. `method="median"`: `median(M) / sqrt(2 ln 2)` (robust to a few pixels of stray
    signal); `"second_moment"`: `sqrt(mean(M^2) / 2)` (the maximum-likelihood estimate on pure background).
    """
    _check_images(images)
    if region.shape[0] != images.shape[0] or region.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"region must be (B, 1, H, W) like the images {tuple(images.shape)}; got {tuple(region.shape)}.")
    if method not in ("median", "second_moment"):
        raise ValueError(f"method must be 'median' or 'second_moment'; got {method!r}.")
    background = background_mask(region, margin).expand_as(images)
    estimates = []
    for magnitude, outside in zip(images.double(), background, strict=True):
        values = magnitude[outside]
        if values.numel() < 100:
            raise ValueError(f"only {values.numel()} background pixels lie more than {margin} px from the region; "
                             "use a smaller margin or images with more background.")
        if method == "median":
            estimates.append(float(values.median()) / math.sqrt(2 * math.log(2)))
        else:
            estimates.append(math.sqrt(float(values.square().mean()) / 2))
    return torch.tensor(estimates, dtype=torch.float64)


def degrade(images: torch.Tensor, model: str, level: float, generator: torch.Generator | None = None,
            clip: bool = True) -> torch.Tensor:
    """Noisy images for noise `model` at `level` (sigma, or dose for Poisson), clipped to [0, 1] like a stored image."""
    if model == "gaussian":
        noisy = add_gaussian_noise(images, level, generator)
    elif model == "rician":
        noisy = add_rician_noise(images, level, generator)
    elif model == "poisson":
        noisy = add_poisson_noise(images, level, generator)
    else:
        raise ValueError(f"model must be one of {NOISE_MODELS}; got {model!r}.")
    return noisy.clamp(0.0, 1.0) if clip else noisy


def noise_level_name(model: str, level: float) -> str:
    """A short label such as 'rician sigma=0.05' or 'poisson dose=50'."""
    return f"{model} dose={level:g}" if model == "poisson" else f"{model} sigma={level:g}"


def estimate_noise_sigma(image: np.ndarray) -> tuple[float, str]:
    """Noise sigma of a 2-D image and the estimator used: scikit-image's `estimate_sigma`, or Haar MAD (notebook 06).

    Both are Donoho's robust estimator, sigma = median(|finest diagonal wavelet detail|) / 0.6745, which looks
    only at the finest scale, where noise dominates anatomy. scikit-image uses Daubechies-2 wavelets and needs
    PyWavelets; without it the Haar version runs: d = (a - b - c + d') / 2 over 2x2 blocks, which for white
    noise of standard deviation sigma has standard deviation sigma.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be one 2-D (H, W) array; got shape {image.shape}.")
    try:
        from skimage.restoration import estimate_sigma

        return float(estimate_sigma(image)), "scikit-image estimate_sigma (db2 wavelets)"
    except ImportError:  # PyWavelets is not installed
        height, width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
        blocks = image[:height, :width]
        diagonal = (blocks[0::2, 0::2] - blocks[0::2, 1::2] - blocks[1::2, 0::2] + blocks[1::2, 1::2]) / 2
        return float(np.median(np.abs(diagonal)) / 0.6745), "Haar MAD (PyWavelets not installed)"
