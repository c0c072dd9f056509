"""SRResNet generator and SRGAN discriminator (Ledig et al., 2017), sized for small grey-scale slices.

Introduced in notebook 05 (`05_srgan_mri_super_resolution`).

The generator works at the **low** resolution and only upsamples at the end, which keeps it cheap: a
9x9 head convolution, `num_blocks` residual blocks (conv-BN-PReLU-conv-BN plus the identity), a
convolution whose output is added to the head's (a long skip), then one upsampling stage per factor of 2:
a convolution to 4x the channels and a **pixel shuffle** (`nn.PixelShuffle(2)`, sub-pixel convolution), which
rearranges `(B, 4C, h, w)` into `(B, C, 2h, 2w)`. Pixel shuffle avoids the checkerboard artefacts of
transposed convolutions only when its convolution starts with **ICNR** initialisation (Aitken et al., 2017):
the four sub-pixel filters of each output channel start equal, so at initialisation the stage is a
nearest-neighbour upsampling followed by a convolution, and checkerboards appear only if training makes
them. `icnr_` does that here; a random initialisation starts with a checkerboard. A 9x9 convolution and tanh give the image in [-1, 1]. The generator also adds
the bicubic upsampling of its input (`residual=True`), so it only has to learn the missing detail.

Shapes for `scale=4, width=32` on a 32 px input (B, C, H, W):
    (B, 1, 32, 32) → head (B, 32, 32, 32) → blocks (B, 32, 32, 32) → up x2 (B, 32, 64, 64)
    → up x2 (B, 32, 128, 128) → tail (B, 1, 128, 128)

The discriminator is SRGAN's: strided 3x3 convolutions with LeakyReLU (and batch norm) doubling the width
every two layers, global average pooling, and a small dense head giving one logit per image `(B,)`; the
pooling lets it take any image size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.checks import require_int


def icnr_(conv: nn.Conv2d, upscale: int = 2) -> None:
    """ICNR initialisation in place: the `upscale**2` sub-pixel filters of every output channel start equal.

    `nn.PixelShuffle(r)` sends input channel `c r^2 + k` to sub-pixel `k` of output channel `c`; repeating one
    Kaiming-initialised filter (and bias) `r^2` times along the output channels makes all sub-pixels equal.
    """
    out_channels = conv.out_channels
    if out_channels % upscale**2:
        raise ValueError(f"ICNR needs out_channels divisible by upscale^2 = {upscale**2}; got {out_channels}.")
    with torch.no_grad():
        base = torch.empty(out_channels // upscale**2, *conv.weight.shape[1:])
        nn.init.kaiming_normal_(base, a=0.25, nonlinearity="leaky_relu")  # PReLU starts with slope 0.25
        conv.weight.copy_(base.repeat_interleave(upscale**2, dim=0))
        if conv.bias is not None:
            conv.bias.copy_(torch.zeros(out_channels // upscale**2).repeat_interleave(upscale**2))


class ResidualBlock(nn.Module):
    """conv3x3-BN-PReLU-conv3x3-BN plus the identity; keeps `(B, C, H, W)`."""

    def __init__(self, channels: int, batch_norm: bool = True) -> None:
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(channels)) if batch_norm else nn.Identity
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm), norm(), nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm), norm(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x + body(x)`."""
        return x + self.body(x)


class SRResNetGenerator(nn.Module):
    """SRResNet: low-resolution `(B, C, h, w)` in [-1, 1] → `(B, C, scale h, scale w)` in [-1, 1]."""

    def __init__(self, scale: int = 4, channels: int = 1, width: int = 64, num_blocks: int = 16,
                 batch_norm: bool = True, residual: bool = True) -> None:
        super().__init__()
        require_int(width, "width")
        require_int(channels, "channels")
        require_int(num_blocks, "num_blocks")
        if scale not in (2, 4, 8):
            raise ValueError(f"scale must be 2, 4 or 8 (one pixel-shuffle stage per factor 2); got {scale!r}.")
        self.scale, self.channels, self.residual = scale, channels, residual
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, padding=4), nn.PReLU(width))  # (B, w, h, w)
        self.blocks = nn.Sequential(*[ResidualBlock(width, batch_norm) for _ in range(num_blocks)])
        self.fuse = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=not batch_norm),
                                  nn.BatchNorm2d(width) if batch_norm else nn.Identity())
        stages: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            expand = nn.Conv2d(width, 4 * width, 3, padding=1)
            icnr_(expand)  # no checkerboard at the start
            stages += [expand, nn.PixelShuffle(2), nn.PReLU(width)]  # x2 each
        self.upsample = nn.Sequential(*stages)
        self.tail = nn.Conv2d(width, channels, 9, padding=4)
        if residual:  # start as plain bicubic interpolation; training adds the detail
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C, h, w)` → `(B, C, scale h, scale w)`."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected low-resolution images (B, {self.channels}, h, w); got {tuple(x.shape)}.")
        head = self.head(x)  # (B, width, h, w)
        features = head + self.fuse(self.blocks(head))  # long skip over the residual blocks
        out = self.tail(self.upsample(features))  # (B, C, scale h, scale w)
        if self.residual:  # learn the correction to bicubic interpolation
            base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
            return torch.tanh(torch.atanh(base.clamp(-0.999, 0.999)) + out)
        return torch.tanh(out)


class SRGANDiscriminator(nn.Module):
    """SRGAN's critic: `(B, C, H, W)` in [-1, 1] → one logit per image `(B,)` (any H, W >= 2**(num_stages))."""

    def __init__(self, channels: int = 1, width: int = 32, num_stages: int = 4, batch_norm: bool = True) -> None:
        super().__init__()
        require_int(channels, "channels")
        require_int(width, "width")
        require_int(num_stages, "num_stages")
        self.channels = channels
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        c_in = width
        for stage in range(num_stages):
            c_out = width * 2 ** min(stage, 3)
            for stride in ((2, 1) if stage else (2,)):  # stage 0: its first conv is the input layer above
                layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=not batch_norm)]
                if batch_norm:
                    layers.append(nn.BatchNorm2d(c_out))
                layers.append(nn.LeakyReLU(0.2, inplace=True))
                c_in = c_out
        self.features = nn.Sequential(*layers)  # (B, c_in, H / 2^num_stages, W / 2^num_stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 2 * c_in),
                                  nn.LeakyReLU(0.2, inplace=True), nn.Linear(2 * c_in, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` → logits `(B,)`."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected images (B, {self.channels}, H, W); got {tuple(x.shape)}.")
        return self.head(self.features(x)).squeeze(1)
