"""Denoising diffusion (DDPM, Ho et al. 2020) and its few-step deterministic sampler (DDIM, Song et al. 2021).

Introduced in notebook 10 (`10_gan_vs_diffusion_vs_flow`). Teaching-grade: every formula is written out in
plain code, and the tests check each one against MONAI's `DDPMScheduler` / `DDIMScheduler` (same schedule
values, same noised images, same one-step updates) and against closed forms.

Conventions:
- **Discrete steps** t = 0 … T-1 (T = `len(betas)`, 1000 in the papers). Step t adds noise of variance β_t;
  ᾱ_t = Π_{s<=t} (1 - β_s) (`alphas_cumprod`), so t = 0 is almost clean data and t = T-1 almost pure noise:
  **large t = noisy** (flow matching in `course_utils.training.flow_matching` counts the other way).
- **Forward process** (`q_sample`): x_t = √ᾱ_t · x_0 + √(1 - ᾱ_t) · ε, ε ~ N(0, I).
- **The network predicts the noise** ε ("epsilon prediction", DDPM's choice and MONAI's default).
- **The network is called as `model(x_t, time)`** with `x_t` `(B, C, H, W)` and `time = t / T`, a float
  tensor `(B,)` in [0, 1): the same contract as flow matching, so one denoiser class
  (`course_utils.models.denoiser.TimeConditionedUNet`) serves both. A network that wants the integer step
  (MONAI's `DiffusionModelUNet`) is wrapped: `lambda x, time: unet(x, (time * T).round().long())`.
- Images are float `(B, C, H, W)` in [-1, 1] (any `(B, ...)` shape works). As in MONAI, the samplers clip the
  predicted clean image x̂_0 to [-1, 1] (`clip_x0=True`); with `clip_x0=False` the DDPM step is exactly Ho et
  al.'s Algorithm 2, x_{t-1} = (x_t - β_t / √(1 - ᾱ_t) · ε̂) / √(1 - β_t) + σ_t z.
- Random numbers come from `generator` when given (the global RNG otherwise), in a documented order, so a run
  is reproducible and the MONAI loop with the same generator draws the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.checks import require_int

NUM_TRAIN_STEPS = 1000  # T of the DDPM paper
Denoiser = Callable[
    [torch.Tensor, torch.Tensor], torch.Tensor
]  # model(x_t (B, C, H, W), time (B,)) -> (B, C, H, W)


# ----------------------------------------------------------------------------- schedules


def linear_beta_schedule(
    num_steps: int = NUM_TRAIN_STEPS, beta_start: float = 1e-4, beta_end: float = 0.02
) -> torch.Tensor:
    """β_t rising linearly from `beta_start` to `beta_end` over `num_steps` steps, float32 `(T,)` (DDPM; notebook 10).

    The same values as MONAI's `"linear_beta"` schedule (`DDPMScheduler(schedule="linear_beta")`).
    """
    num_steps = require_int(num_steps, "num_steps", minimum=2, example="1000")
    if not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(
            f"need 0 < beta_start <= beta_end < 1 (each is the variance of the noise added in one step); got "
            f"beta_start={beta_start!r}, beta_end={beta_end!r}. DDPM uses 1e-4 and 0.02 for T = 1000."
        )
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float32)  # (T,)


def cosine_beta_schedule(
    num_steps: int = NUM_TRAIN_STEPS, s: float = 0.008, max_beta: float = 0.999
) -> torch.Tensor:
    """β_t of the cosine schedule (Nichol & Dhariwal 2021), float32 `(T,)`; clipped at `max_beta` (notebook 10).

    ᾱ(t) = cos²((t/T + s) / (1 + s) · π/2) / ᾱ(0); β_t = 1 - ᾱ(t+1)/ᾱ(t). The same values as MONAI's `"cosine"`.
    It destroys the image more slowly at small t than the linear schedule, which helps small images such as 28 px.
    """
    num_steps = require_int(num_steps, "num_steps", minimum=2, example="1000")
    if not 0.0 <= s < 1.0 or not 0.0 < max_beta < 1.0:
        raise ValueError(
            f"need 0 <= s < 1 and 0 < max_beta < 1; got s={s!r}, max_beta={max_beta!r} (defaults 0.008, 0.999)."
        )
    x = torch.linspace(0, num_steps, num_steps + 1)  # (T + 1,)
    alpha_bar = torch.cos((x / num_steps + s) / (1 + s) * math.pi * 0.5) ** 2
    alpha_bar = alpha_bar / alpha_bar[0]
    return torch.clip(1.0 - alpha_bar[1:] / alpha_bar[:-1], 0.0, max_beta)  # (T,)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = Π_{s<=t} (1 - β_s), `(T,)`: how much of the clean image survives in x_t (notebook 10)."""
    check_betas(betas)
    return torch.cumprod(1.0 - betas, dim=0)


