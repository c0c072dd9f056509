"""GAN losses: hand-computed values, agreement with PyTorch's BCE and notebook 01's formulas, WGAN-GP."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import losses
from course_utils.losses import (
    d_loss_hinge,
    d_loss_minimax,
    d_loss_wasserstein,
    g_loss_hinge,
    g_loss_non_saturating,
    g_loss_saturating,
    g_loss_wasserstein,
    gradient_penalty,
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
    for name in ("d_loss_hinge", "g_loss_hinge", "d_loss_wasserstein", "g_loss_wasserstein", "gradient_penalty"):
        assert "notebook 08" in getattr(losses, name).__doc__
