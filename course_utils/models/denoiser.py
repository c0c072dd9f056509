"""A small time-conditioned U-Net: the network of the diffusion and flow-matching models (notebook 10).

Input: images `(B, channels, H, W)` (noised images in about [-1, 1]) and a time `(B,)` in [0, 1] (step/T for
diffusion, t for flow matching; see `course_utils.training.diffusion` and `.flow_matching`). Output: the same
shape as the images, the predicted noise (diffusion) or velocity (flow matching); no output squashing.

The design is DDPM's U-Net, cut down for CPU: residual blocks (GroupNorm, SiLU, 3x3 convolutions) with the
time embedding added after the first convolution, strided-convolution downsampling, nearest-neighbour
upsampling + convolution, skip connections by concatenation, no attention. Widths per resolution are
`width × multipliers`:

- 28 px (MedMNIST): 28 → 14 → 7, widths (w, 2w, 2w).  e.g. width 32: (B, 32, 28, 28) → (B, 64, 14, 14)
  → (B, 64, 7, 7) → middle block → (B, 64, 14, 14) → (B, 32, 28, 28) → (B, 1, 28, 28).
- 32, 64, 128, 256 px: halving down to 8 px (64 px: 64 → 32 → 16 → 8), widths (w, 2w, 2w, 2w, …).

Same budget, same size: a U-Net repeats 3x3 convolutions at every resolution on the way down and up, so at an
equal channel width it has more parameters than the DCGAN generator (28 px, width 32: 0.69 M vs 0.35 M), and
the ratio grows with the width (the generator's 28 px count is dominated by its latent layer, linear in the
width). So the comparison matches parameter counts, not widths: `matching_width(image_size, dcgan_width)` is
the denoiser width (a multiple of 8) whose count is closest to `DCGANGenerator(base_width=dcgan_width)`'s, and
`parameter_counts` reports both (28 px, DCGAN width 64: denoiser width 32, 0.69 M vs 0.76 M parameters;
64 px, DCGAN width 64: denoiser width 64, 3.9 M vs 3.6 M).

Why not MONAI's `DiffusionModelUNet`: it needs `einops`, which the course does not install, and MONAI is a
test-only dependency here. Its constraint would also apply: each size must halve cleanly down the levels
(28 allows two halvings, 28 → 14 → 7; MONAI's default three levels would need padding 28 to 32).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_utils.checks import require_int
from course_utils.models.conditional import check_labels
from course_utils.models.dcgan import DCGANGenerator

SMALL_SIZE = 28
POWER_OF_TWO_SIZES: tuple[int, ...] = (32, 64, 128, 256)
SUPPORTED_SIZES: tuple[int, ...] = (SMALL_SIZE, *POWER_OF_TWO_SIZES)
LOWEST_RESOLUTION = 8  # power-of-two sizes halve down to 8 px
TIME_SCALE = 1000.0  # times in [0, 1] are embedded like DDPM's integer steps 0 … 1000
MAX_PERIOD = 10_000.0  # the sinusoidal embedding's longest period (Transformer / DDPM)


def default_multipliers(image_size: int) -> tuple[int, ...]:
    """Width multipliers per resolution: (1, 2, 2) at 28 px (28, 14, 7 px); (1, 2, 2, 2) at 64 px (64 … 8 px)."""
    if image_size == SMALL_SIZE:
        return (1, 2, 2)
    levels = int(math.log2(image_size // LOWEST_RESOLUTION)) + 1  # 32 px: 3 (32, 16, 8); 64 px: 4
    return (1, *([2] * (levels - 1)))


def _check_image_size(image_size: object) -> int:
    """`image_size` if this U-Net supports it, else a ValueError listing the sizes."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size not in SUPPORTED_SIZES:
        raise ValueError(
            f"image_size must be one of {', '.join(map(str, SUPPORTED_SIZES))} (square images); got {image_size!r}. "
            "Use 28 for MedMNIST's native size or a power of two from 32 to 256; resize other images first."
        )
    return image_size


def _groups(channels: int) -> int:
    """GroupNorm groups: 8 where the channels divide into 8 groups, else the largest divisor of channels below 8."""
    return max(g for g in range(1, 9) if channels % g == 0)


