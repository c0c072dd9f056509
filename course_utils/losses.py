"""GAN objectives computed from the discriminator's (critic's) raw outputs.

Introduced in notebook 01 (`01_gan_theory_and_loss_math`): the minimax discriminator loss and the
saturating / non-saturating generator losses. Notebook 08 (`08_stabilizing_gans`)
adds the hinge and Wasserstein losses and the WGAN-GP gradient penalty, and the modern objective of R3GAN
(Huang et al., NeurIPS 2024): the relativistic pairing loss with the zero-centred R1 and R2 penalties.

Conventions (the same as notebook 01):
- Inputs are **logits** `(B,)` (D(x) = sigmoid(logit)) for the minimax family, raw **scores** for the
  hinge, Wasserstein and relativistic families. Log-probabilities are computed from logits with softplus:
  ln D = -softplus(-logit), ln(1 - D) = -softplus(logit), which never takes the log of 0.
- Every expectation is a batch **mean**; a discriminator loss with a real and a fake term is the **sum**
  of the two batch means, L_D = mean(-ln D(x)) + mean(-ln(1 - D(G(z)))). So at the equilibrium
  D = 1/2, L_D = ln 4 ≈ 1.386 nats and the non-saturating L_G = ln 2 ≈ 0.693 nats. (Averaging the two
  terms instead would halve L_D; the course never does that.)
- Natural logarithms: losses are in nats, like PyTorch's `BCEWithLogitsLoss`.
- Every loss returns a 0-d float32 tensor (float64 stays float64), also under autocast, and never
  calls `.item()`: nothing here waits for the GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

GP_NORM_EPS = 1e-12  # keeps the gradient of the norm finite where the critic's input gradient is exactly 0


def _as_scores(values: torch.Tensor, name: str) -> torch.Tensor:
    """`values` as a float tensor of at least float32 precision (autocast may hand in bf16/fp16)."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of discriminator outputs (B,); got {type(values).__name__}.")
    if not values.is_floating_point():
        raise TypeError(f"{name} must be a float tensor of discriminator outputs; got dtype {values.dtype}.")
    if values.numel() == 0:
        raise ValueError(f"{name} is empty; pass the discriminator outputs for a non-empty batch.")
    return values if values.dtype == torch.float64 else values.float()


# ----------------------------------------------------------------------------- minimax family (notebook 01)


