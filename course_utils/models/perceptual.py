"""Feature networks for the perceptual (feature) loss and the perceptual distance of notebook 05.

Introduced in notebook 05 (`05_srgan_mri_super_resolution`). A feature network maps images `(B, C, H, W)`
in [-1, 1] to a list of feature maps `[(B, C_l, H_l, W_l), ...]`; the SRGAN's feature loss compares the maps
of its output and of the true image instead of their pixels, and the perceptual distance
(`course_utils.metrics.image_quality.feature_distance`) does the same for evaluation.

- `VGGFeatures`: the classic choice, VGG-19 trained on ImageNet (Simonyan & Zisserman, 2015), as SRGAN used
  it. Its weights (548 MB) must be downloaded once; `load_vgg_features` says clearly how when they are not
  there and no network is reachable.
- `DomainFeatureMaps`: the course's own feature network when VGG is unavailable: the convolutional feature
  maps of notebook 03's domain classifier (a small CNN trained on X-rays, cached, so usually no extra
  training). It also defines the perceptual distance of the evaluation.

All networks here are frozen (`requires_grad=False`) and kept in eval mode when used as judges or losses.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"  # torchvision's IMAGENET1K_V1 weights
VGG_LAYERS = {"relu1_2": 4, "relu2_2": 9, "relu3_4": 18, "relu4_4": 27, "relu5_4": 36}  # index after the ReLU + 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureWeightsUnavailableError(RuntimeError):
    """Pretrained feature-network weights could not be loaded (e.g. offline and not downloaded yet)."""


def freeze(module: nn.Module) -> nn.Module:
    """`module` in eval mode with no parameter requiring gradients (returned for chaining)."""
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


class VGGFeatures(nn.Module):
    """ImageNet VGG-19 feature maps at `layers` of grey or RGB images `(B, C, H, W)` in [-1, 1]."""

    def __init__(self, vgg_features: nn.Sequential, layers: tuple[str, ...] = ("relu2_2", "relu3_4")) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG_LAYERS]
        if unknown or not layers:
            raise ValueError(f"layers must be names from {list(VGG_LAYERS)}; got {layers!r}.")
        self.layers = tuple(sorted(layers, key=VGG_LAYERS.get))
        self.body = vgg_features[: VGG_LAYERS[self.layers[-1]]]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        freeze(self)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at `self.layers`, shallow to deep."""
        x = (images + 1.0) / 2.0  # [0, 1]
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x  # grey → RGB
        x = (x - self.mean) / self.std  # (B, 3, H, W), ImageNet statistics
        wanted = {VGG_LAYERS[name] for name in self.layers}
        maps = []
        for index, layer in enumerate(self.body, start=1):
            x = layer(x)
            if index in wanted:
                maps.append(x)
        return maps


def load_vgg_features(layers: tuple[str, ...] = ("relu2_2", "relu3_4"), allow_download: bool = True,
                      weights_path: str | Path | None = None) -> VGGFeatures:
    """VGG-19 ImageNet features: from `weights_path`, torch's cache, or a download; else a clear error."""
    from torchvision.models import vgg19

    path = Path(weights_path) if weights_path else Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG19_URL).name
    how = (f"To use VGG features, download {VGG19_URL} (548 MB) once on a machine with internet and put it at "
           f"{path} (or pass weights_path=...). Without it the course uses its own feature network.")
    if not path.is_file():
        if not allow_download:
            raise FeatureWeightsUnavailableError(f"The ImageNet VGG-19 weights are not at {path} and downloads are "
                                                 f"off (allow_download=False). {how}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(VGG19_URL, str(path), progress=False)
        except Exception as error:  # offline: URLError, socket errors, HTTP errors, ...
            path.unlink(missing_ok=True)
            raise FeatureWeightsUnavailableError(
                f"Could not download the ImageNet VGG-19 weights ({type(error).__name__}: {str(error)[:120]}). {how}"
            ) from None
    model = vgg19()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return VGGFeatures(model.features, layers)


class DomainFeatureMaps(nn.Module):
    """The conv-block outputs of a `DomainClassifier` (notebook 03) as feature maps, for images in [-1, 1]."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = freeze(classifier)
        self.cuts = (7, 14, 17)  # body: block 1 is modules 0-6 (ending in max-pool), block 2 7-13, conv+BN+ReLU 14-16

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after each conv block: `[(B, w, H/2, W/2), (B, 2w, H/4, W/4), (B, d, H/4, W/4)]`."""
        maps, x, start = [], images, 0  # the classifier's body works in [-1, 1] (its `features` converts from [0, 1])
        for cut in self.cuts:
            x = self.classifier.body[start:cut](x)
            maps.append(x)
            start = cut
        return maps
