"""Does GAN augmentation help a classifier? One cross-validation fold of notebook 04's protocol, as functions.

Introduced in notebook 04 (`04_conditional_gan_augmentation`). In every fold:

1. `train_fold_gan` trains the class-conditional GAN on the fold's **training indices only**: it receives the
   pooled data and the `Fold`, checks that training and held-out indices are disjoint (`check_fold`), and hands
   `train_gan` exactly `images[fold.train_indices]`. A GAN trained on the held-out images could hand their
   likeness back to the classifier as "synthetic" data, and the held-out score would then measure memory,
   not generalisation.
2. `synthetic_labels` + `course_utils.inference.generate_conditional` make synthetic images with the class mix of
   the fold's training part.
3. `run_regimes` trains one ResNet-18 per regime — real only, real + classic augmentation, real + GAN images,
   GAN images only — all from the *same* initial weights and for the *same* number of optimisation steps, and
   scores each on the held-out part (and on any other evaluation set, e.g. the official test split).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from course_utils.augmentation.classic import ClassicAugment
from course_utils.inference import predict_probabilities
from course_utils.metrics.classification import Fold, check_fold, classification_metrics
from course_utils.models.classifier import build_resnet18
from course_utils.models.conditional import ConditionalGenerator, ProjectionDiscriminator
from course_utils.training import TrainConfig, TrainingResult, train_gan
from course_utils.training.steps import ConditionalGANSteps
from course_utils.training.supervised import train_classifier

REGIMES: tuple[str, ...] = ("real only", "real + classic aug", "real + GAN", "GAN only (TSTR)")


def _fork_devices(device: torch.device) -> list[int]:
    """CUDA devices whose RNG `torch.random.fork_rng` must save (none off CUDA)."""
    return [device.index or 0] if device.type == "cuda" else []


def train_fold_gan(
    images: torch.Tensor,
    labels: torch.Tensor,
    fold: Fold,
    *,
    num_classes: int,
    config: TrainConfig,
    base_width: int = 32,
    device: torch.device | str = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Train a conditional GAN on `images[fold.train_indices]` only (notebook 04); never on the held-out part.

    `images` uint8 `(N, C, H, W)` and `labels` `(N,)` are the pooled data the folds index. The networks are
    initialised from `config.seed` (the global RNG is left as it was), so a fold's GAN is reproducible.
    """
    check_fold(fold, int(images.shape[0]))
    index = torch.from_numpy(fold.train_indices)
    train_images, train_labels = images[index], labels.reshape(-1)[index].long()  # (N_train, C, H, W), (N_train,)
    device = torch.device(device)
    with torch.random.fork_rng(devices=_fork_devices(device)):
        torch.manual_seed(config.seed)
        generator = ConditionalGenerator(config.latent_dim, num_classes, images.shape[-1], images.shape[1],
                                         base_width).to(device)
        discriminator = ProjectionDiscriminator(num_classes, images.shape[-1], images.shape[1], base_width).to(device)
        return train_gan(generator, discriminator, (train_images, train_labels), config,
                         steps=ConditionalGANSteps(num_classes), checkpoint_dir=checkpoint_dir, progress=progress)


