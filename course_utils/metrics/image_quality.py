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

**Score the anatomy.** Medical images are mostly background (air outside the head, zero padding around a
crop). Errors there are easy to avoid and dilute the average: padding noisy images with black raises their
PSNR and SSIM with nothing else changed. `psnr`, `ssim` and `gradient_ratio` therefore take an optional
boolean `mask` `(B, 1, H, W)` (e.g. a brain mask or the crop's interior) and then average only inside it:
PSNR over the masked pixels, SSIM over the windows whose centre pixel is masked, the gradient ratio over
masked pixels. Report the masked number as the headline and the whole-image one beside it.
`cluster_bootstrap` gives intervals over subjects (or slice blocks), the unit that was sampled, not over
slices, which cluster by subject and make per-slice standard errors too small.
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


def _check_mask(mask: torch.Tensor | None, images: torch.Tensor) -> torch.Tensor | None:
    """`mask` as a bool tensor `(B, C, H, W)` matching `images`, with at least one pixel per image; clear errors."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dim() != 4 or mask.shape[0] != images.shape[0] \
            or mask.shape[-2:] != images.shape[-2:] or mask.shape[1] not in (1, images.shape[1]):
        raise ValueError(f"mask must be a tensor (B, 1, H, W) matching the images {tuple(images.shape)}; "
                         f"got {tuple(getattr(mask, 'shape', ()))}.")
    mask = mask.to(device=images.device).bool().expand_as(images)
    empty = (~mask.flatten(1).any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"the mask is empty for image(s) {empty[:5]}: there is nothing to score. Drop those images "
                         "or use a larger region.")
    return mask


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean per image `(B,)` of `values` `(B, C, H, W)`, over the pixels where `mask` is True (all if None)."""
    if mask is None:
        return values.flatten(1).mean(dim=1)
    weights = mask.to(values.dtype).flatten(1)
    return (values.flatten(1) * weights).sum(dim=1) / weights.sum(dim=1)


def psnr(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio per image `(B,)` in dB for images in [0, 1], over `mask` if given (inf if identical)."""
    output, target = _check_pair(output, target)
    mse = _masked_mean((output - target).square(), _check_mask(mask, output))  # (B,)
    return 10.0 * torch.log10(1.0 / mse)


def _valid_blur_matrix(size: int, device: torch.device) -> torch.Tensor:
    """`(size, size - 10)` matrix whose column j is SSIM's 11-tap Gaussian placed at rows j .. j + 10 (float64).

    `images @ matrix` blurs along the last axis, keeping only windows that fit (a banded matrix product is
    much faster on a CPU than a float64 convolution).
    """
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-coords.square() / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    matrix = torch.zeros(size, size - SSIM_WINDOW + 1, dtype=torch.float64, device=device)
    for j in range(size - SSIM_WINDOW + 1):
        matrix[j:j + SSIM_WINDOW, j] = g
    return matrix


def ssim_map(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of every full window `(B, C, H - 10, W - 10)` for images in [0, 1]."""
    x, y = _check_pair(output, target)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels; got {tuple(x.shape[-2:])}.")
    rows, columns = _valid_blur_matrix(x.shape[-2], x.device), _valid_blur_matrix(x.shape[-1], x.device)

    def blur(z: torch.Tensor) -> torch.Tensor:  # the separable Gaussian window: along W, then along H
        return rows.T @ (z @ columns)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K * data_range)^2 with data_range = 1
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))


