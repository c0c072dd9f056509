"""Seconds per training step of the course's CPU workloads at 1 and 2 threads, with and without channels-last.

The `cpu` profile's thread rule (`course_utils.device.use_cpu_threads`) rests on this measurement: run it on a
quiet machine (nothing else busy) and compare the rows. Each workload is one optimisation step of a model the
`cpu` profile trains, at that profile's sizes: forward, backward and Adam, on random inputs (speed does not
depend on the values). The median of `--repeats` timed steps after `--warmup` untimed ones is reported.

Usage: python benchmarks/cpu_threads.py [--threads 1 2] [--repeats 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from course_utils.models.classifier import build_resnet18
from course_utils.models.dcgan import DCGANDiscriminator, DCGANGenerator
from course_utils.models.srgan import SRResNetGenerator
from course_utils.models.unet import UNet

Workload = tuple[str, Callable[[], nn.Module], tuple[int, ...], Callable[[nn.Module, torch.Tensor], torch.Tensor]]


def _dcgan_step(batch: int, width: int) -> Callable[[bool], Callable[[], None]]:
    """One DCGAN step (discriminator on real and fake, then generator), 28 px, as notebook 02's `cpu` run."""

    def build(channels_last: bool) -> Callable[[], None]:
        generator, critic = DCGANGenerator(100, 28, 1, width), DCGANDiscriminator(28, 1, width)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        generator, critic = generator.to(memory_format=fmt), critic.to(memory_format=fmt)
        opt_g, opt_d = torch.optim.Adam(generator.parameters()), torch.optim.Adam(critic.parameters())
        real = torch.randn(batch, 1, 28, 28).to(memory_format=fmt)
        loss = nn.BCEWithLogitsLoss()

        def step() -> None:
            z = torch.randn(batch, 100, 1, 1)
            fake = generator(z)
            d_real, d_fake = critic(real), critic(fake.detach())
            opt_d.zero_grad(set_to_none=True)
            (loss(d_real, torch.ones_like(d_real)) + loss(d_fake, torch.zeros_like(d_fake))).backward()
            opt_d.step()
            d_out = critic(fake)
            opt_g.zero_grad(set_to_none=True)
            loss(d_out, torch.ones_like(d_out)).backward()
            opt_g.step()

        return step

    return build


def _supervised_step(model_fn: Callable[[], nn.Module], shape: tuple[int, ...],
                     target_fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[bool], Callable[[], None]]:
    """One supervised step (forward, L1/CE loss, backward, Adam) of the model on inputs of `shape`."""

    def build(channels_last: bool) -> Callable[[], None]:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = model_fn().to(memory_format=fmt)
        optimiser = torch.optim.Adam(model.parameters())
        inputs = torch.randn(*shape).to(memory_format=fmt)

        def step() -> None:
            output = model(inputs)
            optimiser.zero_grad(set_to_none=True)
            (output - target_fn(output)).abs().mean().backward()
            optimiser.step()

        return step

    return build


WORKLOADS: dict[str, Callable[[bool], Callable[[], None]]] = {
    "02 DCGAN, width 64, batch 128, 28 px": _dcgan_step(128, 64),
    "08 DCGAN, width 32, batch 64, 28 px": _dcgan_step(64, 32),
    "04 ResNet-18 (pooled stem), batch 32, 28 px": _supervised_step(
        lambda: build_resnet18(1, 2, stem="pooled"), (32, 1, 28, 28), torch.zeros_like),
    "05 SRResNet x4, width 16, 4 blocks, batch 16, 16 -> 64 px": _supervised_step(
        lambda: SRResNetGenerator(4, 1, 16, 4), (16, 1, 16, 16), torch.zeros_like),
    "07 U-Net, width 16, depth 3, batch 32, 64 px": _supervised_step(
        lambda: UNet(1, 3, 16, 3), (32, 1, 64, 64), torch.zeros_like),
}


def seconds_per_step(build: Callable[[bool], Callable[[], None]], threads: int, channels_last: bool,
                     warmup: int, repeats: int) -> float:
    """Median wall seconds of one step at `threads` threads."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    step = build(channels_last)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    rows = []
    print(f"torch {torch.__version__}; seconds per step (median of {args.repeats})")
    for name, build in WORKLOADS.items():
        for channels_last in (False, True):
            cells = {t: seconds_per_step(build, t, channels_last, args.warmup, args.repeats) for t in args.threads}
            rows.append({"workload": name, "channels_last": channels_last, "seconds": cells})
            timings = "  ".join(f"{t} thr {s:.4f} s" for t, s in cells.items())
            ratio = cells[args.threads[0]] / cells[args.threads[-1]]
            layout = "channels-last" if channels_last else "contiguous"
            print(f"{name:<58} {layout:<13} {timings}  speed-up {ratio:.2f}x", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