def synthetic_labels(train_labels: torch.Tensor, count: int, num_classes: int, seed: int = 0) -> torch.Tensor:
    """`count` labels `(count,)` in the class proportions of `train_labels` (largest remainder), shuffled with `seed`."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be an integer >= 0; got {count!r}.")
    counts = torch.bincount(train_labels.reshape(-1).long().cpu(), minlength=num_classes).double()  # (K,)
    if counts.sum() == 0:
        raise ValueError("train_labels is empty; the class mix to imitate is unknown.")
    exact = counts / counts.sum() * count  # (K,)
    per_class = exact.floor().long()
    remainder = count - int(per_class.sum())
    per_class[torch.argsort(exact - exact.floor(), descending=True)[:remainder]] += 1
    labels = torch.repeat_interleave(torch.arange(num_classes), per_class)  # (count,)
    return labels[torch.randperm(count, generator=torch.Generator().manual_seed(seed))]


def regime_data(
    real_images: torch.Tensor, real_labels: torch.Tensor, synthetic_images: torch.Tensor,
    synthetic_labels_: torch.Tensor, synthetic_ratio: float,
) -> dict[str, tuple[torch.Tensor, torch.Tensor, ClassicAugment | None]]:
    """{regime: (images, labels, augment)} for the four regimes of notebook 04.

    'real + GAN' adds the first round(`synthetic_ratio` x N_real) synthetic images to the real ones; 'GAN only'
    uses N_real synthetic images (as many as the real set), so it is compared with 'real only' at equal size.
    """
    n_real = int(real_images.shape[0])
    n_added = round(synthetic_ratio * n_real)
    needed = max(n_added, n_real)
    if synthetic_images.shape[0] < needed:
        raise ValueError(f"need {needed} synthetic images (ratio {synthetic_ratio} x {n_real} real, and {n_real} for "
                         f"'GAN only'); got {synthetic_images.shape[0]}.")
    if synthetic_images.shape[1:] != real_images.shape[1:] or synthetic_images.dtype != real_images.dtype:
        raise ValueError(f"synthetic images {tuple(synthetic_images.shape[1:])} {synthetic_images.dtype} must match "
                         f"the real ones {tuple(real_images.shape[1:])} {real_images.dtype}.")
    return {
        "real only": (real_images, real_labels, None),
        "real + classic aug": (real_images, real_labels, ClassicAugment()),
        "real + GAN": (torch.cat([real_images, synthetic_images[:n_added]]),
                       torch.cat([real_labels, synthetic_labels_[:n_added]]), None),
        "GAN only (TSTR)": (synthetic_images[:n_real], synthetic_labels_[:n_real], None),
    }


def run_regimes(
    fold: Fold,
    images: torch.Tensor,
    labels: torch.Tensor,
    synthetic_images: torch.Tensor,
    synthetic_labels_: torch.Tensor,
    *,
    num_classes: int,
    positive_class: int | None,
    synthetic_ratio: float,
    steps: int,
    batch_size: int,
    lr: float = 1e-3,
    stem: str = "medmnist",
    imbalance: str = "weighted",
    seed: int = 0,
    device: torch.device | str = "cpu",
    extra_eval: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    regimes: tuple[str, ...] = REGIMES,
) -> dict[str, dict[str, dict[str, float]]]:
    """Train and score one ResNet-18 per regime on this fold: {regime: {'held-out' | extra name: metrics}}.

    Introduced in notebook 04. Every regime starts from the same initial weights (drawn from `seed`), uses the
    same batch order seed and the same number of `steps`; the synthetic images must come from a GAN trained on
    this fold's training part (`train_fold_gan`). Metrics: `classification_metrics` (plus 'seconds').
    """
    check_fold(fold, int(images.shape[0]))
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        raise ValueError(f"unknown regimes {unknown}; choose from {REGIMES}.")
    device = torch.device(device)
    labels = labels.reshape(-1).long()
    train_index, test_index = torch.from_numpy(fold.train_indices), torch.from_numpy(fold.test_indices)
    data = regime_data(images[train_index], labels[train_index], synthetic_images, synthetic_labels_, synthetic_ratio)
    evaluations = {"held-out": (images[test_index], labels[test_index]), **dict(extra_eval or {})}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for regime in regimes:
        train_images, train_labels, augment = data[regime]
        started = time.perf_counter()
        with torch.random.fork_rng(devices=_fork_devices(device)):
            torch.manual_seed(seed)  # the same initial weights in every regime of this fold
            model = build_resnet18(int(images.shape[1]), num_classes, stem).to(device)
            train_classifier(model, train_images, train_labels, num_classes=num_classes, steps=steps,
                             batch_size=batch_size, lr=lr, imbalance=imbalance, augment=augment, seed=seed)
        seconds = time.perf_counter() - started
        results[regime] = {}
        for name, (eval_images, eval_labels) in evaluations.items():
            scores = predict_probabilities(model, eval_images)
            metrics = classification_metrics(eval_labels, scores, positive_class)
            results[regime][name] = {**metrics, "seconds": seconds}
    return results


def class_counts(labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """Images per class `(K,)` as a NumPy int vector."""
    return torch.bincount(labels.reshape(-1).long().cpu(), minlength=num_classes).numpy()


__all__ = ["REGIMES", "class_counts", "regime_data", "run_regimes", "synthetic_labels", "train_fold_gan"]
