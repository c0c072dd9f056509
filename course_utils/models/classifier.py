"""The downstream classifier of notebook 04: torchvision's ResNet-18 adapted to 28 px images, and its training.

Introduced in notebook 04 (`04_conditional_gan_augmentation`). MedMNIST v2 (Yang et al., Scientific Data 10:41,
2023) benchmarks a ResNet-18 on the 28 px images whose first layer is a 3x3 convolution with stride 1 and no
max-pool, so the residual stages see 28, 14, 7 and 4 px (instead of ImageNet's 7x7 stride-2 convolution and
max-pool, which would shrink a 28 px image to 7 px before the first residual block). `build_resnet18` makes that
network from `torchvision.models.resnet18`; `stem="pooled"` keeps the max-pool after the 3x3 convolution
(stages at 14, 7, 4, 2 px), about 4x cheaper, for CPUs.

`train_classifier` trains for a fixed number of optimisation steps (not epochs), so every training regime of
notebook 04 gets the same compute whatever the size of its training set. Images are uint8 `(N, C, H, W)` or float
in [-1, 1]; the network sees [-1, 1] (MedMNIST's `Normalize(mean=0.5, std=0.5)`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torchvision
from torch import nn

from course_utils.data.imageset import to_model_range

STEMS: tuple[str, ...] = ("medmnist", "pooled")
IMBALANCE_MODES: tuple[str, ...] = ("weighted", "none")

# Published test-split figures of MedMNIST v2's ResNet-18 (28) (Yang et al., "MedMNIST v2 - A large-scale lightweight
# benchmark for 2D and 3D biomedical image classification", Scientific Data 10:41 (2023), Table 3; mean of at least
# three trials; model selected on the validation split; 100 epochs). Literature references, not results of this course.
MEDMNIST_V2_RESNET18_28: dict[str, dict[str, float]] = {
    "breastmnist": {"auc": 0.901, "accuracy": 0.863},
    "pneumoniamnist": {"auc": 0.944, "accuracy": 0.854},
}
MEDMNIST_V2_CITATION = (
    "Yang J, Shi R, Wei D, et al. MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical "
    "image classification. Scientific Data 10, 41 (2023), Table 3. doi:10.1038/s41597-022-01721-8"
)


def build_resnet18(in_channels: int = 1, num_classes: int = 2, stem: str = "medmnist") -> nn.Module:
    """torchvision's ResNet-18 for small images `(B, in_channels, 28, 28)` → logits `(B, num_classes)` (notebook 04).

    `stem="medmnist"`: 3x3 stride-1 first convolution, no max-pool (the MedMNIST v2 28 px model).
    `stem="pooled"`: the same convolution followed by torchvision's 3x3 stride-2 max-pool (4x fewer operations).
    """
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2; got {num_classes}.")
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS} ('medmnist': the MedMNIST v2 28 px ResNet-18); got {stem!r}.")
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)  # (B, 64, 28, 28)
    if stem == "medmnist":
        model.maxpool = nn.Identity()  # stages at 28, 14, 7, 4 px
    return model  # 'pooled': torchvision's max-pool stays, stages at 14, 7, 4, 2 px


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Weights `(num_classes,)` = N / (K * count_k): every class adds the same total to the loss (notebook 04).

    This is scikit-learn's `compute_class_weight('balanced')`. A class with no examples gets weight 0.
    """
    counts = torch.bincount(labels.reshape(-1).long().cpu(), minlength=num_classes).double()  # (K,)
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights.float()


def _as_model_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 → float [-1, 1]; float images are checked to be in [-1, 1]."""
    if images.dtype == torch.uint8:
        return to_model_range(images)
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 (0..255) or float in [-1, 1]; got dtype {images.dtype}.")
    return images.float()


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
) -> dict[str, list[float]]:
    """Train `model` in place for `steps` Adam steps with cosine learning-rate decay; returns {'loss': per step}.

    Introduced in notebook 04. Batches are drawn from shuffled passes over the data (seeded by `seed`); the model
    stays on its device and the data are moved there once. `imbalance='weighted'` uses `class_weights` of
    `labels` in the cross-entropy; `'none'` the plain loss. `augment(images, generator)` (float [-1, 1] batch in,
    same shape out) is applied to every batch with a generator seeded from `seed`. Ends in eval mode.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be an integer >= 2 (batch norm); got {batch_size!r}.")
    if imbalance not in IMBALANCE_MODES:
        raise ValueError(f"imbalance must be one of {IMBALANCE_MODES}; got {imbalance!r}.")
    images, labels = _check_training_data(images, labels, num_classes)
    device = next(model.parameters()).device
    images, labels = images.to(device), labels.to(device)
    weight = class_weights(labels, num_classes).to(device) if imbalance == "weighted" else None
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    order_rng = torch.Generator().manual_seed(seed)
    augment_rng = torch.Generator(device=device).manual_seed(seed + 1)
    batch_size = min(batch_size, images.shape[0])
    order = torch.empty(0, dtype=torch.long)
    losses: list[torch.Tensor] = []
    model.train()
    for _ in range(steps):
        if order.numel() < batch_size:  # a new shuffled pass (the tail of the last one is dropped)
            order = torch.randperm(images.shape[0], generator=order_rng)
        index, order = order[:batch_size].to(device), order[batch_size:]
        batch = _as_model_images(images[index])  # (B, C, H, W) in [-1, 1]
        if augment is not None:
            batch = augment(batch, augment_rng)
        loss = loss_fn(model(batch), labels[index])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        scheduler.step()
        losses.append(loss.detach())
    model.eval()
    return {"loss": torch.stack(losses).cpu().tolist()}


@torch.no_grad()
def predict_probabilities(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Class probabilities (softmax), float64 CPU `(N, num_classes)`, of images `(N, C, H, W)` (eval mode; notebook 04)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a tensor (N, C, H, W), uint8 or float in [-1, 1].")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        outputs = [torch.softmax(model(_as_model_images(images[i:i + batch_size].to(device))).float(), dim=1).cpu()
                   for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outputs).double()


__all__ = [
    "IMBALANCE_MODES", "MEDMNIST_V2_CITATION", "MEDMNIST_V2_RESNET18_28", "STEMS", "build_resnet18",
    "class_weights", "predict_probabilities", "train_classifier",
]
