"""Adversarial segmentation: the supervised loss, the (image, mask) critic step, and whole-volume prediction.

Introduced in notebook 07 (`07_segmentation_gan`).

The segmenter (a U-Net) maps an image `(B, 1, H, W)` in [-1, 1] to class logits `(B, K, H, W)`. It is the
"generator" of `train_gan`; the "discriminator" is a critic that sees an image together with a mask — the
true one-hot mask, or the segmenter's softmax — stacked as `(B, 1 + K, H, W)` channels, pix2pix style: it can
only tell the pair apart by how well the mask fits the image (shape, borders, position), which is the
information a pixel-wise loss does not use. `SegmentationSteps(adversarial_weight=0)` is the supervised-only
baseline in the *same* loop (same batches, same seeds, same number of segmenter updates): the critic is
never used, so the comparison changes one thing only.

Masks in batches are integer label maps `(B, 1, H, W)` (uint8 0..K-1). Volumes are `(D, H, W)` arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data.imageset import ImageSet, to_model_range
from course_utils.data.slicing import pad_to_square
from course_utils.losses import d_loss_minimax, g_loss_non_saturating
from course_utils.training import GANSteps

ArrayLike = Any  # torch.Tensor | np.ndarray


# ----------------------------------------------------------------------------- losses


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, include_background: bool = False,
                   smooth: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over classes (and the batch), from logits `(B, K, H, W)` and labels `(B, H, W)` or `(B, 1, H, W)`.

    Soft Dice uses the softmax probabilities instead of hard labels so it has a gradient; sums run over the
    whole batch (a class absent from one slice does not make that slice's Dice undefined). `smooth` keeps
    0 / 0 at 1 for a class absent from both.
    """
    if logits.dim() != 4:
        raise ValueError(f"logits must be (B, K, H, W) class scores; got shape {tuple(logits.shape)}.")
    target = target[:, 0] if target.dim() == 4 else target  # (B, H, W)
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"target must be labels (B, H, W) matching logits {tuple(logits.shape)}; got {tuple(target.shape)}."
        )
    num_classes = logits.shape[1]
    probabilities = logits.float().softmax(dim=1)  # (B, K, H, W)
    onehot = F.one_hot(target.long(), num_classes).permute(0, 3, 1, 2).float()  # (B, K, H, W)
    first = 0 if include_background else 1
    intersection = (probabilities * onehot).sum(dim=(0, 2, 3))[first:]  # (K',)
    sizes = (probabilities + onehot).sum(dim=(0, 2, 3))[first:]
    dice = (2 * intersection + smooth) / (sizes + smooth)
    return 1.0 - dice.mean()


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice (foreground classes) + cross-entropy: the supervised segmentation loss of notebook 07."""
    labels = (target[:, 0] if target.dim() == 4 else target).long()  # (B, H, W)
    return soft_dice_loss(logits, labels) + F.cross_entropy(logits.float(), labels)


# ----------------------------------------------------------------------------- the training step


def mask_to_model_range(mask_probabilities: torch.Tensor) -> torch.Tensor:
    """Class probabilities or one-hot masks `(B, K, H, W)` in [0, 1] → [-1, 1], the critic's input range."""
    return mask_probabilities * 2.0 - 1.0


