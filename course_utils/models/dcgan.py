"""DCGAN generator and discriminator for square images of 28 px or 32–256 px (powers of two).

Introduced in notebook 02 (`02_dcgan_medmnist`, "DCGAN architecture"), after Radford et al. (2016):
strided (transposed) convolutions instead of pooling, batch norm, ReLU in the generator and
LeakyReLU(0.2) in the discriminator, tanh output, weights drawn from N(0, 0.02²) (standard deviation 0.02).

- 28 px (MedMNIST): the generator grows 1 → 7 → 14 → 28, the discriminator shrinks 28 → 14 → 7 → 1.
- 32, 64, 128, 256 px: the generator grows 1 → 4 → 8 → … → size, doubling each layer; the
  discriminator mirrors it.

Images are float `(B, C, H, W)` in `[-1, 1]` (the generator's tanh range). The discriminator returns
one **logit** per image, `(B,)`, not a probability: D(x) = sigmoid(logit). The losses in
`course_utils.losses` take logits because log-sigmoid computed from a logit is numerically stable.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from course_utils.checks import require_int

SMALL_SIZE = 28  # MedMNIST's native size: a 7 -> 14 -> 28 stack
POWER_OF_TWO_SIZES: tuple[int, ...] = (32, 64, 128, 256)  # a 4 -> 8 -> ... -> size stack
SUPPORTED_SIZES: tuple[int, ...] = (SMALL_SIZE, *POWER_OF_TWO_SIZES)
INIT_STD = 0.02  # DCGAN's weight initialisation: N(0, 0.02²), i.e. standard deviation 0.02
LEAKY_SLOPE = 0.2  # DCGAN's LeakyReLU slope in the discriminator


def _check_image_size(image_size: object) -> int:
    """`image_size` if a DCGAN of this module can produce it, else a ValueError listing the sizes."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size not in SUPPORTED_SIZES:
        raise ValueError(
            f"image_size must be one of {', '.join(map(str, SUPPORTED_SIZES))} (square images); got "
            f"{image_size!r}. Use 28 for MedMNIST's native size or a power of two from 32 to 256 (64 and 128 "
            "are the MedMNIST+ sizes); resize other images first (e.g. torch.nn.functional.interpolate)."
        )
    return image_size


