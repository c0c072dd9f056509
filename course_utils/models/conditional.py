"""Class-conditional DCGAN: a generator G(z, y) and a projection discriminator D(x, y), plus their training steps.

Introduced in notebook 04 (`04_conditional_gan_augmentation`). The networks are notebook 02's DCGAN with a
class label added:

- **Generator**: the label is looked up in a learned embedding table (one vector per class) and concatenated
  to the noise, so `DCGANGenerator(latent_dim + embed_dim)` turns `[z, e(y)]` into an image.
- **Projection discriminator** (Miyato & Koyama, 2018): the DCGAN discriminator's convolutional trunk gives a
  feature map `phi(x)`; the logit is `psi(phi(x)) + <v_y, pool(phi(x))>`: an unconditional "is it real?" term
  plus the inner product of a learned class vector `v_y` with the globally pooled features ("does it look like
  class y?"). Spectral normalisation (default on, batch norm off) keeps this discriminator stable on a few hundred
  images.

Images are float `(B, C, H, W)` in `[-1, 1]`; labels are int64 `(B,)` class indices. `ConditionalGANSteps` plugs
the pair into the course's training loop: `train_gan(generator, discriminator, (images, labels), config,
steps=ConditionalGANSteps(num_classes))`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from course_utils.losses import d_loss_hinge, g_loss_hinge
from course_utils.models.dcgan import DCGANDiscriminator, DCGANGenerator, _check_positive_int
from course_utils.training import GANSteps


def _check_labels(labels: torch.Tensor, batch: int, num_classes: int, who: str) -> torch.Tensor:
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
        self.latent_dim = _check_positive_int(latent_dim, "latent_dim", "100")
        self.num_classes = _check_positive_int(num_classes, "num_classes", "2")
        self.embed_dim = _check_positive_int(embed_dim, "embed_dim", "32")
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
        labels = _check_labels(labels, z.shape[0], self.num_classes, "ConditionalGenerator")
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
        self.num_classes = _check_positive_int(num_classes, "num_classes", "2")
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
        labels = _check_labels(labels, images.shape[0], self.num_classes, "ProjectionDiscriminator")
        features = self.trunk(images)  # (B, F, 7, 7)
        unconditional = self.psi(features).reshape(-1)  # (B,)
        pooled = features.mean(dim=(2, 3))  # (B, F)
        projection = (self.class_vectors(labels).to(pooled.dtype) * pooled).sum(dim=1)  # (B,)
        return unconditional + projection


def snapshot_labels(count: int, num_classes: int) -> torch.Tensor:
    """Labels `(count,)` for sample grids: 0, 1, ..., K-1, 0, 1, ... (a grid with K columns shows one class per column)."""
    return torch.arange(count) % num_classes


class ConditionalGANSteps(GANSteps):
    """d-step / g-step of a class-conditional GAN for `train_gan` (introduced in notebook 04).

    Batches are `(images, labels)`. The fakes of a step get the *same labels* as the real batch, so the generator
    learns the classes in the proportions of the data. Losses are pluggable as in `DCGANSteps`; the default is the
    hinge loss of the projection-discriminator and SN-GAN papers (raw scores, logged as `score_real`/`score_fake`);
    with logit losses such as `d_loss_minimax` pass `outputs_are_logits=True` to log `d_real`/`d_fake` = mean
    D(x). As in `DCGANSteps`, the d-step's fakes are reused by the g-step. Snapshots (`sample`) label the fixed
    noise with `snapshot_labels`.
    """

    def __init__(self, num_classes: int, d_loss: Any = d_loss_hinge, g_loss: Any = g_loss_hinge,
                 outputs_are_logits: bool = False) -> None:
        self.num_classes = _check_positive_int(num_classes, "num_classes", "2")
        if not callable(d_loss) or not callable(g_loss):
            raise TypeError("d_loss and g_loss must be functions such as course_utils.losses.d_loss_hinge.")
        self.d_loss, self.g_loss = d_loss, g_loss
        self.outputs_are_logits = bool(outputs_are_logits)
        self._fake: torch.Tensor | None = None

    def settings(self) -> dict[str, Any]:
        """Options a resumed run must share."""
        return {"type": type(self).__name__, "num_classes": self.num_classes,
                "d_loss": getattr(self.d_loss, "__name__", repr(self.d_loss)),
                "g_loss": getattr(self.g_loss, "__name__", repr(self.g_loss)),
                "outputs_are_logits": self.outputs_are_logits}

    def _unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (B, C, H, W) in [-1, 1], labels (B,) int64) from a batch; a clear error for unlabelled data."""
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            raise ValueError(
                "ConditionalGANSteps needs labelled batches: call train_gan(..., data=(images, labels), ...) "
                "with one integer class label per image."
            )
        images, labels = batch
        return images, _check_labels(labels, images.shape[0], self.num_classes, "ConditionalGANSteps")

    def d_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """One discriminator update on real (image, label) pairs and fakes of the same labels."""
        real, labels = self._unpack(batch)  # (B, C, H, W), (B,)
        z = self.noise(real.shape[0])  # (B, latent_dim)
        with self.autocast():
            self._fake = self.generator(z, labels)  # (B, C, H, W), graph kept for the g-step
            real_out = self.discriminator(real, labels)  # (B,)
            fake_out = self.discriminator(self._fake.detach(), labels)  # (B,)
        loss_d = self.d_loss(real_out, fake_out)
        self.optimise(loss_d, "d")
        real_out, fake_out = real_out.detach().float(), fake_out.detach().float()
        if self.outputs_are_logits:
            return {"loss_d": loss_d.detach(), "d_real": torch.sigmoid(real_out).mean(),
                    "d_fake": torch.sigmoid(fake_out).mean()}
        return {"loss_d": loss_d.detach(), "score_real": real_out.mean(), "score_fake": fake_out.mean()}

    def g_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """One generator update: fakes of the batch's labels pushed towards 'real, of this class'."""
        real, labels = self._unpack(batch)
        fake, self._fake = self._fake, None
        with self.frozen(self.context.discriminator_module), self.autocast():
            if fake is None or fake.shape[0] != real.shape[0]:
                fake = self.generator(self.noise(real.shape[0]), labels)
            fake_out = self.discriminator(fake, labels)  # (B,)
        loss_g = self.g_loss(fake_out)
        self.optimise(loss_g, "g")
        return {"loss_g": loss_g.detach()}

    def sample(self, fixed_noise: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] for the fixed noise, labelled 0, 1, ..., K-1, 0, ... (snapshots)."""
        labels = snapshot_labels(fixed_noise.shape[0], self.num_classes).to(fixed_noise.device)
        return self.context.generator_module(fixed_noise, labels)


@torch.no_grad()
def generate(generator: ConditionalGenerator, labels: torch.Tensor, seed: int = 0,
             batch_size: int = 256) -> torch.Tensor:
    """uint8 images `(N, C, H, W)` (CPU), one per label in `labels` `(N,)`, from noise drawn with `seed` (notebook 04).

    The generator is used in eval mode (batch norm with its running statistics) and left as it was.
    """
    if not isinstance(generator, ConditionalGenerator):
        raise TypeError(f"generator must be a ConditionalGenerator; got {type(generator).__name__}.")
    labels = _check_labels(torch.as_tensor(labels), len(labels), generator.num_classes, "generate")
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(labels.shape[0], generator.latent_dim, generator=rng)  # (N, latent_dim), same on every device
    was_training = generator.training
    generator.eval()
    try:
        chunks = [generator(z[i:i + batch_size].to(device), labels[i:i + batch_size].to(device)).float().cpu()
                  for i in range(0, labels.shape[0], batch_size)]
    finally:
        generator.train(was_training)
    images = torch.cat(chunks) if chunks else torch.empty(0, generator.channels, generator.image_size,
                                                          generator.image_size)
    return images.clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)  # the inverse of to_model_range


__all__ = ["ConditionalGANSteps", "ConditionalGenerator", "ProjectionDiscriminator", "generate", "snapshot_labels"]