class SegmentationSteps(GANSteps):
    """Segmenter + (image, mask) critic, for `train_gan` with data `(images, masks)` (introduced in notebook 07).

    g-step: `supervised_loss(logits, masks)` (Dice + cross-entropy) plus `adversarial_weight` times the
    non-saturating loss of the critic on (image, softmax). d-step: the critic learns real pairs (image,
    one-hot truth) vs fake pairs (image, softmax, detached), minimax loss on its patch logits. With
    `adversarial_weight = 0` the d-step does nothing: supervised training in the same loop.
    Logs `loss_sup` (and, with the critic, `loss_d`, `loss_adv`, `d_real`, `d_fake`).
    """

    def __init__(self, num_classes: int, adversarial_weight: float = 0.0,
                 supervised_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = dice_ce_loss) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
        if not isinstance(adversarial_weight, int | float) or adversarial_weight < 0:
            raise ValueError(f"adversarial_weight must be a number >= 0 (0: supervised only); got {adversarial_weight!r}.")
        self.num_classes = num_classes
        self.adversarial_weight = float(adversarial_weight)
        self.supervised_loss = supervised_loss
        self._logits: torch.Tensor | None = None  # the d-step's segmenter output, reused by the g-step

    @property
    def adversarial(self) -> bool:
        """True when the critic takes part."""
        return self.adversarial_weight > 0

    def settings(self) -> dict[str, Any]:
        """Options a resumed run must share."""
        return {"type": type(self).__name__, "num_classes": self.num_classes,
                "adversarial_weight": self.adversarial_weight,
                "supervised_loss": getattr(self.supervised_loss, "__name__", repr(self.supervised_loss))}

    def make_fixed_noise(self, config: Any, device: torch.device) -> torch.Tensor:
        """Not used: pass `fixed_noise=` a fixed batch of images `(n, 1, H, W)` in [-1, 1] for the snapshots."""
        raise ValueError(
            "SegmentationSteps draws its snapshots from images: call train_gan(..., fixed_noise=images) with a "
            "fixed batch of images (n, 1, H, W) in [-1, 1], e.g. to_model_range(train_images[:16])."
        )

    def sample(self, fixed_noise: torch.Tensor) -> torch.Tensor:
        """Snapshot: the predicted label map of the fixed images, as grey levels in [-1, 1] (0 → -1, K-1 → 1)."""
        labels = self.context.generator_module(fixed_noise).argmax(dim=1, keepdim=True)  # (n, 1, H, W)
        return labels.float() / (self.num_classes - 1) * 2.0 - 1.0

    def _pairs(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(image, mask) pairs `(B, 1 + K, H, W)` in [-1, 1] from images and K-channel masks in [0, 1]."""
        return torch.cat([images, mask_to_model_range(masks)], dim=1)

    def d_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Critic update on (image, true mask) vs (image, predicted softmax); nothing without the critic."""
        if not self.adversarial:
            return {}
        images, masks = batch  # (B, 1, H, W) in [-1, 1], (B, 1, H, W) labels
        onehot = F.one_hot(masks[:, 0].long(), self.num_classes).permute(0, 3, 1, 2).to(images.dtype)  # (B, K, H, W)
        with self.autocast():
            self._logits = self.generator(images)  # (B, K, H, W), graph kept for the g-step
            fake_masks = self._logits.detach().float().softmax(dim=1).to(images.dtype)
            real_out = self.discriminator(self._pairs(images, onehot))  # (B, 1, h, w) patch logits
            fake_out = self.discriminator(self._pairs(images, fake_masks))
        loss_d = d_loss_minimax(real_out, fake_out)
        self.optimise(loss_d, "d")
        return {"loss_d": loss_d.detach(), "d_real": torch.sigmoid(real_out.detach().float()).mean(),
                "d_fake": torch.sigmoid(fake_out.detach().float()).mean()}

    def g_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Segmenter update: supervised loss (+ adversarial_weight x non-saturating loss on the critic)."""
        images, masks = batch
        logits, self._logits = self._logits, None
        with self.autocast():
            if logits is None:
                logits = self.generator(images)  # (B, K, H, W)
            loss_sup = self.supervised_loss(logits, masks)
            logs = {"loss_sup": loss_sup.detach()}
            loss = loss_sup
            if self.adversarial:
                with self.frozen(self.context.discriminator_module):
                    fake_out = self.discriminator(self._pairs(images, logits.float().softmax(dim=1).to(images.dtype)))
                loss_adv = g_loss_non_saturating(fake_out)
                loss = loss_sup + self.adversarial_weight * loss_adv
                logs["loss_adv"] = loss_adv.detach()
        self.optimise(loss, "g")
        return logs


# ----------------------------------------------------------------------------- subjects and volumes


def split_cases(cases: Sequence[str], fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
                seed: int = 0) -> dict[str, list[str]]:
    """Subjects shuffled with `seed` and cut into train / val / test (no subject in two splits)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative shares summing to 1, e.g. (0.7, 0.1, 0.2); got {fractions}.")
    if len(set(cases)) != len(cases):
        raise ValueError("cases contains duplicates; pass each subject once.")
    if len(cases) < 3:
        raise ValueError(f"need at least 3 subjects for train / val / test; got {len(cases)}.")
    order = np.random.default_rng(seed).permutation(len(cases))
    shuffled = [cases[i] for i in order]
    n_test = max(1, round(fractions[2] * len(cases)))
    n_val = max(1, round(fractions[1] * len(cases)))
    n_train = len(cases) - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{len(cases)} subjects leave none for training with fractions {fractions}.")
    return {"train": sorted(shuffled[:n_train]), "val": sorted(shuffled[n_train:n_train + n_val]),
            "test": sorted(shuffled[n_train + n_val:])}


@torch.no_grad()
def predict_volume(segmenter: nn.Module, volume: ArrayLike, side: int = 64, axis: int = 0,
                   batch_size: int = 64) -> np.ndarray:
    """Label volume (same shape, uint8) predicted slice by slice along `axis` for a uint8 `(D, H, W)` volume.

    Each slice is prepared exactly as `hippocampus_slices` prepares training slices — turned with
    `rotate_up` (a 90° rotation) and zero-padded (centred) to `side` x `side` — segmented, then cropped and
    turned back, so the result lines up voxel for voxel with the original volume.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3 or volume.dtype != np.uint8:
        raise ValueError(f"volume must be a uint8 (D, H, W) array; got {volume.dtype} of shape {volume.shape}.")
    planes = np.rot90(np.moveaxis(volume, axis, 0), k=1, axes=(1, 2))  # (S, h, w): rotate_up of every slice
    height, width = planes.shape[1:]
    if max(height, width) > side:
        raise ValueError(f"slices of {height}x{width} do not fit into side={side}; use side >= {max(height, width)}.")
    top, left = (side - height) // 2, (side - width) // 2  # the offsets pad_to_square uses
    device = next(segmenter.parameters()).device
    was_training = segmenter.training
    segmenter.eval()
    try:
        padded = pad_to_square(torch.from_numpy(np.ascontiguousarray(planes))[:, None], side)  # (S, 1, side, side)
        labels = []
        for start in range(0, len(padded), batch_size):
            images = to_model_range(padded[start:start + batch_size]).to(device)  # (b, 1, side, side) in [-1, 1]
            labels.append(segmenter(images).argmax(dim=1).to(torch.uint8).cpu())  # (b, side, side)
    finally:
        segmenter.train(was_training)
    cropped = torch.cat(labels)[:, top:top + height, left:left + width].numpy()  # (S, h, w)
    return np.ascontiguousarray(np.moveaxis(np.rot90(cropped, k=-1, axes=(1, 2)), 0, axis))  # undo rotate_up


@torch.no_grad()
def segment_stack(segmenter: nn.Module, stack: ArrayLike, batch_size: int = 64) -> np.ndarray:
    """Label maps `(S, H, W)` uint8 for slices that are already prepared like the training slices, uint8 `(S, H, W)`."""
    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.dtype != np.uint8:
        raise ValueError(f"stack must be uint8 slices (S, H, W); got {stack.dtype} of shape {stack.shape}.")
    device = next(segmenter.parameters()).device
    was_training = segmenter.training
    segmenter.eval()
    try:
        slices = torch.from_numpy(np.ascontiguousarray(stack))[:, None]  # (S, 1, H, W)
        labels = [segmenter(to_model_range(slices[i:i + batch_size]).to(device)).argmax(dim=1).to(torch.uint8).cpu()
                  for i in range(0, len(slices), batch_size)]
    finally:
        segmenter.train(was_training)
    return torch.cat(labels).numpy()


@dataclass
class SegmentationTask:
    """What notebook 07 trains on and is judged on: training slices, and whole held-out volumes per subject."""

    train: ImageSet  # 2-D slices (N, 1, size, size) uint8 with masks, from the training subjects only
    val_volumes: list[tuple[str, np.ndarray, np.ndarray]]  # (subject, image (D, H, W) uint8, labels (D, H, W))
    test_volumes: list[tuple[str, np.ndarray, np.ndarray]]
    class_names: tuple[str, ...]
    predict: Callable[[nn.Module, np.ndarray], np.ndarray]  # segmenter, image volume -> label volume
    description: str
    is_fallback: bool


def load_segmentation_task(size: int = 64, max_train_cases: int | None = None, max_eval_cases: int | None = None,
                           seed: int = 0, download: bool = True) -> SegmentationTask:
    """The MSD Task04 hippocampus task split by subject; offline without it, MNI152 tissue maps (visibly).

    Hippocampus: subjects split 70 / 10 / 20 % (`split_cases`), training slices along axis 0 from the training
    subjects (all slices, with or without hippocampus), val/test as native volumes predicted with
    `predict_volume`. Fallback: MNI152 grey/white-matter maps; axial training slices from the template's train
    blocks, and every test (val) block of consecutive slices as one held-out "volume". `max_*_cases` trims the
    subject lists (the smoke profile).
    """
    from course_utils.data import load_segmentation_cases
    from course_utils.data.hippocampus import LABEL_NAMES, hippocampus_slices, load_case
    from course_utils.data.mni152 import TISSUE_NAMES, mni152_slices

    folder, cases = load_segmentation_cases(download=download)
    if folder is not None:
        split = split_cases(cases, seed=seed)
        train_cases = split["train"][:max_train_cases]
        train = hippocampus_slices(folder, train_cases, size=size, axis=0, only_labelled=False)

        def volumes(names: list[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
            return [(name, *load_case(folder, name)) for name in names[:max_eval_cases]]

        return SegmentationTask(
            train=train, val_volumes=volumes(split["val"]), test_volumes=volumes(split["test"]),
            class_names=LABEL_NAMES,
            predict=lambda segmenter, image: predict_volume(segmenter, image, side=size, axis=0),
            description=(f"MSD Task04 hippocampus: {len(train_cases)} training subjects ({len(train)} slices), "
                         f"{len(split['val'][:max_eval_cases])} validation and {len(split['test'][:max_eval_cases])} "
                         f"test subjects (split by subject, seed {seed})"),
            is_fallback=False,
        )

    def blocks(part: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
        data = mni152_slices(size=size, axis=2, split=part)
        runs = np.split(np.arange(len(data)), np.flatnonzero(np.diff(data.groups.numpy()) > 1) + 1)
        return [(f"MNI152 {part} slices {int(data.groups[r[0]])}-{int(data.groups[r[-1]])}",
                 data.images[r, 0].numpy(), data.masks[r, 0].numpy()) for r in runs][:max_eval_cases]

    train = mni152_slices(size=size, axis=2, split="train")
    return SegmentationTask(
        train=train, val_volumes=blocks("val"), test_volumes=blocks("test"), class_names=TISSUE_NAMES,
        predict=lambda segmenter, stack: segment_stack(segmenter, stack),
        description=(f"FALLBACK: MNI152 grey/white-matter maps, {len(train)} axial training slices; held-out "
                     "blocks of consecutive slices as volumes"),
        is_fallback=True,
    )