def sinusoidal_embedding(time: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) times in [0, 1] → (B, dim) features [cos(1000·t·f_k), sin(1000·t·f_k)], f_k = 10000^(-k/(dim/2)).

    The positional encoding of the Transformer, as DDPM embeds its step; introduced in notebook 10.
    """
    half = dim // 2
    frequencies = torch.exp(
        -math.log(MAX_PERIOD) * torch.arange(half, device=time.device, dtype=torch.float32) / half
    )
    angles = TIME_SCALE * time.float()[:, None] * frequencies[None, :]  # (B, half)
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)  # (B, 2 * half)
    if dim % 2:
        embedding = nn.functional.pad(embedding, (0, 1))
    return embedding


class ResidualBlock(nn.Module):
    """GroupNorm → SiLU → 3x3 conv, + the projected time embedding, GroupNorm → SiLU → 3x3 conv, + skip."""

    def __init__(self, c_in: int, c_out: int, time_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.act = nn.SiLU()
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor) -> torch.Tensor:
        """(B, c_in, h, w), (B, time_dim) → (B, c_out, h, w)."""
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.time(time_embedding)[:, :, None, None]  # the time enters every block
        h = self.conv2(self.act(self.norm2(h)))
        return h + self.skip(x)


class TimeConditionedUNet(nn.Module):
    """Images `(B, C, S, S)` and times `(B,)` in [0, 1] → a tensor of the images' shape (noise or velocity).

    Introduced in notebook 10. `width` is the channel count at full resolution; `multipliers` scale it per
    resolution (default `default_multipliers(image_size)`); one residual block per level on each side.
    With `num_classes`, it is class-conditional: `model(x, time, labels)` with int64 labels `(B,)`, whose learned
    embedding is added to the time embedding, so every block sees the class (`with_labels` binds labels for
    the samplers, which call `model(x, time)`).
    """

    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        width: int = 32,
        multipliers: tuple[int, ...] | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.image_size = _check_image_size(image_size)
        self.channels = require_int(channels, "channels", example="1 for grey-scale, 3 for RGB")
        self.width = require_int(width, "width", example="32")
        multipliers = default_multipliers(image_size) if multipliers is None else tuple(multipliers)
        if not multipliers or not all(
            isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in multipliers
        ):
            raise ValueError(
                f"multipliers must be positive integers, one per resolution, e.g. (1, 2, 2); got {multipliers!r}."
            )
        if image_size % 2 ** (len(multipliers) - 1):
            raise ValueError(
                f"{image_size} px cannot be halved {len(multipliers) - 1} times ({len(multipliers)} multipliers); "
                f"use at most {int(math.log2(image_size & -image_size)) + 1} levels, e.g. (1, 2, 2) at 28 px."
            )
        self.multipliers = multipliers
        widths = [width * m for m in multipliers]  # e.g. [32, 64, 64]
        time_dim = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.num_classes = None if num_classes is None else require_int(num_classes, "num_classes", example="2")
        # class-conditional: a learned vector per class, added to the time embedding (as in guided diffusion)
        self.label_embedding = None if num_classes is None else nn.Embedding(num_classes, time_dim)
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        c = width
        for level, w in enumerate(widths):
            self.down_blocks.append(ResidualBlock(c, w, time_dim))
            c = w
            if level < len(widths) - 1:
                self.downsamplers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))  # (h, w) -> (h/2, w/2)
        self.middle = ResidualBlock(c, c, time_dim)
        self.upsamplers = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for level in reversed(range(len(widths))):
            if level < len(widths) - 1:
                self.upsamplers.append(
                    nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1))
                )
            self.up_blocks.append(ResidualBlock(c + widths[level], widths[level], time_dim))
            c = widths[level]
        self.head = nn.Sequential(
            nn.GroupNorm(_groups(c), c), nn.SiLU(), nn.Conv2d(c, channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor, time: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Prediction `(B, C, S, S)` for noised images `x` `(B, C, S, S)` at times `time` `(B,)` in [0, 1]
        (and, for a class-conditional network, of classes `labels` `(B,)`)."""
        expected = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"TimeConditionedUNet expects images of shape (B, {', '.join(map(str, expected))}); got "
                f"{tuple(x.shape)}. Check the image size and channels it was built with."
            )
        if not isinstance(time, torch.Tensor) or time.shape != (x.shape[0],):
            shape = tuple(time.shape) if isinstance(time, torch.Tensor) else type(time).__name__
            raise ValueError(
                f"time must be a tensor (B,) = ({x.shape[0]},) of times in [0, 1], one per image; got "
                f"{shape}. Use torch.full((B,), t) for one time for the whole batch."
            )
        embedding = self.time_mlp(sinusoidal_embedding(time, self.width))  # (B, 4w)
        if self.label_embedding is not None:
            if labels is None:
                raise ValueError(
                    f"this denoiser is class-conditional ({self.num_classes} classes): call model(x, time, labels) "
                    "with int64 labels (B,), or bind them for a sampler with with_labels(model, labels)."
                )
            labels = check_labels(labels, x.shape[0], self.num_classes, "TimeConditionedUNet")
            embedding = embedding + self.label_embedding(labels)  # (B, 4w)
        elif labels is not None:
            raise ValueError("this denoiser is unconditional (num_classes=None); call it as model(x, time).")
        h = self.conv_in(x)  # (B, w, S, S)
        skips = []
        for level, block in enumerate(self.down_blocks):
            h = block(h, embedding)  # (B, w_level, S / 2^level, …)
            skips.append(h)
            if level < len(self.downsamplers):
                h = self.downsamplers[level](h)
        h = self.middle(h, embedding)
        for index, block in enumerate(self.up_blocks):
            if index > 0:
                h = self.upsamplers[index - 1](h)  # (B, c, 2h, 2w)
            h = block(torch.cat([h, skips.pop()], dim=1), embedding)
        return self.head(h)  # (B, C, S, S)