def check_betas(betas: torch.Tensor) -> torch.Tensor:
    """`betas` if it is a 1-D float tensor of values in (0, 1), else a ValueError saying how to make one."""
    if (
        not isinstance(betas, torch.Tensor)
        or not betas.is_floating_point()
        or betas.dim() != 1
        or len(betas) < 2
    ):
        raise ValueError(
            "betas must be a 1-D float tensor of T >= 2 noise variances; make one with linear_beta_schedule(1000) "
            f"or cosine_beta_schedule(1000); got {describe_value(betas)}."
        )
    if not bool(((betas > 0) & (betas < 1)).all()):
        raise ValueError(
            f"every beta must lie in (0, 1); got values from {betas.min().item():g} to {betas.max().item():g}."
        )
    return betas


def check_alphas_cumprod(alpha_bar: torch.Tensor) -> torch.Tensor:
    """`alpha_bar` if it is a 1-D float tensor, non-increasing, in (0, 1]; else a ValueError (syncs: call it once)."""
    if (
        not isinstance(alpha_bar, torch.Tensor)
        or not alpha_bar.is_floating_point()
        or alpha_bar.dim() != 1
        or len(alpha_bar) < 2
    ):
        raise ValueError(
            "alphas_cumprod must be a 1-D float tensor (T,) of T >= 2 values; make it with "
            f"alphas_cumprod(linear_beta_schedule(1000)); got {describe_value(alpha_bar)}."
        )
    if not bool(((alpha_bar > 0) & (alpha_bar <= 1)).all()) or bool((alpha_bar[1:] > alpha_bar[:-1]).any()):
        raise ValueError(
            "alphas_cumprod must be non-increasing values in (0, 1] (the signal left after each step); did you pass "
            "the betas instead? Use alphas_cumprod(betas)."
        )
    return alpha_bar


