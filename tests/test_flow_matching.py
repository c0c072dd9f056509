"""Flow matching on straight paths (notebook 10): the time convention mapped onto MONAI's RFlowScheduler
(noising, velocity target, Euler step, the sampling grid), exact samples from the exact velocity field of a
Gaussian-to-point flow, a zero loss for the oracle velocity, and clear errors."""

from __future__ import annotations

import pytest
import torch
from monai.networks.schedulers import RFlowScheduler

from course_utils.training.flow_matching import (
    euler_sample,
    euler_step,
    interpolate,
    target_velocity,
    velocity_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster on a busy CPU

TOL = 1e-5
T = 1000  # MONAI's num_train_timesteps


def _toy_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed, time-dependent velocity field (not a network) for comparing update rules."""
    return 0.5 - 0.8 * x + torch.cos(2.0 * x) * t[:, None, None, None]


def _to_point(point: torch.Tensor):
    """The exact velocity field when all the data is one image `point`: v(x, t) = (point - x) / (1 - t)."""

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (point - x) / (1 - t)[:, None, None, None]

    return model


def test_interpolation_ends_and_monai_add_noise() -> None:
    g = torch.Generator().manual_seed(0)
    noise, data = torch.randn(4, 1, 5, 5, generator=g), torch.rand(4, 1, 5, 5, generator=g) * 2 - 1
    assert torch.equal(interpolate(noise, data, 0.0), noise)  # t = 0 is noise
    assert torch.equal(interpolate(noise, data, 1.0), data)  # t = 1 is data
    timesteps = torch.tensor([0, 250, 700, 1000])  # MONAI: a noise level, 1000 = all noise
    ours = interpolate(noise, data, 1 - timesteps.float() / T)
    monai = RFlowScheduler(num_train_timesteps=T).add_noise(data, noise, timesteps)
    torch.testing.assert_close(ours, monai, atol=TOL, rtol=0)
    torch.testing.assert_close(ours[2], 0.7 * noise[2] + 0.3 * data[2], atol=TOL, rtol=0)


def test_velocity_is_the_derivative_of_the_path_and_monai_target() -> None:
    noise, data = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)
    h = 1e-3
    numeric = (interpolate(noise, data, 0.4 + h) - interpolate(noise, data, 0.4 - h)) / (2 * h)
    torch.testing.assert_close(target_velocity(noise, data), numeric, atol=1e-3, rtol=0)
    torch.testing.assert_close(target_velocity(noise, data), data - noise)  # MONAI's "inputs - noise"


@pytest.mark.parametrize(("timestep", "next_timestep"), [(1000, 750), (300, 0), (10, 9)])
def test_euler_step_matches_monai_step(timestep: int, next_timestep: int) -> None:
    monai = RFlowScheduler(num_train_timesteps=T)
    monai.set_timesteps(4)
    x, v = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    expected, _ = monai.step(v, timestep, x, next_timestep)
    dt = (1 - next_timestep / T) - (1 - timestep / T)  # our t goes up as MONAI's step goes down
    torch.testing.assert_close(euler_step(v, x, dt), expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("steps", [1, 4, 10])
def test_euler_sample_matches_the_monai_loop(steps: int) -> None:
    monai = RFlowScheduler(num_train_timesteps=T, use_discrete_timesteps=False)
    monai.set_timesteps(steps)
    x = noise = torch.randn(3, 1, 4, 4)
    nexts = [*monai.timesteps[1:].tolist(), 0]
    for timestep, next_timestep in zip(monai.timesteps.tolist(), nexts, strict=True):
        t = torch.full((3,), 1 - timestep / T)  # MONAI's timepoint is our t
        x, _ = monai.step(_toy_velocity(x, t), timestep, x, next_timestep)
    ours = euler_sample(_toy_velocity, noise.shape, steps, noise=noise)
    torch.testing.assert_close(ours, x, atol=TOL, rtol=0)


@pytest.mark.parametrize("steps", [1, 2, 7])
def test_exact_velocity_of_a_gaussian_to_point_flow_gives_exact_samples(steps: int) -> None:
    point = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4)
    out = euler_sample(_to_point(point), (5, 1, 4, 4), steps, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, point.expand(5, -1, -1, -1), atol=1e-5, rtol=0)


def test_one_euler_step_of_a_curved_field_is_not_exact() -> None:
    """Control for the test above: a velocity that is not straight-line needs more than one step."""
    noise = torch.ones(1, 1, 1, 1)

    def decay(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # dx/dt = -x: x(1) = x(0) / e
        return -x

    exact = noise / torch.e
    assert abs(euler_sample(decay, noise.shape, 1, noise=noise).item() - exact.item()) > 0.3
    assert abs(euler_sample(decay, noise.shape, 200, noise=noise).item() - exact.item()) < 1e-3


def test_velocity_loss_is_zero_for_the_oracle_and_the_mse_otherwise() -> None:
    point = torch.rand(1, 1, 4, 4) * 2 - 1
    x1 = point.expand(6, -1, -1, -1).contiguous()
    oracle = velocity_loss(_to_point(point), x1, generator=torch.Generator().manual_seed(1))
    assert oracle.dim() == 0 and oracle.item() < 1e-10
    loss = velocity_loss(_toy_velocity, x1, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)  # the documented order: t first, then the noise
    t, noise = torch.rand(6, generator=g), torch.randn(x1.shape, generator=g)
    expected = ((_toy_velocity(interpolate(noise, x1, t), t) - (x1 - noise)) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6) and loss.item() > 0.1


def test_clear_errors() -> None:
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="same shape"):
        interpolate(x, torch.zeros(2, 1, 4, 5), 0.5)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        interpolate(x, x, torch.zeros(3))
    with pytest.raises(ValueError, match="float tensor"):
        interpolate(x, x, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="float batch"):
        velocity_loss(_toy_velocity, torch.zeros(2, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="input's shape"):
        velocity_loss(lambda x, t: x.mean(dim=1), x)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        euler_sample(_toy_velocity, (1, 1, 2, 2), 0)
    with pytest.raises(ValueError, match="requested shape"):
        euler_sample(_toy_velocity, (1, 1, 2, 2), 2, noise=torch.zeros(2, 1, 2, 2))
