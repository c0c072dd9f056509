"""Does GAN augmentation help a classifier? One cross-validation fold of notebook 04's protocol, as functions.

Introduced in notebook 04 (`04_conditional_gan_augmentation`). In every fold:

1. `inner_split` takes (a stratified, nested `fraction` of) the fold's real training part and holds a stratified
   share of it out as the **inner validation** set for early stopping; what remains trains the GAN and the
   classifiers. The held-out fold and the official test split are never in it.
2. `train_fold_gan` trains the class-conditional GAN on the training indices only: it receives the pooled data
   and a `Fold` (`InnerSplit.gan_fold`: everything it must not see is on the held-out side), checks that
   training and held-out indices are disjoint (`check_fold`), and hands `train_gan` exactly
   `images[fold.train_indices]`. A GAN trained on the held-out images carries information about them — whether
   or not it copies any — and would hand it back to the classifier as "synthetic" data; the held-out score
   would then be optimistic.
3. `synthetic_labels` + `course_utils.inference.generate_conditional` make synthetic images with the class mix of
   the fold's training part.
4. `run_regimes` trains one ResNet-18 per regime — real only, real + classic augmentation, real + GAN images,
   GAN images only — all from the *same* initial weights, with the *same* step cap and the same early stopping
   on the same inner validation set, and scores each on the held-out part (and on any other evaluation set, e.g.
   the official test split), keeping the per-image probabilities for bootstrap intervals (`bootstrap_regimes`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from course_utils.augmentation.classic import ClassicAugment
from course_utils.checkpoint import cached_result, tensor_digest
from course_utils.inference import predict_probabilities
from course_utils.metrics.classification import (
    Fold,
    LeakageError,
    bootstrap_metric,
    check_fold,
    classification_metrics,
    operating_point,
    threshold_for_sensitivity,
)
from course_utils.models.classifier import build_resnet18
from course_utils.models.conditional import ConditionalGenerator, ProjectionDiscriminator
from course_utils.training import TrainConfig, TrainingResult, train_gan
from course_utils.training.steps import ConditionalGANSteps
from course_utils.training.supervised import train_classifier

REGIMES: tuple[str, ...] = ("real only", "real + classic aug", "real + GAN", "GAN only (TSTR)")


def _fork_devices(device: torch.device) -> list[int]:
    """CUDA devices whose RNG `torch.random.fork_rng` must save (none off CUDA)."""
    return [device.index or 0] if device.type == "cuda" else []


@dataclass(frozen=True)
class InnerSplit:
    """One fold at one training fraction (notebook 04): what trains, what decides early stopping, what is held out."""

    fold: Fold  # train_indices: the real images that train (GAN and classifiers); test_indices: the held-out fold
    validation_indices: np.ndarray  # (N_val,) sorted: the inner validation set (real, from the training part)
    fraction: float  # share of the fold's training part used (training + validation)

    @property
    def gan_fold(self) -> Fold:
        """The fold the GAN is trained on: the same training indices; validation and held-out both kept out."""
        kept_out = np.sort(np.concatenate([self.fold.test_indices, self.validation_indices]))
        return Fold(self.fold.index, self.fold.train_indices, kept_out)


def inner_split(fold: Fold, labels: torch.Tensor | np.ndarray, *, fraction: float = 1.0,
                validation_fraction: float = 0.2, seed: int = 0) -> InnerSplit:
    """Stratified inner validation split of (a `fraction` of) the fold's training part (notebook 04).

    Per class, the training part is shuffled once with `seed` and cut into a validation pool (the first
    round(`validation_fraction` x n_c)) and a training pool (the rest); a fraction f keeps the first round(f x size)
    of each pool (at least one image). With one seed the sets are nested: 25 % is inside 50 % is inside 100 %,
    for training and validation alike. The held-out fold is never touched.
    """
    check_fold(fold)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction!r}.")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1); got {validation_fraction!r}.")
    labels = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).reshape(-1)
    rng = np.random.default_rng(seed)
    train_part, validation = [], []
    for c in np.unique(labels[fold.train_indices]):
        members = rng.permutation(fold.train_indices[labels[fold.train_indices] == c])
        n_val = round(validation_fraction * members.size)
        if n_val < 1 or members.size - n_val < 1:
            raise ValueError(f"fold {fold.index}: class {c} has {members.size} training images, too few for a "
                             f"validation share of {validation_fraction}; every class needs one image on each side.")
        val_pool, train_pool = members[:n_val], members[n_val:]
        validation.append(val_pool[:max(1, round(fraction * val_pool.size))])
        train_part.append(train_pool[:max(1, round(fraction * train_pool.size))])
    training = np.sort(np.concatenate(train_part)).astype(np.int64)
    return InnerSplit(Fold(fold.index, training, fold.test_indices),
                      np.sort(np.concatenate(validation)).astype(np.int64), float(fraction))


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


@dataclass(frozen=True)
class RegimeResult:
    """One regime in one fold: metrics and per-image probabilities per evaluation set, and the training history."""

    metrics: dict[str, dict[str, float]]  # {'held-out' | extra name: classification_metrics + operating point}
    probabilities: dict[str, np.ndarray] = field(repr=False)  # {name: (N, K) float64}, for bootstrap intervals
    history: dict[str, Any] = field(repr=False)  # train_classifier's: loss, validation curve, best_step, steps_run

    @property
    def best_step(self) -> int:
        """The step whose weights were kept (chosen on the inner validation set)."""
        return int(self.history["best_step"])


def _operating_point_metrics(labels: torch.Tensor, probabilities: np.ndarray, positive_class: int,
                             threshold: float) -> dict[str, float]:
    """'op sensitivity' / 'op specificity' at a threshold on the positive class's probability."""
    point = operating_point(labels.numpy(), probabilities[:, positive_class], positive_class, threshold)
    return {"op sensitivity": point["sensitivity"], "op specificity": point["specificity"]}


