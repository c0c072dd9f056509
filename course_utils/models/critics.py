"""Critics for paired image-to-image GANs: the PatchGAN discriminator (pix2pix, Isola et al., 2017).

Used in notebook 06 (`06_denoising_gan`, critic on (noisy, clean) pairs) and notebook 07
(`07_segmentation_gan`, critic on (image, mask) pairs). A PatchGAN judges overlapping patches instead of
the whole image: its output is a grid of logits, one per receptive field, so it penalises local structure
(texture, borders) and leaves the global layout to the pixel or supervised loss.

Shapes for `in_channels=4, width=32, layers=3` on 64 px (B, C, H, W):
    (B, 4, 64, 64) → (B, 32, 32, 32) → (B, 64, 16, 16) → (B, 128, 8, 8) → (B, 1, 8, 8) logits
Each output logit sees a 38x38-pixel patch of the input with the default 3 stride-2 layers.

`conv_operator_norm` / `conv_operator_norms` (notebook 08) measure what spectral normalisation does not bound:
the largest singular value of a convolution as the linear map it applies to a whole image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


def _used_weight(conv: nn.Conv2d | nn.Conv3d) -> torch.Tensor:
    """The kernel the layer applies (W / sigma under spectral norm), read in eval mode so no buffer changes."""
    was_training = conv.training
    conv.eval()  # a spectral-norm parametrisation runs a power-iteration step when read in training mode
    try:
        with torch.no_grad():
            return conv.weight.detach().clone()
    finally:
        conv.train(was_training)


def conv_operator_norm(conv: nn.Conv2d | nn.Conv3d, input_shape: tuple[int, ...], iterations: int = 500,
                       seed: int = 0) -> float:
    """Largest singular value of x ↦ conv(x) − bias on inputs `(C, H, W)` (or `(C, D, H, W)`) (notebook 08).

    Power iteration on the operator itself (x ← Aᵀ A x, Aᵀ by autograd), not on the kernel reshaped to a
    matrix (out_channels × C·kh·kw), which is what spectral normalisation divides by: with overlapping windows
    each weight is applied many times and the operator's norm can be larger. Padding, stride, dilation and
    groups are those of the layer; the layer and its buffers are left unchanged. Each iteration can only raise
    the estimate, which converges from below (slowly when the two largest singular values are close).
    """
    if not isinstance(conv, nn.Conv2d | nn.Conv3d):
        raise TypeError(f"conv must be an nn.Conv2d or nn.Conv3d; got {type(conv).__name__}.")
    spatial = len(conv.kernel_size)  # not conv.weight: under spectral norm, reading it in training mode iterates
    if len(input_shape) != spatial + 1 or input_shape[0] != conv.in_channels:
        raise ValueError(f"input_shape must be (C, *spatial) with C = {conv.in_channels} and {spatial} spatial "
                         f"sizes; got {tuple(input_shape)}.")
    weight = _used_weight(conv).double()
    op = F.conv2d if isinstance(conv, nn.Conv2d) else F.conv3d

    def apply(x: torch.Tensor) -> torch.Tensor:
        return op(x, weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)

    rng = torch.Generator().manual_seed(seed)
    x = torch.randn((1, *input_shape), generator=rng, dtype=torch.float64)
    for _ in range(iterations):
        x = (x / x.norm()).requires_grad_(True)
        y = apply(x)
        (x,) = torch.autograd.grad(y, x, grad_outputs=y)  # Aᵀ A x
    x = x / x.norm()
    with torch.no_grad():
        return float(apply(x).norm())


def conv_operator_norms(model: nn.Module, example: torch.Tensor, iterations: int = 500) -> list[float]:
    """`conv_operator_norm` of every Conv2d/Conv3d of `model`, each on the input shape it sees for `example`.

    One forward pass of `example` `(1, C, H, W)` in eval mode (no gradient, no buffer changes) records each
    layer's input shape; the model's mode is restored. Their product bounds the Lipschitz constant of a plain
    chain of these convolutions with 1-Lipschitz activations (LeakyReLU) between them (notebook 08).
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Conv3d)]
    shapes: dict[int, tuple[int, ...]] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        shapes.setdefault(id(module), tuple(args[0].shape[1:]))  # (C, H, W) of the first call

    hooks = [m.register_forward_pre_hook(record) for m in convs]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return [conv_operator_norm(m, shapes[id(m)], iterations) for m in convs if id(m) in shapes]