def d_loss_minimax(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_D = mean(-ln D(x)) + mean(-ln(1 - D(G(z)))), the SUM of two batch means (introduced in notebook 01).

    Equals `BCEWithLogits(real, 1) + BCEWithLogits(fake, 0)`; ln 4 ≈ 1.386 nats at D = 1/2.
    """
    real, fake = _as_scores(real_logits, "real_logits"), _as_scores(fake_logits, "fake_logits")
    return F.softplus(-real).mean() + F.softplus(fake).mean()  # -ln sigmoid(a) = softplus(-a)


def g_loss_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """L_G = mean(ln(1 - D(G(z)))), the original minimax generator loss (introduced in notebook 01).

    Its gradient w.r.t. the logit is -D(G(z)): it vanishes when the discriminator rejects fakes confidently.
    """
    fake = _as_scores(fake_logits, "fake_logits")
    return (-F.softplus(fake)).mean()  # ln(1 - sigmoid(a)) = -softplus(a)


def g_loss_non_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """L_G = mean(-ln D(G(z))), the non-saturating generator loss (introduced in notebook 01).

    Equals `BCEWithLogits(fake, 1)`; gradient w.r.t. the logit is -(1 - D(G(z))), about -1 early in training.
    """
    fake = _as_scores(fake_logits, "fake_logits")
    return F.softplus(-fake).mean()


# ----------------------------------------------------------------------------- hinge and Wasserstein (notebook 08)


def d_loss_hinge(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """L_D = mean(max(0, 1 - D(x))) + mean(max(0, 1 + D(G(z)))) on raw scores (introduced in notebook 08)."""
    real, fake = _as_scores(real_scores, "real_scores"), _as_scores(fake_scores, "fake_scores")
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def g_loss_hinge(fake_scores: torch.Tensor) -> torch.Tensor:
    """L_G = -mean(D(G(z))) on raw scores, the generator side of the hinge loss (introduced in notebook 08)."""
    return -_as_scores(fake_scores, "fake_scores").mean()


def d_loss_wasserstein(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """L_critic = mean(D(G(z))) - mean(D(x)), the WGAN critic loss (introduced in notebook 08).

    Its negative estimates the Wasserstein-1 distance when the critic is 1-Lipschitz (see `gradient_penalty`).
    """
    real, fake = _as_scores(real_scores, "real_scores"), _as_scores(fake_scores, "fake_scores")
    return fake.mean() - real.mean()


def g_loss_wasserstein(fake_scores: torch.Tensor) -> torch.Tensor:
    """L_G = -mean(D(G(z))), the WGAN generator loss (introduced in notebook 08)."""
    return -_as_scores(fake_scores, "fake_scores").mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    mix: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty mean((||∇_x̂ D(x̂)||_2 - 1)^2) at x̂ = mix·real + (1 - mix)·fake (introduced in notebook 08).

    `real`, `fake`: `(B, C, H, W)` (any `(B, ...)`); `mix`: `(B,)` weights in [0, 1], drawn uniformly (from
    `generator` if given) when None. The penalty keeps its graph (`create_graph=True`), so adding
    `weight * penalty` to the critic's loss trains the critic towards gradient norm 1. Call it outside
    autocast: the double backward is then computed in float32.
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape for the interpolation; got {tuple(real.shape)} and "
            f"{tuple(fake.shape)}. Draw as many fakes as there are real images in the batch."
        )
    batch = real.shape[0]
    if mix is None:
        mix = torch.rand(batch, device=real.device, dtype=real.dtype, generator=generator)  # (B,)
    if mix.shape != (batch,):
        raise ValueError(f"mix must have shape ({batch},), one weight per sample; got {tuple(mix.shape)}.")
    weights = mix.to(real.dtype).reshape(batch, *([1] * (real.dim() - 1)))  # (B, 1, 1, 1)
    mixed = (weights * real.detach() + (1.0 - weights) * fake.detach()).requires_grad_(True)  # (B, C, H, W)
    scores = critic(mixed).reshape(batch)  # (B,)
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)  # (B, C, H, W): ∇ of each score
    norms = (grads.flatten(1).square().sum(dim=1) + GP_NORM_EPS).sqrt()  # (B,)
    return (norms - 1.0).square().mean()


# ----------------------------------------------------------------------------- relativistic + R1/R2 (R3GAN, notebook 08)


def _paired(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and fake scores `(B,)` as float tensors of one shape: the relativistic loss pairs them sample by sample."""
    real, fake = _as_scores(real_scores, "real_scores"), _as_scores(fake_scores, "fake_scores")
    if real.shape != fake.shape:
        raise ValueError(
            f"the relativistic pairing loss compares each real sample with one fake; got scores of shapes "
            f"{tuple(real.shape)} and {tuple(fake.shape)}. Draw as many fakes as there are real images."
        )
    return real, fake


def d_loss_relativistic(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """L_D = mean(softplus(D(G(z_i)) - D(x_i))), the relativistic pairing loss (RpGAN; introduced in notebook 08).

    Each real x_i is paired with the fake G(z_i) of the same batch position: the critic is asked to score the
    real one *higher than its partner*, not to reach an absolute target. Raw scores `(B,)`; ln 2 when the two
    scores are equal. Huang et al. (R3GAN, NeurIPS 2024) pair it with R1 + R2 (`zero_centred_gradient_penalty`).
    """
    real, fake = _paired(real_scores, fake_scores)
    return F.softplus(fake - real).mean()


def g_loss_relativistic(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """L_G = mean(softplus(D(x_i) - D(G(z_i)))), the generator side of RpGAN (introduced in notebook 08).

    Unlike the other generator losses it needs the critic's scores of the real batch too (detached or not:
    only the fakes carry the generator's gradient).
    """
    real, fake = _paired(real_scores, fake_scores)
    return F.softplus(real - fake).mean()


def zero_centred_gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor],
                                  images: torch.Tensor) -> torch.Tensor:
    """mean_i ||∇_x D(x_i)||²: R1 on real images, R2 on fakes (Mescheder et al. 2018; introduced in notebook 08).

    `images` `(B, ...)` are detached first, so the penalty trains the critic only; its graph is kept
    (`create_graph=True`) so `gamma / 2 * (R1 + R2)` can be added to the critic's loss, as R3GAN does. Unlike
    WGAN-GP's `gradient_penalty` it pulls the gradient towards 0, at the data (R1) and at the fakes (R2), not
    towards norm 1 between them. Call it outside autocast: the double backward is then computed in float32.
    """
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.dim() < 2:
        raise ValueError("images must be a float tensor (B, C, H, W) (any (B, ...)) of the critic's inputs.")
    inputs = images.detach().requires_grad_(True)  # (B, C, H, W)
    scores = critic(inputs).reshape(inputs.shape[0])  # (B,)
    (grads,) = torch.autograd.grad(scores.sum(), inputs, create_graph=True)  # (B, C, H, W): each score's own
    return grads.flatten(1).square().sum(dim=1).mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1 = mean ||∇_x D(x)||² on real images (introduced in notebook 08); the loss adds gamma / 2 · R1."""
    return zero_centred_gradient_penalty(critic, real)


def r2_penalty(critic: Callable[[torch.Tensor], torch.Tensor], fake: torch.Tensor) -> torch.Tensor:
    """R2 = mean ||∇_x D(G(z))||² on generated images (introduced in notebook 08); the loss adds gamma / 2 · R2."""
    return zero_centred_gradient_penalty(critic, fake)


# ----------------------------------------------------------------------------- paired image-to-image losses (notebook 05)


PIXEL_LOSSES: tuple[str, ...] = ("l1", "mse")


def pixel_loss(output: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean absolute ('l1') or squared ('mse') pixel difference of two `(B, C, H, W)` images (notebook 05).

    MSE is what PSNR measures, so minimising it maximises PSNR; L1 punishes small errors more and large ones
    less, and gives slightly sharper results. Both average over plausible answers: where the input allows
    several sharp images, the pixel-loss optimum is their blurry mean.
    """
    if output.shape != target.shape:
        raise ValueError(f"output and target must have the same shape; got {tuple(output.shape)} and "
                         f"{tuple(target.shape)}. For super-resolution the target is the high-resolution image.")
    difference = output.float() - target.float()
    if kind == "l1":
        return difference.abs().mean()
    if kind == "mse":
        return difference.square().mean()
    raise ValueError(f"kind must be one of {PIXEL_LOSSES}; got {kind!r}.")


class FeatureLoss(torch.nn.Module):
    """Perceptual loss: mean over layers of the MSE between feature maps of output and target (notebook 05).

    `network` maps images `(B, C, H, W)` in [-1, 1] to a list of feature maps (see
    `course_utils.models.perceptual`); it is frozen. Gradients flow through it to the output image only.
    """

    def __init__(self, network: torch.nn.Module, name: str) -> None:
        super().__init__()
        self.network, self.name = network, name
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)
        self.network.eval()

    def train(self, mode: bool = True) -> FeatureLoss:
        """The feature network stays in eval mode (batch-norm statistics must not move)."""
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """0-d float32 loss."""
        if output.shape != target.shape:
            raise ValueError(f"output and target must have the same shape; got {tuple(output.shape)} and "
                             f"{tuple(target.shape)}.")
        with torch.no_grad():
            target_maps = self.network(target)
        output_maps = self.network(output)
        losses = [F.mse_loss(o.float(), t.float()) for o, t in zip(output_maps, target_maps, strict=True)]
        return torch.stack(losses).mean()


