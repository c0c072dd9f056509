"""Flow matching on straight paths (rectified flow, Liu et al. 2022; conditional flow matching, Lipman et al. 2023).

Introduced in notebook 10 (`10_gan_vs_diffusion_vs_flow`). Pair a noise image x_0 ~ N(0, I) with a data image
x_1, move along the straight line between them, and train a network to predict the line's velocity; sampling
follows the learned velocity field from noise to data with Euler steps.

**Time convention: t = 0 is noise, t = 1 is data** (the convention of both papers, and the names x0_noise,
x1_data). Why: sampling then runs forward in time, t = 0 → 1, like any ODE solver, and the velocity target is
simply v = x_1 - x_0 ("where the data is, minus where the noise is").

    x_t = (1 - t) · x_0 + t · x_1,     v = dx_t/dt = x_1 - x_0,     Euler: x_{t + dt} = x_t + dt · v̂(x_t, t)

Diffusion (`course_utils.training.diffusion`) counts the other way (large step = noisy), and so does MONAI's
`RFlowScheduler`, whose integer `timesteps` τ ∈ [0, T] are a noise level: it computes `timepoints = 1 - τ/T`
and mixes `timepoints · data + (1 - timepoints) · noise`. So MONAI's timepoint is exactly this module's t:

    t = 1 - τ / T;   add_noise(x_1, x_0, τ) = interpolate(x_0, x_1, t);   MONAI's target "inputs - noise" = v;
    step(v̂, τ, x, τ_next) = x + (τ - τ_next)/T · v̂ = one Euler step from t to t_next = 1 - τ_next/T;
    set_timesteps(n) visits τ = T(1 - i/n), i.e. t = i/n, the grid of `euler_sample(steps=n)`.

The tests check all four against MONAI. The network is called as `model(x_t, t)` with `t` a float tensor `(B,)`
in [0, 1] (the same contract as the diffusion module, which passes step/T; each model is trained for one).
Images are float `(B, C, H, W)` in [-1, 1] (any `(B, ...)` shape works).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from course_utils.checks import require_int
from course_utils.training.diffusion import (
    Denoiser,
    call_model,
    describe_value,
    per_sample,
    sampling_device,
    start_noise,
)


def _check_images(images: object, name: str) -> torch.Tensor:
    """`images` if it is a float batch `(B, …)` with at least two dimensions, else a ValueError."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.dim() < 2:
        raise ValueError(
            f"{name} must be a float batch of images (B, C, H, W) in [-1, 1]; got {describe_value(images)}. "
            "Convert uint8 images with course_utils.data.imageset.to_model_range."
        )
    return images


def _check_time(t: torch.Tensor | float, batch_size: int, like: torch.Tensor) -> torch.Tensor:
    """`t` as a float tensor `(B,)` on `like`'s device and dtype (a number is used for every image)."""
    if isinstance(t, int | float) and not isinstance(t, bool):
        return torch.full((batch_size,), float(t), dtype=like.dtype, device=like.device)
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.shape != (batch_size,):
        raise ValueError(
            f"t must be a number or a float tensor of one time per image, shape ({batch_size},), with "
            f"0 = noise and 1 = data; got {describe_value(t)}. Draw it with torch.rand(B)."
        )
    return t.to(device=like.device, dtype=like.dtype)


def interpolate(x0_noise: torch.Tensor, x1_data: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """x_t = (1 - t) · x_0 + t · x_1 on the straight path from noise (t = 0) to data (t = 1) (notebook 10).

    `x0_noise`, `x1_data`: `(B, C, H, W)`; `t`: `(B,)` or one number. Equals MONAI's
    `RFlowScheduler.add_noise(x1_data, x0_noise, timesteps=(1 - t) * T)`.
    """
    _check_images(x0_noise, "x0_noise")
    _check_images(x1_data, "x1_data")
    if x0_noise.shape != x1_data.shape:
        raise ValueError(
            f"x0_noise and x1_data must have the same shape (one noise image per data image); got "
            f"{tuple(x0_noise.shape)} and {tuple(x1_data.shape)}. Draw the noise with torch.randn_like(x1)."
        )
    t = per_sample(_check_time(t, x1_data.shape[0], x1_data), x1_data.dim())  # (B, 1, 1, 1)
    return (1.0 - t) * x0_noise + t * x1_data


def target_velocity(x0_noise: torch.Tensor, x1_data: torch.Tensor) -> torch.Tensor:
    """v = x_1 - x_0: the velocity of the straight path, the same at every t (notebook 10)."""
    return x1_data - x0_noise


def velocity_loss(
    model: Denoiser,
    x1: torch.Tensor,
    generator: torch.Generator | None = None,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Conditional flow matching: mean((v̂(x_t, t) - (x_1 - x_0))²), t ~ U(0, 1), x_0 ~ N(0, I) (notebook 10).

    `x1`: data images `(B, C, H, W)` in [-1, 1]. `t` and `noise` (x_0) are drawn (t first, then noise, from
    `generator` when given) unless passed in, which lets a notebook check the formula on one batch. Returns a
    0-d tensor, the mean over every pixel (as `F.mse_loss`). Its minimum is not 0 for real data: many lines
    cross each x_t, and the best network predicts their average velocity.
    """
    _check_images(x1, "x1")
    if t is None:
        t = torch.rand((x1.shape[0],), device=x1.device, dtype=x1.dtype, generator=generator)  # (B,)
    if noise is None:
        noise = torch.randn(x1.shape, device=x1.device, dtype=x1.dtype, generator=generator)  # (B, C, H, W)
    t = _check_time(t, x1.shape[0], x1)
    x_t = interpolate(noise, x1, t)
    predicted = call_model(model, x_t, t)
    return F.mse_loss(predicted.float(), target_velocity(noise, x1).float())


def euler_step(velocity: torch.Tensor, x_t: torch.Tensor, dt: float) -> torch.Tensor:
    """x_{t + dt} = x_t + dt · v̂: one Euler step towards the data (dt > 0; notebook 10)."""
    return x_t + dt * velocity


@torch.no_grad()
def euler_sample(
    model: Denoiser,
    shape: Sequence[int],
    steps: int,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Images `shape` (≈ [-1, 1], not clipped) from `steps` Euler steps of the learned flow, t = 0 → 1 (notebook 10).

    Starts from x_0 = `noise` or N(0, I) drawn from `generator`; evaluates the network at t = i/steps,
    i = 0 … steps-1, and steps by dt = 1/steps. Runs under no_grad; put the model in eval mode first.
    """
    steps = require_int(steps, "steps", example="16")
    device = sampling_device(model, device)
    x = start_noise(shape, device, generator, noise)
    dt = 1.0 / steps
    for i in range(steps):
        t = torch.full((x.shape[0],), i * dt, device=device, dtype=x.dtype)  # (B,)
        x = euler_step(call_model(model, x, t), x, dt)
    return x
