"""Notebook 08's experiment: the same DCGAN trained with four objectives, several seeds each, scored alike.

Introduced in notebook 08 (`08_stabilizing_gans`); notebook 09 (`09_open_challenges`) loads the same runs
(same settings, same checkpoint folders) for its privacy audit, evaluation pitfalls and latent probe, so the
two notebooks share one protocol instead of two copies of it:

- `build_run`: the generator, discriminator, training steps and `TrainConfig` of one objective and seed;
- `train_run`: train or resume it with `train_gan` (a divergence is recorded, not raised);
- `train_objective_runs`: every objective x seed of the comparison; `train_small_data_runs`: the small-data
  runs with and without DiffAugment;
- `Yardstick`: notebook 03's metrics (domain-FD, precision/recall, density/coverage, memorisation audit, an
  optional pixel-PCA Fréchet distance) for one set of generated images against a real reference;
- `score_objective_runs`: those metrics for every run and for held-out real images (the floor);
- `mean_sd`, `rank_objectives`: the summaries both notebooks print.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn

from course_utils.augmentation.diffaugment import DiffAugment
from course_utils.checkpoint import cached_result, code_digest, tensor_digest
from course_utils.data.imageset import to_uint8
from course_utils.device import seed_everything
from course_utils.locations import run_dir
from course_utils.losses import (
    d_loss_hinge,
    d_loss_minimax,
    d_loss_wasserstein,
    g_loss_hinge,
    g_loss_non_saturating,
    g_loss_wasserstein,
)
from course_utils.metrics.distribution import density_coverage, frechet_distance, kid, precision_recall
from course_utils.metrics.features import extract_features
from course_utils.metrics.memorisation import memorisation_audit
from course_utils.models.dcgan import DCGANDiscriminator, DCGANGenerator
from course_utils.training import DCGANSteps, TrainConfig, TrainingDivergedError, TrainingResult, train_gan
from course_utils.training.steps import RelativisticSteps

OBJECTIVES: tuple[str, ...] = ("non-saturating", "hinge + SN", "WGAN-GP + TTUR", "RpGAN + R1 + R2")
METRICS: tuple[str, ...] = ("domain-FD", "precision", "recall", "coverage", "density", "memorised",
                            "pixel-PCA FD")
COLLAPSE_RECALL = 0.1  # a run whose recall is below this counts as collapsed


class ObjectiveRun(TypedDict):
    """One trained (or loaded) run: the loop's result, its generator in eval mode, and how it went."""

    result: TrainingResult
    generator: nn.Module
    diverged: str | None  # where it produced a NaN/inf, or None
    seconds_per_epoch: float  # NaN when everything was loaded from the checkpoint


