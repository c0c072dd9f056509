"""Every training step of the course: one `GANSteps` subclass per kind of model, all used by `train_gan`.

A step object defines `d_step` (the critic's update) and `g_step` (the generator's update); `train_gan`
(`course_utils.training.loop`) runs them batch after batch. Where each is introduced:

- `DCGANSteps` (notebook 02; notebook 08 adds hinge + spectral norm, WGAN-GP and DiffAugment): an unconditional
  GAN with pluggable losses from `course_utils.losses`.
- `RelativisticSteps` (notebook 08): the modern objective of R3GAN, the relativistic pairing loss with R1 + R2.
- `ConditionalGANSteps` (notebook 04): a class-conditional GAN; the fakes get the real batch's labels.
- `PairedSteps` (notebooks 05 and 06): image-to-image models on `(input, target)` pairs; the generator loss is

      L_G = pixel_weight · pixel(G(x), y) + feature_weight · feature(G(x), y) + adversarial_weight · L_adv

  (SRResNet / the L1 U-Net with `adversarial_weight=0`; SRGAN with features and an unconditional critic;
  pix2pix with `conditional=True`, a critic that sees the input and the output stacked as channels).
- `SegmentationSteps` (notebook 07): a segmenter with Dice + cross-entropy and an (image, mask) critic.
- `DenoiserSteps` (notebook 10): no critic; a diffusion (noise-prediction) or flow-matching (velocity) regression
  step with an EMA of the weights, sampled by `sample_denoiser`.

`PairedSteps` and `SegmentationSteps` train their critic in the same way (`GANSteps.critic_step_on_pairs`):
real pairs against generated ones, minimax loss on the critic's logits. As in `DCGANSteps`, the d-step's
generator output is reused by the g-step (one generator pass per step).
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.checks import require_int
from course_utils.data.imageset import to_model_range
from course_utils.losses import (
    PIXEL_LOSSES,
    d_loss_hinge,
    d_loss_minimax,
    d_loss_relativistic,
    dice_ce_loss,
    g_loss_hinge,
    g_loss_non_saturating,
    g_loss_relativistic,
    gradient_penalty,
    pixel_loss,
    zero_centred_gradient_penalty,
)
from course_utils.models.conditional import check_labels, snapshot_labels
from course_utils.models.denoiser import with_labels
from course_utils.training.diffusion import (
    alphas_cumprod,
    cosine_beta_schedule,
    ddim_sample,
    noise_prediction_loss,
)
from course_utils.training.flow_matching import euler_sample, velocity_loss
from course_utils.training.mask_encoding import MaskEncoding, check_encoding, encode_prediction, encode_truth

if TYPE_CHECKING:
    from course_utils.config import TrainConfig

FIXED_NOISE_OFFSET = 7_919  # the fixed noise comes from seed + offset, apart from the training noise


@dataclass
class StepContext:
    """What `train_gan` hands its `GANSteps`: the networks, optimisers, scalers and settings of the run."""

    generator: Callable[..., torch.Tensor]  # for training: the module, or its torch.compile wrapper
    discriminator: Callable[..., torch.Tensor]
    generator_module: nn.Module  # the plain modules (state dicts, sampling, gradient penalty)
    discriminator_module: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler | None  # only with fp16
    scaler_d: torch.amp.GradScaler | None
    config: TrainConfig
    device: torch.device
    amp_dtype: torch.dtype | None  # None: float32
    noise_rng: torch.Generator  # on `device`; saved in checkpoints
    channels_last: bool


class GANSteps:
    """One training step of a GAN, split into `d_step` and `g_step`; subclass it for a new kind of GAN.

    Introduced in notebook 02. `train_gan` calls `bind(context)` once, then per batch `prepare_batch`,
    `d_step`, `g_step`. Each step returns `{name: 0-d tensor}` to log; do not call `.item()` in a step (that
    waits for the GPU). Inside a step use `self.generator`, `self.discriminator`, `self.noise(n)`,
    `self.autocast()`, `self.optimise(loss, 'd' | 'g')` and `self.frozen(module)`. Override `settings` to
    describe options that a resumed run must share, and `state_dict`/`load_state_dict` for extra state.
    """

    context: StepContext

    def bind(self, context: StepContext) -> None:
        """Attach the run's networks, optimisers and settings (called by `train_gan`)."""
        self.context = context
        self.generator, self.discriminator = context.generator, context.discriminator
        self.opt_g, self.opt_d = context.opt_g, context.opt_d
        self.config, self.device = context.config, context.device

    def settings(self) -> dict[str, Any]:
        """Options that must match when resuming (stored in the checkpoint's config)."""
        return {"type": type(self).__name__}

    def make_optimisers(
        self, generator: nn.Module, discriminator: nn.Module, config: TrainConfig, device: torch.device
    ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """Adam for each network (fused on CUDA: one kernel, and no GPU sync with an fp16 gradient scaler)."""
        fused = True if device.type == "cuda" else None
        opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=config.betas, fused=fused)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=config.betas, fused=fused)
        return opt_g, opt_d

    def make_fixed_noise(self, config: TrainConfig, device: torch.device) -> torch.Tensor:
        """Noise `(num_samples, latent_dim)` for the snapshots, identical on every device for a given seed."""
        rng = torch.Generator().manual_seed(config.seed + FIXED_NOISE_OFFSET)
        return torch.randn(config.num_samples, config.latent_dim, generator=rng).to(device)

    def prepare_batch(self, batch: torch.Tensor | tuple[torch.Tensor, ...]) -> Any:
        """uint8 images → float [-1, 1] (channels-last on CUDA); for a tuple only the first tensor is images."""
        if isinstance(batch, tuple):
            return (self._prepare_images(batch[0]), *batch[1:])
        return self._prepare_images(batch)

    def _prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        """One image batch `(B, C, H, W)` as float in [-1, 1] in the run's memory format."""
        if images.dtype == torch.uint8:
            images = to_model_range(images)  # (B, C, H, W) float32 in [-1, 1]
        if self.context.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def d_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Update the discriminator on one batch; return the values to log."""
        raise NotImplementedError(f"{type(self).__name__} must define d_step(batch) -> dict of 0-d tensors.")

    def g_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Update the generator on one batch; return the values to log."""
        raise NotImplementedError(f"{type(self).__name__} must define g_step(batch) -> dict of 0-d tensors.")

    def sample(self, fixed_noise: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from the fixed noise (called in eval mode under no_grad, for snapshots)."""
        return self.context.generator_module(fixed_noise)

    def noise(self, batch_size: int) -> torch.Tensor:
        """Fresh latent noise `(batch_size, latent_dim)` from the run's own (checkpointed) generator."""
        return torch.randn(batch_size, self.config.latent_dim, device=self.device, generator=self.context.noise_rng)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for forward passes when the run uses it; a no-op otherwise."""
        if self.context.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.context.amp_dtype)

    def optimise(self, loss: torch.Tensor, which: str) -> None:
        """zero_grad, backward and step for the discriminator ('d') or the generator ('g'), scaled under fp16."""
        if which not in ("d", "g"):
            raise ValueError(f"which must be 'd' (discriminator) or 'g' (generator); got {which!r}.")
        ctx = self.context
        optimiser, scaler = (ctx.opt_d, ctx.scaler_d) if which == "d" else (ctx.opt_g, ctx.scaler_g)
        optimiser.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimiser.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimiser)  # fused Adam: inf/NaN check on the GPU, no sync
            scaler.update()

    def critic_step_on_pairs(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """One critic update on real pairs vs generated pairs (detached), minimax loss on its logits.

        The d-step of `PairedSteps` (pix2pix: (input, output) as channels) and `SegmentationSteps` ((image, mask)).
        Logs `loss_d`, `d_real` and `d_fake` (the critic's mean probability "real" on each).
        """
        with self.autocast():
            real_out = self.discriminator(real)  # (B,) or (B, 1, h, w) patch logits
            fake_out = self.discriminator(fake)
        loss_d = d_loss_minimax(real_out, fake_out)
        self.optimise(loss_d, "d")
        return {"loss_d": loss_d.detach(), "d_real": torch.sigmoid(real_out.detach().float()).mean(),
                "d_fake": torch.sigmoid(fake_out.detach().float()).mean()}

    @contextlib.contextmanager
    def frozen(self, module: nn.Module) -> Iterator[None]:
        """Within the block, `module`'s parameters get no gradients (saves work in the g-step)."""
        params = [p for p in module.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    def state_dict(self) -> dict[str, Any]:
        """Extra state of the steps object to checkpoint (none by default)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned."""


def _callable_name(fn: Callable[..., Any]) -> str:
    """A stable name for a loss function (for the checkpoint's settings)."""
    if isinstance(fn, functools.partial):
        args = ", ".join([*map(repr, fn.args), *(f"{k}={v!r}" for k, v in fn.keywords.items())])
        return f"{_callable_name(fn.func)}({args})"
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


class DCGANSteps(GANSteps):
    """The standard unconditional GAN step (notebook 02): non-saturating by default, losses pluggable.

    `d_loss(real_out, fake_out)` and `g_loss(fake_out)` take the discriminator's raw outputs `(B,)`
    (see `course_utils.losses`). `gp_weight > 0` adds `gp_weight * gradient_penalty` to the d-step (WGAN-GP,
    notebook 08; logged as `gradient_penalty`). Logs `loss_d`, `loss_g` and, when `outputs_are_logits`,
    `d_real` = mean D(x) and `d_fake` = mean D(G(z)) (sigmoid of the logits); otherwise the raw means
    `score_real`, `score_fake` (hinge, Wasserstein).

    As in the classic PyTorch DCGAN example, one batch of fakes serves both updates: the d-step runs the
    generator once (keeping its graph) and shows the discriminator `fake.detach()`; the g-step that follows
    reuses those fakes, so every training step costs one generator forward pass, not two.

    `augment` (notebook 08, small data): a differentiable `augment(images, generator) -> images` such as
    `course_utils.augmentation.diffaugment.DiffAugment()`, applied to the real and to the fake batch before every discriminator
    call (d-step and g-step), with the run's checkpointed noise generator. None (the default) changes nothing.
    """

    def __init__(
        self,
        d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = d_loss_minimax,
        g_loss: Callable[[torch.Tensor], torch.Tensor] = g_loss_non_saturating,
        gp_weight: float = 0.0,
        outputs_are_logits: bool = True,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    ) -> None:
        if augment is not None and not callable(augment):
            raise TypeError("augment must be None or a function augment(images, generator) -> images, "
                            "such as course_utils.augmentation.diffaugment.DiffAugment().")
        if not callable(d_loss) or not callable(g_loss):
            raise TypeError("d_loss and g_loss must be functions such as course_utils.losses.d_loss_minimax.")
        if not isinstance(gp_weight, int | float) or gp_weight < 0:
            raise ValueError(f"gp_weight must be a number >= 0 (10 is WGAN-GP's usual value); got {gp_weight!r}.")
        self.d_loss, self.g_loss = d_loss, g_loss
        self.gp_weight = float(gp_weight)
        self.outputs_are_logits = bool(outputs_are_logits)
        self.augment = augment
        self._fake: torch.Tensor | None = None  # the d-step's fakes, with their graph, for the next g-step

    def settings(self) -> dict[str, Any]:
        """Loss functions and options (a resumed run must use the same)."""
        settings = {
            "type": type(self).__name__,
            "d_loss": _callable_name(self.d_loss),
            "g_loss": _callable_name(self.g_loss),
            "gp_weight": self.gp_weight,
            "outputs_are_logits": self.outputs_are_logits,
        }
        if self.augment is not None:  # (absent otherwise, so checkpoints of runs without it still match)
            settings["augment"] = repr(self.augment)
        return settings

    def _for_discriminator(self, images: torch.Tensor) -> torch.Tensor:
        """The images the discriminator sees: augmented when the steps have an `augment` function."""
        if self.augment is None:
            return images
        return self.augment(images, self.context.noise_rng)

    @staticmethod
    def _real_images(batch: Any) -> torch.Tensor:
        """The image tensor of a batch (a tensor, or the first item of a tuple)."""
        return batch[0] if isinstance(batch, tuple | list) else batch

    def _describe(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean D(x) and D(G(z)) (probabilities) or mean raw scores, as 0-d tensors."""
        real_out, fake_out = real_out.detach().float(), fake_out.detach().float()
        if self.outputs_are_logits:
            return {"d_real": torch.sigmoid(real_out).mean(), "d_fake": torch.sigmoid(fake_out).mean()}
        return {"score_real": real_out.mean(), "score_fake": fake_out.mean()}

    def d_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """One discriminator update on real images and fresh fakes."""
        real = self._real_images(batch)  # (B, C, H, W) in [-1, 1]
        z = self.noise(real.shape[0])  # (B, latent_dim)
        with self.autocast():
            self._fake = self.generator(z)  # (B, C, H, W), graph kept for the g-step
            fake = self._fake.detach()  # the d-step's loss must not reach the generator
            real_out = self.discriminator(self._for_discriminator(real))  # (B,)
            fake_out = self.discriminator(self._for_discriminator(fake))  # (B,) separate batches: BN never mixes them
        loss_d = self.d_loss(real_out, fake_out)  # 0-d, float32
        logs = {"loss_d": loss_d.detach()}
        if self.gp_weight > 0:
            penalty = gradient_penalty(  # float32, plain module (compiled graphs do not double-backward)
                self.context.discriminator_module, real.float(), fake.float(), generator=self.context.noise_rng
            )
            loss_d = loss_d + self.gp_weight * penalty
            logs["gradient_penalty"] = penalty.detach()
        self.optimise(loss_d, "d")
        logs.update(self._describe(real_out, fake_out))
        return logs

    def g_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """One generator update: make fakes and push the discriminator's opinion of them towards 'real'."""
        real = self._real_images(batch)
        fake, self._fake = self._fake, None
        with self.frozen(self.context.discriminator_module), self.autocast():
            if fake is None or fake.shape[0] != real.shape[0]:  # g-step without a d-step before it
                fake = self.generator(self.noise(real.shape[0]))  # (B, C, H, W)
            fake_out = self.discriminator(self._for_discriminator(fake))  # (B,)
        loss_g = self.g_loss(fake_out)
        self.optimise(loss_g, "g")
        return {"loss_g": loss_g.detach()}


# ----------------------------------------------------------------------------- R3GAN's objective (notebook 08)


class RelativisticSteps(DCGANSteps):
    """The modern GAN objective (notebook 08): RpGAN + gamma/2 (R1 + R2), after Huang et al., NeurIPS 2024 (R3GAN).

    d-step: L_D = mean softplus(D(G(z_i)) - D(x_i)) + gamma / 2 · (R1 + R2), with R1 = mean ||∇_x D(x)||² on the
    real batch and R2 the same on the (detached) fakes (`course_utils.losses.zero_centred_gradient_penalty`).
    g-step: L_G = mean softplus(D(x_i) - D(G(z_i))) on the same pairs: the generator step runs the critic on the
    real batch too (frozen, before the fakes; one extra forward pass). As in `DCGANSteps` the d-step's fakes are reused by the
    g-step, and `augment` (DiffAugment) is applied before every critic call; the penalties are taken with respect
    to the un-augmented images, through the augmentation, as in R3GAN's code.

    `gamma` has no default: R3GAN tunes it per dataset (0.05 for CIFAR-10 up to 150 for FFHQ-256, each decayed
    10x over training); choose it on validation. Deviations from the paper: gamma is constant, there is no EMA of
    the generator, and the networks are the course's, not R3GAN's ResNet. The penalties run outside autocast on
    the plain discriminator module (float32 double backward). Logs `loss_d` (the relativistic part), `r1`,
    `r2`, `loss_g` and the raw mean scores `score_real`, `score_fake`.
    """

    def __init__(self, gamma: float,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None) -> None:
        if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not gamma >= 0 or gamma == float("inf"):
            raise ValueError(f"gamma must be a finite number >= 0 (R3GAN uses 0.05 to 150 by dataset; 0 turns "
                             f"R1 and R2 off); got {gamma!r}.")
        super().__init__(d_loss=d_loss_relativistic, g_loss=self._g_loss_against_real, outputs_are_logits=False,
                         augment=augment)
        self.gamma = float(gamma)
        self._real_scores: torch.Tensor | None = None  # the g-step's real scores, paired with its fakes' scores

    def settings(self) -> dict[str, Any]:
        """The objective, gamma and the augmentation (a resumed run must use the same)."""
        settings: dict[str, Any] = {"type": type(self).__name__, "gamma": self.gamma}
        if self.augment is not None:
            settings["augment"] = repr(self.augment)
        return settings

    def _penalty_critic(self, images: torch.Tensor) -> torch.Tensor:
        """The plain critic module on (augmented) images: what R1 and R2 differentiate."""
        return self.context.discriminator_module(self._for_discriminator(images))

    def d_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """One critic update: relativistic loss on (real_i, fake_i) pairs plus gamma/2 (R1 + R2)."""
        real = self._real_images(batch)  # (B, C, H, W) in [-1, 1]
        z = self.noise(real.shape[0])  # (B, latent_dim)
        with self.autocast():
            self._fake = self.generator(z)  # (B, C, H, W), graph kept for the g-step
            fake = self._fake.detach()
            real_out = self.discriminator(self._for_discriminator(real))  # (B,)
            fake_out = self.discriminator(self._for_discriminator(fake))  # (B,)
        loss_adv = d_loss_relativistic(real_out, fake_out)  # 0-d, float32
        logs = {"loss_d": loss_adv.detach()}
        loss_d = loss_adv
        if self.gamma > 0:
            r1 = zero_centred_gradient_penalty(self._penalty_critic, real.float())
            r2 = zero_centred_gradient_penalty(self._penalty_critic, fake.float())
            loss_d = loss_adv + 0.5 * self.gamma * (r1 + r2)
            logs.update(r1=r1.detach(), r2=r2.detach())
        self.optimise(loss_d, "d")
        logs.update(self._describe(real_out, fake_out))
        return logs

    def g_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """One generator update: push each fake's score above its real partner's (the critic scores the reals first)."""
        real = self._real_images(batch)
        with self.frozen(self.context.discriminator_module), self.autocast():
            self._real_scores = self.discriminator(self._for_discriminator(real)).detach()  # (B,)
        try:
            return super().g_step(batch)  # DCGANSteps' g-step with `_g_loss_against_real` as its loss
        finally:
            self._real_scores = None

    def _g_loss_against_real(self, fake_scores: torch.Tensor) -> torch.Tensor:
        """g_loss_relativistic of the fakes' scores against the scores of their real partners in this step."""
        if self._real_scores is None:
            raise RuntimeError("RelativisticSteps' generator loss needs the real batch's scores; call g_step.")
        return g_loss_relativistic(self._real_scores, fake_scores)


# ----------------------------------------------------------------------------- conditional GAN (notebook 04)


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
        self.num_classes = require_int(num_classes, "num_classes", example="2")
        if not callable(d_loss) or not callable(g_loss):
            raise TypeError("d_loss and g_loss must be functions such as course_utils.losses.d_loss_hinge.")
        self.d_loss, self.g_loss = d_loss, g_loss
        self.outputs_are_logits = bool(outputs_are_logits)
        self._fake: torch.Tensor | None = None

    def settings(self) -> dict[str, Any]:
        """Options a resumed run must share."""
        return {"type": type(self).__name__, "num_classes": self.num_classes,
                "d_loss": _callable_name(self.d_loss), "g_loss": _callable_name(self.g_loss),
                "outputs_are_logits": self.outputs_are_logits}

    def _unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (B, C, H, W) in [-1, 1], labels (B,) int64) from a batch; a clear error for unlabelled data."""
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            raise ValueError(
                "ConditionalGANSteps needs labelled batches: call train_gan(..., data=(images, labels), ...) "
                "with one integer class label per image."
            )
        images, labels = batch
        return images, check_labels(labels, images.shape[0], self.num_classes, "ConditionalGANSteps")

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


# ----------------------------------------------------------------------------- image to image (notebooks 05, 06)


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
        return self.critic_step_on_pairs(self._critic_input(inputs, targets),
                                         self._critic_input(inputs, self._output.detach()))

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


# ----------------------------------------------------------------------------- segmentation (notebook 07)


def mask_to_model_range(mask_probabilities: torch.Tensor) -> torch.Tensor:
    """Class probabilities or one-hot masks `(B, K, H, W)` in [0, 1] → [-1, 1], the critic's input range."""
    return mask_probabilities * 2.0 - 1.0


class SegmentationSteps(GANSteps):
    """Segmenter + (image, mask) critic, for `train_gan` with data `(images, masks)` (introduced in notebook 07).

    g-step: `supervised_loss(logits, masks)` (Dice + cross-entropy) plus `adversarial_weight` times the
    non-saturating loss of the critic on (image, predicted mask). d-step: the critic learns real pairs (image,
    true mask) vs fake pairs (image, predicted mask, detached), minimax loss on its patch logits. How both masks
    are encoded is `mask_encoding` (`course_utils.training.mask_encoding`: "straight_through", the default, feeds
    both as one-hot maps; "softmax" = one-hot truth vs softmax, the encoding with the value shortcut; "scaling"). With `adversarial_weight = 0` the
    d-step does nothing: supervised training in the same loop.
    Logs `loss_sup` (and, with the critic, `loss_d`, `loss_adv`, `d_real`, `d_fake`).
    """

    def __init__(self, num_classes: int, adversarial_weight: float = 0.0,
                 supervised_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = dice_ce_loss,
                 mask_encoding: MaskEncoding = "straight_through") -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
        if not isinstance(adversarial_weight, int | float) or adversarial_weight < 0:
            raise ValueError(f"adversarial_weight must be a number >= 0 (0: supervised only); got {adversarial_weight!r}.")
        self.num_classes = num_classes
        self.adversarial_weight = float(adversarial_weight)
        self.supervised_loss = supervised_loss
        self.mask_encoding = check_encoding(mask_encoding)
        self._logits: torch.Tensor | None = None  # the d-step's segmenter output, reused by the g-step

    @property
    def adversarial(self) -> bool:
        """True when the critic takes part."""
        return self.adversarial_weight > 0

    def settings(self) -> dict[str, Any]:
        """Options a resumed run must share."""
        return {"type": type(self).__name__, "num_classes": self.num_classes,
                "adversarial_weight": self.adversarial_weight,
                "supervised_loss": _callable_name(self.supervised_loss), "mask_encoding": self.mask_encoding}

    def make_fixed_noise(self, config: Any, device: torch.device) -> torch.Tensor:
        """Not used: pass `fixed_noise=` a fixed batch of images `(n, 1, H, W)` in [-1, 1] for the snapshots."""
        raise ValueError(
            "SegmentationSteps draws its snapshots from images: call train_gan(..., fixed_noise=images) with a "
            "fixed batch of images (n, 1, H, W) in [-1, 1], e.g. to_model_range(train_images[:16])."
        )

    def sample(self, fixed_noise: torch.Tensor) -> torch.Tensor:
        """Snapshot: the predicted label map of the fixed images, as grey levels in [-1, 1] (0 → -1, K-1 → 1)."""
        labels = self.context.generator_module(fixed_noise).argmax(dim=1, keepdim=True)  # (n, 1, H, W)
        return labels.float() / (self.num_classes - 1) * 2.0 - 1.0

    def _pairs(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(image, mask) pairs `(B, 1 + K, H, W)` in [-1, 1] from images and K-channel masks in [0, 1]."""
        return torch.cat([images, mask_to_model_range(masks)], dim=1)

    def d_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Critic update on (image, true mask) vs (image, predicted mask), encoded; nothing without the critic."""
        if not self.adversarial:
            return {}
        images, masks = batch  # (B, 1, H, W) in [-1, 1], (B, 1, H, W) labels
        with self.autocast():
            self._logits = self.generator(images)  # (B, K, H, W), graph kept for the g-step
        logits = self._logits.detach()
        real_masks = encode_truth(masks, logits, self.mask_encoding).to(images.dtype)  # (B, K, H, W)
        fake_masks = encode_prediction(logits, self.mask_encoding).to(images.dtype)
        return self.critic_step_on_pairs(self._pairs(images, real_masks), self._pairs(images, fake_masks))

    def g_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Segmenter update: supervised loss (+ adversarial_weight x non-saturating loss on the critic)."""
        images, masks = batch
        logits, self._logits = self._logits, None
        with self.autocast():
            if logits is None:
                logits = self.generator(images)  # (B, K, H, W)
            loss_sup = self.supervised_loss(logits, masks)
            logs = {"loss_sup": loss_sup.detach()}
            loss = loss_sup
            if self.adversarial:
                with self.frozen(self.context.discriminator_module):
                    fake_masks = encode_prediction(logits, self.mask_encoding).to(images.dtype)
                    fake_out = self.discriminator(self._pairs(images, fake_masks))
                loss_adv = g_loss_non_saturating(fake_out)
                loss = loss_sup + self.adversarial_weight * loss_adv
                logs["loss_adv"] = loss_adv.detach()
        self.optimise(loss, "g")
        return logs



# ----------------------------------------------------------------------------- diffusion and flow matching (notebook 10)

DENOISER_OBJECTIVES: tuple[str, ...] = ("diffusion", "flow matching")


class DenoiserSteps(GANSteps):
    """One update of a denoiser with DDPM's noise-prediction loss or the flow-matching velocity loss (notebook 10).

    No critic: `train_gan` is run with a placeholder discriminator (`course_utils.training.supervised.NoCritic`)
    for its checkpoints, exact resume, timing and snapshots, and `d_step` does nothing. The g-step is one
    regression step (`noise_prediction_loss` with the cosine schedule of `num_train_steps` steps, or
    `velocity_loss`), followed by an exponential moving average of the weights (`ema_decay`; the EMA copy is
    what samples, as in DDPM, and it is saved in the checkpoint). Batches are images, or `(images, labels)`
    for a class-conditional denoiser (`num_classes`). Snapshots: `snapshot_steps` sampler steps (DDIM for
    diffusion, Euler for flow matching) from fixed image-shaped noise; logs `loss`.
    """

    def __init__(self, objective: str, image_shape: tuple[int, int, int], num_classes: int | None = None,
                 num_train_steps: int = 1000, ema_decay: float = 0.995, snapshot_steps: int = 8) -> None:
        if objective not in DENOISER_OBJECTIVES:
            raise ValueError(f"objective must be one of {DENOISER_OBJECTIVES}; got {objective!r}.")
        if not (isinstance(image_shape, tuple | list) and len(image_shape) == 3
                and all(isinstance(n, int) and n > 0 for n in image_shape)):
            raise ValueError(f"image_shape must be (channels, height, width), e.g. (1, 28, 28); got {image_shape!r}.")
        if isinstance(ema_decay, bool) or not isinstance(ema_decay, int | float) or not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be a number in [0, 1) such as 0.995; got {ema_decay!r}.")
        self.objective, self.image_shape = objective, tuple(int(n) for n in image_shape)
        self.num_classes = None if num_classes is None else require_int(num_classes, "num_classes", example="2")
        self.num_train_steps = require_int(num_train_steps, "num_train_steps", example="1000")
        self.ema_decay = float(ema_decay)
        self.snapshot_steps = require_int(snapshot_steps, "snapshot_steps", example="8")
        self.alphas_cumprod = alphas_cumprod(cosine_beta_schedule(self.num_train_steps))  # (T,)
        self.ema: nn.Module | None = None
        self.updates = 0  # optimiser steps so far (the EMA's warm-up)

    def settings(self) -> dict[str, Any]:
        """Options a resumed run must share."""
        return {"type": type(self).__name__, "objective": self.objective, "ema_warmup": "(1+n)/(10+n)", "image_shape": list(self.image_shape),
                "num_classes": self.num_classes, "num_train_steps": self.num_train_steps,
                "ema_decay": self.ema_decay, "snapshot_steps": self.snapshot_steps}

    def bind(self, context: StepContext) -> None:
        """Attach the run and make the EMA copy of the denoiser (on its device, no gradients)."""
        super().bind(context)
        self.ema = copy.deepcopy(context.generator_module).requires_grad_(False).eval()
        self.alphas_cumprod = self.alphas_cumprod.to(context.device)

    def make_fixed_noise(self, config: TrainConfig, device: torch.device) -> torch.Tensor:
        """Image-shaped noise `(num_samples, C, H, W)` for the snapshots, identical on every device for a seed."""
        rng = torch.Generator().manual_seed(config.seed + FIXED_NOISE_OFFSET)
        return torch.randn(config.num_samples, *self.image_shape, generator=rng).to(device)

    def _unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(images (B, C, H, W) in [-1, 1], labels (B,) or None), checked against `num_classes`."""
        if self.num_classes is None:
            if isinstance(batch, tuple | list):
                raise ValueError("this denoiser is unconditional: train it on images only, not (images, labels).")
            return batch, None
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            raise ValueError("a class-conditional denoiser needs labelled batches: train_gan(..., data=(images, "
                             "labels), ...) with one integer class label per image.")
        images, labels = batch
        return images, check_labels(labels, images.shape[0], self.num_classes, "DenoiserSteps")

    def d_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Nothing: a denoiser has no critic."""
        return {}

    def g_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """One regression step on the batch, then the EMA update."""
        images, labels = self._unpack(batch)
        model = self.generator if labels is None else functools.partial(self.generator, labels=labels)
        rng = self.context.noise_rng
        with self.autocast():
            if self.objective == "diffusion":
                loss = noise_prediction_loss(model, images, self.alphas_cumprod, generator=rng)
            else:
                loss = velocity_loss(model, images, generator=rng)
        self.optimise(loss, "g")
        self.updates += 1
        decay = min(self.ema_decay, (1 + self.updates) / (10 + self.updates))  # warm-up: early weights fade fast
        with torch.no_grad():
            for average, current in zip(self.ema.parameters(), self.context.generator_module.parameters(),
                                        strict=True):
                average.lerp_(current, 1.0 - decay)
        return {"loss": loss.detach()}

    def sample(self, fixed_noise: torch.Tensor) -> torch.Tensor:
        """Snapshot: the EMA denoiser's samples from the fixed noise (labelled 0, 1, ..., K-1, 0, ...)."""
        labels = None if self.num_classes is None else snapshot_labels(fixed_noise.shape[0], self.num_classes)
        return sample_denoiser(self.objective, self.ema, fixed_noise, self.snapshot_steps, self.alphas_cumprod,
                               labels)

    def state_dict(self) -> dict[str, Any]:
        """The EMA weights (checkpointed with the run)."""
        return {"ema": self.ema.state_dict(), "updates": self.updates} if self.ema is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the EMA weights."""
        if "ema" in state and self.ema is not None:
            self.ema.load_state_dict(state["ema"])
            self.updates = int(state["updates"])


@torch.no_grad()
def sample_denoiser(objective: str, model: nn.Module, noise: torch.Tensor, steps: int,
                    alphas_cumprod: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Images in [-1, 1] (same shape as `noise`) from a trained denoiser in `steps` network evaluations.

    Diffusion: deterministic DDIM from x_T = `noise` (`alphas_cumprod` of its training schedule), x̂_0 clipped and
    ε̂ re-derived from it (`ddim_step(clipped_eps=True)`, needed at few steps of the cosine schedule); flow
    matching: Euler steps from x_0 = `noise`, clipped to [-1, 1]. `labels` `(B,)` for a class-conditional model.
    """
    if objective not in DENOISER_OBJECTIVES:
        raise ValueError(f"objective must be one of {DENOISER_OBJECTIVES}; got {objective!r}.")
    bound = with_labels(model, labels)
    if objective == "diffusion":
        if alphas_cumprod is None:
            raise ValueError("diffusion sampling needs the training schedule's alphas_cumprod (T,).")
        return ddim_sample(bound, noise.shape, steps, alphas_cumprod.to(noise.device), noise=noise,
                           device=noise.device, clipped_eps=True)
    return euler_sample(bound, noise.shape, steps, noise=noise, device=noise.device).clamp(-1.0, 1.0)

__all__ = ["DENOISER_OBJECTIVES", "ConditionalGANSteps", "DCGANSteps", "DenoiserSteps", "GANSteps", "PairedSteps",
           "RelativisticSteps", "SegmentationSteps", "StepContext", "mask_to_model_range", "sample_denoiser"]
