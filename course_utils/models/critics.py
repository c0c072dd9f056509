"""Critics for paired image-to-image GANs: the PatchGAN discriminator (pix2pix, Isola et al., 2017).

Used in notebook 06 (`06_denoising_gan`, critic on (noisy, clean) pairs) and notebook 07
(`07_segmentation_gan`, critic on (image, mask) pairs). A PatchGAN judges overlapping patches instead of
the whole image: its output is a grid of logits, one per receptive field, so it penalises local structure
(texture, borders) and leaves the global layout to the pixel or supervised loss.

Shapes for `in_channels=4, width=32, layers=3` on 64 px (B, C, H, W):
    (B, 4, 64, 64) → (B, 32, 32, 32) → (B, 64, 16, 16) → (B, 128, 8, 8) → (B, 1, 8, 8) logits
Each output logit sees a 38x38-pixel patch of the input with the default 3 stride-2 layers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm


class PatchGANCritic(nn.Module):
    """`layers` stride-2 4x4 convolutions (width doubling, capped at 8x), then a 3x3 conv to one logit per patch."""

    def __init__(self, in_channels: int, width: int = 32, layers: int = 3, spectral_norm: bool = False) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("width", width), ("layers", layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        self.in_channels, self.layers = in_channels, layers
        blocks: list[nn.Module] = []
        c_in = in_channels
        for i in range(layers):
            c_out = width * 2 ** min(i, 3)
            conv = nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=i == 0 or spectral_norm)
            blocks.append(_spectral_norm(conv) if spectral_norm else conv)  # (B, c_out, H / 2^(i+1), W / 2^(i+1))
            if i > 0 and not spectral_norm:
                blocks.append(nn.BatchNorm2d(c_out))
            blocks.append(nn.LeakyReLU(0.2, inplace=True))
            c_in = c_out
        head = nn.Conv2d(c_in, 1, kernel_size=3, padding=1)  # (B, 1, H / 2^layers, W / 2^layers)
        blocks.append(_spectral_norm(head) if spectral_norm else head)
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, in_channels, H, W)` → patch logits `(B, 1, H / 2^layers, W / 2^layers)`."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (B, {self.in_channels}, H, W): the image and its condition stacked as channels; "
                f"got shape {tuple(x.shape)}."
            )
        return self.body(x)
