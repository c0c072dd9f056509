"""The domain classifier: a compact CNN whose penultimate layer is the course's feature space for GAN metrics.

Introduced in notebook 03 (`03_evaluating_gans`); trained by `course_utils.training.supervised.train_domain_classifier`
and cached by `course_utils.protocols.domain_classifier`; its features are read by `course_utils.metrics.features`.
"""

from __future__ import annotations

import torch
from torch import nn


class DomainClassifier(nn.Module):
    """Compact CNN: images `(B, C, H, W)` in [0, 1] → class logits `(B, num_classes)`; `features` → `(B, feature_dim)`.

    Two conv blocks (each two 3x3 conv + batch norm + ReLU, then 2x2 max-pool: 28 → 14 → 7 px), a 3x3 conv to
    `feature_dim` channels, global average pooling (so any size >= 8 px works) and a linear layer. The
    pooled `feature_dim` vector is the penultimate layer: the domain features.
    """

    def __init__(self, channels: int = 1, num_classes: int = 2, width: int = 16, feature_dim: int = 64) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("num_classes", num_classes), ("width", width),
                            ("feature_dim", feature_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 (a classifier needs two classes); got {num_classes}.")
        self.channels, self.num_classes = channels, num_classes
        self.width, self.feature_dim = width, feature_dim

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]

        self.body = nn.Sequential(
            *block(channels, width),  # (B, w, H/2, W/2)
            *block(width, 2 * width),  # (B, 2w, H/4, W/4)
            nn.Conv2d(2 * width, feature_dim, 3, padding=1, bias=False),  # (B, feature_dim, H/4, W/4)
            nn.BatchNorm2d(feature_dim),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),  # (B, feature_dim, 1, 1)
            nn.Flatten(),  # (B, feature_dim)
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(feature_dim, num_classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features `(B, feature_dim)` of images `(B, C, H, W)` in [0, 1]."""
        return self.body(images * 2.0 - 1.0)  # the network itself works in [-1, 1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits `(B, num_classes)` of images `(B, C, H, W)` in [0, 1]."""
        return self.head(self.features(images))
