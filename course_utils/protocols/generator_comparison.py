"""Notebook 10's experiment: a GAN, a diffusion model and a flow-matching model, same data, budget, yardsticks.

Introduced in notebook 10 (`10_gan_vs_diffusion_vs_flow`). All three generators are class-conditional (so
their images can train a classifier: train-on-synthetic, test-on-real) and are trained by `train_gan`, so they
share its checkpoints, exact resume and timing:

- **GAN**: notebook 04's conditional DCGAN (label embedding into the generator, projection discriminator with
  spectral norm) with notebook 08's lowest-FD objective at the normal learning rate, the non-saturating loss,
  and DCGAN's Adam (2e-4, betas 0.5 / 0.999); one network evaluation per image.
- **diffusion**: DDPM's noise-prediction loss with the cosine schedule (T = 1000), sampled with DDIM;
- **flow matching**: straight paths from noise to data (rectified flow), sampled with Euler steps;
  both on the same `TimeConditionedUNet` with an EMA of its weights (`DenoiserSteps`).

`train_generator` trains (or loads) one run; `generate` samples it; `Yardstick` (notebook 08's protocol, with KID)
and `tstr_auc` (a pixel logistic-regression probe trained on synthetic images, tested on real ones) score it;
`sampling_milliseconds` times it.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any, TypedDict

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from course_utils.data.imageset import to_uint8
from course_utils.device import seed_everything
from course_utils.inference import generate_conditional
from course_utils.locations import run_dir
from course_utils.losses import d_loss_minimax, g_loss_non_saturating
from course_utils.models.conditional import ConditionalGenerator, ProjectionDiscriminator
from course_utils.models.denoiser import TimeConditionedUNet
from course_utils.protocols.objective_comparison import Yardstick, slug
from course_utils.training import ConditionalGANSteps, DenoiserSteps, TrainingResult, train_gan
from course_utils.training.steps import sample_denoiser
from course_utils.training.supervised import NoCritic

GENERATORS: tuple[str, ...] = ("GAN", "diffusion", "flow matching")
PROBE_C_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)  # the TSTR probe's inverse L2 strength, chosen on val


class GeneratorRun(TypedDict):
    """One trained (or loaded) generator: the loop's result, the network that samples, and its cost."""

    kind: str  # one of GENERATORS
    result: TrainingResult
    model: nn.Module  # the GAN's generator or the denoiser's EMA copy, in eval mode
    steps: DenoiserSteps | ConditionalGANSteps
    seconds: float  # training time over every call (kept in the checkpoint; NaN for an old checkpoint)
    optimisation_steps: int
    parameters: int  # of the network that samples (the generator / the denoiser)


def run_name(data_name: str, kind: str, seed: int, profile: str, epochs: int) -> str:
    """The checkpoint folder of one run, e.g. `10_pneumoniamnist28_flow-matching_e2_seed0_cpu`.

    The length is in the name, so a longer run (an exercise) gets its own folder instead of resuming the
    profile's run and replacing its checkpoint (other changes, e.g. a learning rate, are refused on load).
    """
    return f"10_{data_name}_{slug(kind)}_e{epochs}_seed{seed}_{profile}"


def build_generator(kind: str, seed: int, *, num_classes: int, channels: int, size: int, gan_width: int,
                    denoiser_width: int, latent_dim: int = 100, ema_decay: float = 0.995,
                    num_train_steps: int = 1000, snapshot_steps: int = 8,
                    device: torch.device | str = "cpu") -> tuple[nn.Module, nn.Module, Any]:
    """`(generator, discriminator, steps)` of one run for `train_gan`; `seed` fixes the initial weights.

    The diffusion and flow-matching runs get a `NoCritic` placeholder as their discriminator.
    """
    if kind not in GENERATORS:
        raise ValueError(f"unknown generator {kind!r}; use one of {GENERATORS}.")
    device = torch.device(device)
    seed_everything(seed)
    if kind == "GAN":
        generator = ConditionalGenerator(latent_dim, num_classes, size, channels, gan_width)
        discriminator = ProjectionDiscriminator(num_classes, size, channels, gan_width)  # spectral norm
        steps = ConditionalGANSteps(num_classes, d_loss_minimax, g_loss_non_saturating, outputs_are_logits=True)
        return generator.to(device), discriminator.to(device), steps
    denoiser = TimeConditionedUNet(size, channels, denoiser_width, num_classes=num_classes)
    steps = DenoiserSteps(kind, (channels, size, size), num_classes, num_train_steps=num_train_steps,
                          ema_decay=ema_decay, snapshot_steps=snapshot_steps)
    return denoiser.to(device), NoCritic().to(device), steps


