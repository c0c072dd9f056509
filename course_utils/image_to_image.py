"""Paired image-to-image training with `train_gan`: pixel-loss pretraining, SRGAN and pix2pix-style steps.

Introduced in notebook 05 (`05_srgan_mri_super_resolution`); notebook 06 (`06_denoising_gan`) reuses it.

Data are `(inputs, targets)` tuples of float tensors in [-1, 1]: low-resolution and high-resolution images
for super-resolution, noisy and clean images for denoising. The generator maps an input batch to an output
shaped like the target batch. `PairedSteps` composes the generator's loss from three parts:

    L_G = pixel_weight · pixel(G(x), y) + feature_weight · feature(G(x), y) + adversarial_weight · L_adv

- **pixel** (L1 or MSE): alone, it trains SRResNet or an "L1 U-Net" (`adversarial_weight=0`; the critic is
  then never called, so `train_pixel_model` passes a placeholder);
- **feature** (perceptual, `course_utils.losses.FeatureLoss`): distance between feature maps (SRGAN);
- **adversarial**: the non-saturating loss against a critic that sees the target or the output
  (`conditional=False`, SRGAN's discriminator) or the input and the target/output stacked as channels
  (`conditional=True`, pix2pix's PatchGAN: it judges whether the output fits *this* input).

The d-step (only with `adversarial_weight > 0`) trains the critic with the minimax loss on its logits (one
per image, or one per patch). As in `DCGANSteps`, the d-step's generator output is reused by the g-step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.losses import PIXEL_LOSSES, d_loss_minimax, g_loss_non_saturating, pixel_loss
from course_utils.training import GANSteps, TrainConfig, TrainingResult, train_gan


class PairedSteps(GANSteps):
    """Generator + optional critic on `(input, target)` batches (see the module docstring; notebooks 05 and 06).

    Logs `loss_pixel` (and `loss_feature`, `loss_adv`, `loss_d`, `d_real`, `d_fake` when those parts are on).
    """

    def __init__(self, pixel: str = "l1", pixel_weight: float = 1.0, adversarial_weight: float = 0.0,
                 feature_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 feature_weight: float = 0.0, conditional: bool = False) -> None:
        if pixel not in PIXEL_LOSSES:
            raise ValueError(f"pixel must be one of {PIXEL_LOSSES}; got {pixel!r}.")
        for name, value in (("pixel_weight", pixel_weight), ("adversarial_weight", adversarial_weight),
                            ("feature_weight", feature_weight)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0; got {value!r}.")
        if feature_weight > 0 and feature_loss is None:
            raise ValueError("feature_weight > 0 needs feature_loss, e.g. FeatureLoss(network, name) from course_utils.losses.")
        self.pixel, self.pixel_weight = pixel, float(pixel_weight)
        self.adversarial_weight, self.feature_weight = float(adversarial_weight), float(feature_weight)
        self.feature_loss, self.conditional = feature_loss, bool(conditional)
        self._output: torch.Tensor | None = None  # the d-step's generator output, with its graph

    @property
    def adversarial(self) -> bool:
        """True when the critic takes part."""
        return self.adversarial_weight > 0

    def settings(self) -> dict[str, Any]:
        """Options a resumed run must share."""
        return {"type": type(self).__name__, "pixel": self.pixel, "pixel_weight": self.pixel_weight,
                "adversarial_weight": self.adversarial_weight, "feature_weight": self.feature_weight,
                "feature_loss": getattr(self.feature_loss, "name", None), "conditional": self.conditional}

    def make_fixed_noise(self, config: TrainConfig, device: torch.device) -> torch.Tensor:
        """Not used: the snapshots come from fixed *inputs* (pass `fixed_noise=` a few inputs in [-1, 1])."""
        raise ValueError("PairedSteps takes its snapshots from inputs: call train_gan(..., fixed_noise=inputs[:8]) "
                         "with a few input images (n, C, h, w) in [-1, 1].")

    def sample(self, fixed_noise: torch.Tensor) -> torch.Tensor:
        """Snapshot: the generator's outputs for the fixed inputs."""
        return self.context.generator_module(fixed_noise)

    def prepare_batch(self, batch: Any) -> Any:
        """Both tensors of the pair in the run's image format."""
        inputs, targets = batch
        return self._prepare_images(inputs), self._prepare_images(targets)

    def _critic_input(self, inputs: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """What the critic judges: the image, or (conditional) the input resized to it and the image as channels."""
        if not self.conditional:
            return images
        if inputs.shape[-2:] != images.shape[-2:]:
            inputs = F.interpolate(inputs, size=images.shape[-2:], mode="nearest")
        return torch.cat([inputs, images], dim=1)  # (B, C_in + C, H, W)

    def d_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Critic update on real pairs vs generated ones; nothing without the critic."""
        if not self.adversarial:
            return {}
        inputs, targets = batch  # (B, C, h, w), (B, C, H, W) in [-1, 1]
        with self.autocast():
            self._output = self.generator(inputs)  # graph kept for the g-step
            real_out = self.discriminator(self._critic_input(inputs, targets))  # (B,) or (B, 1, h', w') logits
            fake_out = self.discriminator(self._critic_input(inputs, self._output.detach()))
        loss_d = d_loss_minimax(real_out, fake_out)
        self.optimise(loss_d, "d")
        return {"loss_d": loss_d.detach(), "d_real": torch.sigmoid(real_out.detach().float()).mean(),
                "d_fake": torch.sigmoid(fake_out.detach().float()).mean()}

    def g_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Generator update: weighted pixel + feature + adversarial loss."""
        inputs, targets = batch
        output, self._output = self._output, None
        with self.autocast():
            if output is None:
                output = self.generator(inputs)  # (B, C, H, W)
            loss_pixel = pixel_loss(output, targets, self.pixel)
            loss = self.pixel_weight * loss_pixel
            logs = {"loss_pixel": loss_pixel.detach()}
            if self.feature_weight > 0:
                loss_feature = self.feature_loss(output, targets)
                loss = loss + self.feature_weight * loss_feature
                logs["loss_feature"] = loss_feature.detach()
            if self.adversarial:
                with self.frozen(self.context.discriminator_module):
                    fake_out = self.discriminator(self._critic_input(inputs, output))
                loss_adv = g_loss_non_saturating(fake_out)
                loss = loss + self.adversarial_weight * loss_adv
                logs["loss_adv"] = loss_adv.detach()
        self.optimise(loss, "g")
        return logs


class _NoCritic(nn.Module):
    """A placeholder critic for pixel-only training (`train_gan` builds an optimiser for it; it is never called)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Never called by pixel-only steps."""
        raise RuntimeError("pixel-only training has no critic; use PairedSteps(adversarial_weight > 0) with a real one.")


def train_pixel_model(generator: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, config: TrainConfig,
                      pixel: str = "l1", checkpoint_dir: str | Path | None = None,
                      fixed_inputs: torch.Tensor | None = None, progress: bool = True) -> TrainingResult:
    """Supervised pixel-loss training (SRResNet, the L1 U-Net, an autoencoder) in `train_gan`'s loop (notebook 05).

    `inputs`, `targets`: float `(N, C, ...)` in [-1, 1]. Same checkpoints, resume and progress bar as the GANs;
    `config.lr_g` is the learning rate (`lr_d` is unused). The result's `generator` is the trained model.
    """
    fixed = inputs[: config.num_samples] if fixed_inputs is None else fixed_inputs
    return train_gan(generator, _NoCritic().to(next(generator.parameters()).device), (inputs, targets), config,
                     steps=PairedSteps(pixel=pixel), checkpoint_dir=checkpoint_dir, fixed_noise=fixed, progress=progress)


@torch.no_grad()
def predict_images(generator: nn.Module, inputs: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """The generator's outputs for inputs in [0, 1], in [0, 1] on the CPU (eval mode, in batches; notebooks 05, 06)."""
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    outputs = []
    try:
        for start in range(0, inputs.shape[0], batch_size):
            x = inputs[start:start + batch_size].to(device) * 2 - 1  # (b, C, h, w) in [-1, 1]
            outputs.append(((generator(x).float() + 1) / 2).clamp(0, 1).cpu())
    finally:
        generator.train(was_training)
    return torch.cat(outputs)
