"""Image-quality metrics for restored images: PSNR, SSIM, and a perceptual (feature-space) distance.

Introduced in notebook 05 (`05_srgan_mri_super_resolution`); notebook 06 (`06_denoising_gan`) reuses them.

Images are float `(B, C, H, W)` in [0, 1] and every metric is computed on that **same range**
(`data_range = 1`): a PSNR computed on [0, 255] images or on [-1, 1] model outputs would differ by a constant,
and numbers from different ranges cannot be compared. Each function returns one value per image `(B,)`;
average them for a table. Checked in the tests against `skimage.metrics` and `torchmetrics`.

- PSNR = 10 log10(1 / MSE) dB: pure pixel distortion; +6 dB halves the root-mean-square error.
- SSIM (Wang et al., 2004): compares local means, contrasts and structure in Gaussian windows (sigma 1.5,
  11x11, K1 = 0.01, K2 = 0.03); 1 for identical images. Windows that would cross the border are left out
  (as `skimage.metrics.structural_similarity(gaussian_weights=True, use_sample_covariance=False)` does).
- `feature_distance`: an LPIPS-style distance (Zhang et al., 2018) in a feature network's space: every
  feature map is normalised to unit length along its channels at each position, then the squared
  differences are averaged over positions and layers. 0 for identical images; lower = perceptually closer.
- `gradient_ratio`: how much edge energy an output has compared with the truth (1 = as sharp; blur < 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.inference import eval_mode

SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_SIGMA, SSIM_WINDOW = 1.5, 11


def _check_pair(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both as float64 `(B, C, H, W)` tensors of one shape, in [0, 1]; clear errors otherwise."""
    for name, images in (("output", output), ("target", target)):
        if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.dim() != 4:
            raise ValueError(f"{name} must be a float tensor (B, C, H, W) in [0, 1]; got "
                             f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}.")
    if output.shape != target.shape:
        raise ValueError(f"output and target must have the same shape; got {tuple(output.shape)} and {tuple(target.shape)}.")
    low, high = float(torch.minimum(output.min(), target.min())), float(torch.maximum(output.max(), target.max()))
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(f"metrics use images in [0, 1]; these span [{low:.3g}, {high:.3g}]. Convert model outputs "
                         "with `to_unit_range` (from [-1, 1]) or uint8 with `x.float() / 255`.")
    return output.double(), target.double()


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image `(B,)` in dB for images in [0, 1] (inf for identical images)."""
    output, target = _check_pair(output, target)
    mse = (output - target).square().flatten(1).mean(dim=1)  # (B,)
    return 10.0 * torch.log10(1.0 / mse)


def _gaussian_window(device: torch.device) -> torch.Tensor:
    """The normalised 2-D Gaussian window `(1, 1, 11, 11)` of SSIM (float64)."""
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-coords.square() / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    return torch.outer(g, g)[None, None]


def ssim_map(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of every full window `(B, C, H - 10, W - 10)` for images in [0, 1]."""
    x, y = _check_pair(output, target)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels; got {tuple(x.shape[-2:])}.")
    channels = x.shape[1]
    window = _gaussian_window(x.device).expand(channels, 1, -1, -1)  # one window per channel

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, window, groups=channels)  # valid windows only

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K * data_range)^2 with data_range = 1
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))


def ssim(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean structural similarity per image `(B,)` for images in [0, 1] (1 = identical)."""
    return ssim_map(output, target).flatten(1).mean(dim=1)


def _unit_channels(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Feature map `(B, C, H, W)` scaled to unit length along C at every position."""
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + eps)


@torch.no_grad()
def feature_distance(network: nn.Module, output: torch.Tensor, target: torch.Tensor,
                     batch_size: int = 64) -> torch.Tensor:
    """LPIPS-style distance per image `(B,)` in `network`'s feature maps, for images in [0, 1] (0 = identical)."""
    output, target = _check_pair(output, target)
    device = next(network.parameters()).device
    distances = []
    with eval_mode(network):
        for start in range(0, output.shape[0], batch_size):
            a = output[start:start + batch_size].float().to(device) * 2 - 1  # networks take [-1, 1]
            b = target[start:start + batch_size].float().to(device) * 2 - 1
            per_layer = [(_unit_channels(fa) - _unit_channels(fb)).square().sum(dim=1).flatten(1).mean(dim=1)
                         for fa, fb in zip(network(a), network(b), strict=True)]  # each (b,)
            distances.append(torch.stack(per_layer).mean(dim=0).double().cpu())
    return torch.cat(distances)


def gradient_ratio(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean gradient magnitude of `output` over that of `target`, per image `(B,)`: < 1 blurrier, > 1 busier."""
    output, target = _check_pair(output, target)

    def energy(images: torch.Tensor) -> torch.Tensor:
        dx = images[..., :, 1:] - images[..., :, :-1]  # (B, C, H, W - 1) horizontal differences
        dy = images[..., 1:, :] - images[..., :-1, :]
        return (dx[..., :-1, :].square() + dy[..., :, :-1].square()).sqrt().flatten(1).mean(dim=1)  # (B,)

    return energy(output) / energy(target).clamp_min(1e-12)


def summarise(values: torch.Tensor) -> tuple[float, float]:
    """(mean, standard error of the mean) of per-image values."""
    values = values.double()
    count = values.numel()
    sem = float(values.std(unbiased=True)) / math.sqrt(count) if count > 1 else math.nan
    return float(values.mean()), sem


# ----------------------------------------------------------------------------- lesion test pattern (notebook 06)


def disc_mask(height: int, width: int, center: tuple[float, float], radius: float) -> torch.Tensor:
    """Boolean `(H, W)` mask of the pixels whose centres lie within `radius` of `center` (row, column)."""
    rows = torch.arange(height, dtype=torch.float64)[:, None]
    columns = torch.arange(width, dtype=torch.float64)[None, :]
    return (rows - center[0]).square() + (columns - center[1]).square() <= radius**2


def add_disc_lesion(images: torch.Tensor, center: tuple[float, float], radius: float, contrast: float) -> torch.Tensor:
    """`images` `(B, C, H, W)` in [0, 1] with a flat disc of `contrast` added (clipped to [0, 1]): a synthetic lesion."""
    mask = disc_mask(images.shape[-2], images.shape[-1], center, radius).to(images.device)
    return (images + contrast * mask.to(images.dtype)).clamp(0.0, 1.0)


def lesion_contrast(images: torch.Tensor, center: tuple[float, float], radius: float) -> torch.Tensor:
    """Mean inside the disc minus mean in the ring from `radius` to `2 radius`, per image `(B,)`."""
    height, width = images.shape[-2:]
    inside = disc_mask(height, width, center, radius).to(images.device)
    ring = disc_mask(height, width, center, 2 * radius).to(images.device) & ~inside
    flat = images.double().flatten(2)  # (B, C, H W)
    return (flat[..., inside.flatten()].mean(dim=-1) - flat[..., ring.flatten()].mean(dim=-1)).mean(dim=1)
