"""U-Net (Ronneberger et al., 2015): an encoder-decoder with skip connections, for image-to-image tasks.

Used as the denoiser/generator in notebook 06 (`06_denoising_gan`) and as the segmenter in notebook 07
(`07_segmentation_gan`). Input `(B, in_channels, H, W)` in [-1, 1]; output `(B, out_channels, H, W)`:
class logits for segmentation, or an image (pass `output="tanh"` for [-1, 1], `"residual"` to add a
learned correction to the input, which needs `in_channels == out_channels`). H and W must be divisible
by 2**depth.

Shapes for `width=16, depth=3` on 64 px (B, C, H, W):
    input (B, 1, 64, 64) → enc0 (B, 16, 64, 64) → enc1 (B, 32, 32, 32) → enc2 (B, 64, 16, 16)
    → bottleneck (B, 128, 8, 8) → dec2 (B, 64, 16, 16) → dec1 (B, 32, 32, 32) → dec0 (B, 16, 64, 64)
    → head (B, out_channels, 64, 64)
"""

from __future__ import annotations

import torch
from torch import nn

OUTPUTS = ("logits", "tanh", "residual")


def _conv_block(c_in: int, c_out: int, norm: bool) -> nn.Sequential:
    """Two 3x3 convolutions (+ batch norm) + ReLU; keeps H and W."""
    layers: list[nn.Module] = []
    for c_from in (c_in, c_out):
        layers += [nn.Conv2d(c_from, c_out, 3, padding=1, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net with `depth` down/up stages, `width` channels at full resolution, doubling per stage."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 32, depth: int = 3,
                 output: str = "logits", batch_norm: bool = True) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("width", width),
                            ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}; got {output!r}.")
        if output == "residual" and in_channels != out_channels:
            raise ValueError("output='residual' adds the prediction to the input, so in_channels must equal "
                             f"out_channels; got {in_channels} and {out_channels}.")
        self.in_channels, self.out_channels, self.depth, self.output = in_channels, out_channels, depth, output
        widths = [width * 2**i for i in range(depth + 1)]  # e.g. [16, 32, 64, 128]
        self.encoders = nn.ModuleList(
            [_conv_block(in_channels if i == 0 else widths[i - 1], widths[i], batch_norm) for i in range(depth)]
        )
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _conv_block(widths[depth - 1], widths[depth], batch_norm)
        self.upsamplers = nn.ModuleList(
            [nn.ConvTranspose2d(widths[i + 1], widths[i], kernel_size=2, stride=2) for i in reversed(range(depth))]
        )
        self.decoders = nn.ModuleList(
            [_conv_block(2 * widths[i], widths[i], batch_norm) for i in reversed(range(depth))]
        )
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, in_channels, H, W)` → `(B, out_channels, H, W)`."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images (B, {self.in_channels}, H, W); got shape {tuple(x.shape)}.")
        factor = 2**self.depth
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(f"H and W must be divisible by 2**depth = {factor}; got {tuple(x.shape[-2:])}. "
                             "Pad the images (e.g. course_utils.data.slicing.pad_to_square) or lower depth.")
        skips = []
        h = x
        for encoder in self.encoders:
            h = encoder(h)  # (B, w_i, H / 2^i, W / 2^i)
            skips.append(h)
            h = self.pool(h)
        h = self.bottleneck(h)  # (B, w_depth, H / 2^depth, W / 2^depth)
        for upsample, decoder, skip in zip(self.upsamplers, self.decoders, reversed(skips), strict=True):
            h = decoder(torch.cat([upsample(h), skip], dim=1))  # (B, w_i, H / 2^i, W / 2^i)
        out = self.head(h)  # (B, out_channels, H, W)
        if self.output == "tanh":
            return torch.tanh(out)
        if self.output == "residual":
            return (x + out).clamp(-1.0, 1.0)
        return out