def describe_value(value: object) -> str:
    """A short description of a value for an error message: a tensor's shape and dtype, or its type."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def per_sample(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """`(B,)` → `(B, 1, 1, …)` with `ndim` dimensions in all, to scale each image of a batch."""
    return values.reshape(-1, *([1] * (ndim - 1)))


# ----------------------------------------------------------------------------- the forward process and the loss


def q_sample(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """x_t = √ᾱ_t · x_0 + √(1 - ᾱ_t) · ε: clean images `(B, …)` noised to steps `t` `(B,)` (notebook 10).

    Equals MONAI's `scheduler.add_noise(x0, noise, t)`.
    """
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point() or x0.dim() < 2:
        raise ValueError(
            f"x0 must be a float batch of images (B, C, H, W) in [-1, 1]; got {describe_value(x0)}."
        )
    if not isinstance(noise, torch.Tensor) or noise.shape != x0.shape:
        raise ValueError(
            f"noise must have the shape of x0 {tuple(x0.shape)}; got {describe_value(noise)}. "
            "Draw it with torch.randn_like(x0)."
        )
    if (
        not isinstance(t, torch.Tensor)
        or t.dtype.is_floating_point
        or t.dtype == torch.bool
        or t.shape != (x0.shape[0],)
    ):
        raise ValueError(
            f"t must be an integer tensor of one step per image, shape ({x0.shape[0]},); got "
            f"{describe_value(t)}. Draw it with torch.randint(0, T, (B,))."
        )
    alpha_bar = alphas_cumprod.to(device=x0.device, dtype=x0.dtype)[t.to(x0.device)]  # (B,)
    signal = per_sample(alpha_bar.sqrt(), x0.dim())  # (B, 1, 1, 1)
    noise_scale = per_sample((1.0 - alpha_bar).sqrt(), x0.dim())
    return signal * x0 + noise_scale * noise


def model_time(t: torch.Tensor | int, num_steps: int, batch_size: int, device: torch.device) -> torch.Tensor:
    """The time the network sees for step(s) `t`: `t / T` as float32 `(B,)` in [0, 1) (notebook 10)."""
    if isinstance(t, torch.Tensor):
        return t.to(device=device, dtype=torch.float32) / num_steps
    return torch.full((batch_size,), t / num_steps, device=device, dtype=torch.float32)


def call_model(model: Denoiser, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
    """`model(x, time)`, checked to return a tensor of the shape of `x` (diffusion and flow matching; notebook 10)."""
    out = model(x, time)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        raise ValueError(
            f"the model must return a tensor of the input's shape {tuple(x.shape)} (the predicted noise or velocity "
            f"of every pixel); got {describe_value(out)}. Check its out_channels and image size."
        )
    return out


def noise_prediction_loss(
    model: Denoiser,
    x0: torch.Tensor,
    alphas_cumprod: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """DDPM's simple loss: mean((ε̂(x_t, t) - ε)²) with t ~ U{0, …, T-1}, ε ~ N(0, I) (introduced in notebook 10).

    `x0`: clean images `(B, C, H, W)` in [-1, 1]. `alphas_cumprod`: `(T,)`, default the linear 1000-step schedule.
    `t` and `noise` are drawn (t first, then noise, from `generator` when given) unless passed in, which lets a
    notebook check the formula on one batch. Returns a 0-d tensor (the mean over every pixel, as `F.mse_loss`).
    """
    if alphas_cumprod is None:
        alphas_cumprod = torch.cumprod(
            1.0 - linear_beta_schedule(NUM_TRAIN_STEPS), dim=0
        )  # (T,) linear, T = 1000
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point() or x0.dim() < 2:
        raise ValueError(
            f"x0 must be a float batch of images (B, C, H, W) in [-1, 1]; got {describe_value(x0)}. "
            "Convert uint8 images with course_utils.data.imageset.to_model_range."
        )
    num_steps = len(alphas_cumprod)
    if t is None:
        t = torch.randint(0, num_steps, (x0.shape[0],), device=x0.device, generator=generator)  # (B,)
    if noise is None:
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)  # (B, C, H, W)
    x_t = q_sample(x0, t, noise, alphas_cumprod)
    predicted = call_model(model, x_t, model_time(t, num_steps, x0.shape[0], x0.device))
    return F.mse_loss(predicted.float(), noise.float())


# ----------------------------------------------------------------------------- one reverse step


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor | float) -> torch.Tensor:
    """x̂_0 = (x_t - √(1 - ᾱ_t) · ε̂) / √ᾱ_t: the clean image implied by a noise prediction (notebook 10)."""
    alpha_bar_t = torch.as_tensor(alpha_bar_t, dtype=x_t.dtype, device=x_t.device)
    return (x_t - (1.0 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()


def _check_step(t: int, num_steps: int) -> int:
    """`t` if it is a valid step index 0 … T-1."""
    if isinstance(t, torch.Tensor) and t.numel() == 1:
        t = int(t)
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < num_steps:
        raise ValueError(
            f"the step t must be an integer in 0 … {num_steps - 1} (T = {num_steps}); got {t!r}."
        )
    return t


def ddpm_step(
    eps: torch.Tensor,
    t: int,
    x_t: torch.Tensor,
    betas: torch.Tensor,
    generator: torch.Generator | None = None,
    clip_x0: bool = True,
) -> torch.Tensor:
    """One ancestral DDPM step x_t → x_{t-1} from the predicted noise `eps` (introduced in notebook 10).

    x_{t-1} = μ̃_t(x̂_0, x_t) + σ_t z with the posterior mean μ̃_t = √ᾱ_{t-1} β_t / (1 - ᾱ_t) · x̂_0 +
    √α_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · x_t and σ_t² = β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · β_t (no noise at t = 0).
    `z` is drawn from `generator` like MONAI's `DDPMScheduler.step` (default "fixed_small" variance) does.
    """
    check_betas(betas)
    t = _check_step(t, len(betas))
    betas = betas.to(device=x_t.device, dtype=x_t.dtype)
    alpha_bar = torch.cumprod(1.0 - betas, dim=0)  # (T,)
    alpha_bar_t = alpha_bar[t]
    alpha_bar_prev = alpha_bar[t - 1] if t > 0 else torch.ones((), dtype=x_t.dtype, device=x_t.device)
    x0 = predict_x0(x_t, eps, alpha_bar_t)
    if clip_x0:
        x0 = x0.clamp(-1.0, 1.0)
    x0_coefficient = alpha_bar_prev.sqrt() * betas[t] / (1.0 - alpha_bar_t)
    x_t_coefficient = (1.0 - betas[t]).sqrt() * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
    mean = x0_coefficient * x0 + x_t_coefficient * x_t
    if t == 0:
        return mean
    variance = ((1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * betas[t]).clamp(min=1e-20)
    z = torch.randn(eps.shape, dtype=eps.dtype, device=eps.device, generator=generator)
    return mean + variance.sqrt() * z


def ddim_step(
    eps: torch.Tensor,
    t: int,
    t_prev: int,
    x_t: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip_x0: bool = True,
    clipped_eps: bool = False,
) -> torch.Tensor:
    """One DDIM step x_t → x_{t_prev} (t_prev < t; -1 means "to the clean image", ᾱ = 1) (notebook 10).

    x_{t_prev} = √ᾱ_prev · x̂_0 + √(1 - ᾱ_prev - σ²) · ε̂ + σ z, σ = η √((1 - ᾱ_prev)/(1 - ᾱ_t) · (1 - ᾱ_t/ᾱ_prev)).
    η = 0 is deterministic (the probability-flow ODE, discretised); η = 1 has DDPM's variance. Equals MONAI's
    `DDIMScheduler.step(eps, t, x_t, eta, generator)` when that scheduler's previous step is `t_prev`.

    `clipped_eps=True` (with `clip_x0`) re-derives the noise from the clipped x̂_0, ε̂ = (x_t - √ᾱ_t · x̂_0) / √(1 - ᾱ_t),
    before the direction term (diffusers' `use_clipped_model_output`): at the noisiest steps of the cosine
    schedule (ᾱ near 0) x̂_0 magnifies every error of ε̂ thousands of times, and the clipped x̂_0 and the raw ε̂
    then disagree; with few sampling steps that disagreement is carried to the next step.
    """
    num_steps = len(alphas_cumprod)
    t = _check_step(t, num_steps)
    if isinstance(t_prev, bool) or not isinstance(t_prev, int) or not -1 <= t_prev < t:
        raise ValueError(
            f"t_prev must be an integer with -1 <= t_prev < t = {t} (-1: the clean image); got {t_prev!r}."
        )
    if not isinstance(eta, int | float) or eta < 0:
        raise ValueError(
            f"eta must be a number >= 0 (0: deterministic DDIM, 1: DDPM-like noise); got {eta!r}."
        )
    alpha_bar = alphas_cumprod.to(device=x_t.device, dtype=x_t.dtype)
    alpha_bar_t = alpha_bar[t]
    alpha_bar_prev = alpha_bar[t_prev] if t_prev >= 0 else torch.ones((), dtype=x_t.dtype, device=x_t.device)
    x0 = predict_x0(x_t, eps, alpha_bar_t)
    if clip_x0:
        x0 = x0.clamp(-1.0, 1.0)  # (as MONAI, the direction term keeps the unclipped ε̂ unless clipped_eps)
        if clipped_eps:
            eps = (x_t - alpha_bar_t.sqrt() * x0) / (1.0 - alpha_bar_t).sqrt()
    sigma = eta * ((1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * (1.0 - alpha_bar_t / alpha_bar_prev)).sqrt()
    x_prev = alpha_bar_prev.sqrt() * x0 + (1.0 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        z = torch.randn(eps.shape, dtype=eps.dtype, device=eps.device, generator=generator)
        x_prev = x_prev + sigma * z
    return x_prev


def ddim_timesteps(steps: int, num_train_steps: int) -> torch.Tensor:
    """The `steps` steps DDIM visits, from T-1 down to 0, evenly spaced and rounded: int64 `(steps,)` (notebook 10).

    The same grid as MONAI's `DDIMScheduler.set_timesteps(steps)`.
    """
    steps = require_int(steps, "steps", example="50")
    if steps > num_train_steps:
        raise ValueError(
            f"steps must be at most the T = {num_train_steps} steps the model was trained with; got {steps}."
        )
    return torch.linspace(num_train_steps - 1, 0, steps).round().long()


# ----------------------------------------------------------------------------- samplers


def sampling_device(model: Denoiser, device: torch.device | str | None) -> torch.device:
    """`device`, else the device of the model's first parameter, else the CPU."""
    if device is not None:
        return torch.device(device)
    if isinstance(model, nn.Module):
        for parameter in model.parameters():
            return parameter.device
    return torch.device("cpu")


def start_noise(
    shape: Sequence[int], device: torch.device, generator: torch.Generator | None, noise: torch.Tensor | None
) -> torch.Tensor:
    """The sampler's starting point x_T ~ N(0, I) `shape` (drawn from `generator`), or `noise` when given."""
    shape = tuple(shape)
    if len(shape) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
        raise ValueError(f"shape must be the batch shape to generate, e.g. (16, 1, 28, 28); got {shape!r}.")
    if noise is not None:
        if noise.shape != shape:
            raise ValueError(f"noise must have the requested shape {shape}; got {tuple(noise.shape)}.")
        return noise.to(device)
    return torch.randn(shape, device=device, generator=generator)


@torch.no_grad()
def ddim_sample(
    model: Denoiser,
    shape: Sequence[int],
    steps: int,
    alphas_cumprod: torch.Tensor,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    clip_x0: bool = True,
    device: torch.device | str | None = None,
    clipped_eps: bool = False,
) -> torch.Tensor:
    """Images `shape` in [-1, 1] from `steps` network evaluations of DDIM (deterministic with η = 0; notebook 10).

    Starts from x_T = `noise` or N(0, I) drawn from `generator`, then steps through `ddim_timesteps(steps, T)`,
    each to the next one and the last to the clean image. Runs under no_grad; put the model in eval mode first.
    """
    check_alphas_cumprod(alphas_cumprod)
    device = sampling_device(model, device)
    timesteps = ddim_timesteps(steps, len(alphas_cumprod)).tolist()
    x = start_noise(shape, device, generator, noise)
    for index, t in enumerate(timesteps):
        t_prev = timesteps[index + 1] if index + 1 < len(timesteps) else -1
        eps = call_model(model, x, model_time(t, len(alphas_cumprod), x.shape[0], device))
        x = ddim_step(eps, t, t_prev, x, alphas_cumprod, eta=eta, generator=generator, clip_x0=clip_x0,
                      clipped_eps=clipped_eps)
    return x


@torch.no_grad()
def ddpm_sample(
    model: Denoiser,
    shape: Sequence[int],
    betas: torch.Tensor,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    clip_x0: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Images `shape` in [-1, 1] by DDPM's ancestral sampling: all T steps, T-1 down to 0 (notebook 10).

    Random numbers are drawn in MONAI's order (x_T, then one z per step t > 0), so the loop
    `for t in scheduler.timesteps: x = scheduler.step(model(x, t/T), t, x, generator)[0]` with a generator in the
    same state gives the same images. T network evaluations per image: slow; `ddim_sample` needs far fewer.
    """
    check_betas(betas)
    device = sampling_device(model, device)
    num_steps = len(betas)
    x = start_noise(shape, device, generator, noise)
    for t in range(num_steps - 1, -1, -1):
        eps = call_model(model, x, model_time(t, num_steps, x.shape[0], device))
        x = ddpm_step(eps, t, x, betas, generator=generator, clip_x0=clip_x0)
    return x
