"""Training throughput of the course loop vs a classic DCGAN loop (per-sample PIL/ToTensor DataLoader).

Both loops train the same DCGAN (same sizes, batch, optimiser, loss, device) on the same images for the same
number of epochs; the script prints images/s for each and the ratio course/classic. The classic loop follows
the PyTorch DCGAN example: a `Dataset` that turns each uint8 array into a PIL image and applies
`ToTensor()` + `Normalize`, a shuffling `DataLoader`, and `.item()` logging every step. It is run with each
`--workers` value and the fastest is taken as the baseline.

It also measures how close one training step comes to the machine's limit: the step's floating-point operations
(counted with `torch.utils.flop_counter`) per second, against a large float32 matrix multiply (the practical peak)
on the same device and threads, in the same run.

Usage: python benchmarks/dcgan_throughput.py [--size 28] [--images 4608] [--epochs 2] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from course_utils.data import load_classification_data
from course_utils.device import pick_device, seed_everything
from course_utils.losses import d_loss_minimax, g_loss_non_saturating
from course_utils.models.dcgan import DCGANDiscriminator, DCGANGenerator, init_dcgan_weights
from course_utils.training import TrainConfig, train_gan


class PILImageDataset(Dataset):
    """The classic pattern: one uint8 array per item, converted through PIL and ToTensor on every access."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images  # (N, H, W) or (N, H, W, 3) uint8
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.5, 0.5)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(Image.fromarray(self.images[index]))


def make_models(size: int, channels: int, latent_dim: int, width: int, device: torch.device):
    """A freshly initialised generator and discriminator (same seed for both loops)."""
    seed_everything(0)
    generator = DCGANGenerator(latent_dim, size, channels, width).to(device)
    discriminator = DCGANDiscriminator(size, channels, width).to(device)
    generator.apply(init_dcgan_weights)
    discriminator.apply(init_dcgan_weights)
    return generator, discriminator


def classic_loop(images: np.ndarray, args, device: torch.device, workers: int) -> float:
    """Images/s of the classic DataLoader loop (non-saturating loss, Adam, `.item()` each step)."""
    generator, discriminator = make_models(args.size, args.channels, args.latent_dim, args.width, device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = DataLoader(PILImageDataset(images), batch_size=args.batch_size, shuffle=True, num_workers=workers,
                        drop_last=True, pin_memory=device.type == "cuda")
    seen = 0
    start = time.perf_counter()
    for _ in range(args.epochs):
        for real in loader:
            real = real.to(device)
            noise = torch.randn(real.shape[0], args.latent_dim, device=device)
            fake = generator(noise)
            loss_d = d_loss_minimax(discriminator(real), discriminator(fake.detach()))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = g_loss_non_saturating(discriminator(fake))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            _ = (loss_d.item(), loss_g.item())  # the example logs every step
            seen += real.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def course_loop(images: torch.Tensor, args, device: torch.device) -> float:
    """Images/s of `course_utils.training.train_gan` (tensors on the device, no per-sample work)."""
    generator, discriminator = make_models(args.size, args.channels, args.latent_dim, args.width, device)
    config = TrainConfig(num_epochs=args.epochs, batch_size=args.batch_size, latent_dim=args.latent_dim,
                         checkpoint_every=0, snapshot_every=0, log_every=50, num_samples=8)
    start = time.perf_counter()
    result = train_gan(generator, discriminator, images.to(device), config, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return result.timing["images"] / elapsed


def step_flops(images: torch.Tensor, args, device: torch.device, repeats: int = 5) -> tuple[float, float]:
    """(floating-point operations of one d-step + g-step, achieved FLOP/s: the median of `repeats` timed steps)."""
    from torch.utils.flop_counter import FlopCounterMode

    from course_utils.training import DCGANSteps, run_one_step

    generator, discriminator = make_models(args.size, args.channels, args.latent_dim, args.width, device)
    config = TrainConfig(num_epochs=1, batch_size=args.batch_size, latent_dim=args.latent_dim, amp="off")
    batch = images[: args.batch_size].to(device)
    with FlopCounterMode(display=False) as counter:
        run_one_step(generator, discriminator, batch, config, DCGANSteps())
    flops = float(counter.get_total_flops())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_one_step(generator, discriminator, batch, config, DCGANSteps())
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return flops, flops / float(np.median(times))


def matmul_flops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of an n x n float32 matrix multiply (2 n^3 operations): the practical peak of these threads."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / float(np.median(times))


def main() -> None:
    """Run both loops and print the comparison (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flag", default="pneumoniamnist")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--images", type=int, default=4608)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--latent-dim", type=int, default=100)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--matmul-size", type=int, default=2048, help="side of the reference matrix multiply")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    device = pick_device()
    data = load_classification_data(args.flag, "train", size=args.size)
    images = data.images[: args.images]  # (N, C, H, W) uint8
    args.channels = images.shape[1]
    as_numpy = images.permute(0, 2, 3, 1).numpy()
    as_numpy = as_numpy[..., 0] if args.channels == 1 else as_numpy

    course_loop(images[: 4 * args.batch_size], argparse.Namespace(**{**vars(args), "epochs": 1}), device)  # warm-up
    course = course_loop(images, args, device)
    classic = {w: classic_loop(as_numpy, args, device, w) for w in args.workers}
    best_workers = max(classic, key=classic.get)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    print(f"device: {device} ({name}); {len(images)} {data.name} images at {args.size} px, batch {args.batch_size}, "
          f"{args.epochs} epochs, DCGAN width {args.width}")
    for workers, rate in classic.items():
        print(f"classic DataLoader loop, num_workers={workers}: {rate:8.1f} images/s")
    print(f"course loop (train_gan):                 {course:8.1f} images/s")
    print(f"ratio course / best classic (num_workers={best_workers}): {course / classic[best_workers]:.2f}x")
    flops, achieved = step_flops(images, args, device)
    peak = matmul_flops(device, n=args.matmul_size)
    print(f"one training step: {flops / 1e9:.2f} GFLOP at {achieved / 1e9:.1f} GFLOP/s; float32 matmul "
          f"{args.matmul_size}^2: {peak / 1e9:.1f} GFLOP/s; the step reaches {achieved / peak:.2f} of it")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"device": str(device), "device_name": name, "course": course, "classic": classic,
                       "ratio": course / classic[best_workers], "step_gflop": flops / 1e9,
                       "step_gflops_per_s": achieved / 1e9, "matmul_gflops_per_s": peak / 1e9,
                       "fraction_of_matmul": achieved / peak, "args": {k: v for k, v in vars(args).items()}},
                      handle, indent=1)


if __name__ == "__main__":
    main()