REGIME_CACHE_FORMAT = 1  # bump when a cached result's contents change


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
    validation_indices: np.ndarray | None = None,
    eval_every: int = 10,
    patience: int | None = None,
    target_sensitivity: float | None = None,
    cache_dir: str | Path | None = None,
    synthetic_key: str = "",
    retrain: bool = False,
) -> dict[str, RegimeResult]:
    """Train and score one ResNet-18 per regime on this fold: {regime: RegimeResult}.

    Introduced in notebook 04. Every regime starts from the same initial weights (drawn from `seed`), uses the
    same batch order seed and the same step cap `steps`; with `validation_indices` (the inner validation set from
    `inner_split`: real images of the pool, disjoint from the fold's training and held-out parts) every regime
    keeps its best weights by validation AUC and stops after `patience` evaluations without improvement. The
    synthetic images must come from a GAN trained on this fold's training part (`train_fold_gan`). Metrics:
    `classification_metrics`, plus 'seconds', 'best_step', 'steps_run' and, for two classes with a
    `target_sensitivity` and a validation set, 'op sensitivity' / 'op specificity' at the threshold that reaches
    that sensitivity on the validation set.

    With `cache_dir` (a folder under the checkpoint root), each regime's result (metrics, probabilities,
    history; not the network) is saved there as `<regime>.pt` and loaded instead of retrained when its stored
    settings match: the recipe, SHA-256 digests of the real training, validation and evaluation images and
    labels and of the synthetic labels, and `synthetic_key`, which must name the synthetic images exactly:
    `generator_key(generator, seed)` (a digest of the generator's weights and the sampling seed; not of the
    images, which another machine may generate a last bit apart). `retrain=True` ignores the cache.
    """
    check_fold(fold, int(images.shape[0]))
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        raise ValueError(f"unknown regimes {unknown}; choose from {REGIMES}.")
    device = torch.device(device)
    labels = labels.reshape(-1).long()
    validation = None
    if validation_indices is not None:
        validation_indices = np.asarray(validation_indices, dtype=np.int64)
        for name, part in (("training", fold.train_indices), ("held-out", fold.test_indices)):
            shared = np.intersect1d(validation_indices, part)
            if shared.size:
                raise LeakageError(f"fold {fold.index}: {shared.size} inner-validation indices are also {name} "
                                   f"indices (e.g. {shared[:5].tolist()}); early stopping must use its own images.")
        val_index = torch.from_numpy(validation_indices)
        validation = (images[val_index], labels[val_index])
    train_index, test_index = torch.from_numpy(fold.train_indices), torch.from_numpy(fold.test_indices)
    data = regime_data(images[train_index], labels[train_index], synthetic_images, synthetic_labels_, synthetic_ratio)
    evaluations = {"held-out": (images[test_index], labels[test_index]), **dict(extra_eval or {})}
    with_operating_point = (validation is not None and target_sensitivity is not None and num_classes == 2
                            and positive_class is not None)
    recipe = {
        "fold": int(fold.index), "num_classes": num_classes, "positive_class": positive_class,
        "synthetic_ratio": float(synthetic_ratio), "steps": steps, "batch_size": batch_size, "lr": float(lr),
        "stem": stem, "imbalance": imbalance, "seed": seed, "eval_every": eval_every, "patience": patience,
        "target_sensitivity": target_sensitivity, "synthetic_key": synthetic_key,
        "synthetic_labels": tensor_digest(synthetic_labels_.reshape(-1).long()), "format": REGIME_CACHE_FORMAT,
        "data": {name: tensor_digest(*pair) for name, pair in
                 {"train": (images[train_index], labels[train_index]),
                  **({"validation": validation} if validation is not None else {}), **evaluations}.items()},
    }
    def train_regime(regime: str) -> dict[str, Any]:
        # one ResNet-18 trained and scored: its metrics, history and probabilities (not the network)
        train_images, train_labels, augment = data[regime]
        started = time.perf_counter()
        with torch.random.fork_rng(devices=_fork_devices(device)):
            torch.manual_seed(seed)  # the same initial weights in every regime of this fold
            model = build_resnet18(int(images.shape[1]), num_classes, stem).to(device)
            history = train_classifier(model, train_images, train_labels, num_classes=num_classes, steps=steps,
                                       batch_size=batch_size, lr=lr, imbalance=imbalance, augment=augment, seed=seed,
                                       validation=validation, eval_every=eval_every, patience=patience)
        seconds = time.perf_counter() - started
        budget = {"seconds": seconds, "best_step": float(history["best_step"]), "steps_run": float(history["steps_run"])}
        threshold = None
        if with_operating_point:
            val_scores = predict_probabilities(model, validation[0]).numpy()[:, positive_class]
            threshold = threshold_for_sensitivity(validation[1].numpy(), val_scores, positive_class, target_sensitivity)
        metrics, probabilities = {}, {}
        for name, (eval_images, eval_labels) in evaluations.items():
            scores = predict_probabilities(model, eval_images).numpy()  # (N, K)
            metrics[name] = {**classification_metrics(eval_labels, scores, positive_class), **budget}
            if threshold is not None:
                metrics[name].update(_operating_point_metrics(eval_labels.reshape(-1).cpu(), scores, positive_class,
                                                              threshold))
            probabilities[name] = torch.from_numpy(scores)
        return {"metrics": metrics, "history": _plain_history(history), "probabilities": probabilities}

    results: dict[str, RegimeResult] = {}
    loaded = []
    for regime in regimes:
        if cache_dir is None:
            state, from_cache = train_regime(regime), False
        else:
            state, from_cache = cached_result(Path(cache_dir) / f"{_regime_slug(regime)}.pt",
                                              {"regime": regime, **recipe}, partial(train_regime, regime),
                                              recompute=retrain)
        if from_cache:
            loaded.append(regime)
        probabilities = {name: p.numpy() for name, p in state["probabilities"].items()}
        results[regime] = RegimeResult(dict(state["metrics"]), probabilities, dict(state["history"]))
    if loaded:
        print(f"fold {fold.index}: loaded the cached results of {', '.join(loaded)} from {cache_dir}")
    return results


