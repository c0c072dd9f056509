"""Supervised training: one loop for the course's classifiers, and pixel-loss pretraining.

- `supervised_updates` is the loop: batches of indices in, one optimiser update per batch, `(index, outputs,
  loss)` out after each update. Two recipes use it:
  - `train_domain_classifier` (notebook 03's feature network): epochs over shuffled data, AdamW, cosine decay
    per epoch, batch-norm statistics recomputed at the end;
  - `train_classifier` (notebook 04's ResNet-18): Adam steps up to a cap (the same cap for every training regime,
    whatever the size of its training set), cosine decay per step over the cap, optional class weights and
    augmentation, and optional early stopping on a validation set (best weights kept).
- `train_pixel_model` (notebooks 05, 06: SRResNet, the L1 U-Net) runs in `train_gan`'s loop instead, with
  `PairedSteps(adversarial_weight=0)`, because those runs are long enough to need its checkpoints, exact
  resume, snapshots and progress bar.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_utils.checks import require_int
from course_utils.data.imageset import as_image_tensor, as_model_images, as_unit_images, check_unit_images
from course_utils.device import pick_device
from course_utils.inference import model_device, predict_probabilities
from course_utils.losses import class_weights
from course_utils.models.domain_classifier import DomainClassifier
from course_utils.training.loop import TrainConfig, TrainingResult, train_gan
from course_utils.training.steps import PairedSteps

IMBALANCE_MODES: tuple[str, ...] = ("weighted", "none")


def supervised_updates(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batches: Iterable[torch.Tensor],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimiser: torch.optim.Optimizer,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The supervised loop: for each index batch, `prepare` (and `augment`) the inputs, one update; yield results.

    Yields `(index, outputs, loss)` after each optimiser step, so the caller steps its scheduler and keeps its
    statistics. `inputs` and `targets` are on the model's device, as are the index batches.
    """
    model.train()
    for index in batches:
        batch = prepare(inputs[index])
        if augment is not None:
            batch = augment(batch)
        outputs = model(batch)
        loss = loss_fn(outputs, targets[index])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        yield index, outputs, loss


def step_batches(count: int, batch_size: int, steps: int, generator: torch.Generator,
                 device: torch.device | str) -> Iterator[torch.Tensor]:
    """`steps` index batches from shuffled passes over `count` items (a pass's tail shorter than a batch is dropped)."""
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if order.numel() < batch_size:
            order = torch.randperm(count, generator=generator)
        index, order = order[:batch_size].to(device), order[batch_size:]
        yield index


def epoch_batches(count: int, batch_size: int, generator: torch.Generator, device: torch.device | str,
                  min_batch: int = 2) -> Iterator[torch.Tensor]:
    """One epoch's index batches of a fresh permutation; a last batch smaller than `min_batch` is skipped."""
    order = torch.randperm(count, generator=generator).to(device)
    for start in range(0, count, batch_size):
        index = order[start:start + batch_size]
        if index.numel() >= min_batch:
            yield index


# ----------------------------------------------------------------------------- the ResNet classifier (notebook 04)


def _check_training_data(images: Any, labels: Any, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, C, H, W), labels int64 (N,)) checked for shape, agreement and label range."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor (N, C, H, W); got {shape}. Add a channel axis with x[:, None].")
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point():
        raise ValueError("labels must be an integer tensor (N,) of class indices.")
    labels = labels.reshape(-1).long()
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels; give one label per image.")
    if images.shape[0] < 2:
        raise ValueError(f"need at least 2 training images (batch norm); got {images.shape[0]}.")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"labels must be in 0..{num_classes - 1}; got [{int(labels.min())}, {int(labels.max())}].")
    return images, labels