# ----------------------------------------------------------------------------- segmentation (notebook 07)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, include_background: bool = False,
                   smooth: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over classes (and the batch), from logits `(B, K, H, W)` and labels `(B, H, W)` or `(B, 1, H, W)`.

    Soft Dice uses the softmax probabilities instead of hard labels so it has a gradient; sums run over the
    whole batch (a class absent from one slice does not make that slice's Dice undefined). `smooth` keeps
    0 / 0 at 1 for a class absent from both.
    """
    if logits.dim() != 4:
        raise ValueError(f"logits must be (B, K, H, W) class scores; got shape {tuple(logits.shape)}.")
    target = target[:, 0] if target.dim() == 4 else target  # (B, H, W)
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"target must be labels (B, H, W) matching logits {tuple(logits.shape)}; got {tuple(target.shape)}."
        )
    num_classes = logits.shape[1]
    probabilities = logits.float().softmax(dim=1)  # (B, K, H, W)
    onehot = F.one_hot(target.long(), num_classes).permute(0, 3, 1, 2).float()  # (B, K, H, W)
    first = 0 if include_background else 1
    intersection = (probabilities * onehot).sum(dim=(0, 2, 3))[first:]  # (K',)
    sizes = (probabilities + onehot).sum(dim=(0, 2, 3))[first:]
    dice = (2 * intersection + smooth) / (sizes + smooth)
    return 1.0 - dice.mean()


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice (foreground classes) + cross-entropy: the supervised segmentation loss of notebook 07."""
    labels = (target[:, 0] if target.dim() == 4 else target).long()  # (B, H, W)
    return soft_dice_loss(logits, labels) + F.cross_entropy(logits.float(), labels)


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Weights `(num_classes,)` = N / (K * count_k): every class adds the same total to the loss (notebook 04).

    This is scikit-learn's `compute_class_weight('balanced')`. A class with no examples gets weight 0.
    """
    counts = torch.bincount(labels.reshape(-1).long().cpu(), minlength=num_classes).double()  # (K,)
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights.float()
