"""3-D DCGAN (notebook 08): shapes per volume size, spectral-norm bound, training on volumes, errors;
and the spectral-norm bound of the 2-D discriminator after training steps."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_utils.losses import d_loss_hinge, g_loss_hinge, gradient_penalty
from course_utils.models import DCGANDiscriminator, DCGANDiscriminator3D, DCGANGenerator, DCGANGenerator3D
from course_utils.models.dcgan3d import prior_output_bias
from course_utils.training import DCGANSteps, TrainConfig, train_gan

SN_TOLERANCE = 0.05


def largest_singular_values(model: nn.Module) -> list[float]:
    """sigma_max of every convolution weight the model uses, reshaped to (out_channels, rest)."""
    return [float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2))
            for m in model.modules() if isinstance(m, nn.Conv2d | nn.Conv3d)]


@pytest.mark.parametrize(("size", "stages"), [(28, 3), (32, 4), (64, 5)])
def test_shapes(size: int, stages: int) -> None:
    torch.manual_seed(0)
    generator = DCGANGenerator3D(latent_dim=6, volume_size=size, channels=1, base_width=2)
    discriminator = DCGANDiscriminator3D(volume_size=size, channels=1, base_width=2)
    volumes = generator(torch.randn(2, 6))
    assert volumes.shape == (2, 1, size, size, size)
    assert float(volumes.detach().abs().max()) <= 1.0  # tanh
    assert generator(torch.randn(2, 6, 1, 1, 1)).shape == (2, 1, size, size, size)
    assert discriminator(volumes).shape == (2,)
    assert len([m for m in generator.modules() if isinstance(m, nn.ConvTranspose3d)]) == stages
    assert len([m for m in discriminator.modules() if isinstance(m, nn.Conv3d)]) == stages
    first = next(m for m in generator.modules() if isinstance(m, nn.ConvTranspose3d))
    assert float(first.weight.detach().std()) == pytest.approx(0.02, rel=0.2)  # DCGAN initialisation in 3-D too


def test_output_bias_starts_at_the_foreground_prior() -> None:
    assert prior_output_bias(0.5) == 0.0
    assert math.tanh(prior_output_bias(0.016)) == pytest.approx(2 * 0.016 - 1, rel=1e-12)
    assert prior_output_bias(0.016) == pytest.approx(-2.06, abs=0.01)
    torch.manual_seed(4)
    default = DCGANGenerator3D(latent_dim=6, base_width=2)
    torch.manual_seed(4)
    biased = DCGANGenerator3D(latent_dim=6, base_width=2, output_bias=prior_output_bias(0.016))
    last_default, last_biased = default.net[-2], biased.net[-2]
    assert isinstance(last_biased, nn.ConvTranspose3d) and isinstance(biased.net[-1], nn.Tanh)
    assert float(last_default.bias.detach().abs().max()) == 0.0  # DCGAN's initialisation unchanged by default
    assert torch.allclose(last_biased.bias, torch.full_like(last_biased.bias, prior_output_bias(0.016)))
    for a, b in zip(default.state_dict().items(), biased.state_dict().items(), strict=True):
        assert a[0] == b[0] and (a[1].equal(b[1]) or a[0] == "net.6.bias")  # only that bias differs
    with torch.no_grad():
        volumes = biased.eval()(torch.randn(4, 6))
    foreground = float(((volumes + 1) / 2).mean())  # mean output read as a probability
    assert foreground == pytest.approx(0.016, abs=0.01)
    assert float((volumes > 0).float().mean()) < 0.01  # almost all background at the midpoint threshold
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        prior_output_bias(0.0)
    with pytest.raises(ValueError, match="output_bias must be a finite number"):
        DCGANGenerator3D(output_bias=math.inf)
    with pytest.raises(ValueError, match="output_bias"):
        DCGANGenerator3D(output_bias=True)  # type: ignore[arg-type]


def test_errors() -> None:
    with pytest.raises(ValueError, match="volume_size must be one of 28, 32, 64"):
        DCGANGenerator3D(volume_size=48)
    with pytest.raises(ValueError, match="volume_size"):
        DCGANDiscriminator3D(volume_size=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_width"):
        DCGANGenerator3D(base_width=0)
    with pytest.raises(ValueError, match="noise of shape"):
        DCGANGenerator3D(latent_dim=6, base_width=2)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="volumes of shape"):
        DCGANDiscriminator3D(base_width=2)(torch.randn(2, 28, 28, 28))


def test_spectral_norm_bound_3d() -> None:
    torch.manual_seed(1)
    discriminator = DCGANDiscriminator3D(volume_size=28, base_width=2, spectral_norm=True)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in discriminator.modules())
    for _ in range(5):  # a few power iterations
        discriminator(torch.randn(2, 1, 28, 28, 28))
    values = largest_singular_values(discriminator)
    assert len(values) == 3
    assert all(v <= 1 + SN_TOLERANCE for v in values), values
    assert max(values) >= 1 - SN_TOLERANCE  # normalised, not merely small


def test_spectral_norm_bound_holds_after_training_steps() -> None:
    torch.manual_seed(2)
    discriminator = DCGANDiscriminator(image_size=28, base_width=4, spectral_norm=True)
    optimiser = torch.optim.Adam(discriminator.parameters(), lr=1e-3)  # 5x the course's rate: the raw weights move
    for _ in range(10):  # (each forward pass also runs one power iteration, tracking the moving weights)
        real, fake = torch.rand(8, 1, 28, 28) * 2 - 1, torch.rand(8, 1, 28, 28) * 2 - 1
        loss = d_loss_hinge(discriminator(real), discriminator(fake))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    for _ in range(5):  # a few power iterations
        discriminator(torch.randn(4, 1, 28, 28))
    values = largest_singular_values(discriminator)
    assert all(v <= 1 + SN_TOLERANCE for v in values), values
    plain = DCGANDiscriminator(image_size=28, base_width=4, batch_norm=False)
    with torch.no_grad():
        for m in plain.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(100)
    assert max(largest_singular_values(plain)) > 1 + SN_TOLERANCE  # the check can fail


def test_gradient_penalty_on_volumes_linear_critic() -> None:
    critic = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3 * 3, 1)).double()
    real, fake = torch.randn(4, 2, 3, 3, 3, dtype=torch.float64), torch.randn(4, 2, 3, 3, 3, dtype=torch.float64)
    norm = float(critic[1].weight.norm())
    assert float(gradient_penalty(critic, real, fake).detach()) == pytest.approx((norm - 1) ** 2, rel=1e-9)


def test_train_gan_on_volumes_with_hinge_and_spectral_norm(tmp_path) -> None:
    torch.manual_seed(3)
    volumes = torch.randint(0, 256, (8, 1, 28, 28, 28), dtype=torch.uint8)
    generator = DCGANGenerator3D(latent_dim=4, volume_size=28, base_width=2)
    discriminator = DCGANDiscriminator3D(volume_size=28, base_width=2, spectral_norm=True)
    config = TrainConfig(num_epochs=1, batch_size=4, latent_dim=4, num_samples=2)
    steps = DCGANSteps(d_loss_hinge, g_loss_hinge, outputs_are_logits=False)
    result = train_gan(generator, discriminator, volumes, config, steps=steps, checkpoint_dir=tmp_path, progress=False)
    assert result.epochs_completed == 1
    assert result.snapshots[1].shape == (2, 1, 28, 28, 28) and result.snapshots[1].dtype == torch.uint8
    assert set(result.history) == {"loss_d", "score_real", "score_fake", "loss_g"}
    with pytest.raises(ValueError, match="generator makes images of shape"):
        train_gan(DCGANGenerator3D(4, 28, base_width=2), DCGANDiscriminator3D(28, base_width=2),
                  torch.zeros(8, 1, 32, 32, 32, dtype=torch.uint8), config, progress=False)
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        train_gan(DCGANGenerator(4, 28, base_width=2), DCGANDiscriminator(28, base_width=2),
                  torch.zeros(8, 28, 28, dtype=torch.uint8), config, progress=False)