class LabelledDenoiser(nn.Module):
    """A class-conditional denoiser with its labels bound: `forward(x, time)` is `model(x, time, labels)`."""

    def __init__(self, model: TimeConditionedUNet, labels: torch.Tensor) -> None:
        super().__init__()
        self.model, self.labels = model, labels

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        """The wrapped model's prediction for `x` `(B, C, S, S)` with the bound labels `(B,)`."""
        return self.model(x, time, self.labels.to(x.device))


def with_labels(model: nn.Module, labels: torch.Tensor | None) -> nn.Module:
    """`model` for the samplers (`model(x, time)`): unchanged without labels, else with `labels` `(B,)` bound."""
    return model if labels is None else LabelledDenoiser(model, labels)


def parameter_count(module: nn.Module) -> int:
    """The number of trainable parameters of `module`."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def denoiser_parameter_count(image_size: int, width: int, channels: int = 1) -> int:
    """Trainable parameters of `TimeConditionedUNet(image_size, channels, width)` with its default multipliers."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        return parameter_count(TimeConditionedUNet(image_size=image_size, channels=channels, width=width))


def dcgan_generator_parameter_count(
    image_size: int, width: int, channels: int = 1, latent_dim: int = 100
) -> int:
    """Trainable parameters of `DCGANGenerator(latent_dim, image_size, channels, base_width=width)` (notebook 02's)."""
    generator = DCGANGenerator(
        latent_dim=latent_dim, image_size=image_size, channels=channels, base_width=width
    )
    return parameter_count(
        generator
    )  # (built on the CPU: its normal_ initialisation is slow on the meta device)


def matching_width(image_size: int, dcgan_width: int, channels: int = 1, latent_dim: int = 100) -> int:
    """The denoiser width (a multiple of 8) whose parameter count is closest to the DCGAN generator's (notebook 10)."""
    dcgan_width = require_int(dcgan_width, "dcgan_width", example="64")
    target = dcgan_generator_parameter_count(image_size, dcgan_width, channels, latent_dim)
    candidates = range(8, 8 * max(2, dcgan_width // 4) + 1, 8)  # widths 8 … 2 × dcgan_width
    return min(candidates, key=lambda w: abs(denoiser_parameter_count(image_size, w, channels) - target))


def parameter_counts(
    image_size: int = 28, dcgan_width: int = 64, channels: int = 1, latent_dim: int = 100
) -> dict[str, int]:
    """The DCGAN generator's parameters and the matching denoiser's width and parameters (notebook 10).

    `{"dcgan_width", "dcgan_generator", "denoiser_width", "denoiser"}`: e.g. 28 px, DCGAN width 64 →
    a 760 k-parameter generator and a width-32 denoiser of 695 k parameters.
    """
    width = matching_width(image_size, dcgan_width, channels, latent_dim)
    return {
        "dcgan_width": dcgan_width,
        "dcgan_generator": dcgan_generator_parameter_count(image_size, dcgan_width, channels, latent_dim),
        "denoiser_width": width,
        "denoiser": denoiser_parameter_count(image_size, width, channels),
    }