def validation_auc(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """AUC of `model` on (images, labels): two classes scikit-learn's `roc_auc_score`, more the macro one-vs-rest."""
    from sklearn.metrics import roc_auc_score

    probabilities = predict_probabilities(model, images).numpy()  # (N, K), eval mode, mode restored
    truth = labels.reshape(-1).cpu().numpy()
    if num_classes == 2:
        return float(roc_auc_score(truth, probabilities[:, 1]))  # the same for either class as positive
    return float(roc_auc_score(truth, probabilities, multi_class="ovr", labels=list(range(num_classes))))


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    imbalance: str = "weighted",
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    seed: int = 0,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    eval_every: int = 10,
    patience: int | None = None,
) -> dict[str, Any]:
    """Train `model` in place for at most `steps` Adam steps with cosine learning-rate decay over `steps`.

    Introduced in notebook 04. Batches are drawn from shuffled passes over the data (seeded by `seed`); the model
    stays on its device and the data are moved there once. `imbalance='weighted'` uses `class_weights` of
    `labels` in the cross-entropy; `'none'` the plain loss. `augment(images, generator)` (float [-1, 1] batch in,
    same shape out) is applied to every batch with a generator seeded from `seed`. Ends in eval mode.

    With `validation` = (images, labels) (data the model never trains on, every class present), the validation
    AUC (`validation_auc`) is measured every `eval_every` steps and after the last step; the weights (and
    batch-norm statistics) of the best evaluation are restored at the end, and training stops early after
    `patience` evaluations in a row without a strictly higher AUC (None: never early; `steps` stays the cap
    either way, and the cosine schedule always spans `steps`, so a run that stops early stopped at a larger
    learning rate than the cap's end). Returns {'loss': per step, 'eval_steps', 'validation_auc': the curve,
    'best_step': the step whose weights were kept, 'steps_run'}; without validation best_step = steps_run.
    """
    require_int(steps, "steps")
    require_int(batch_size, "batch_size (batch norm needs 2 images)", minimum=2)
    require_int(eval_every, "eval_every")
    if patience is not None:
        require_int(patience, "patience")
    if imbalance not in IMBALANCE_MODES:
        raise ValueError(f"imbalance must be one of {IMBALANCE_MODES}; got {imbalance!r}.")
    images, labels = _check_training_data(images, labels, num_classes)
    if validation is not None:
        val_images, val_labels = _check_training_data(*validation, num_classes)
        missing = sorted(set(range(num_classes)) - set(val_labels.unique().tolist()))
        if missing:
            raise ValueError(f"the validation set lacks classes {missing}; its AUC is undefined. Stratify the split.")
    device = model_device(model)
    images, labels = images.to(device), labels.to(device)
    weight = class_weights(labels, num_classes).to(device) if imbalance == "weighted" else None
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    augment_rng = torch.Generator(device=device).manual_seed(seed + 1)
    batches = step_batches(images.shape[0], min(batch_size, images.shape[0]), steps,
                           torch.Generator().manual_seed(seed), device)
    losses: list[torch.Tensor] = []
    history: dict[str, Any] = {"eval_steps": [], "validation_auc": []}
    best_score, best_state, best_step, waited = -math.inf, None, 0, 0
    for step, (_, _, loss) in enumerate(supervised_updates(
        model, images, labels, batches, nn.CrossEntropyLoss(weight=weight), optimiser, as_model_images,
        augment=None if augment is None else (lambda batch: augment(batch, augment_rng)),
    ), start=1):
        scheduler.step()
        losses.append(loss.detach())
        if validation is None or (step % eval_every and step != steps):
            continue
        score = validation_auc(model, val_images, val_labels, num_classes)  # eval mode inside, train mode after
        history["eval_steps"].append(step)
        history["validation_auc"].append(score)
        if score > best_score:
            best_score, best_step, waited = score, step, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if patience is not None and waited >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.update(loss=torch.stack(losses).cpu().tolist(), steps_run=len(losses),
                   best_step=best_step if validation is not None else len(losses))
    return history


# ----------------------------------------------------------------------------- the domain classifier (notebook 03)


def _as_labelled(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8/float (N, C, H, W), labels int64 (N,)) from an ImageSet or an (images, labels) pair."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        images, labels = data.images, data.labels
    elif isinstance(data, tuple | list) and len(data) == 2:
        images, labels = data
    else:
        raise TypeError(f"{name} must be an ImageSet or an (images, labels) pair; got {type(data).__name__}.")
    images = check_unit_images(images, f"{name} images", (1, 3))
    labels = as_image_tensor(labels, f"{name} labels").reshape(-1)
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"{name} labels must be integer class indices; got dtype {labels.dtype}.")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{name} has {images.shape[0]} images but {labels.shape[0]} labels; give one label per image.")
    if int(labels.min()) < 0:
        raise ValueError(f"{name} labels must be >= 0; got {int(labels.min())}.")
    return images, labels.long()


