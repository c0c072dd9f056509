"""Notebook 07's segmentation task: hippocampus slices and held-out volumes split by subject (MNI152 offline).

Introduced in notebook 07 (`07_segmentation_gan`). The loss is `course_utils.losses.dice_ce_loss`, the
training step `course_utils.training.steps.SegmentationSteps`, the volume prediction
`course_utils.inference.predict_volume`.

The segmenter (a U-Net) maps an image `(B, 1, H, W)` in [-1, 1] to class logits `(B, K, H, W)`. It is the
"generator" of `train_gan`; the "discriminator" is a critic that sees an image together with a mask — the
expert's or the segmenter's, both encoded as in `course_utils.training.mask_encoding` (one-hot by default) —
stacked as `(B, 1 + K, H, W)` channels, pix2pix style. With the value shortcut closed by that encoding it can
only tell the pair apart by how well the mask fits the image (shape, borders, position), which is the
information a pixel-wise loss does not use. `SegmentationSteps(adversarial_weight=0)` is the supervised-only
baseline in the *same* loop (same batches, same seeds, same number of segmenter updates): the critic is
never used, so the comparison changes one thing only.

Masks in batches are integer label maps `(B, 1, H, W)` (uint8 0..K-1). Volumes are `(D, H, W)` arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from course_utils.data.imageset import ImageSet
from course_utils.data.splits import split_cases
from course_utils.inference import predict_volume, segment_stack

ArrayLike = Any  # torch.Tensor | np.ndarray


@dataclass
class SegmentationTask:
    """What notebook 07 trains on and is judged on: training slices, and whole held-out volumes per subject."""

    train: ImageSet  # 2-D slices (N, 1, size, size) uint8 with masks, from the training cases only
    train_names: list[str]  # the training cases (fallback: the template's training slice blocks)
    val_volumes: list[tuple[str, np.ndarray, np.ndarray]]  # (subject, image (D, H, W) uint8, labels (D, H, W))
    test_volumes: list[tuple[str, np.ndarray, np.ndarray]]
    class_names: tuple[str, ...]
    predict: Callable[[nn.Module, np.ndarray], np.ndarray]  # segmenter, image volume -> label volume
    description: str
    is_fallback: bool


def load_segmentation_task(size: int = 64, max_train_cases: int | None = None, max_eval_cases: int | None = None,
                           seed: int = 0, download: bool = True) -> SegmentationTask:
    """The MSD Task04 hippocampus task split by case; offline without it, MNI152 tissue maps (visibly).

    Hippocampus: cases (each a left or right crop; the files carry no person ID, so one person's two sides can
    fall into different splits) split 70 / 10 / 20 % (`split_cases`), training slices along axis 0 from the training
    cases (all slices, with or without hippocampus), val/test as native volumes predicted with
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
            train=train, train_names=list(train_cases), val_volumes=volumes(split["val"]),
            test_volumes=volumes(split["test"]),
            class_names=LABEL_NAMES,
            predict=lambda segmenter, image: predict_volume(segmenter, image, side=size, axis=0),
            description=(f"MSD Task04 hippocampus: {len(train_cases)} training cases ({len(train)} slices), "
                         f"{len(split['val'][:max_eval_cases])} validation and {len(split['test'][:max_eval_cases])} "
                         f"test cases (split by case, seed {seed})"),
            is_fallback=False,
        )

    def blocks(part: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
        data = mni152_slices(size=size, axis=2, split=part)
        runs = np.split(np.arange(len(data)), np.flatnonzero(np.diff(data.groups.numpy()) > 1) + 1)
        return [(f"MNI152 {part} slices {int(data.groups[r[0]])}-{int(data.groups[r[-1]])}",
                 data.images[r, 0].numpy(), data.masks[r, 0].numpy()) for r in runs][:max_eval_cases]

    train = mni152_slices(size=size, axis=2, split="train")
    train_runs = np.split(train.groups.numpy(), np.flatnonzero(np.diff(train.groups.numpy()) > 1) + 1)
    return SegmentationTask(
        train=train, train_names=[f"MNI152 train slices {int(r[0])}-{int(r[-1])}" for r in train_runs],
        val_volumes=blocks("val"), test_volumes=blocks("test"), class_names=TISSUE_NAMES,
        predict=lambda segmenter, stack: segment_stack(segmenter, stack),
        description=(f"FALLBACK: MNI152 grey/white-matter maps, {len(train)} axial training slices; held-out "
                     "blocks of consecutive slices as volumes"),
        is_fallback=True,
    )