def generator_key(generator: torch.nn.Module, seed: int) -> str:
    """What names a GAN's synthetic set exactly: a digest of the generator's weights and the sampling seed."""
    return f"{tensor_digest(*generator.state_dict().values())}-seed{seed}"


def _regime_slug(regime: str) -> str:
    """'real + classic aug' -> 'real_classic_aug': a regime's cache file name."""
    return "_".join("".join(c if c.isalnum() else " " for c in regime.lower()).split())


def _plain_history(history: Mapping[str, Any]) -> dict[str, Any]:
    """train_classifier's history with plain floats and ints only (what a weights-only load accepts)."""
    def plain(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, bool | int | float | str) or value is None:
            return value
        return float(value)  # numpy and torch scalars
    return {key: plain(value) for key, value in history.items()}


def bootstrap_regimes(fold_results: Sequence[Mapping[str, RegimeResult]], split: str, labels: torch.Tensor, *,
                      metric: str = "auc", positive_class: int | None = None, resamples: int = 2000, seed: int = 0,
                      ) -> dict[str, np.ndarray]:
    """{regime: (resamples,)} bootstrap of `metric` on a fixed evaluation set `split`, averaged over fold models.

    For a set every fold model scored (the official test split), resample its images (the same resamples for
    every regime, so differences of two vectors are paired) and average the metric over the fold models: the
    spread is the uncertainty from having this many test images, not the spread of the fold models.
    """
    regimes = list(fold_results[0])
    return {r: bootstrap_metric(labels, [fr[r].probabilities[split] for fr in fold_results], metric=metric,
                                positive_class=positive_class, resamples=resamples, seed=seed) for r in regimes}


def class_counts(labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """Images per class `(K,)` as a NumPy int vector."""
    return torch.bincount(labels.reshape(-1).long().cpu(), minlength=num_classes).numpy()


__all__ = ["REGIMES", "InnerSplit", "RegimeResult", "bootstrap_regimes", "class_counts", "generator_key", "inner_split",
           "regime_data", "run_regimes", "synthetic_labels", "train_fold_gan"]
