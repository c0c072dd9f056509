"""Class-conditional DCGAN: a generator G(z, y) and a projection discriminator D(x, y), the networks only.

Introduced in notebook 04 (`04_conditional_gan_augmentation`). The networks are notebook 02's DCGAN with a
class label added:

- **Generator**: the label is looked up in a learned embedding table (one vector per class) and concatenated
  to the noise, so `DCGANGenerator(latent_dim + embed_dim)` turns `[z, e(y)]` into an image.
- **Projection discriminator** (Miyato & Koyama, 2018): the DCGAN discriminator's convolutional trunk gives a
  feature map `phi(x)`; the logit is `psi(phi(x)) + <v_y, pool(phi(x))>`: an unconditional "is it real?" term
  plus the inner product of a learned class vector `v_y` with the globally pooled features ("does it look like
  class y?"). Spectral normalisation (default on, batch norm off) keeps this discriminator stable on a few hundred
  images.

Images are float `(B, C, H, W)` in `[-1, 1]`; labels are int64 `(B,)` class indices. The training step is
`course_utils.training.steps.ConditionalGANSteps`: `train_gan(generator, discriminator, (images, labels),
config, steps=ConditionalGANSteps(num_classes))`; sampling is `course_utils.inference.generate_conditional`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from course_utils.checks import require_int
from course_utils.models.dcgan import DCGANDiscriminator, DCGANGenerator


def check_labels(labels: torch.Tensor, batch: int, num_classes: int, who: str) -> torch.Tensor:
    """`labels` as int64 `(B,)` if they are class indices for a batch of `batch` (range checked on CPU), else ValueError."""
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        kind = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"{who} needs integer class labels (B,) (torch.long); got {kind}.")
    labels = labels.reshape(-1)
    if labels.shape[0] != batch:
        raise ValueError(f"{who} got {batch} inputs but {labels.shape[0]} labels; give one label per image.")
    # the range check reads values; on a GPU that would wait for the device every step, so it runs on CPU only
    if labels.device.type == "cpu" and labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"{who} was built for {num_classes} classes (labels 0..{num_classes - 1}); got labels in "
            f"[{int(labels.min())}, {int(labels.max())}]."
        )
    return labels.long()


class ConditionalGenerator(nn.Module):
    """Noise `(B, latent_dim)` and labels `(B,)` → images `(B, channels, image_size, image_size)` in [-1, 1].

    Introduced in notebook 04: a DCGAN generator fed `[z, embedding(y)]` (`embed_dim` numbers per class).
    """

    def __init__(self, latent_dim: int = 100, num_classes: int = 2, image_size: int = 28, channels: int = 1,
                 base_width: int = 64, embed_dim: int = 32) -> None:
        super().__init__()
        self.latent_dim = require_int(latent_dim, "latent_dim", example="100")
        self.num_classes = require_int(num_classes, "num_classes", example="2")
        self.embed_dim = require_int(embed_dim, "embed_dim", example="32")
        self.embedding = nn.Embedding(num_classes, embed_dim)  # (num_classes, embed_dim)
        self.body = DCGANGenerator(latent_dim + embed_dim, image_size, channels, base_width)
        self.image_size, self.channels, self.base_width = image_size, channels, base_width
        nn.init.normal_(self.embedding.weight, 0.0, 1.0)  # on the scale of the N(0, 1) noise

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] `(B, C, H, W)` of classes `labels` `(B,)` from noise `(B, latent_dim)`."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"ConditionalGenerator expects noise of shape (B, {self.latent_dim}); got {tuple(z.shape)}. "
                "Draw it with torch.randn(batch_size, latent_dim)."
            )
        labels = check_labels(labels, z.shape[0], self.num_classes, "ConditionalGenerator")
        code = torch.cat([z, self.embedding(labels).to(z.dtype)], dim=1)  # (B, latent_dim + embed_dim)
        return self.body(code)  # (B, C, H, W)


class ProjectionDiscriminator(nn.Module):
    """Images `(B, C, H, W)` in [-1, 1] and labels `(B,)` → one logit per image `(B,)` (introduced in notebook 04).

    logit = psi(phi(x)) + <v_y, mean over positions of phi(x)>, with phi the DCGAN discriminator's trunk,
    psi its last convolution and v_y a learned vector per class (Miyato & Koyama, 2018).
    """

    def __init__(self, num_classes: int = 2, image_size: int = 28, channels: int = 1, base_width: int = 64,
                 spectral_norm: bool = True) -> None:
        super().__init__()
        self.num_classes = require_int(num_classes, "num_classes", example="2")
        dcgan = DCGANDiscriminator(image_size, channels, base_width, spectral_norm=spectral_norm)
        self.trunk = dcgan.net[:-1]  # every layer but the last conv: (B, C, H, W) -> (B, F, 7, 7) at 28 px
        self.psi = dcgan.net[-1]  # the unconditional head: (B, F, 7, 7) -> (B, 1, 1, 1)
        features = self.psi.in_channels
        self.class_vectors = nn.Embedding(num_classes, features)  # v_y: (num_classes, F)
        nn.init.normal_(self.class_vectors.weight, 0.0, 0.02)
        if spectral_norm:
            _spectral_norm(self.class_vectors)
        self.image_size, self.channels, self.base_width = image_size, channels, base_width
        self.spectral_norm = bool(spectral_norm)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logits `(B,)` for images `(B, C, H, W)` of claimed classes `labels` `(B,)`; D(x, y) = sigmoid(logit)."""
        expected = (self.channels, self.image_size, self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"ProjectionDiscriminator expects images of shape (B, {', '.join(map(str, expected))}); got "
                f"{tuple(images.shape)}."
            )
        labels = check_labels(labels, images.shape[0], self.num_classes, "ProjectionDiscriminator")
        features = self.trunk(images)  # (B, F, 7, 7)
        unconditional = self.psi(features).reshape(-1)  # (B,)
        pooled = features.mean(dim=(2, 3))  # (B, F)
        projection = (self.class_vectors(labels).to(pooled.dtype) * pooled).sum(dim=1)  # (B,)
        return unconditional + projection


def snapshot_labels(count: int, num_classes: int) -> torch.Tensor:
    """Labels `(count,)` for sample grids: 0, 1, ..., K-1, 0, 1, ... (a grid with K columns shows one class per column)."""
    return torch.arange(count) % num_classes


__all__ = ["ConditionalGenerator", "ProjectionDiscriminator", "check_labels", "snapshot_labels"]
