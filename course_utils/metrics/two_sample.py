"""A classifier two-sample test: can a freshly trained network tell generated images from real ones?

Introduced in notebook 05 (`05_srgan_mri_super_resolution`) as the *perception* axis of the
perception–distortion plane.

Blau & Michaeli (2018) define perceptual quality as a divergence between the **distribution** of outputs
and the distribution of real images, measured without reference to the matching ground truth. A direct way
to estimate such a divergence is the classifier two-sample test (Lopez-Paz & Oquab, 2017): train a fresh
classifier to separate real images from outputs on one set of images, then measure its accuracy on images it
has not seen. Accuracy 0.5 means the two sets cannot be told apart (by this classifier, at this budget);
1.0 means every output is recognisable. Unlike a full-reference distance (PSNR, or a feature distance
between an output and its own target), it never compares an output with its target: it is a property of the
set. Two caveats: a weak or under-trained classifier makes everything look "real" (check it on an easy pair,
e.g. blurred images, and on real-vs-real, which must give about 0.5), and the accuracy depends on the
classifier's architecture and budget, so compare methods only with one fixed classifier recipe.

`two_sample_accuracy` returns, per test image, whether the classifier got it right, so that the accuracy can
be given an interval over subjects with `course_utils.metrics.image_quality.cluster_bootstrap`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.inference import eval_mode


def two_sample_classifier(width: int = 16, channels: int = 1) -> nn.Module:
    """A small CNN `(B, C, H, W)` in [-1, 1] → one logit `(B,)`: three stride-2 convolutions, global pooling."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 1), nn.Flatten(0),
    )


class PixelwiseClassifier(nn.Module):
    """A *shape-free* classifier `(B, C, H, W)` → one logit `(B,)`: a small MLP on each pixel's C values, then
    the mean of the per-pixel logits over the image.

    It judges each pixel's values on their own and averages the verdicts, so it can use the values (and their
    frequencies) but never where they are: an arrangement of pixels is invisible to it. The MLP is what 1 × 1
    convolutions compute, written as linear layers over the channel axis (on a CPU about 1.8× faster per step;
    the same initial weights for a seed). Used in notebook 07 to show that a critic can tell expert masks from
    predicted ones by value alone.
    """

    def __init__(self, width: int = 16, channels: int = 1) -> None:
        super().__init__()
        self.per_pixel = nn.Sequential(nn.Linear(channels, width), nn.LeakyReLU(0.2), nn.Linear(width, width),
                                       nn.LeakyReLU(0.2), nn.Linear(width, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.per_pixel(images.permute(0, 2, 3, 1)).mean(dim=(1, 2, 3))  # (B, H, W, C) -> (B,)


def pixelwise_classifier(width: int = 16, channels: int = 1) -> nn.Module:
    """A fresh `PixelwiseClassifier` (the shape-free classifier of notebook 07's shortcut test)."""
    return PixelwiseClassifier(width, channels)


CLASSIFIERS = {"cnn": two_sample_classifier, "pixelwise": pixelwise_classifier}


@dataclass(frozen=True)
class TwoSampleResult:
    """Outcome on the held-out images: `correct` `(N_real + N_fake,)` (real first), and the accuracy."""

    correct: torch.Tensor  # bool, one entry per test image: real ones first, then the generated ones
    accuracy: float
    train_accuracy: float  # on the training images, after training (how well it fitted)


def _check_images(images: torch.Tensor, name: str) -> None:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.dim() != 4 or not len(images):
        raise ValueError(f"{name} must be a non-empty float tensor (N, C, H, W) in [0, 1]; got "
                         f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}.")
    if float(images.min()) < -1e-6 or float(images.max()) > 1 + 1e-6:
        raise ValueError(f"{name} must be in [0, 1]; it spans [{float(images.min()):.3g}, {float(images.max()):.3g}].")


@torch.no_grad()
def _logits(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    with eval_mode(model):
        return torch.cat([model(images[i:i + batch_size].to(device) * 2 - 1).float().cpu()
                          for i in range(0, len(images), batch_size)])


def two_sample_accuracy(real_train: torch.Tensor, fake_train: torch.Tensor, real_test: torch.Tensor,
                        fake_test: torch.Tensor, *, steps: int = 300, batch_size: int = 64, lr: float = 1e-3,
                        width: int = 16, seed: int = 0, device: torch.device | str = "cpu",
                        architecture: str = "cnn") -> TwoSampleResult:
    """Train a fresh classifier on real (label 1) vs generated (label 0) training images; score the test images.

    All images float `(N, C, H, W)` in [0, 1], one size. Each batch holds half real, half generated images,
    so unequal set sizes do not bias the classifier; the test accuracy is the mean over both test sets.
    `architecture`: "cnn" (`two_sample_classifier`, sees shapes) or "pixelwise" (`pixelwise_classifier`,
    sees each pixel's values only).
    """
    if architecture not in CLASSIFIERS:
        raise ValueError(f"architecture must be one of {', '.join(map(repr, CLASSIFIERS))}; got {architecture!r}.")
    for name, images in (("real_train", real_train), ("fake_train", fake_train), ("real_test", real_test),
                         ("fake_test", fake_test)):
        _check_images(images, name)
    if len({tuple(x.shape[1:]) for x in (real_train, fake_train, real_test, fake_test)}) != 1:
        raise ValueError("all four sets need one image shape (C, H, W).")
    if steps < 1 or batch_size < 2:
        raise ValueError(f"need steps >= 1 and batch_size >= 2; got {steps}, {batch_size}.")
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLASSIFIERS[architecture](width, real_train.shape[1]).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
    half = batch_size // 2
    model.train()
    for _ in range(steps):
        real = real_train[torch.randint(len(real_train), (half,), generator=generator)]
        fake = fake_train[torch.randint(len(fake_train), (half,), generator=generator)]
        images = torch.cat([real, fake]).to(device) * 2 - 1
        labels = torch.cat([torch.ones(half), torch.zeros(half)]).to(device)
        loss = F.binary_cross_entropy_with_logits(model(images), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    def right(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return torch.cat([_logits(model, real, device) > 0, _logits(model, fake, device) <= 0])

    correct = right(real_test, fake_test)
    train_correct = right(real_train, fake_train)
    balanced = (correct[:len(real_test)].float().mean() + correct[len(real_test):].float().mean()) / 2
    train_balanced = (train_correct[:len(real_train)].float().mean() + train_correct[len(real_train):].float().mean()) / 2
    return TwoSampleResult(correct=correct, accuracy=float(balanced), train_accuracy=float(train_balanced))


__all__ = ["CLASSIFIERS", "PixelwiseClassifier", "TwoSampleResult", "pixelwise_classifier", "two_sample_accuracy", "two_sample_classifier"]