def train_domain_classifier(
    train: Any,
    num_classes: int | None = None,
    *,
    epochs: int = 8,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    width: int = 16,
    feature_dim: int = 64,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[DomainClassifier, dict[str, list[float]]]:
    """Train a `DomainClassifier` on `train` (an ImageSet or (images, labels)) with cross-entropy and AdamW.

    Returns the model (in eval mode, on `device`) and the per-epoch history {'loss', 'accuracy'} on the
    training set. Initialisation, batch order and dropout come from `seed`; the global RNG is left as it was.
    The last incomplete batch of an epoch is kept only if it has at least 2 images (batch norm needs 2).
    After training, the batch-norm statistics are recomputed over the training set with the final weights.
    """
    images, labels = _as_labelled(train, "train")
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < max(2, int(labels.max()) + 1):
        raise ValueError(f"num_classes must be an integer >= 2 and > the largest label {int(labels.max())}; got {num_classes!r}.")
    require_int(epochs, "epochs")
    require_int(batch_size, "batch_size")
    if images.shape[0] < 2:
        raise ValueError(f"train has {images.shape[0]} image(s); need at least 2 to train with batch norm.")
    device = torch.device(device) if device is not None else pick_device()
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        model = DomainClassifier(images.shape[1], num_classes, width, feature_dim).to(device)
        optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
        order_rng = torch.Generator().manual_seed(seed)
        images_dev, labels_dev = images.to(device), labels.to(device)
        history: dict[str, list[float]] = {"loss": [], "accuracy": []}
        for epoch in range(epochs):
            total_loss = torch.zeros((), device=device)
            correct = torch.zeros((), device=device)
            seen = 0
            batches = epoch_batches(images.shape[0], batch_size, order_rng, device)
            for index, logits, loss in supervised_updates(
                model, images_dev, labels_dev, batches, nn.CrossEntropyLoss(), optimiser,
                lambda batch: as_unit_images(batch, device),
            ):
                total_loss += loss.detach() * index.numel()
                correct += (logits.argmax(dim=1) == labels_dev[index]).sum()
                seen += index.numel()
            scheduler.step()
            history["loss"].append(float(total_loss) / seen)
            history["accuracy"].append(float(correct) / seen)
            if progress:
                print(f"  classifier epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.4f}, "
                      f"train accuracy {history['accuracy'][-1]:.3f}")
        _recompute_batch_norm_statistics(model, images_dev, batch_size)
    model.eval()
    return model, history


@torch.no_grad()
def _recompute_batch_norm_statistics(model: DomainClassifier, images: torch.Tensor, batch_size: int) -> None:
    """Set every batch norm's running mean/variance to the exact average over `images` (final weights).

    The running averages collected during training lag behind the weights (momentum 0.1); after a short
    training they are far off and eval-mode predictions suffer. One pass over the data fixes that.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    device = model_device(model)
    for start in range(0, images.shape[0], batch_size):
        batch = images[start:start + batch_size]
        if batch.shape[0] >= 2:
            model.features(as_unit_images(batch, device))
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum


# ----------------------------------------------------------------------------- pixel-loss pretraining (notebooks 05, 06)


class NoCritic(nn.Module):
    """A placeholder critic for pixel-only training (`train_gan` builds an optimiser for it; it is never called)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Never called by pixel-only steps."""
        raise RuntimeError("pixel-only training has no critic; use PairedSteps(adversarial_weight > 0) with a real one.")


def train_pixel_model(generator: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, config: TrainConfig,
                      pixel: str = "l1", checkpoint_dir: str | Path | None = None,
                      fixed_inputs: torch.Tensor | None = None, progress: bool = True) -> TrainingResult:
    """Supervised pixel-loss training (SRResNet, the L1 U-Net, an autoencoder) in `train_gan`'s loop (notebook 05).

    `inputs`, `targets`: float `(N, C, ...)` in [-1, 1]. Same checkpoints, resume and progress bar as the GANs;
    `config.lr_g` is the learning rate (`lr_d` is unused). The result's `generator` is the trained model.
    """
    fixed = inputs[: config.num_samples] if fixed_inputs is None else fixed_inputs
    return train_gan(generator, NoCritic().to(next(generator.parameters()).device), (inputs, targets), config,
                     steps=PairedSteps(pixel=pixel), checkpoint_dir=checkpoint_dir, fixed_noise=fixed, progress=progress)


__all__ = ["IMBALANCE_MODES", "NoCritic", "epoch_batches", "step_batches", "supervised_updates", "train_classifier",
           "train_domain_classifier", "train_pixel_model", "validation_auc"]
