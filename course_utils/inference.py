"""Using a trained model: one eval-mode context manager and the predict / generate helpers of the notebooks.

`eval_mode(model)` switches a model to evaluation (batch norm uses its running statistics, dropout is off)
and back to what it was afterwards, even on an error. Every helper here runs without gradients, in batches,
on the model's device, and returns CPU tensors or arrays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from course_utils.data.imageset import as_model_images, to_model_range
from course_utils.data.slicing import pad_to_square
from course_utils.models.conditional import ConditionalGenerator, check_labels

ArrayLike = Any  # torch.Tensor | np.ndarray


@contextlib.contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put `models` in eval mode for the block, then restore each one's train/eval mode."""
    was_training = [model.training for model in models]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for model, training in zip(models, was_training, strict=True):
            model.train(training)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def generate_conditional(generator: ConditionalGenerator, labels: torch.Tensor, seed: int = 0,
             batch_size: int = 256) -> torch.Tensor:
    """uint8 images `(N, C, H, W)` (CPU), one per label in `labels` `(N,)`, from noise drawn with `seed` (notebook 04).

    The generator is used in eval mode (batch norm with its running statistics) and left as it was.
    """
    if not isinstance(generator, ConditionalGenerator):
        raise TypeError(f"generator must be a ConditionalGenerator; got {type(generator).__name__}.")
    labels = check_labels(torch.as_tensor(labels), len(labels), generator.num_classes, "generate_conditional")
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(labels.shape[0], generator.latent_dim, generator=rng)  # (N, latent_dim), same on every device
    with eval_mode(generator):
        chunks = [generator(z[i:i + batch_size].to(device), labels[i:i + batch_size].to(device)).float().cpu()
                  for i in range(0, labels.shape[0], batch_size)]
    images = torch.cat(chunks) if chunks else torch.empty(0, generator.channels, generator.image_size,
                                                          generator.image_size)
    return images.clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)  # the inverse of to_model_range


@torch.no_grad()
def predict_images(generator: nn.Module, inputs: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """The generator's outputs for inputs in [0, 1], in [0, 1] on the CPU (eval mode, in batches; notebooks 05, 06)."""
    device = next(generator.parameters()).device
    outputs = []
    with eval_mode(generator):
        for start in range(0, inputs.shape[0], batch_size):
            x = inputs[start:start + batch_size].to(device) * 2 - 1  # (b, C, h, w) in [-1, 1]
            outputs.append(((generator(x).float() + 1) / 2).clamp(0, 1).cpu())
    return torch.cat(outputs)


@torch.no_grad()
def predict_probabilities(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Class probabilities (softmax), float64 CPU `(N, num_classes)`, of images `(N, C, H, W)` (eval mode; notebook 04)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a tensor (N, C, H, W), uint8 or float in [-1, 1].")
    device = next(model.parameters()).device
    with eval_mode(model):
        outputs = [torch.softmax(model(as_model_images(images[i:i + batch_size].to(device))).float(), dim=1).cpu()
                   for i in range(0, images.shape[0], batch_size)]
    return torch.cat(outputs).double()


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
    with eval_mode(segmenter):
        padded = pad_to_square(torch.from_numpy(np.ascontiguousarray(planes))[:, None], side)  # (S, 1, side, side)
        labels = []
        for start in range(0, len(padded), batch_size):
            images = to_model_range(padded[start:start + batch_size]).to(device)  # (b, 1, side, side) in [-1, 1]
            labels.append(segmenter(images).argmax(dim=1).to(torch.uint8).cpu())  # (b, side, side)
    cropped = torch.cat(labels)[:, top:top + height, left:left + width].numpy()  # (S, h, w)
    return np.ascontiguousarray(np.moveaxis(np.rot90(cropped, k=-1, axes=(1, 2)), 0, axis))  # undo rotate_up


@torch.no_grad()
def segment_stack(segmenter: nn.Module, stack: ArrayLike, batch_size: int = 64) -> np.ndarray:
    """Label maps `(S, H, W)` uint8 for slices that are already prepared like the training slices, uint8 `(S, H, W)`."""
    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.dtype != np.uint8:
        raise ValueError(f"stack must be uint8 slices (S, H, W); got {stack.dtype} of shape {stack.shape}.")
    device = next(segmenter.parameters()).device
    with eval_mode(segmenter):
        slices = torch.from_numpy(np.ascontiguousarray(stack))[:, None]  # (S, 1, H, W)
        labels = [segmenter(to_model_range(slices[i:i + batch_size]).to(device)).argmax(dim=1).to(torch.uint8).cpu()
                  for i in range(0, len(slices), batch_size)]
    return torch.cat(labels).numpy()


__all__ = ["eval_mode", "generate_conditional", "model_device", "predict_images",
           "predict_probabilities", "predict_volume", "segment_stack"]
