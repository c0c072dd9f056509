"""How an (image, mask) critic sees masks, so that it cannot tell expert from predicted masks by their values.

Introduced in notebook 07 (`07_segmentation_gan`).

An expert's mask is one-hot: every pixel's class probabilities are exactly 0 or 1. A segmenter's softmax is
strictly inside (0, 1). Fed these two as they are, a critic can separate them pixel by pixel without looking at
any shape, and its gradient then teaches the segmenter only to be more confident. Luc, Couprie, Chintala &
Verbeek (2016, "Semantic segmentation using adversarial networks", NIPS workshop on adversarial training,
arXiv:1611.08408) describe this shortcut and
propose encodings that remove or weaken it. Three encodings, each a pair (truth, prediction) of `(B, K, H, W)`
maps in [0, 1]:

- `"softmax"`: the one-hot truth vs the softmax (Luc et al.'s "basic" input: the shortcut is open);
- `"scaling"`: Luc et al.'s scaling. The truth borrows the prediction's uncertainty: at each pixel the true class
  gets max(τ, s_true) and the other classes share the rest in the proportions the segmenter gave them, so the
  truth is no longer exactly one-hot (τ = 0.9, theirs);
- `"straight_through"`: both are one-hot. The prediction is one_hot(argmax) in the forward pass (exactly, up to
  float rounding of about 1e-7) and passes the softmax's gradient in the backward pass: the straight-through
  estimator of Bengio, Léonard & Courville (2013) in its softmax form, as in the straight-through Gumbel-softmax
  of Jang, Gu & Poole (2017). The critic sees two maps of the same kind and can only judge where the classes are.
  (Not one of Luc et al.'s encodings; their third, "product", multiplies the image by each class map, which
  keeps the value difference and is left out here.)

Whether an encoding closes the shortcut is measured, not assumed: with the prediction's shape made the expert's
(`shape_matched_logits`), a classifier that sees each pixel's K values alone and averages over the slice
(`course_utils.metrics.two_sample`, `architecture="pixelwise"`) must not separate the two.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

MaskEncoding = Literal["softmax", "scaling", "straight_through"]
MASK_ENCODINGS: tuple[str, ...] = ("softmax", "scaling", "straight_through")
SCALING_TAU = 0.9  # Luc et al.'s floor for the true class in the "scaling" encoding


def check_encoding(encoding: object) -> str:
    """`encoding` if it is one of MASK_ENCODINGS, else a ValueError listing them."""
    if encoding not in MASK_ENCODINGS:
        raise ValueError(f"mask encoding must be one of {', '.join(map(repr, MASK_ENCODINGS))}; got {encoding!r}.")
    return str(encoding)


def one_hot_masks(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Integer label maps `(B, 1, H, W)` (or `(B, H, W)`) → one-hot masks `(B, K, H, W)`."""
    if labels.dim() == 4:
        labels = labels[:, 0]
    if labels.dim() != 3:
        raise ValueError(f"labels must be (B, 1, H, W) or (B, H, W) integer maps; got {tuple(labels.shape)}.")
    return F.one_hot(labels.long(), num_classes).permute(0, 3, 1, 2).to(dtype)


def encode_prediction(logits: torch.Tensor, encoding: MaskEncoding) -> torch.Tensor:
    """The segmenter's logits `(B, K, H, W)` as the critic sees them (differentiable), `(B, K, H, W)` in [0, 1]."""
    probabilities = logits.float().softmax(dim=1)
    if check_encoding(encoding) != "straight_through":
        return probabilities
    hard = F.one_hot(probabilities.argmax(dim=1), probabilities.shape[1]).permute(0, 3, 1, 2).to(probabilities.dtype)
    return hard + probabilities - probabilities.detach()  # forward: one-hot; backward: the softmax's gradient


def encode_truth(labels: torch.Tensor, logits: torch.Tensor, encoding: MaskEncoding,
                 tau: float = SCALING_TAU) -> torch.Tensor:
    """The expert's label maps `(B, 1, H, W)` as the critic sees them, `(B, K, H, W)` in [0, 1] (no gradient).

    `logits` (the segmenter's output on the same images) is used by `"scaling"` only.
    """
    check_encoding(encoding)
    onehot = one_hot_masks(labels, logits.shape[1])
    if encoding != "scaling":
        return onehot
    if not 0 < tau < 1:
        raise ValueError(f"tau must be in (0, 1) (Luc et al. use 0.9); got {tau!r}.")
    probabilities = logits.detach().float().softmax(dim=1)
    true_probability = (probabilities * onehot).sum(dim=1, keepdim=True)  # s_true, (B, 1, H, W)
    true_value = true_probability.clamp(min=tau)  # max(tau, s_true)
    rest = 1.0 - true_probability  # the probability the segmenter gave the other classes
    # each other class keeps its share of the rest; where the segmenter was certain (rest = 0) they stay 0
    shares = torch.where(rest > 1e-12, probabilities / rest.clamp(min=1e-12), torch.zeros_like(probabilities))
    return onehot * true_value + (1 - onehot) * shares * (1.0 - true_value)


def shape_matched_logits(labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The segmenter's logits `(B, K, H, W)` changed so that their argmax is the expert's label at every pixel.

    At each pixel the largest value and the true class's value swap places, so the prediction keeps the
    segmenter's own confidences but has exactly the expert's shape. An (encoded truth, encoded prediction)
    pair built from it can only differ in its *values*: what a shape-free critic can still tell apart is the
    encoding's shortcut, not a segmentation error. (For "straight_through" the two are then one-hot maps of the
    same labels: equal by construction, up to float rounding.)
    """
    labels = labels.reshape(logits.shape[0], 1, *logits.shape[2:]).long()  # (B, 1, H, W)
    logits = logits.detach().float()
    top = logits.argmax(dim=1, keepdim=True)  # (B, 1, H, W)
    top_value, true_value = logits.gather(1, top), logits.gather(1, labels)
    swapped = logits.scatter(1, top, true_value)  # the old maximum's place gets the true class's value
    return swapped.scatter(1, labels, top_value)  # and the true class gets the maximum


__all__ = ["MASK_ENCODINGS", "SCALING_TAU", "MaskEncoding", "check_encoding", "shape_matched_logits",
           "encode_prediction", "encode_truth", "one_hot_masks"]
