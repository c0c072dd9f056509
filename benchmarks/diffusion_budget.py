"""What a fixed CPU budget buys a diffusion model and a flow-matching model on PneumoniaMNIST 28 px (notebook 10).

Trains the same time-conditioned U-Net (`course_utils.models.denoiser`, width matched in parameters to notebook
02's DCGAN generator) twice, for the same wall-clock budget on one thread: once with DDPM's noise-prediction loss
(sampled with DDIM) and once with the flow-matching velocity loss (sampled with Euler steps). It saves, per
method, a PNG grid of 16 samples at 1, 4, 16 and 50 network evaluations (one row each, the same starting noise),
with 16 real images as the first row, and prints a JSON summary: steps trained, losses, timings (ms per
training step at the batch size, ms per image per network evaluation) and the samples' mean/std next to the
real images'.

Usage: python benchmarks/diffusion_budget.py [--budget-s 180] [--max-steps N] [--methods diffusion flow]
       [--width 32] [--batch-size 64] [--lr 5e-4] [--timing-only | --skip-timing] [--out /tmp/diffusion_budget]
(COURSE_DATA_DIR must point at a folder with PneumoniaMNIST, e.g. the mirror ../shared/data).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn
from torchvision.utils import save_image

from course_utils.data import load_classification_data
from course_utils.models.dcgan import DCGANDiscriminator, DCGANGenerator
from course_utils.models.denoiser import TimeConditionedUNet, parameter_count, parameter_counts
from course_utils.training.diffusion import (
    alphas_cumprod,
    cosine_beta_schedule,
    ddim_sample,
    noise_prediction_loss,
)
from course_utils.training.flow_matching import euler_sample, velocity_loss

SAMPLE_STEPS = (1, 4, 16, 50)


def ms_per_call(fn, repeats: int, warmup: int = 2) -> float:
    """Median milliseconds per call of `fn()` over `repeats` calls after `warmup`."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def timings(image_size: int, width: int, dcgan_width: int, batch_size: int, repeats: int) -> dict[str, float]:
    """ms per training step (batch `batch_size`) and per image per network evaluation: denoiser vs DCGAN."""
    x = torch.rand(batch_size, 1, image_size, image_size) * 2 - 1
    model = TimeConditionedUNet(image_size=image_size, width=width)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    alpha_bar = alphas_cumprod(cosine_beta_schedule(1000))

    def denoiser_step() -> None:
        loss = noise_prediction_loss(model, x, alpha_bar)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    def denoiser_eval() -> None:
        with torch.no_grad():
            model(x, torch.rand(batch_size))

    generator = DCGANGenerator(image_size=image_size, base_width=dcgan_width)
    discriminator = DCGANDiscriminator(image_size=image_size, base_width=dcgan_width)
    opt_g, opt_d = (
        torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999)) for m in (generator, discriminator)
    )
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(batch_size), torch.zeros(batch_size)

    def gan_step() -> None:  # one d-step and one g-step, sharing one generator pass (as DCGANSteps)
        fake = generator(torch.randn(batch_size, 100))
        loss_d = bce(discriminator(x), ones) + bce(discriminator(fake.detach()), zeros)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = bce(discriminator(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    def gan_eval() -> None:
        with torch.no_grad():
            generator(torch.randn(batch_size, 100))

    return {
        "denoiser_params": parameter_count(model),
        "dcgan_generator_params": parameter_count(generator),
        "denoiser_train_step_ms": ms_per_call(denoiser_step, repeats),
        "denoiser_ms_per_image_per_evaluation": ms_per_call(denoiser_eval, repeats) / batch_size,
        "dcgan_train_step_ms": ms_per_call(gan_step, repeats),
        "dcgan_generator_ms_per_image": ms_per_call(gan_eval, repeats) / batch_size,
    }


def train(method: str, images: torch.Tensor, args: argparse.Namespace) -> tuple[nn.Module, dict[str, float]]:
    """Train a fresh denoiser with `method`'s loss for `args.budget_s` seconds or `args.max_steps` steps, whichever
    ends first (on a shared machine a step count is the fairer budget); return its EMA copy and a summary."""
    torch.manual_seed(args.seed)
    model = TimeConditionedUNet(image_size=28, width=args.width)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    alpha_bar = alphas_cumprod(cosine_beta_schedule(1000))
    rng = torch.Generator().manual_seed(args.seed)
    losses: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < args.budget_s and len(losses) < args.max_steps:
        batch = images[torch.randint(0, len(images), (args.batch_size,), generator=rng)]  # (B, 1, 28, 28)
        if method == "diffusion":
            loss = noise_prediction_loss(model, batch, alpha_bar, generator=rng)
        else:
            loss = velocity_loss(model, batch, generator=rng)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
                p_ema.lerp_(p, 1.0 - args.ema)
        losses.append(loss.item())
    elapsed = time.perf_counter() - start
    tail = losses[-50:]
    summary = {
        "steps": len(losses),
        "seconds": round(elapsed, 1),
        "first_loss": round(losses[0], 4),
        "last_50_mean_loss": round(sum(tail) / len(tail), 4),
    }
    return ema.eval(), summary


def sample_grid(method: str, model: nn.Module, real: torch.Tensor, out: Path) -> dict[str, list[float]]:
    """Save real images + samples at each of SAMPLE_STEPS as one PNG; return the samples' mean/std per step count."""
    alpha_bar = alphas_cumprod(cosine_beta_schedule(1000))
    noise = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1234))
    rows, stats = [real[:16]], {}
    for steps in SAMPLE_STEPS:
        start = time.perf_counter()
        if method == "diffusion":
            x = ddim_sample(model, noise.shape, steps, alpha_bar, noise=noise)
        else:
            x = euler_sample(model, noise.shape, steps, noise=noise).clamp(-1, 1)
        stats[str(steps)] = [
            round(x.mean().item(), 3),
            round(x.std().item(), 3),
            round((time.perf_counter() - start) * 1000 / 16, 2),
        ]
        rows.append(x)
    path = out / f"{method}_samples.png"
    save_image(torch.cat(rows).add(1).div(2), path, nrow=16, padding=1, pad_value=1.0)
    return {"png": str(path), "mean_std_ms_per_image_by_steps": stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=180.0, help="training seconds per method")
    parser.add_argument("--max-steps", type=int, default=10**9, help="training steps per method at most")
    parser.add_argument("--methods", nargs="+", choices=("diffusion", "flow"), default=["diffusion", "flow"])
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument(
        "--width", type=int, default=None, help="denoiser width (default: matched to DCGAN 64)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--ema", type=float, default=0.995, help="EMA decay of the sampled weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/diffusion_budget"))
    parser.add_argument("--timing-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.width is None:
        args.width = parameter_counts(28, 64)["denoiser_width"]
    report = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "load_average": os.getloadavg(),
        "width": args.width,
        "batch_size": args.batch_size,
    }
    if not args.skip_timing:
        report["timing_28px"] = timings(28, args.width, 64, args.batch_size, repeats=10)
        report["timing_64px"] = timings(
            64, parameter_counts(64, 64)["denoiser_width"], 64, args.batch_size, repeats=3
        )
    if not args.timing_only:
        args.out.mkdir(parents=True, exist_ok=True)
        images = load_classification_data(
            "pneumoniamnist", "train", size=28
        ).to_model_range()  # (N, 1, 28, 28)
        real = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(99))[:256]]
        report["real_mean_std"] = [round(real.mean().item(), 3), round(real.std().item(), 3)]
        report["budget_s"] = args.budget_s
        report["max_steps"] = args.max_steps
        for method in args.methods:
            model, summary = train(method, images, args)
            summary.update(sample_grid(method, model, real, args.out))
            report[method] = summary
        report["load_average_end"] = os.getloadavg()
        (args.out / f"summary_{'_'.join(args.methods)}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
