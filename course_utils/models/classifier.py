"""The downstream classifier of notebook 04: torchvision's ResNet-18 adapted to 28 px images.

Introduced in notebook 04 (`04_conditional_gan_augmentation`). MedMNIST v2 (Yang et al., Scientific Data 10:41,
2023) benchmarks a ResNet-18 on the 28 px images whose first layer is a 3x3 convolution with stride 1 and no
max-pool, so the residual stages see 28, 14, 7 and 4 px (instead of ImageNet's 7x7 stride-2 convolution and
max-pool, which would shrink a 28 px image to 7 px before the first residual block). `build_resnet18` makes that
network from `torchvision.models.resnet18`; `stem="pooled"` keeps the max-pool after the 3x3 convolution
(stages at 14, 7, 4, 2 px), about 4x cheaper, for CPUs.

Its training is `course_utils.training.supervised.train_classifier`, its predictions
`course_utils.inference.predict_probabilities`. The network sees [-1, 1] (MedMNIST's `Normalize(mean=0.5, std=0.5)`).
"""

from __future__ import annotations

import torchvision
from torch import nn

STEMS: tuple[str, ...] = ("medmnist", "pooled")

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


__all__ = ["MEDMNIST_V2_CITATION", "MEDMNIST_V2_RESNET18_28", "STEMS", "build_resnet18"]
