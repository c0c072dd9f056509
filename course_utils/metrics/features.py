"""Feature spaces for distribution metrics: the domain classifier's features, and standard Inception FID as an option.

Introduced in notebook 03 (`03_evaluating_gans`); notebook 04 reuses the cached classifier (the network is
`course_utils.models.domain_classifier`, its training `course_utils.training.supervised`, its cache
`course_utils.protocols.domain_classifier`).

Fréchet distance, precision/recall and density/coverage all compare *feature vectors*, so the feature
extractor decides what "similar" means. The standard FID uses Inception-v3 trained on ImageNet colour
photographs at 299 px; for 28 px grey-scale X-rays those features describe things the images do not
contain. `DomainClassifier` is the alternative the course uses: a compact CNN trained on the *same*
MedMNIST training set to predict its labels, whose penultimate layer (`extract_features`) is the
"domain feature space". It trains in well under a minute on a CPU and is cached with
`save_checkpoint` in `run_dir(f"domain_classifier_{flag}{size}")`, so later notebooks load it.

Images passed to `extract_features`, `predict_labels` and `inception_fid` are `(N, C, H, W)`, either
uint8 0..255 or float in [0, 1] (the metrics range; convert generator output with `to_unit_range`).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from course_utils.checks import require_int
from course_utils.data.imageset import as_image_tensor, as_unit_images, check_unit_images
from course_utils.inference import eval_mode, model_device
from course_utils.models.domain_classifier import DomainClassifier

ArrayLike = Any  # torch.Tensor | np.ndarray
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's FID Inception weights
INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_WEIGHTS_FILE
)


# ----------------------------------------------------------------------------- input checks


@torch.no_grad()
def _apply_in_batches(model: DomainClassifier, images: ArrayLike, batch_size: int,
                      fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """`fn(batch)` for every batch of checked images in eval mode, concatenated on the CPU."""
    if not isinstance(model, DomainClassifier):
        raise TypeError(f"model must be a DomainClassifier (see load_or_train_domain_classifier); got {type(model).__name__}.")
    require_int(batch_size, "batch_size")
    images = check_unit_images(images, "images", (model.channels,))
    device = model_device(model)
    with eval_mode(model):
        outputs = [fn(as_unit_images(images[i:i + batch_size], device)).float().cpu()
                   for i in range(0, images.shape[0], batch_size)]
    return torch.cat(outputs)


def extract_features(model: DomainClassifier, images: ArrayLike, batch_size: int = 256) -> torch.Tensor:
    """Penultimate-layer features, float32 CPU `(N, feature_dim)`, of images `(N, C, H, W)` (uint8 or [0, 1])."""
    return _apply_in_batches(model, images, batch_size, lambda batch: model.features(batch))


def predict_logits(model: DomainClassifier, images: ArrayLike, batch_size: int = 256) -> torch.Tensor:
    """Class logits, float32 CPU `(N, num_classes)`, of images `(N, C, H, W)` (uint8 or [0, 1])."""
    return _apply_in_batches(model, images, batch_size, model)


def predict_labels(model: DomainClassifier, images: ArrayLike, batch_size: int = 256) -> torch.Tensor:
    """Predicted class indices, int64 CPU `(N,)`, of images `(N, C, H, W)` (uint8 or [0, 1])."""
    return predict_logits(model, images, batch_size).argmax(dim=1)


def classifier_accuracy(model: DomainClassifier, images: ArrayLike, labels: ArrayLike, batch_size: int = 256) -> float:
    """Fraction of images whose predicted class equals `labels` `(N,)`."""
    labels = as_image_tensor(labels, "labels").reshape(-1).long().cpu()
    predicted = predict_labels(model, images, batch_size)
    if predicted.shape != labels.shape:
        raise ValueError(f"Got {predicted.shape[0]} images but {labels.shape[0]} labels; give one label per image.")
    return float((predicted == labels).double().mean())


# ----------------------------------------------------------------------------- standard Inception FID


class InceptionWeightsUnavailableError(RuntimeError):
    """The Inception-v3 network or its ImageNet weights for standard FID could not be loaded (e.g. offline)."""


def inception_weights_message(reason: str) -> str:
    """The explanation raised when the Inception FID weights cannot be loaded: what is missing and how to get it."""
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return (
        f"ImageNet Inception weights are not available offline: {reason}. Standard FID and Inception Score need Inception-v3 with "
        f"the weights of the original TensorFlow FID code ({INCEPTION_WEIGHTS_FILE}, about 92 MB); torchmetrics "
        "loads them through the torch-fidelity package, which downloads them on first use. How to get them: on a "
        "machine with network, `pip install torch-fidelity` (or `pip install 'torchmetrics[image]'`) and call "
        f"inception_fid once; the file is saved in {hub}. For an offline machine, copy that file into the same "
        f"folder there (or download {INCEPTION_WEIGHTS_URL} by hand) and pass weights_path=... . The domain-feature "
        "Fréchet distance (frechet_distance on extract_features) needs no download."
    )


def _inception_metric(kind: str, weights_path: str | Path | None, allow_download: bool) -> Any:
    """torchmetrics' FrechetInceptionDistance (kind "fid", 2048-D pool features) or InceptionScore (kind "is",
    ImageNet logits), both on [0, 1] float input; or the clear InceptionWeightsUnavailableError."""
    if weights_path is not None and not Path(weights_path).is_file():
        raise InceptionWeightsUnavailableError(inception_weights_message(f"no file at weights_path={weights_path}"))
    try:
        if kind == "fid":
            from torchmetrics.image.fid import FrechetInceptionDistance as metric_class
        else:
            from torchmetrics.image.inception import InceptionScore as metric_class
    except ImportError as error:
        raise InceptionWeightsUnavailableError(
            inception_weights_message(f"torchmetrics' image metrics could not be imported ({error})")
        ) from error
    if importlib.util.find_spec("torch_fidelity") is None:
        raise InceptionWeightsUnavailableError(
            inception_weights_message("the torch-fidelity package, which holds the FID Inception network, is not installed")
        )
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE
    if weights_path is None and not allow_download and not cached.is_file():
        raise InceptionWeightsUnavailableError(
            inception_weights_message(f"{cached} does not exist and downloading was not allowed (allow_download=False)")
        )
    kwargs: dict[str, Any] = {"feature": 2048, "normalize": True} if kind == "fid" else {"normalize": True}
    if weights_path is not None:
        kwargs["feature_extractor_weights_path"] = str(weights_path)
    try:
        return metric_class(**kwargs)
    except ModuleNotFoundError as error:
        raise InceptionWeightsUnavailableError(
            inception_weights_message(f"a package it needs is not installed ({error})")
        ) from error
    except Exception as error:  # URLError / HTTPError / OSError / RuntimeError from the download or the load
        raise InceptionWeightsUnavailableError(
            inception_weights_message(f"loading the weights failed ({type(error).__name__}: {str(error)[:200]})")
        ) from error


def _feed_rgb(metric: Any, images: torch.Tensor, batch_size: int, device: torch.device, **update: Any) -> None:
    """Pass checked images to a torchmetrics Inception metric in batches, grey repeated to 3 channels."""
    for start in range(0, images.shape[0], batch_size):
        batch = as_unit_images(images[start:start + batch_size], device)  # (B, C, H, W) in [0, 1]
        if batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)  # grey → RGB, as Inception expects
        metric.update(batch, **update)


def inception_fid(
    real: ArrayLike,
    fake: ArrayLike,
    batch_size: int = 50,
    device: torch.device | str | None = None,
    weights_path: str | Path | None = None,
    allow_download: bool = True,
) -> float:
    """Standard FID (torchmetrics, Inception-v3 pool features) of images `(N, C, H, W)`, uint8 or [0, 1], C = 1 or 3.

    Grey images are repeated to 3 channels; torchmetrics resizes to 299 px. `weights_path` points at a local
    copy of the weights; `allow_download=False` refuses to fetch them. Raises `InceptionWeightsUnavailableError`
    (saying what is missing and how to get it) when the network or its weights cannot be loaded.
    """
    require_int(batch_size, "batch_size")
    real = check_unit_images(real, "real", (1, 3), min_size=1)
    fake = check_unit_images(fake, "fake", (1, 3), min_size=1)
    for name, images in (("real", real), ("fake", fake)):
        if images.shape[0] < 2:
            raise ValueError(f"{name} has {images.shape[0]} image(s); FID needs at least 2 per set (thousands in practice).")
    metric = _inception_metric("fid", weights_path, allow_download)
    device = torch.device(device) if device is not None else torch.device("cpu")
    metric = metric.to(device)
    for is_real, images in ((True, real), (False, fake)):
        _feed_rgb(metric, images, batch_size, device, real=is_real)
    value = float(metric.compute())
    return value if math.isfinite(value) else math.nan


def imagenet_inception_score(
    images: ArrayLike,
    batch_size: int = 50,
    device: torch.device | str | None = None,
    allow_download: bool = True,
) -> float:
    """The standard Inception Score (torchmetrics, ImageNet Inception-v3 logits, 10 splits) of images `(N, C, H, W)`.

    Uses the same weights as `inception_fid` (from the torch hub folder; `allow_download=False` refuses to fetch
    them) and raises `InceptionWeightsUnavailableError`, saying how to get them, when they cannot be loaded.
    For X-rays its 1,000 ImageNet classes are meaningless: `inception_score` on a domain classifier's
    probabilities asks the same question in classes that exist in the images.
    """
    require_int(batch_size, "batch_size")
    images = check_unit_images(images, "images", (1, 3), min_size=1)
    if images.shape[0] < 10:
        raise ValueError(f"images has {images.shape[0]} image(s); the standard score uses 10 splits, so pass >= 10.")
    metric = _inception_metric("is", None, allow_download)
    device = torch.device(device) if device is not None else torch.device("cpu")
    metric = metric.to(device)
    _feed_rgb(metric, images, batch_size, device)
    value = float(metric.compute()[0])
    return value if math.isfinite(value) else math.nan


__all__ = [
    "InceptionWeightsUnavailableError",
    "classifier_accuracy",
    "extract_features",
    "imagenet_inception_score",
    "inception_fid",
    "inception_weights_message",
    "predict_labels",
    "predict_logits",
]