def ssim(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean structural similarity per image `(B,)` for images in [0, 1] (1 = identical).

    With `mask`, the mean over the windows whose centre pixel is inside the mask.
    """
    values = ssim_map(output, target)  # (B, C, H - 10, W - 10): window centres at pixels 5 .. H - 6
    mask = _check_mask(mask, output)
    if mask is None:
        return values.flatten(1).mean(dim=1)
    half = SSIM_WINDOW // 2
    centres = mask[..., half:mask.shape[-2] - half, half:mask.shape[-1] - half]
    if not centres.flatten(1).any(dim=1).all():
        raise ValueError(f"the mask has no pixel at least {half} px from the border for some image: no SSIM window "
                         "is centred inside it.")
    return _masked_mean(values, centres)


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


def gradient_ratio(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean gradient magnitude of `output` over that of `target`, per image `(B,)`: < 1 blurrier, > 1 busier.

    With `mask`, both means run over the masked pixels (forward differences at pixel (i, j) count for it).
    """
    output, target = _check_pair(output, target)
    mask = _check_mask(mask, output)
    inner = None if mask is None else mask[..., :-1, :-1]

    def energy(images: torch.Tensor) -> torch.Tensor:
        dx = images[..., :, 1:] - images[..., :, :-1]  # (B, C, H, W - 1) horizontal differences
        dy = images[..., 1:, :] - images[..., :-1, :]
        return _masked_mean((dx[..., :-1, :].square() + dy[..., :, :-1].square()).sqrt(), inner)  # (B,)

    return energy(output) / energy(target).clamp_min(1e-12)


def summarise(values: torch.Tensor) -> tuple[float, float]:
    """(mean, standard error of the mean) of per-image values."""
    values = values.double()
    count = values.numel()
    sem = float(values.std(unbiased=True)) / math.sqrt(count) if count > 1 else math.nan
    return float(values.mean()), sem


def cluster_bootstrap(values: torch.Tensor, clusters: torch.Tensor, resamples: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """(estimate, lower, upper): the mean over clusters of per-cluster means, with a cluster bootstrap interval.

    `values` `(N,)` are per-image numbers (e.g. PSNR, or a paired difference of two methods on the same images)
    and `clusters` `(N,)` the subject (or slice block) of each image. The bootstrap draws whole clusters with
    replacement (Field & Welsh, 2007), so the interval reflects how much the result varies between subjects.
    """
    values, clusters = torch.as_tensor(values).double().flatten(), torch.as_tensor(clusters).flatten()
    if values.shape != clusters.shape:
        raise ValueError(f"values and clusters need one entry per image; got {tuple(values.shape)} and "
                         f"{tuple(clusters.shape)}.")
    if not torch.isfinite(values).all():
        raise ValueError("values contain inf or NaN (e.g. PSNR of identical images); they cannot be averaged.")
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"need 0 < level < 1 and resamples >= 1; got level={level}, resamples={resamples}.")
    names, index = torch.unique(clusters, return_inverse=True)
    if len(names) < 2:
        raise ValueError(f"a cluster bootstrap needs at least 2 clusters (subjects); got {len(names)}.")
    means = torch.zeros(len(names), dtype=torch.float64).index_add_(0, index, values)
    means /= torch.bincount(index, minlength=len(names)).double()  # (K,) per-cluster means
    generator = torch.Generator().manual_seed(seed)
    draws = means[torch.randint(len(names), (resamples, len(names)), generator=generator)].mean(dim=1)
    tail = (1 - level) / 2
    lower, upper = torch.quantile(draws, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return float(means.mean()), lower, upper


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


def lesion_sites(regions: torch.Tensor, radius: float, count: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """`count` lesion sites `(image, row, column)` whose disc and ring (out to `2 radius`) lie inside `regions`.

    `regions` `(N, 1, H, W)` is where the anatomy is (e.g. the brain mask). The sites are spread over the images
    (evenly spaced through the stack, round robin when `count > N`) and, within one image, drawn at random with
    `seed` among the admissible centres, at least `4 radius` apart so that their rings do not overlap.
    """
    if regions.dim() != 4 or count < 1 or radius <= 0:
        raise ValueError(f"need regions (N, 1, H, W), count >= 1 and radius > 0; got {tuple(regions.shape)}, "
                         f"{count}, {radius}.")
    reach = int(math.ceil(2 * radius))
    window = 2 * reach + 1  # a centre is admissible when its whole (2 radius)-disc neighbourhood is inside
    inside = -F.max_pool2d(-regions.float(), window, stride=1, padding=reach) > 0.5  # eroded region
    inside[..., :reach, :], inside[..., -reach:, :] = False, False
    inside[..., :, :reach], inside[..., :, -reach:] = False, False
    usable = [i for i in range(regions.shape[0]) if bool(inside[i].any())]
    if not usable:
        raise ValueError(f"no image has room for a lesion of radius {radius} px inside its region.")
    order = [usable[round(k)] for k in torch.linspace(0, len(usable) - 1, min(count, len(usable))).tolist()]
    generator = torch.Generator().manual_seed(seed)
    sites: list[tuple[int, int, int]] = []
    for number in range(count):
        image = order[number % len(order)]
        candidates = inside[image, 0].nonzero()  # (M, 2) admissible (row, col)
        taken = torch.tensor([[r, c] for i, r, c in sites if i == image], dtype=torch.float64).reshape(-1, 2)
        if len(taken):
            distance = torch.cdist(candidates.double(), taken).min(dim=1).values
            candidates = candidates[distance >= 4 * radius]
        if not len(candidates):
            raise ValueError(f"image {image} has no room for another lesion {4 * radius:g} px from the others; "
                             "ask for fewer sites.")
        row, column = candidates[int(torch.randint(len(candidates), (1,), generator=generator))].tolist()
        sites.append((image, int(row), int(column)))
    return sites
