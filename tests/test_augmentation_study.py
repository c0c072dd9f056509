"""Notebook 04's protocol: the fold's GAN sees only the fold's training indices; folds are reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import course_utils.protocols.augmentation_study as study
from course_utils.inference import generate_conditional
from course_utils.metrics.classification import Fold, LeakageError, stratified_folds
from course_utils.training import TrainConfig


def _indexed_data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose pixels all equal their own index (so a batch says which samples it holds), 2 classes."""
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 1, 28, 28).contiguous()
    labels = (torch.arange(n) % 4 == 0).long()  # 25 % class 1
    return images, labels


def test_the_gan_receives_exactly_the_training_indices(monkeypatch):
    images, labels = _indexed_data()
    received = []

    def spy(generator, discriminator, data, config, **kwargs):
        received.append(data)
        return "trained"

    monkeypatch.setattr(study, "train_gan", spy)
    for fold in stratified_folds(labels, k=4, seed=0):
        study.train_fold_gan(images, labels, fold, num_classes=2, base_width=8,
                             config=TrainConfig(num_epochs=1, batch_size=4, latent_dim=8), progress=False)
        gan_images, gan_labels = received[-1]
        seen = gan_images[:, 0, 0, 0].long().numpy()  # the index stamped into each image
        assert np.array_equal(np.sort(seen), fold.train_indices)
        assert np.intersect1d(seen, fold.test_indices).size == 0
        assert torch.equal(gan_labels, labels[torch.from_numpy(seen)])
    assert len(received) == 4


def test_a_fold_that_leaks_is_refused():
    images, labels = _indexed_data()
    leaky = Fold(0, np.arange(0, 30), np.arange(25, 40))
    with pytest.raises(LeakageError, match="held-out indices are also training indices"):
        study.train_fold_gan(images, labels, leaky, num_classes=2, config=TrainConfig(num_epochs=1, batch_size=4))
    with pytest.raises(LeakageError):
        study.run_regimes(leaky, images, labels, images, labels, num_classes=2, positive_class=1, synthetic_ratio=1.0,
                          steps=1, batch_size=4)


def test_synthetic_labels_follow_the_class_mix():
    train_labels = torch.tensor([0] * 30 + [1] * 10)
    labels = study.synthetic_labels(train_labels, 21, 2, seed=0)
    assert torch.bincount(labels).tolist() == [16, 5]  # 15.75 and 5.25, largest remainder rounds 15.75 up
    assert torch.equal(labels, study.synthetic_labels(train_labels, 21, 2, seed=0))
    with pytest.raises(ValueError, match="count must be an integer >= 0"):
        study.synthetic_labels(train_labels, -1, 2)


def test_regime_data_sizes_and_errors():
    images, labels = _indexed_data(20)
    synthetic = torch.full((30, 1, 28, 28), 200, dtype=torch.uint8)
    data = study.regime_data(images, labels, synthetic, torch.zeros(30, dtype=torch.long), synthetic_ratio=1.5)
    assert [len(data[r][0]) for r in study.REGIMES] == [20, 20, 50, 20]
    assert data["real + classic aug"][2] is not None and data["real only"][2] is None
    assert torch.all(data["GAN only (TSTR)"][0] == 200)
    with pytest.raises(ValueError, match="need 40 synthetic images"):
        study.regime_data(images, labels, synthetic, torch.zeros(30, dtype=torch.long), synthetic_ratio=2.0)


def _one_fold(seed: int, regimes: tuple[str, ...] = ("real + classic aug", "real + GAN")):
    images, labels = _indexed_data(40)
    images = (images * 5 + (labels[:, None, None, None] * 60).to(torch.uint8)).contiguous()  # a learnable signal
    fold = stratified_folds(labels, k=2, seed=0)[0]
    config = TrainConfig(num_epochs=1, batch_size=8, latent_dim=8, seed=seed, snapshot_every=0, checkpoint_every=0)
    gan = study.train_fold_gan(images, labels, fold, num_classes=2, config=config, base_width=8, progress=False)
    fake_labels = study.synthetic_labels(labels[torch.from_numpy(fold.train_indices)], 20, 2, seed=seed)
    fakes = generate_conditional(gan.generator, fake_labels, seed=seed)
    metrics = study.run_regimes(fold, images, labels, fakes, fake_labels, num_classes=2, positive_class=1,
                                synthetic_ratio=1.0, steps=2, batch_size=4, stem="pooled", seed=seed, regimes=regimes)
    return fakes, metrics


def _without_time(metrics):
    return {r: {s: {k: v for k, v in m.items() if k != "seconds"} for s, m in split.items()}
            for r, split in metrics.items()}


def test_a_fold_is_reproducible_from_its_seeds(one_thread):
    fakes, metrics = _one_fold(seed=0)
    fakes_again, metrics_again = _one_fold(seed=0)
    fakes_other, _ = _one_fold(seed=1, regimes=())
    assert torch.equal(fakes, fakes_again)
    assert _without_time(metrics) == _without_time(metrics_again)
    assert not torch.equal(fakes, fakes_other)
    assert set(metrics) == {"real + classic aug", "real + GAN"}
    assert set(metrics["real + GAN"]["held-out"]) == {"accuracy", "auc", "sensitivity", "specificity", "f1", "seconds"}
