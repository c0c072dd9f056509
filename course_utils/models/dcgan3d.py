"""A 3-D DCGAN for small volumes (MedMNIST 3-D sets: 28³ or 64³ voxels).

Introduced in notebook 09 (`09_open_challenges`, "3-D"). The 2-D DCGAN of
notebook 02 with every layer one dimension up: `ConvTranspose3d` / `Conv3d`, `BatchNorm3d`.

- 28³: the generator grows 1 → 7 → 14 → 28 voxels per side, the discriminator shrinks 28 → 14 → 7 → 1.
- 32³ and 64³: 1 → 4 → 8 → … → size.

Volumes are float `(B, C, D, H, W)` in `[-1, 1]`; the discriminator returns one logit (or raw score) per
volume, `(B,)`. A voxel grid has size³ values, so compute and memory grow with the cube of the side: the
`smoke`/`cpu` profiles use 28³ and narrow layers, the `gpu` profile 64³.

Sparse binary masks (AdrenalMNIST3D: about 1.6 % foreground): a freshly initialised generator outputs about
0 everywhere, i.e. a grey volume that the midpoint threshold calls half foreground, and the first thing the
game has to teach it is "almost everything is background". `output_bias` starts the generator there: the
bias of its last layer before the tanh, e.g. `prior_output_bias(0.016)` ≈ -2.06, so every voxel starts at the
data's foreground fraction read as a probability, (tanh + 1) / 2 (as RetinaNet's prior initialisation of
its classification bias). See benchmarks/volume3d_recipe.py for what it changes.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from course_utils.checks import require_int
from course_utils.models.dcgan import (
    SMALL_SIZE,
    discriminator_layers,
    generator_layers,
    init_dcgan_weights,
)

SUPPORTED_VOLUME_SIZES: tuple[int, ...] = (SMALL_SIZE, 32, 64)


def prior_output_bias(foreground_fraction: float) -> float:
    """The pre-tanh bias atanh(2f - 1) at which (tanh + 1) / 2 equals the foreground fraction f, in (0, 1).

    For `DCGANGenerator3D(output_bias=...)`: AdrenalMNIST3D's f ≈ 0.016 gives ≈ -2.06 (tanh ≈ -0.97).
    """
    if isinstance(foreground_fraction, bool) or not isinstance(foreground_fraction, int | float) or not (
            0.0 < foreground_fraction < 1.0):
        raise ValueError(f"foreground_fraction must be a number strictly between 0 and 1 (e.g. 0.016, the "
                         f"share of foreground voxels of the training masks); got {foreground_fraction!r}.")
    return math.atanh(2.0 * float(foreground_fraction) - 1.0)


def _check_volume_size(volume_size: object) -> int:
    """`volume_size` if the 3-D DCGAN can produce it, else a ValueError listing the sizes."""
    if isinstance(volume_size, bool) or not isinstance(volume_size, int) or volume_size not in SUPPORTED_VOLUME_SIZES:
        raise ValueError(
            f"volume_size must be one of {', '.join(map(str, SUPPORTED_VOLUME_SIZES))} (cubic volumes); got "
            f"{volume_size!r}. MedMNIST 3-D sets come at 28 and 64 voxels per side."
        )
    return volume_size


class DCGANGenerator3D(nn.Module):
    """Noise `(B, latent_dim)` → volumes `(B, channels, S, S, S)` in [-1, 1] (introduced in notebook 09).

    `output_bias` (default 0, DCGAN's initialisation): the initial bias of the last layer, before the tanh;
    for sparse masks use `prior_output_bias(foreground_fraction)` (see the module docstring).
    """

    def __init__(self, latent_dim: int = 64, volume_size: int = 28, channels: int = 1, base_width: int = 16,
                 output_bias: float = 0.0) -> None:
        super().__init__()
        self.latent_dim = require_int(latent_dim, "latent_dim", example="64")
        self.volume_size = _check_volume_size(volume_size)
        self.channels = require_int(channels, "channels", example="1")
        self.base_width = require_int(base_width, "base_width", example="16")
        if isinstance(output_bias, bool) or not isinstance(output_bias, int | float) or not math.isfinite(
                output_bias):
            raise ValueError(f"output_bias must be a finite number (the last layer's bias before tanh, e.g. "
                             f"prior_output_bias(0.016) ≈ -2.06); got {output_bias!r}.")
        self.output_bias = float(output_bias)
        self.net = nn.Sequential(*generator_layers(latent_dim, volume_size, channels, base_width, dims=3))
        self.apply(init_dcgan_weights)
        last = self.net[-2]  # the last ConvTranspose3d (before the tanh)
        with torch.no_grad():
            last.bias.fill_(self.output_bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Volumes `(B, C, S, S, S)` in [-1, 1] from noise `(B, latent_dim)` or `(B, latent_dim, 1, 1, 1)`."""
        if z.dim() == 2:
            z = z[:, :, None, None, None]  # (B, latent_dim) -> (B, latent_dim, 1, 1, 1)
        if z.dim() != 5 or z.shape[1] != self.latent_dim or z.shape[2:] != (1, 1, 1):
            raise ValueError(
                f"DCGANGenerator3D expects noise of shape (B, {self.latent_dim}) or (B, {self.latent_dim}, 1, 1, 1); "
                f"got {tuple(z.shape)}. Draw it with torch.randn(batch_size, latent_dim)."
            )
        return self.net(z)


class DCGANDiscriminator3D(nn.Module):
    """Volumes `(B, channels, S, S, S)` in [-1, 1] → one logit per volume `(B,)` (introduced in notebook 09).

    `spectral_norm=True` wraps every convolution; `batch_norm` defaults to True without it and False with it.
    """

    def __init__(self, volume_size: int = 28, channels: int = 1, base_width: int = 16,
                 spectral_norm: bool = False, batch_norm: bool | None = None) -> None:
        super().__init__()
        self.volume_size = _check_volume_size(volume_size)
        self.channels = require_int(channels, "channels", example="1")
        self.base_width = require_int(base_width, "base_width", example="16")
        self.spectral_norm = bool(spectral_norm)
        self.batch_norm = (not spectral_norm) if batch_norm is None else bool(batch_norm)
        layers, convs = discriminator_layers(volume_size, channels, base_width, self.batch_norm, dims=3)
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)
        if self.spectral_norm:
            for conv in convs:
                _spectral_norm(conv)

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        """Logits `(B,)` for volumes `(B, C, S, S, S)` in [-1, 1]."""
        expected = (self.channels, *([self.volume_size] * 3))
        if volumes.dim() != 5 or tuple(volumes.shape[1:]) != expected:
            raise ValueError(
                f"DCGANDiscriminator3D expects volumes of shape (B, {', '.join(map(str, expected))}); got "
                f"{tuple(volumes.shape)}. Add the channel axis with `volumes[:, None]` for (B, D, H, W) data."
            )
        return self.net(volumes).reshape(-1)  # (B, 1, 1, 1, 1) -> (B,)


__all__ = ["SUPPORTED_VOLUME_SIZES", "DCGANDiscriminator3D", "DCGANGenerator3D", "prior_output_bias"]
