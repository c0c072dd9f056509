"""DDPM / DDIM (notebook 10): schedules, noising and one-step updates against MONAI's schedulers, full sampling
loops against MONAI's with the same random numbers, and closed forms (an oracle noise predictor recovers x_0;
a Gaussian's exact noise predictor gives that Gaussian)."""

from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from course_utils.training.diffusion import (
    alphas_cumprod,
    cosine_beta_schedule,
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
    ddpm_step,
    linear_beta_schedule,
    noise_prediction_loss,
    predict_x0,
    q_sample,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster on a busy CPU

TOL = 1e-5


def _toy_eps(x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
    """A fixed, time-dependent 'noise prediction' (not a network) for comparing update rules."""
    return 0.7 * x + 0.3 * torch.sin(3.0 * x) * time[:, None, None, None] - 0.1


def _oracle(x0: torch.Tensor, alpha_bar: torch.Tensor):
    """A model that knows the clean images x0: it returns exactly the noise that turns x0 into x_t."""
    num_steps = len(alpha_bar)

    def model(x_t: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        t = (time * num_steps).round().long()
        a = alpha_bar[t][:, None, None, None]
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    return model


@pytest.mark.parametrize("schedule", ["linear_beta", "cosine"])
def test_schedules_match_monai(schedule: str) -> None:
    monai = DDPMScheduler(num_train_timesteps=1000, schedule=schedule)
    betas = linear_beta_schedule(1000) if schedule == "linear_beta" else cosine_beta_schedule(1000)
    assert betas.dtype == torch.float32 and betas.shape == (1000,)
    torch.testing.assert_close(betas, monai.betas, atol=TOL, rtol=0)
    torch.testing.assert_close(alphas_cumprod(betas), monai.alphas_cumprod, atol=TOL, rtol=0)


def test_schedule_closed_forms() -> None:
    betas = linear_beta_schedule(1000)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    alpha_bar = alphas_cumprod(betas)
    assert alpha_bar[0].item() == pytest.approx(1 - 1e-4)
    assert alpha_bar[-1].item() == pytest.approx(
        4.04e-5, rel=0.02
    )  # exp(-sum beta) ≈ exp(-10.1): almost pure noise
    cosine = alphas_cumprod(cosine_beta_schedule(1000))
    assert cosine[499].item() == pytest.approx(
        0.4923, abs=2e-3
    )  # cos²(π/4 · (0.5 + s)/(1 + s)·2): half signal


def test_q_sample_matches_monai_add_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(4, 1, 6, 6, generator=g) * 2 - 1, torch.randn(4, 1, 6, 6, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    monai = DDPMScheduler(num_train_timesteps=1000)
    ours = q_sample(x0, t, noise, alphas_cumprod(linear_beta_schedule(1000)))
    torch.testing.assert_close(ours, monai.add_noise(x0, noise, t), atol=TOL, rtol=0)
    assert (ours[3] - noise[3]).abs().max() < 0.02  # t = 999 is almost pure noise
    assert (ours[0] - x0[0]).abs().max() < 0.02  # t = 0 is almost clean


@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("t", [0, 1, 37, 99])
def test_ddpm_step_matches_monai(t: int, clip: bool) -> None:
    monai = DDPMScheduler(num_train_timesteps=100, clip_sample=clip)
    g = torch.Generator().manual_seed(t)
    x_t, eps = torch.randn(3, 1, 5, 5, generator=g) * 1.5, torch.randn(3, 1, 5, 5, generator=g)
    expected, _ = monai.step(eps, t, x_t, generator=torch.Generator().manual_seed(7))
    ours = ddpm_step(eps, t, x_t, monai.betas, generator=torch.Generator().manual_seed(7), clip_x0=clip)
    torch.testing.assert_close(ours, expected, atol=TOL, rtol=0)


def test_ddpm_step_without_clipping_is_algorithm_2() -> None:
    betas = linear_beta_schedule(50, beta_end=0.2)
    alpha_bar = alphas_cumprod(betas)
    x_t, eps, t = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4), 20
    z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(3))
    sigma = ((1 - alpha_bar[t - 1]) / (1 - alpha_bar[t]) * betas[t]).sqrt()
    ho = (x_t - betas[t] / (1 - alpha_bar[t]).sqrt() * eps) / (1 - betas[t]).sqrt() + sigma * z
    ours = ddpm_step(eps, t, x_t, betas, generator=torch.Generator().manual_seed(3), clip_x0=False)
    torch.testing.assert_close(ours, ho, atol=TOL, rtol=0)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize(("t", "steps"), [(99, 10), (40, 5), (9, 10), (5, 100)])
def test_ddim_step_matches_monai(t: int, steps: int, eta: float) -> None:
    monai = DDIMScheduler(num_train_timesteps=100, schedule="cosine")
    monai.set_timesteps(steps)
    g = torch.Generator().manual_seed(t)
    x_t, eps = torch.randn(3, 1, 5, 5, generator=g), torch.randn(3, 1, 5, 5, generator=g)
    expected, _ = monai.step(eps, t, x_t, eta=eta, generator=torch.Generator().manual_seed(5))
    t_prev = max(t - 100 // steps, -1)  # MONAI's previous step; below 0 it uses ᾱ = 1
    ours = ddim_step(
        eps, t, t_prev, x_t, monai.alphas_cumprod, eta=eta, generator=torch.Generator().manual_seed(5)
    )
    torch.testing.assert_close(ours, expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("steps", [1, 4, 50, 1000])
def test_ddim_timesteps_match_monai(steps: int) -> None:
    monai = DDIMScheduler(num_train_timesteps=1000)
    monai.set_timesteps(steps)
    assert torch.equal(ddim_timesteps(steps, 1000), monai.timesteps)


def test_full_ddpm_loop_matches_monai() -> None:
    monai = DDPMScheduler(num_train_timesteps=30, schedule="cosine")
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 1, 4, 4, generator=g)
    for t in monai.timesteps.tolist():
        x, _ = monai.step(_toy_eps(x, torch.full((2,), t / 30)), t, x, generator=g)
    ours = ddpm_sample(_toy_eps, (2, 1, 4, 4), monai.betas, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(ours, x, atol=TOL, rtol=0)


def test_full_ddim_loop_matches_monai() -> None:
    monai = DDIMScheduler(num_train_timesteps=40)
    monai.set_timesteps(40)  # consecutive steps: MONAI's t - T // steps is then the next step of its own grid
    x = noise = torch.randn(2, 1, 4, 4)
    for t in monai.timesteps.tolist():
        x, _ = monai.step(_toy_eps(x, torch.full((2,), t / 40)), t, x)
    ours = ddim_sample(_toy_eps, (2, 1, 4, 4), 40, monai.alphas_cumprod, noise=noise)
    torch.testing.assert_close(ours, x, atol=TOL, rtol=0)


@pytest.mark.parametrize("steps", [1, 3, 20])
def test_ddim_with_the_true_noise_recovers_x0(steps: int) -> None:
    alpha_bar = alphas_cumprod(linear_beta_schedule(200, beta_end=0.1))
    x0 = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    out = ddim_sample(
        _oracle(x0, alpha_bar), x0.shape, steps, alpha_bar, generator=torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


def test_ddpm_with_the_true_noise_recovers_x0() -> None:
    betas = linear_beta_schedule(60, beta_end=0.2)
    x0 = torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(2)) * 1.6 - 0.8
    out = ddpm_sample(
        _oracle(x0, alphas_cumprod(betas)), x0.shape, betas, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(out, x0, atol=5e-4, rtol=0)  # (float32 round-off over 60 noisy steps)


def test_ddim_with_the_exact_gaussian_score_gives_that_gaussian() -> None:
    """Data N(mu, s²) per pixel: E[ε | x_t] = √(1-ᾱ)(x_t - √ᾱ mu) / (ᾱ s² + 1 - ᾱ), and DDIM maps x_T affinely.

    With all 1000 steps the map is x_T ↦ mu + s·x_T (to 1 %); with few steps DDIM under-disperses (slope < s).
    """
    mu, s = 0.3, 0.2
    alpha_bar = alphas_cumprod(cosine_beta_schedule(1000))

    def exact_eps(x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        a = alpha_bar[(time * 1000).round().long()][:, None, None, None]
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s**2 + 1 - a)

    noise = torch.linspace(-2, 2, 9).reshape(9, 1, 1, 1)
    slopes = {}
    for steps in (10, 1000):
        out = ddim_sample(exact_eps, noise.shape, steps, alpha_bar, noise=noise, clip_x0=False)
        slopes[steps] = ((out[-1] - out[0]) / 4).item()
        assert out[4].item() == pytest.approx(mu, abs=0.005)  # x_T = 0 lands on the mean
    assert slopes[1000] == pytest.approx(s, rel=0.01)
    assert slopes[10] < 0.8 * s


def test_predict_x0_inverts_q_sample() -> None:
    alpha_bar = alphas_cumprod(linear_beta_schedule(100))
    x0, noise, t = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3), torch.tensor([50, 50])
    x_t = q_sample(x0, t, noise, alpha_bar)
    torch.testing.assert_close(predict_x0(x_t, noise, alpha_bar[50]), x0, atol=1e-5, rtol=0)


def test_noise_prediction_loss_is_the_mse_on_the_drawn_t_and_noise() -> None:
    alpha_bar = alphas_cumprod(linear_beta_schedule(100))
    x0 = torch.rand(5, 1, 4, 4) * 2 - 1
    loss = noise_prediction_loss(_toy_eps, x0, alpha_bar, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)  # the documented order: t first, then the noise
    t = torch.randint(0, 100, (5,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    expected = ((_toy_eps(q_sample(x0, t, noise, alpha_bar), t / 100) - noise) ** 2).mean()
    assert loss.dim() == 0 and loss.item() == pytest.approx(expected.item(), rel=1e-6)
    oracle = noise_prediction_loss(
        _oracle(x0, alpha_bar), x0, alpha_bar, generator=torch.Generator().manual_seed(4)
    )
    assert oracle.item() < 1e-8


def test_clear_errors() -> None:
    alpha_bar = alphas_cumprod(linear_beta_schedule(10))
    x0 = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="shape of x0"):
        q_sample(x0, torch.tensor([1, 2]), torch.zeros(2, 1, 4, 3), alpha_bar)
    with pytest.raises(ValueError, match="integer tensor"):
        q_sample(x0, torch.tensor([0.5, 0.5]), torch.zeros_like(x0), alpha_bar)
    with pytest.raises(ValueError, match="float batch"):
        noise_prediction_loss(_toy_eps, torch.zeros(2, 1, 4, 4, dtype=torch.uint8), alpha_bar)
    with pytest.raises(ValueError, match="input's shape"):
        noise_prediction_loss(lambda x, time: x[:, :, :2], x0, alpha_bar)
    with pytest.raises(ValueError, match="at most the T = 10"):
        ddim_sample(_toy_eps, (1, 1, 2, 2), 11, alpha_bar)
    with pytest.raises(ValueError, match="non-increasing"):
        ddim_sample(_toy_eps, (1, 1, 2, 2), 2, linear_beta_schedule(10))  # betas passed by mistake
    with pytest.raises(ValueError, match="step t"):
        ddpm_step(x0, 10, x0, linear_beta_schedule(10))
    with pytest.raises(ValueError, match="t_prev"):
        ddim_step(x0, 3, 3, x0, alpha_bar)
    with pytest.raises(ValueError, match="beta_start"):
        linear_beta_schedule(10, beta_start=0.5, beta_end=0.1)
