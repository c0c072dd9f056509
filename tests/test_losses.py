"""GAN losses: hand-computed values, agreement with PyTorch's BCE and notebook 01's formulas, WGAN-GP, and
R3GAN's relativistic loss with R1/R2 (closed forms, finite differences, a hand-written step, resume)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import losses
from course_utils.losses import (
    d_loss_hinge,
    d_loss_minimax,
    d_loss_relativistic,
    d_loss_wasserstein,
    g_loss_hinge,
    g_loss_non_saturating,
    g_loss_relativistic,
    g_loss_saturating,
    g_loss_wasserstein,
    gradient_penalty,
    r1_penalty,
    r2_penalty,
    zero_centred_gradient_penalty,
)
from course_utils.widgets import gan_losses


def _logit(p: float | torch.Tensor) -> torch.Tensor:
    """Logit of a probability, in float64."""
    p = torch.as_tensor(p, dtype=torch.float64)
    return torch.log(p) - torch.log1p(-p)


def test_worked_example_of_notebook_01() -> None:
    real, fake = _logit([0.1]), _logit([0.9])  # D(x) = 0.1, D(G(z)) = 0.9
    assert float(d_loss_minimax(real, fake)) == pytest.approx(-2 * math.log(0.1), abs=1e-12)  # 4.605 nats (sum)
    assert float(d_loss_minimax(real, fake)) == pytest.approx(4.605, abs=1e-3)
    assert float(g_loss_non_saturating(fake)) == pytest.approx(-math.log(0.9), abs=1e-12)  # 0.105 nats
    assert float(g_loss_saturating(fake)) == pytest.approx(math.log(0.1), abs=1e-12)  # ln(1 - 0.9)


def test_equilibrium_values() -> None:
    zero = torch.zeros(5)  # D = 1/2 everywhere
    assert float(d_loss_minimax(zero, zero)) == pytest.approx(math.log(4), abs=1e-6)
    assert float(g_loss_non_saturating(zero)) == pytest.approx(math.log(2), abs=1e-6)
    assert float(g_loss_saturating(zero)) == pytest.approx(-math.log(2), abs=1e-6)


def test_agree_with_binary_cross_entropy_on_probabilities() -> None:
    gen = torch.Generator().manual_seed(0)
    p_real = torch.rand(7, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    p_fake = torch.rand(9, generator=gen, dtype=torch.float64) * 0.98 + 0.01  # batches may differ in size
    bce = F.binary_cross_entropy
    expected_d = bce(p_real, torch.ones_like(p_real)) + bce(p_fake, torch.zeros_like(p_fake))
    torch.testing.assert_close(d_loss_minimax(_logit(p_real), _logit(p_fake)), expected_d)
    torch.testing.assert_close(g_loss_non_saturating(_logit(p_fake)), bce(p_fake, torch.ones_like(p_fake)))
    torch.testing.assert_close(g_loss_saturating(_logit(p_fake)), -bce(p_fake, torch.zeros_like(p_fake)))


def test_agree_with_notebook_01_formulas() -> None:
    for d_real, d_fake in [(0.8, 0.3), (0.1, 0.9), (0.5, 0.5), (0.99, 0.01)]:
        reference = gan_losses(d_real, d_fake)  # NumPy, in nats
        real, fake = _logit([d_real]), _logit([d_fake])
        assert float(d_loss_minimax(real, fake)) == pytest.approx(reference["d_loss"], rel=1e-10)
        assert float(g_loss_saturating(fake)) == pytest.approx(reference["g_loss_saturating"], rel=1e-10)
        assert float(g_loss_non_saturating(fake)) == pytest.approx(reference["g_loss_non_saturating"], rel=1e-10)


def test_logit_gradients_match_theory() -> None:
    fake = _logit([0.01]).requires_grad_(True)  # early training: D(G(z)) = 0.01
    (grad_sat,) = torch.autograd.grad(g_loss_saturating(fake), fake)
    (grad_ns,) = torch.autograd.grad(g_loss_non_saturating(fake), fake)
    assert float(grad_sat) == pytest.approx(-0.01, abs=1e-12)  # -D(G(z)): vanishes
    assert float(grad_ns) == pytest.approx(-0.99, abs=1e-12)  # -(1 - D(G(z)))


def test_extreme_logits_stay_finite() -> None:
    real = torch.tensor([-100.0], requires_grad=True)  # D(x) = sigmoid(-100): log would underflow to -inf
    fake = torch.tensor([100.0], requires_grad=True)
    loss = d_loss_minimax(real, fake)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(200.0, rel=1e-6)
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()
    assert math.isfinite(float(g_loss_non_saturating(torch.tensor([-100.0]))))


def test_hinge_and_wasserstein_hand_values() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # hinge: mean(relu(1 - [2, 0.5])) = mean([0, 0.5]) = 0.25; mean(relu(1 + [-2, 0])) = mean([0, 1]) = 0.5
    assert float(d_loss_hinge(real, fake)) == pytest.approx(0.75)
    assert float(g_loss_hinge(fake)) == pytest.approx(1.0)
    assert float(d_loss_wasserstein(real, fake)) == pytest.approx(-1.0 - 1.25)
    assert float(g_loss_wasserstein(fake)) == pytest.approx(1.0)


def test_dtypes_and_errors() -> None:
    half = torch.zeros(4, dtype=torch.bfloat16)
    assert d_loss_minimax(half, half).dtype == torch.float32  # computed in float32 under autocast too
    assert g_loss_hinge(torch.zeros(3, dtype=torch.float64)).dtype == torch.float64
    assert d_loss_minimax(torch.zeros(3), torch.zeros(3)).dim() == 0
    with pytest.raises(TypeError, match="float tensor"):
        g_loss_non_saturating(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        d_loss_wasserstein(torch.zeros(0), torch.zeros(2))
    with pytest.raises(TypeError, match=r"torch.Tensor"):
        g_loss_saturating([0.1])  # type: ignore[arg-type]


def test_gradient_penalty_linear_critic_closed_form() -> None:
    torch.manual_seed(3)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 1)).double()
    with torch.no_grad():
        critic[1].weight.normal_()
    w = critic[1].weight  # (1, 18): the input gradient of a linear critic is w everywhere
    real, fake = torch.randn(5, 2, 3, 3, dtype=torch.float64), torch.randn(5, 2, 3, 3, dtype=torch.float64)
    penalty = gradient_penalty(critic, real, fake)
    norm = w.detach().norm()
    assert float(penalty.detach()) == pytest.approx(float((norm - 1) ** 2), rel=1e-9)
    # the penalty is differentiable w.r.t. the critic: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    (grad_w,) = torch.autograd.grad(penalty, w)
    torch.testing.assert_close(grad_w, 2 * (norm - 1) * w.detach() / norm)


def test_gradient_penalty_matches_finite_differences() -> None:
    torch.manual_seed(4)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    real, fake = torch.randn(3, 1, 2, 2, dtype=torch.float64), torch.randn(3, 1, 2, 2, dtype=torch.float64)
    mix = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    penalty = gradient_penalty(critic, real, fake, mix=mix)
    mixed = mix.view(3, 1, 1, 1) * real + (1 - mix.view(3, 1, 1, 1)) * fake  # (3, 1, 2, 2)
    step = 1e-6
    norms = []
    with torch.no_grad():
        for sample in mixed:
            grad = torch.zeros(4, dtype=torch.float64)
            for i in range(4):  # central differences of the critic's score w.r.t. each pixel
                delta = torch.zeros(4, dtype=torch.float64)
                delta[i] = step
                up = critic((sample.flatten() + delta).view(1, 1, 2, 2))
                down = critic((sample.flatten() - delta).view(1, 1, 2, 2))
                grad[i] = (up - down).item() / (2 * step)
            norms.append(grad.norm())
    expected = torch.stack([(n - 1) ** 2 for n in norms]).mean()
    assert float(penalty.detach()) == pytest.approx(float(expected), rel=1e-6)


def test_gradient_penalty_checks_shapes() -> None:
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1))
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(critic, torch.zeros(2, 1, 2, 2), torch.zeros(3, 1, 2, 2))
    with pytest.raises(ValueError, match=r"mix must have shape \(2,\)"):
        gradient_penalty(critic, torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2), mix=torch.zeros(3))


def test_docstrings_name_the_notebook() -> None:
    for name in ("d_loss_minimax", "g_loss_saturating", "g_loss_non_saturating"):
        assert "notebook 01" in getattr(losses, name).__doc__
    for name in ("d_loss_hinge", "g_loss_hinge", "d_loss_wasserstein", "g_loss_wasserstein", "gradient_penalty",
                 "d_loss_relativistic", "g_loss_relativistic", "zero_centred_gradient_penalty", "r1_penalty",
                 "r2_penalty"):
        assert "notebook 08" in getattr(losses, name).__doc__


# ----------------------------------------------------------------------------- R3GAN: relativistic pairing + R1/R2


def test_relativistic_pairing_loss_hand_values() -> None:
    real, fake = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([1.0, 0.0, 1.0])
    # D: mean softplus(fake - real) = mean(ln(1 + e^-1), ln 2, ln(1 + e^2)); G: the differences negated
    expected_d = (math.log1p(math.exp(-1)) + math.log(2) + math.log1p(math.exp(2))) / 3
    expected_g = (math.log1p(math.exp(1)) + math.log(2) + math.log1p(math.exp(-2))) / 3
    assert float(d_loss_relativistic(real, fake)) == pytest.approx(expected_d, rel=1e-6)
    assert float(g_loss_relativistic(real, fake)) == pytest.approx(expected_g, rel=1e-6)
    same = torch.full((4,), 3.7)
    assert float(d_loss_relativistic(same, same)) == pytest.approx(math.log(2))  # equal scores: ln 2
    # only the differences of each pair count: shifting every score by one constant changes nothing
    assert float(d_loss_relativistic(real + 5, fake + 5)) == pytest.approx(expected_d, rel=1e-6)
    # pairs matter: the same scores paired the other way round give another loss
    assert float(d_loss_relativistic(real, fake.roll(1))) != pytest.approx(expected_d, rel=1e-3)
    with pytest.raises(ValueError, match="pairing"):
        d_loss_relativistic(torch.zeros(3), torch.zeros(4))


def test_zero_centred_penalty_of_a_linear_critic_is_the_squared_weight_norm() -> None:
    torch.manual_seed(5)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 1)).double()
    w = critic[1].weight  # (1, 18): a linear critic D(x) = w.x + b has grad_x D = w everywhere
    real, fake = torch.randn(4, 2, 3, 3, dtype=torch.float64), torch.randn(4, 2, 3, 3, dtype=torch.float64)
    expected = float(w.detach().square().sum())
    assert float(r1_penalty(critic, real).detach()) == pytest.approx(expected, rel=1e-12)
    assert float(r2_penalty(critic, fake).detach()) == pytest.approx(expected, rel=1e-12)
    (grad_w,) = torch.autograd.grad(r1_penalty(critic, real), w)  # d/dw ||w||^2 = 2w: the critic is trained
    torch.testing.assert_close(grad_w, 2 * w.detach())
    assert real.grad is None  # the images are detached


def test_zero_centred_penalty_matches_finite_differences() -> None:
    torch.manual_seed(6)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    images = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    step = 1e-6
    squared = []
    with torch.no_grad():
        for sample in images.flatten(1):
            grad = torch.zeros(4, dtype=torch.float64)
            for i in range(4):
                delta = torch.zeros(4, dtype=torch.float64)
                delta[i] = step
                grad[i] = (critic((sample + delta).view(1, 1, 2, 2)) - critic((sample - delta).view(1, 1, 2, 2))
                           ).item() / (2 * step)
            squared.append(grad.square().sum())
    penalty = zero_centred_gradient_penalty(critic, images)
    assert float(penalty.detach()) == pytest.approx(float(torch.stack(squared).mean()), rel=1e-6)
    with pytest.raises(ValueError, match="float tensor"):
        zero_centred_gradient_penalty(critic, torch.zeros(3, 4, dtype=torch.long))


def _tiny_gan(seed: int = 0):
    from course_utils.models import DCGANDiscriminator, DCGANGenerator

    torch.manual_seed(seed)
    return DCGANGenerator(8, image_size=28, base_width=4), DCGANDiscriminator(image_size=28, base_width=4)


def test_relativistic_steps_match_a_hand_written_r3gan_step() -> None:
    """One step of `RelativisticSteps` equals R3GAN's update written out here, and moves both networks."""
    from course_utils.training import TrainConfig
    from course_utils.training.loop import run_one_step
    from course_utils.training.steps import RelativisticSteps

    generator, discriminator = _tiny_gan()
    real_uint8 = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    config = TrainConfig(num_epochs=1, batch_size=6, latent_dim=8, seed=3, lr_g=2e-4, lr_d=2e-4, betas=(0.0, 0.9))
    gamma = 3.0
    g_pkg, d_pkg = copy.deepcopy(generator), copy.deepcopy(discriminator)
    logs = run_one_step(g_pkg, d_pkg, real_uint8, config, RelativisticSteps(gamma=gamma))

    g_hand, d_hand = copy.deepcopy(generator).train(), copy.deepcopy(discriminator).train()
    opt_g = torch.optim.Adam(g_hand.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam(d_hand.parameters(), lr=config.lr_d, betas=config.betas)
    real = real_uint8.float() / 127.5 - 1
    fake = g_hand(torch.randn(6, 8, generator=torch.Generator().manual_seed(config.seed)))
    real_out, fake_out = d_hand(real), d_hand(fake.detach())
    loss_adv = F.softplus(fake_out - real_out).mean()
    penalties = []
    for images in (real, fake.detach()):
        x = images.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(d_hand(x).sum(), x, create_graph=True)
        penalties.append(grad.square().sum(dim=(1, 2, 3)).mean())
    opt_d.zero_grad()
    (loss_adv + gamma / 2 * (penalties[0] + penalties[1])).backward()
    opt_d.step()
    for p in d_hand.parameters():
        p.requires_grad_(False)
    real_out = d_hand(real).detach()  # the reals first, then the fakes (batch-norm statistics see this order)
    loss_g = F.softplus(real_out - d_hand(fake)).mean()
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()

    assert logs["loss_d"] == pytest.approx(loss_adv.item(), rel=1e-5)
    assert logs["r1"] == pytest.approx(penalties[0].item(), rel=1e-5) and logs["r1"] > 0
    assert logs["r2"] == pytest.approx(penalties[1].item(), rel=1e-5)
    assert logs["loss_g"] == pytest.approx(loss_g.item(), rel=1e-5)
    for a, b in zip([*g_pkg.state_dict().values(), *d_pkg.state_dict().values()],
                    [*g_hand.state_dict().values(), *d_hand.state_dict().values()], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    for before, after in ((generator, g_pkg), (discriminator, d_pkg)):  # the step changed the weights
        assert any(not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True))


def test_relativistic_steps_settings_and_resume(tmp_path) -> None:
    from course_utils.checkpoint import CheckpointMismatchError
    from course_utils.training import TrainConfig, train_gan
    from course_utils.training.steps import RelativisticSteps

    assert RelativisticSteps(gamma=0.5).settings() == {"type": "RelativisticSteps", "gamma": 0.5}
    for bad in (-1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="gamma"):
            RelativisticSteps(gamma=bad)
    data = torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    config = TrainConfig(num_epochs=1, batch_size=6, latent_dim=8, seed=1, num_samples=2)
    first = train_gan(*_tiny_gan(), data, config, steps=RelativisticSteps(gamma=1.0), checkpoint_dir=tmp_path,
                      progress=False)
    assert {"loss_d", "loss_g", "r1", "r2"} <= set(first.history) and math.isfinite(first.history["r1"][-1])
    with pytest.raises(CheckpointMismatchError, match="gamma"):
        train_gan(*_tiny_gan(), data, config, steps=RelativisticSteps(gamma=2.0), checkpoint_dir=tmp_path,
                  progress=False)
    done = train_gan(*_tiny_gan(seed=4), data, config, steps=RelativisticSteps(gamma=1.0), checkpoint_dir=tmp_path,
                     progress=False)
    assert done.epochs_completed == 1 and done.timing["images"] == 0  # same settings: loaded, nothing to train
