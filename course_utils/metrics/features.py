"""Feature spaces for distribution metrics: a small domain classifier, and standard Inception FID as an option.

Introduced in notebook 03 (`03_evaluating_gans`); notebook 04 reuses the cached classifier.

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from course_utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from course_utils.device import pick_device

ArrayLike = Any  # torch.Tensor | np.ndarray
RANGE_TOLERANCE = 1e-6  # float images may overshoot [0, 1] by this much (round-off)
MIN_IMAGE_SIZE = 8  # the classifier halves the image twice
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's FID Inception weights
INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_WEIGHTS_FILE
)


# ----------------------------------------------------------------------------- the classifier


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


# ----------------------------------------------------------------------------- input checks


def _model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters."""
    return next(model.parameters()).device


def _as_image_tensor(images: ArrayLike, name: str) -> torch.Tensor:
    """A CPU tensor from a tensor or NumPy array (no copy where possible)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or a NumPy array of images; got {type(images).__name__}.")
    return images.detach()


def _check_images(images: ArrayLike, name: str, channels: tuple[int, ...], min_size: int = MIN_IMAGE_SIZE
                  ) -> torch.Tensor:
    """Validated images `(N, C, H, W)`, uint8 or float in [0, 1], C in `channels`; returned unchanged (CPU or not)."""
    images = _as_image_tensor(images, name)
    shape = tuple(images.shape)
    allowed = " or ".join(map(str, channels))
    if images.ndim != 4:
        hint = ""
        if images.ndim == 3:
            hint = " For grey images without a channel axis use `x[:, None]`; for a single image use `x[None]`."
        raise ValueError(f"{name} must be a batch of images (N, C, H, W) with C = {allowed}; received shape {shape}.{hint}")
    if images.shape[1] not in channels:
        hint = ""
        if images.shape[-1] in channels:
            hint = " It looks channels-last (N, H, W, C): use `x.permute(0, 3, 1, 2)`."
        raise ValueError(
            f"{name} has {images.shape[1]} channels (shape {shape}) but this needs C = {allowed}.{hint}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {shape}); need at least one image.")
    if min(images.shape[2:]) < min_size:
        raise ValueError(f"{name} has images of {images.shape[2]}x{images.shape[3]} px; need at least {min_size} px.")
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise ValueError(
            f"{name} has dtype {images.dtype}; pass uint8 images (0..255) or float images in [0, 1]."
        )
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name} contains NaN or infinite values; check the generator that made them.")
    low, high = float(images.min()), float(images.max())
    if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        hint = ""
        if low >= -1.0 - RANGE_TOLERANCE and high <= 1.0 + RANGE_TOLERANCE:
            hint = (" This looks like the model range [-1, 1] (generator output): convert with "
                    "course_utils.data.to_unit_range(images) first.")
        elif low >= 0.0 and high <= 255.0:
            hint = " This looks like 0..255 data stored as float: divide by 255, or pass the uint8 tensor."
        raise ValueError(f"{name} must be uint8 or float in [0, 1]; its values span [{low:.4g}, {high:.4g}].{hint}")
    return images


def _unit_batch(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """One batch as float32 in [0, 1] on `device`."""
    images = images.to(device)
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float().clamp(0.0, 1.0)


def _check_batch_size(batch_size: int) -> None:
    """ValueError unless batch_size is a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")