def _stage_widths(image_size: int, base_width: int) -> list[int]:
    """Channel widths from the smallest feature map (7 or 4 px) to the last hidden one, halving each stage.

    28 px: [2w, w] at 7 and 14 px; 64 px: [8w, 4w, 2w, w] at 4, 8, 16, 32 px.
    """
    if image_size == SMALL_SIZE:
        stages = 2  # 7 -> 14 -> (28 is the output layer)
    else:
        stages = image_size.bit_length() - 3  # log2(size / 4): 64 px -> 4 stages at 4, 8, 16, 32 px
    return [base_width * 2 ** (stages - 1 - i) for i in range(stages)]


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation for one layer: conv/linear weights N(0, 0.02²), batch-norm weights N(1, 0.02²), biases 0.

    Use it with `model.apply(init_dcgan_weights)`. Introduced in notebook 02.
    """
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Conv3d | nn.ConvTranspose3d):
        nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm3d):  # (3-D layers: the volume GAN of notebook 09)
        nn.init.normal_(module.weight, mean=1.0, std=INIT_STD)
        nn.init.zeros_(module.bias)


_LAYER_TYPES = {  # (transposed convolution, convolution, batch norm) for 2-D images and 3-D volumes
    2: (nn.ConvTranspose2d, nn.Conv2d, nn.BatchNorm2d),
    3: (nn.ConvTranspose3d, nn.Conv3d, nn.BatchNorm3d),
}


def generator_layers(latent_dim: int, size: int, channels: int, base_width: int, dims: int = 2) -> list[nn.Module]:
    """The DCGAN generator's layers for `dims`-D data of side `size` (notebook 02; 3-D: notebook 09).

    Shapes for 2-D (3-D adds one more spatial axis of the same length): (B, latent_dim, 1, 1) -> (B, w0, 7, 7)
    for 28 px or (B, w0, 4, 4) otherwise, doubling the side each stage, -> (B, channels, size, size) in [-1, 1].
    """
    conv_t, _, norm = _LAYER_TYPES[dims]
    widths = _stage_widths(size, base_width)
    first_kernel = 7 if size == SMALL_SIZE else 4
    layers: list[nn.Module] = [
        conv_t(latent_dim, widths[0], kernel_size=first_kernel, stride=1, padding=0, bias=False),
        norm(widths[0]),
        nn.ReLU(inplace=True),
    ]
    for in_width, out_width in zip(widths[:-1], widths[1:], strict=True):
        # (B, in_width, s, s) -> (B, out_width, 2s, 2s)
        layers += [
            conv_t(in_width, out_width, kernel_size=4, stride=2, padding=1, bias=False),
            norm(out_width),
            nn.ReLU(inplace=True),
        ]
    # (B, widths[-1], size/2, size/2) -> (B, channels, size, size), squashed into [-1, 1]
    layers += [conv_t(widths[-1], channels, kernel_size=4, stride=2, padding=1), nn.Tanh()]
    return layers


def discriminator_layers(size: int, channels: int, base_width: int, batch_norm: bool,
                         dims: int = 2) -> tuple[list[nn.Module], list[nn.Module]]:
    """(layers, their convolutions) of the DCGAN discriminator for `dims`-D data (notebook 02; 3-D: notebook 09).

    (B, channels, size, size) -> halving the side each stage -> (B, 1, 1, 1): one logit per image.
    """
    _, conv_type, norm = _LAYER_TYPES[dims]
    widths = _stage_widths(size, base_width)[::-1]  # smallest width at the largest feature map
    last_kernel = 7 if size == SMALL_SIZE else 4
    convs: list[nn.Module] = []
    layers: list[nn.Module] = []
    in_width = channels
    for index, out_width in enumerate(widths):
        # (B, in_width, s, s) -> (B, out_width, s/2, s/2); no batch norm on the first layer (DCGAN)
        use_norm = batch_norm and index > 0
        conv = conv_type(in_width, out_width, kernel_size=4, stride=2, padding=1, bias=not use_norm)
        convs.append(conv)
        layers += [conv, *([norm(out_width)] if use_norm else []), nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
        in_width = out_width
    # (B, widths[-1], 7 or 4, 7 or 4) -> (B, 1, 1, 1)
    final = conv_type(in_width, 1, kernel_size=last_kernel, stride=1, padding=0)
    convs.append(final)
    layers.append(final)
    return layers, convs


class DCGANGenerator(nn.Module):
    """Noise `(B, latent_dim)` → images `(B, channels, image_size, image_size)` in [-1, 1] (tanh).

    Introduced in notebook 02. `base_width` is the channel count of the last hidden layer; each earlier
    (smaller) layer has twice as many.
    """

    def __init__(self, latent_dim: int = 100, image_size: int = 28, channels: int = 1, base_width: int = 64) -> None:
        super().__init__()
        self.latent_dim = require_int(latent_dim, "latent_dim", example="100")
        self.image_size = _check_image_size(image_size)
        self.channels = require_int(channels, "channels", example="1 for grey-scale, 3 for RGB")
        self.base_width = require_int(base_width, "base_width", example="64")
        self.net = nn.Sequential(*generator_layers(latent_dim, image_size, channels, base_width))
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], `(B, C, H, W)`, from noise `(B, latent_dim)` or `(B, latent_dim, 1, 1)`."""
        if z.dim() == 2:
            z = z[:, :, None, None]  # (B, latent_dim) -> (B, latent_dim, 1, 1)
        if z.dim() != 4 or z.shape[1] != self.latent_dim or z.shape[2:] != (1, 1):
            raise ValueError(
                f"DCGANGenerator expects noise of shape (B, {self.latent_dim}) or (B, {self.latent_dim}, 1, 1); "
                f"got {tuple(z.shape)}. Draw it with torch.randn(batch_size, latent_dim)."
            )
        return self.net(z)  # (B, channels, image_size, image_size)


class DCGANDiscriminator(nn.Module):
    """Images `(B, channels, image_size, image_size)` in [-1, 1] → one logit per image `(B,)`.

    Introduced in notebook 02; `spectral_norm=True` (notebook 08) wraps every convolution in spectral
    normalisation. `batch_norm` defaults to True without spectral norm and False with it; turn it off for
    a WGAN-GP critic as well (the gradient penalty is per sample, batch norm mixes samples).
    """

    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        base_width: int = 64,
        spectral_norm: bool = False,
        batch_norm: bool | None = None,
    ) -> None:
        super().__init__()
        self.image_size = _check_image_size(image_size)
        self.channels = require_int(channels, "channels", example="1 for grey-scale, 3 for RGB")
        self.base_width = require_int(base_width, "base_width", example="64")
        self.spectral_norm = bool(spectral_norm)
        self.batch_norm = (not spectral_norm) if batch_norm is None else bool(batch_norm)
        layers, convs = discriminator_layers(image_size, channels, base_width, self.batch_norm)
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)
        if self.spectral_norm:
            for conv in convs:  # after init: spectral norm rescales whatever weights it wraps
                _spectral_norm(conv)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits `(B,)` for images `(B, C, H, W)` in [-1, 1]; D(x) = sigmoid(logit)."""
        expected = (self.channels, self.image_size, self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"DCGANDiscriminator expects images of shape (B, {', '.join(map(str, expected))}); got "
                f"{tuple(images.shape)}. Check the image size and channels it was built with, and add a "
                "batch dimension to a single image (`image[None]`)."
            )
        return self.net(images).reshape(-1)  # (B, 1, 1, 1) -> (B,)
