"""The cached domain classifier recipe: train it once per dataset and size, reuse it in every later notebook.

Introduced in notebook 03 (`03_evaluating_gans`); notebooks 04, 05, 08 and 09 load the same cache. The network is
`course_utils.models.domain_classifier.DomainClassifier`, trained by `course_utils.training.supervised`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from course_utils.checkpoint import (
    CheckpointError,
    load_checkpoint,
    refuse_training_if_required,
    save_checkpoint,
)
from course_utils.device import pick_device
from course_utils.locations import run_dir
from course_utils.metrics.features import classifier_accuracy
from course_utils.models.domain_classifier import DomainClassifier
from course_utils.training.supervised import train_domain_classifier


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
    n = settings["max_train"] if settings["max_train"] is not None else "all"
    name = (f"classifier_w{settings['width']}_d{settings['feature_dim']}_e{settings['epochs']}_n{n}"
            f"_seed{settings['seed']}{'_fallback' if settings['data']['is_fallback'] else ''}.pt")
    return run_dir(f"domain_classifier_{flag}{size}") / name


def _portable_source(source: str) -> str:
    """A data file's name without its folder (so a cache matches on any machine); other sources unchanged."""
    return Path(source).name if Path(source).is_absolute() else source


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
    named after the recipe; it is reused only when its stored settings (recipe and data: the file's name, not
    its folder, the image count and shape) match, and `retrain=True` forces a fresh run. When the MedMNIST
    file is unavailable, the visible MNI152 fallback of `load_classification_data` is used (cached under its
    own name).
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
        "data": {"name": train.name, "source": _portable_source(train.source), "count": int(images.shape[0]),
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
    refuse_training_if_required(path.parent, f"no cached classifier {path.name} for these settings")
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


__all__ = ["DomainClassifierRun", "classifier_checkpoint_path", "load_or_train_domain_classifier"]