@torch.no_grad()
def _apply_in_batches(model: DomainClassifier, images: ArrayLike, batch_size: int,
                      fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """`fn(batch)` for every batch of checked images in eval mode, concatenated on the CPU."""
    if not isinstance(model, DomainClassifier):
        raise TypeError(f"model must be a DomainClassifier (see load_or_train_domain_classifier); got {type(model).__name__}.")
    _check_batch_size(batch_size)
    images = _check_images(images, "images", (model.channels,))
    device = _model_device(model)
    was_training = model.training
    model.eval()
    try:
        outputs = [fn(_unit_batch(images[i:i + batch_size], device)).float().cpu()
                   for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
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
    labels = _as_image_tensor(labels, "labels").reshape(-1).long().cpu()
    predicted = predict_labels(model, images, batch_size)
    if predicted.shape != labels.shape:
        raise ValueError(f"Got {predicted.shape[0]} images but {labels.shape[0]} labels; give one label per image.")
    return float((predicted == labels).double().mean())


# ----------------------------------------------------------------------------- training


def _as_labelled(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8/float (N, C, H, W), labels int64 (N,)) from an ImageSet or an (images, labels) pair."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        images, labels = data.images, data.labels
    elif isinstance(data, tuple | list) and len(data) == 2:
        images, labels = data
    else:
        raise TypeError(f"{name} must be an ImageSet or an (images, labels) pair; got {type(data).__name__}.")
    images = _check_images(images, f"{name} images", (1, 3))
    labels = _as_image_tensor(labels, f"{name} labels").reshape(-1)
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"{name} labels must be integer class indices; got dtype {labels.dtype}.")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{name} has {images.shape[0]} images but {labels.shape[0]} labels; give one label per image.")
    if int(labels.min()) < 0:
        raise ValueError(f"{name} labels must be >= 0; got {int(labels.min())}.")
    return images, labels.long()


def train_domain_classifier(
    train: Any,
    num_classes: int | None = None,
    *,
    epochs: int = 8,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    width: int = 16,
    feature_dim: int = 64,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[DomainClassifier, dict[str, list[float]]]:
    """Train a `DomainClassifier` on `train` (an ImageSet or (images, labels)) with cross-entropy and AdamW.

    Returns the model (in eval mode, on `device`) and the per-epoch history {'loss', 'accuracy'} on the
    training set. Initialisation, batch order and dropout come from `seed`; the global RNG is left as it was.
    The last incomplete batch of an epoch is kept only if it has at least 2 images (batch norm needs 2).
    After training, the batch-norm statistics are recomputed over the training set with the final weights.
    """
    images, labels = _as_labelled(train, "train")
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < max(2, int(labels.max()) + 1):
        raise ValueError(f"num_classes must be an integer >= 2 and > the largest label {int(labels.max())}; got {num_classes!r}.")
    for label, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer; got {value!r}.")
    if images.shape[0] < 2:
        raise ValueError(f"train has {images.shape[0]} image(s); need at least 2 to train with batch norm.")
    device = torch.device(device) if device is not None else pick_device()
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        model = DomainClassifier(images.shape[1], num_classes, width, feature_dim).to(device)
        optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
        loss_fn = nn.CrossEntropyLoss()
        order_rng = torch.Generator().manual_seed(seed)
        images_dev, labels_dev = images.to(device), labels.to(device)
        history: dict[str, list[float]] = {"loss": [], "accuracy": []}
        model.train()
        for epoch in range(epochs):
            order = torch.randperm(images.shape[0], generator=order_rng).to(device)
            total_loss = torch.zeros((), device=device)
            correct = torch.zeros((), device=device)
            seen = 0
            for start in range(0, images.shape[0], batch_size):
                index = order[start:start + batch_size]
                if index.numel() < 2:
                    continue
                batch = _unit_batch(images_dev[index], device)  # (B, C, H, W) in [0, 1]
                target = labels_dev[index]  # (B,)
                logits = model(batch)  # (B, num_classes)
                loss = loss_fn(logits, target)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total_loss += loss.detach() * index.numel()
                correct += (logits.argmax(dim=1) == target).sum()
                seen += index.numel()
            scheduler.step()
            history["loss"].append(float(total_loss) / seen)
            history["accuracy"].append(float(correct) / seen)
            if progress:
                print(f"  classifier epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.4f}, "
                      f"train accuracy {history['accuracy'][-1]:.3f}")
        _recompute_batch_norm_statistics(model, images_dev, batch_size)
    model.eval()
    return model, history


@torch.no_grad()
def _recompute_batch_norm_statistics(model: DomainClassifier, images: torch.Tensor, batch_size: int) -> None:
    """Set every batch norm's running mean/variance to the exact average over `images` (final weights).

    The running averages collected during training lag behind the weights (momentum 0.1); after a short
    training they are far off and eval-mode predictions suffer. One pass over the data fixes that.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    device = _model_device(model)
    for start in range(0, images.shape[0], batch_size):
        batch = images[start:start + batch_size]
        if batch.shape[0] >= 2:
            model.features(_unit_batch(batch, device))
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum


# ----------------------------------------------------------------------------- cache


@dataclass
class DomainClassifierRun:
    """A trained (or loaded) domain classifier with its test accuracy and where it is cached."""

    model: DomainClassifier
    test_accuracy: float
    class_names: tuple[str, ...]
    history: dict[str, list[float]]
    checkpoint_path: Path
    from_cache: bool  # True when loaded from the checkpoint, False when trained by this call
    seconds: float  # training time (of the run that trained it)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        """Length of one feature vector."""
        return self.model.feature_dim


def classifier_checkpoint_path(flag: str, size: int, settings: dict[str, Any]) -> Path:
    """`run_dir(f"domain_classifier_{flag}{size}") / <name from the settings>.pt` (one file per recipe)."""
    from course_utils.paths import run_dir

    n = settings["max_train"] if settings["max_train"] is not None else "all"
    name = (f"classifier_w{settings['width']}_d{settings['feature_dim']}_e{settings['epochs']}_n{n}"
            f"_seed{settings['seed']}{'_fallback' if settings['data']['is_fallback'] else ''}.pt")
    return run_dir(f"domain_classifier_{flag}{size}") / name


def load_or_train_domain_classifier(
    flag: str,
    size: int = 28,
    *,
    epochs: int = 8,
    batch_size: int = 128,
    lr: float = 1e-3,
    width: int = 16,
    feature_dim: int = 64,
    max_train: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    retrain: bool = False,
    progress: bool = True,
) -> DomainClassifierRun:
    """The domain classifier for MedMNIST `flag` at `size` px: loaded from its cache, else trained and cached.

    Trains on the training split (the first `max_train` images if given) with `train_domain_classifier` and
    measures the accuracy on the test split. The cache file lives in `run_dir(f"domain_classifier_{flag}{size}")`,
    named after the recipe; it is reused only when its stored settings (recipe and data) match, and
    `retrain=True` forces a fresh run. When the MedMNIST file is unavailable, the visible MNI152 fallback of
    `load_classification_data` is used (and cached under its own name).
    """
    from course_utils.data import load_classification_data

    train = load_classification_data(flag, "train", size=size)
    test = load_classification_data(flag, "test", size=size)
    images, labels = train.images, train.labels
    if max_train is not None:
        if isinstance(max_train, bool) or not isinstance(max_train, int) or max_train < 2:
            raise ValueError(f"max_train must be None (all images) or an integer >= 2; got {max_train!r}.")
        images, labels = images[:max_train], labels[:max_train]
    settings = {
        "flag": flag, "size": size, "epochs": epochs, "batch_size": batch_size, "lr": lr, "width": width,
        "feature_dim": feature_dim, "max_train": max_train, "seed": seed,
        "data": {"name": train.name, "source": train.source, "count": int(images.shape[0]),
                 "shape": list(images.shape[1:]), "is_fallback": bool(train.is_fallback)},
    }
    path = classifier_checkpoint_path(flag, size, settings)
    device = torch.device(device) if device is not None else pick_device()
    if path.exists() and not retrain:
        try:
            state = load_checkpoint(path, expected_config=settings, map_location="cpu")
            model = DomainClassifier(int(state["channels"]), int(state["num_classes"]), width, feature_dim)
            model.load_state_dict(state["model"])
            model.to(device).eval()
            if progress:
                print(f"Loaded the domain classifier from {path} (test accuracy {float(state['test_accuracy']):.3f}).")
            return DomainClassifierRun(
                model=model, test_accuracy=float(state["test_accuracy"]), class_names=tuple(state["class_names"]),
                history={k: [float(v) for v in vs] for k, vs in state["history"].items()}, checkpoint_path=path,
                from_cache=True, seconds=float(state["seconds"]), settings=settings,
            )
        except (CheckpointError, KeyError, RuntimeError) as error:
            print(f"Not using the cached classifier ({type(error).__name__}: {str(error)[:200]}); training a new one.")
    if progress:
        print(f"Training the domain classifier on {images.shape[0]} {train.name} training images "
              f"({epochs} epochs) on {device}; it is cached in {path}.")
    started = time.perf_counter()
    model, history = train_domain_classifier(
        (images, labels), len(train.class_names), epochs=epochs, batch_size=batch_size, lr=lr, width=width,
        feature_dim=feature_dim, seed=seed, device=device, progress=progress,
    )
    seconds = time.perf_counter() - started
    test_accuracy = classifier_accuracy(model, test.images, test.labels)
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "channels": model.channels, "num_classes": model.num_classes, "class_names": list(train.class_names),
        "test_accuracy": test_accuracy, "history": history, "seconds": seconds,
    }
    save_checkpoint(path, state, settings)
    if progress:
        print(f"Trained in {seconds:.1f} s; test accuracy {test_accuracy:.3f} on {len(test)} test images.")
    return DomainClassifierRun(model=model, test_accuracy=test_accuracy, class_names=tuple(train.class_names),
                               history=history, checkpoint_path=path, from_cache=False, seconds=seconds,
                               settings=settings)


# ----------------------------------------------------------------------------- standard Inception FID


class InceptionWeightsUnavailableError(RuntimeError):
    """The Inception-v3 network or its ImageNet weights for standard FID could not be loaded (e.g. offline)."""


def inception_weights_message(reason: str) -> str:
    """The explanation raised when the Inception FID weights cannot be loaded: what is missing and how to get it."""
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return (
        f"ImageNet Inception weights are not available offline: {reason}. Standard FID needs Inception-v3 with "
        f"the weights of the original TensorFlow FID code ({INCEPTION_WEIGHTS_FILE}, about 92 MB); torchmetrics "
        "loads them through the torch-fidelity package, which downloads them on first use. How to get them: on a "
        "machine with network, `pip install torch-fidelity` (or `pip install 'torchmetrics[image]'`) and call "
        f"inception_fid once; the file is saved in {hub}. For an offline machine, copy that file into the same "
        f"folder there (or download {INCEPTION_WEIGHTS_URL} by hand) and pass weights_path=... . The domain-feature "
        "Fréchet distance (frechet_distance on extract_features) needs no download."
    )


def _build_inception_fid(weights_path: str | Path | None, allow_download: bool) -> Any:
    """torchmetrics' FrechetInceptionDistance (2048-D pool features, [0, 1] float input), or the clear error."""
    if weights_path is not None and not Path(weights_path).is_file():
        raise InceptionWeightsUnavailableError(inception_weights_message(f"no file at weights_path={weights_path}"))
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
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
    kwargs: dict[str, Any] = {"feature": 2048, "normalize": True}
    if weights_path is not None:
        kwargs["feature_extractor_weights_path"] = str(weights_path)
    try:
        return FrechetInceptionDistance(**kwargs)
    except ModuleNotFoundError as error:
        raise InceptionWeightsUnavailableError(
            inception_weights_message(f"a package it needs is not installed ({error})")
        ) from error
    except Exception as error:  # URLError / HTTPError / OSError / RuntimeError from the download or the load
        raise InceptionWeightsUnavailableError(
            inception_weights_message(f"loading the weights failed ({type(error).__name__}: {str(error)[:200]})")
        ) from error


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
    _check_batch_size(batch_size)
    real = _check_images(real, "real", (1, 3), min_size=1)
    fake = _check_images(fake, "fake", (1, 3), min_size=1)
    for name, images in (("real", real), ("fake", fake)):
        if images.shape[0] < 2:
            raise ValueError(f"{name} has {images.shape[0]} image(s); FID needs at least 2 per set (thousands in practice).")
    metric = _build_inception_fid(weights_path, allow_download)
    device = torch.device(device) if device is not None else torch.device("cpu")
    metric = metric.to(device)
    for is_real, images in ((True, real), (False, fake)):
        for start in range(0, images.shape[0], batch_size):
            batch = _unit_batch(images[start:start + batch_size], device)  # (B, C, H, W) in [0, 1]
            if batch.shape[1] == 1:
                batch = batch.expand(-1, 3, -1, -1)  # grey → RGB, as Inception expects
            metric.update(batch, real=is_real)
    value = float(metric.compute())
    return value if math.isfinite(value) else math.nan


__all__ = [
    "DomainClassifier",
    "DomainClassifierRun",
    "InceptionWeightsUnavailableError",
    "classifier_accuracy",
    "classifier_checkpoint_path",
    "extract_features",
    "inception_fid",
    "inception_weights_message",
    "load_or_train_domain_classifier",
    "predict_labels",
    "predict_logits",
    "train_domain_classifier",
]