def train_generator(kind: str, seed: int, images: torch.Tensor, labels: torch.Tensor, config: Any, *,
                    name: str, profile: str, num_classes: int, gan_width: int, denoiser_width: int,
                    ema_decay: float = 0.995, num_train_steps: int = 1000, snapshot_steps: int = 8,
                    device: torch.device | str = "cpu", log: bool = True) -> GeneratorRun:
    """Train, resume or load one run on uint8 `images` (N, C, H, W) with int64 `labels` (N,).

    `config`: the run's `TrainConfig` (the GAN's or the denoisers'); its seed is set to `seed` and its batch is at
    most the number of images. `name` tells
    data sets apart in the checkpoint folder (`run_name`).
    """
    generator, discriminator, steps = build_generator(
        kind, seed, num_classes=num_classes, channels=images.shape[1], size=images.shape[-1], gan_width=gan_width,
        denoiser_width=denoiser_width, latent_dim=config.latent_dim, ema_decay=ema_decay,
        num_train_steps=num_train_steps, snapshot_steps=snapshot_steps, device=device)
    config = replace(config, seed=seed, batch_size=min(config.batch_size, len(images)),  # a small fallback set
                     snapshot_every=0, num_samples=8, log_every=25,
                     checkpoint_every=max(1, config.num_epochs // 10))
    started = time.perf_counter()
    result = train_gan(generator, discriminator, (images, labels), config, steps=steps, progress=False,
                       checkpoint_dir=run_dir(run_name(name, kind, seed, profile, config.num_epochs)))
    model = generator if kind == "GAN" else steps.ema
    optimisation_steps = len(next(iter(result.step_history.values()), []))
    run = GeneratorRun(kind=kind, result=result, model=model.eval(), steps=steps,
                       seconds=float(result.timing.get("seconds_total", math.nan)),
                       optimisation_steps=optimisation_steps,
                       parameters=sum(p.numel() for p in model.parameters()))
    if log:
        trained = result.timing.get("images", 0.0) > 0
        print(f"{kind:>13}, seed {seed}: {optimisation_steps} steps, {run['seconds']:.0f} s of training"
              + ("" if trained else " (loaded from its checkpoint)") + f"  [{time.perf_counter() - started:.0f} s]")
    return run


@torch.no_grad()
def generate(run: GeneratorRun, labels: torch.Tensor, seed: int, sample_steps: int,
             batch_size: int = 256) -> torch.Tensor:
    """uint8 images (N, C, H, W) on the CPU, one per label `(N,)`, from noise drawn with `seed`.

    The GAN uses one network evaluation per image; the denoisers `sample_steps` (DDIM / Euler).
    """
    if run["kind"] == "GAN":
        return generate_conditional(run["model"], labels, seed=seed, batch_size=batch_size)
    model, steps = run["model"], run["steps"]
    device = next(model.parameters()).device
    noise = torch.randn(len(labels), *steps.image_shape, generator=torch.Generator().manual_seed(seed))
    chunks = [to_uint8(sample_denoiser(steps.objective, model, noise[i:i + batch_size].to(device), sample_steps,
                                       steps.alphas_cumprod, labels[i:i + batch_size].to(device)))
              for i in range(0, len(labels), batch_size)]
    return torch.cat(chunks)


def network_evaluations(kind: str, sample_steps: int) -> int:
    """Network evaluations per image: 1 for the GAN, `sample_steps` for the denoisers."""
    return 1 if kind == "GAN" else sample_steps


def sampling_milliseconds(run: GeneratorRun, sample_steps: int, count: int = 64, repeats: int = 5) -> float:
    """Median over `repeats` of the milliseconds per image to sample `count` images (one batch, every class),
    on the run's device (synchronised on CUDA), uint8 conversion included."""
    labels = torch.arange(count) % run["steps"].num_classes
    device = next(run["model"].parameters()).device

    def once(seed: int) -> float:
        started = time.perf_counter()
        generate(run, labels, seed=seed, sample_steps=sample_steps)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    once(0)  # warm-up
    return 1000 * float(np.median([once(repeat + 1) for repeat in range(repeats)])) / count


def _pixels(images: torch.Tensor) -> np.ndarray:
    """uint8 images (N, C, H, W) → float (N, C·H·W) in [0, 1]."""
    return images.flatten(1).float().numpy() / 255


def fit_probe(images: torch.Tensor, labels: torch.Tensor, c: float) -> Any:
    """A logistic regression on standardised pixels of uint8 `images` with class `labels` (the TSTR probe)."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    return probe.fit(_pixels(images), labels.numpy())


def probe_auc(probe: Any, images: torch.Tensor, labels: torch.Tensor, positive: int = 1) -> float:
    """The probe's ROC AUC for class `positive` on uint8 `images` with true `labels` (NaN for one class)."""
    if len(torch.unique(labels)) < 2 or positive not in probe.classes_:
        return math.nan
    column = list(probe.classes_).index(positive)
    return float(roc_auc_score(labels.numpy() == positive, probe.predict_proba(_pixels(images))[:, column]))


def choose_probe_c(train: torch.Tensor, train_labels: torch.Tensor, val: torch.Tensor, val_labels: torch.Tensor,
                   grid: tuple[float, ...] = PROBE_C_GRID) -> float:
    """The probe's C with the best validation AUC when it learns from real training images (chosen once).

    With one class in either set there is nothing to choose on: the middle of the grid is returned.
    """
    if len(torch.unique(train_labels)) < 2 or len(torch.unique(val_labels)) < 2:
        return grid[len(grid) // 2]
    return max(grid, key=lambda c: probe_auc(fit_probe(train, train_labels, c), val, val_labels))


def tstr_auc(images: torch.Tensor, labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor,
             c: float) -> float:
    """Train on synthetic, test on real: the probe fitted on `images`/`labels`, its AUC on the real test set.

    NaN when the images hold a single class (the probe cannot be fitted).
    """
    if len(torch.unique(labels)) < 2:
        return math.nan
    return probe_auc(fit_probe(images, labels, c), test, test_labels)


def score_generators(runs: dict[str, dict[int, GeneratorRun]], yardstick: Yardstick, train: torch.Tensor,
                     train_labels: torch.Tensor, floor: torch.Tensor, floor_labels: torch.Tensor,
                     test: torch.Tensor | None, test_labels: torch.Tensor | None, *, count: int,
                     sample_steps: int, probe_c: float = 0.1) -> dict[str, dict[int, dict[str, float]]]:
    """`scores[name][seed]`: the yardstick's metrics and TSTR AUC for every run and the held-out real floor.

    For seed s: the reference is `count` training images and the floor `count` held-out images (with their
    labels), drawn with seed 1000 + s; each run generates `count` images with the labels of that reference
    (the training class mix) from noise seed 2000 + s. "held-out real" is the floor. With `test=None` there is
    no TSTR AUC (e.g. when the test images are part of the floor, the probe would be tested on its training set).
    """
    seeds = sorted({seed for per_seed in runs.values() for seed in per_seed})
    scores: dict[str, dict[int, dict[str, float]]] = {name: {} for name in ("held-out real", *runs)}
    for seed in seeds:
        rng = torch.Generator().manual_seed(1000 + seed)
        pick = torch.randperm(len(train), generator=rng)[:count]
        reference, reference_labels = train[pick], train_labels[pick]
        floor_pick = torch.randperm(len(floor), generator=rng)[:count]
        scores["held-out real"][seed] = yardstick.score(floor[floor_pick], reference)
        if test is not None:
            scores["held-out real"][seed]["TSTR AUC"] = tstr_auc(floor[floor_pick], floor_labels[floor_pick],
                                                                 test, test_labels, probe_c)
        for kind, per_seed in runs.items():
            if seed not in per_seed:
                continue
            images = generate(per_seed[seed], reference_labels, 2000 + seed, sample_steps)
            scores[kind][seed] = yardstick.score(images, reference)
            if test is not None:
                scores[kind][seed]["TSTR AUC"] = tstr_auc(images, reference_labels, test, test_labels, probe_c)
    return scores


__all__ = [
    "GENERATORS",
    "PROBE_C_GRID",
    "GeneratorRun",
    "build_generator",
    "choose_probe_c",
    "fit_probe",
    "generate",
    "network_evaluations",
    "probe_auc",
    "run_name",
    "sampling_milliseconds",
    "score_generators",
    "train_generator",
    "tstr_auc",
]