def slug(text: str) -> str:
    """A folder-name version of an objective's name ("hinge + SN" -> "hinge---sn")."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def build_run(objective: str, seed: int, settings: Any, *, channels: int, size: int, width: int, batch: int,
              epochs: int, snapshots: int, device: torch.device | str = "cpu",
              augment: DiffAugment | None = None,
              lr_factor: float = 1.0) -> tuple[nn.Module, nn.Module, DCGANSteps, TrainConfig]:
    """Generator, discriminator, steps and `TrainConfig` of one run; `seed` fixes the initial weights too.

    `settings` is notebook 08's `StabilitySettings` (its `train` / `wgan` configs, `gp_weight`, `r3gan_gamma`).
    The non-saturating, hinge and RpGAN runs use DCGAN's Adam (2e-4, betas 0.5 / 0.999); WGAN-GP uses TTUR
    (`settings.wgan`). `lr_factor` multiplies the objective's own learning rates (the stress test).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; use one of {OBJECTIVES}.")
    if lr_factor <= 0:
        raise ValueError(f"lr_factor must be > 0; got {lr_factor}.")
    device = torch.device(device)
    seed_everything(seed)
    latent_dim = settings.train.latent_dim
    generator = DCGANGenerator(latent_dim, size, channels, width).to(device)
    common = dict(num_epochs=epochs, batch_size=batch, latent_dim=latent_dim, seed=seed, snapshot_every=1,
                  num_samples=snapshots, log_every=10, checkpoint_every=max(1, epochs // 20))  # ~20 saves
    config = replace(settings.train, **common)
    if objective == "non-saturating":
        discriminator = DCGANDiscriminator(size, channels, width)  # batch norm, as in notebook 02
        steps = DCGANSteps(d_loss_minimax, g_loss_non_saturating, augment=augment)
    elif objective == "hinge + SN":
        discriminator = DCGANDiscriminator(size, channels, width, spectral_norm=True)  # no batch norm
        steps = DCGANSteps(d_loss_hinge, g_loss_hinge, outputs_are_logits=False, augment=augment)
    elif objective == "WGAN-GP + TTUR":
        discriminator = DCGANDiscriminator(size, channels, width, batch_norm=False)  # the critic
        steps = DCGANSteps(d_loss_wasserstein, g_loss_wasserstein, gp_weight=settings.gp_weight,
                           outputs_are_logits=False, augment=augment)
        config = replace(settings.wgan, **common)  # TTUR: critic 4e-4, generator 1e-4, betas (0, 0.9)
    else:  # "RpGAN + R1 + R2"
        discriminator = DCGANDiscriminator(size, channels, width, batch_norm=False)  # per-sample penalties
        steps = RelativisticSteps(settings.r3gan_gamma, augment=augment)
    config = replace(config, lr_g=config.lr_g * lr_factor, lr_d=config.lr_d * lr_factor)
    return generator, discriminator.to(device), steps, config


def run_name(name: str, objective: str, seed: int, profile: str) -> str:
    """The checkpoint folder of one run (the same in notebooks 08 and 09)."""
    return f"08_{name}_{slug(objective)}_seed{seed}_{profile}"


def train_run(objective: str, seed: int, data: torch.Tensor, name: str, settings: Any, *, profile: str,
              device: torch.device | str = "cpu", log: bool = True, **sizes: Any) -> ObjectiveRun:
    """Train (or resume, or load) one run of `build_run`; a NaN/inf is recorded as a failure, not raised.

    `data`: uint8 images (N, C, H, W); `name` tells runs on different data apart in the folder name;
    `sizes`: `build_run`'s keyword arguments (size, width, batch, epochs, snapshots, augment, lr_factor).
    """
    generator, discriminator, steps, config = build_run(objective, seed, settings, channels=data.shape[1],
                                                        device=device, **sizes)
    started = time.perf_counter()
    try:
        result = train_gan(generator, discriminator, data, config, steps=steps, progress=False,
                           checkpoint_dir=run_dir(run_name(name, objective, seed, profile)))
        diverged = None
    except TrainingDivergedError as error:
        diverged = f"epoch {error.epoch}, step {error.step}: {error.name} = {error.value}"
        result = error.result
    trained = result.timing.get("images", 0.0) > 0  # False when everything was loaded from the checkpoint
    images_per_epoch = len(data) // config.batch_size * config.batch_size
    per_epoch = (result.timing["seconds"] / max(1, round(result.timing["images"] / images_per_epoch))
                 if trained else math.nan)
    if log:
        print(f"{objective:>15}, seed {seed}: {result.epochs_completed} epochs"
              + (f", {per_epoch:.2f} s/epoch" if trained else " (loaded from its checkpoint)")
              + (f"  DIVERGED at {diverged}" if diverged else "")
              + f"  [{time.perf_counter() - started:.0f} s]")
    return ObjectiveRun(result=result, generator=generator.eval(), diverged=diverged,
                        seconds_per_epoch=per_epoch)


def train_objective_runs(settings: Any, data: torch.Tensor, name: str, *, profile: str,
                         device: torch.device | str = "cpu") -> dict[str, dict[int, ObjectiveRun]]:
    """Every objective x training seed of the comparison at the settings' size, width, batch and length."""
    batch = min(settings.train.batch_size, len(data))
    return {objective: {seed: train_run(objective, seed, data, name, settings, profile=profile, device=device,
                                        size=settings.image_size, width=settings.width, batch=batch,
                                        epochs=settings.train.num_epochs, snapshots=settings.snapshot_samples)
                        for seed in settings.seeds}
            for objective in OBJECTIVES}


SMALL_VARIANTS: tuple[str, ...] = ("without DiffAugment", "with DiffAugment")


def train_small_data_runs(settings: Any, images: torch.Tensor, name: str, *, profile: str,
                          device: torch.device | str = "cpu") -> dict[str, dict[int, ObjectiveRun]]:
    """The small-data experiment: the non-saturating DCGAN with and without DiffAugment, per small seed.

    `images`: the small training set (uint8); `name`: its data name (e.g. "breastmnist28").
    """
    return {variant: {seed: train_run("non-saturating", seed, images, f"{name}-{slug(variant)}", settings,
                                      profile=profile, device=device, size=settings.image_size,
                                      width=settings.width, batch=min(settings.small.batch_size, len(images)),
                                      epochs=settings.small.num_epochs, snapshots=16,
                                      augment=DiffAugment() if variant == "with DiffAugment" else None)
                      for seed in settings.small_seeds}
            for variant in SMALL_VARIANTS}


@torch.no_grad()
def generate_images(generator: nn.Module, count: int, seed: int) -> torch.Tensor:
    """`count` uint8 images (count, C, H, W) on the CPU from fresh noise drawn with `seed`."""
    device = next(generator.parameters()).device
    z = torch.randn(count, generator.latent_dim, generator=torch.Generator().manual_seed(seed))
    return torch.cat([to_uint8(generator(chunk.to(device))) for chunk in z.split(256)])


@dataclass
class Yardstick:
    """Notebook 03's metrics for one set of generated images against a real reference.

    `score` gives domain-FD, KID (unbiased, on the same domain features), precision, recall, density,
    coverage, the audit's flagged fraction ("memorised") and, with `pca`, the pixel-PCA Fréchet distance.

    `classifier`: the domain classifier (its features); `train_pixels`: the training images in [0, 1] (the
    audit's search set); `baseline`: held-out real images in [0, 1] without copies of training images (the
    audit's threshold); `pca`: optional, a fitted `sklearn.decomposition.PCA` of the training pixels for a
    second feature space.
    """

    classifier: nn.Module
    train_pixels: torch.Tensor
    baseline: torch.Tensor
    k: int = 5
    audit_percentile: float = 1.0
    pca: Any = None

    def score(self, images: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
        """`{metric: value}` of uint8 `images` (n, C, H, W) against the uint8 `reference`."""
        fake_features = extract_features(self.classifier, images)
        real_features = extract_features(self.classifier, reference)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a collapsed set has a singular covariance
            fd = frechet_distance(real_features, fake_features)
        pr = precision_recall(real_features, fake_features, k=self.k)
        dc = density_coverage(real_features, fake_features, k=self.k)
        audit = memorisation_audit(images.float() / 255, self.train_pixels, self.baseline,
                                   percentile=max(self.audit_percentile, 100 / len(self.baseline)), num_pairs=0)
        scores = {"domain-FD": fd, "KID": kid(real_features, fake_features)["kid"],
                  "precision": pr["precision"], "recall": pr["recall"],
                  "density": dc["density"], "coverage": dc["coverage"],
                  "memorised": audit["fraction_suspiciously_close"]}
        if self.pca is not None:
            def project(x: torch.Tensor) -> np.ndarray:
                return self.pca.transform(x.flatten(1).float().numpy() / 255)

            scores["pixel-PCA FD"] = frechet_distance(project(reference), project(images))
        return scores


def score_objective_runs(runs: dict[str, dict[int, ObjectiveRun]], yardstick: Yardstick, train: torch.Tensor,
                         held_out: torch.Tensor, count: int) -> tuple[dict, dict[str, list[str]]]:
    """Score every run and a held-out real floor, per seed: `(scores, failures)`.

    For seed s: the reference is `count` training images and the floor `count` held-out images, drawn with
    seed 1000 + s; each run's images come from noise seed 2000 + s. `scores[name][seed]` is a metric dict
    (name: "held-out real" or an objective); a diverged run or one with recall below `COLLAPSE_RECALL` is
    listed in `failures[objective]` (a diverged run has no scores).
    """
    seeds = sorted({seed for per_seed in runs.values() for seed in per_seed})
    scores: dict[str, dict[int, dict[str, float]]] = {name: {} for name in ("held-out real", *runs)}
    failures: dict[str, list[str]] = {objective: [] for objective in runs}
    for seed in seeds:
        rng = torch.Generator().manual_seed(1000 + seed)
        reference = train[torch.randperm(len(train), generator=rng)[:count]]
        floor = held_out[torch.randperm(len(held_out), generator=rng)[:count]]
        scores["held-out real"][seed] = yardstick.score(floor, reference)
        for objective, per_seed in runs.items():
            run = per_seed.get(seed)
            if run is None:
                continue
            if run["diverged"]:
                failures[objective].append(f"seed {seed}: diverged ({run['diverged']})")
                continue
            result = yardstick.score(generate_images(run["generator"], count, 2000 + seed), reference)
            scores[objective][seed] = result
            if result["recall"] < COLLAPSE_RECALL:
                failures[objective].append(f"seed {seed}: collapsed (recall {result['recall']:.2f})")
    return scores, failures


def cached_objective_scores(runs: dict[str, dict[int, ObjectiveRun]], yardstick: Yardstick, train: torch.Tensor,
                            held_out: torch.Tensor, count: int, path: str | Path) -> tuple[dict, dict[str, list[str]]]:
    """`score_objective_runs`, cached at `path` (notebooks 08 and 09 score the same runs: one file serves both).

    The cache key holds the digests of every generator (a diverged run: where it diverged), the yardstick's
    classifier, pixels and PCA, the images, `count`, `COLLAPSE_RECALL` and the code of `score_objective_runs`,
    `Yardstick.score` and `generate_images`, so other weights, data or settings score again. (The metric functions
    those call are not in the key: after changing one, delete the cached file.)
    """
    pca = yardstick.pca
    key = {
        "runs": {f"{objective}|{seed}": run["diverged"] or tensor_digest(*run["generator"].state_dict().values())
                 for objective, per_seed in runs.items() for seed, run in per_seed.items()},  # diverged: not scored
        "classifier": tensor_digest(*yardstick.classifier.state_dict().values()),
        "pixels": tensor_digest(yardstick.train_pixels, yardstick.baseline),
        "pca": None if pca is None else tensor_digest(torch.from_numpy(pca.components_), torch.from_numpy(pca.mean_)),
        "k": yardstick.k, "audit_percentile": yardstick.audit_percentile,
        "images": tensor_digest(train, held_out), "count": count, "collapse_recall": COLLAPSE_RECALL,
        "code": code_digest(score_objective_runs, Yardstick.score, generate_images),
    }

    def compute() -> dict[str, Any]:
        scores, failures = score_objective_runs(runs, yardstick, train, held_out, count)
        plain = {name: {seed: {metric: float(value) for metric, value in row.items()} for seed, row in per.items()}
                 for name, per in scores.items()}
        return {"scores": plain, "failures": failures}

    cached, _ = cached_result(path, key, compute)
    return cached["scores"], cached["failures"]


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample sd of the finite values (NaN sd for one value, NaN both for none)."""
    values = [float(v) for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def summarise(scores: dict, metrics: tuple[str, ...] = METRICS) -> dict[str, dict[str, tuple[float, float]]]:
    """`{name: {metric: (mean, sd over seeds)}}` of `score_objective_runs`' scores (missing metrics: NaN)."""
    return {name: {m: mean_sd([s.get(m, math.nan) for s in per_seed.values()]) for m in metrics}
            for name, per_seed in scores.items()}


def rank_objectives(summary: dict, failures: dict[str, list[str]], metric: str = "domain-FD") -> list[str]:
    """Objectives ordered by failures (fewest first), then by mean `metric` (lowest first; NaN last)."""
    return sorted(failures, key=lambda o: (len(failures[o]), np.nan_to_num(summary[o][metric][0], nan=np.inf)))


__all__ = [
    "COLLAPSE_RECALL",
    "METRICS",
    "OBJECTIVES",
    "ObjectiveRun",
    "SMALL_VARIANTS",
    "Yardstick",
    "build_run",
    "cached_objective_scores",
    "generate_images",
    "mean_sd",
    "rank_objectives",
    "run_name",
    "score_objective_runs",
    "slug",
    "summarise",
    "train_objective_runs",
    "train_run",
    "train_small_data_runs",
]
