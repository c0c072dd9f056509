"""Conditional GAN networks and steps, the ResNet-18 classifier, and classic augmentation (notebook 04)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from sklearn.utils.class_weight import compute_class_weight

from course_utils.augmentation.classic import (
    ClassicAugment,
    affine_matrices,
    random_flip,
    random_intensity,
    warp,
)
from course_utils.inference import generate_conditional, predict_probabilities
from course_utils.losses import class_weights
from course_utils.models.classifier import build_resnet18
from course_utils.models.conditional import ConditionalGenerator, ProjectionDiscriminator, snapshot_labels
from course_utils.training import TrainConfig, train_gan
from course_utils.training.steps import ConditionalGANSteps
from course_utils.training.supervised import train_classifier


@pytest.mark.parametrize("size", [28, 32, 64])
def test_conditional_shapes(size):
    generator = ConditionalGenerator(latent_dim=16, num_classes=3, image_size=size, channels=1, base_width=8)
    discriminator = ProjectionDiscriminator(num_classes=3, image_size=size, channels=1, base_width=8)
    labels = torch.tensor([0, 1, 2, 1])
    images = generator(torch.randn(4, 16), labels)
    assert images.shape == (4, 1, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images, labels).shape == (4,)


def test_the_label_changes_the_outputs():
    torch.manual_seed(0)
    generator = ConditionalGenerator(16, 2, 28, 1, 8).eval()
    discriminator = ProjectionDiscriminator(2, 28, 1, 8).eval()
    z = torch.randn(3, 16)
    zeros, ones = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
    assert not torch.allclose(generator(z, zeros), generator(z, ones))
    with torch.no_grad():
        discriminator.class_vectors.parametrizations.weight.original.normal_()  # make the class term visible
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert not torch.allclose(discriminator(x, zeros), discriminator(x, ones))


def test_projection_is_the_unconditional_logit_plus_the_class_inner_product():
    torch.manual_seed(1)
    discriminator = ProjectionDiscriminator(2, 28, 1, 8, spectral_norm=False).eval()
    x, y = torch.rand(2, 1, 28, 28) * 2 - 1, torch.tensor([1, 0])
    features = discriminator.trunk(x)  # (2, 16, 7, 7)
    expected = discriminator.psi(features).reshape(-1) + (discriminator.class_vectors.weight[y] * features.mean((2, 3))).sum(1)
    assert torch.allclose(discriminator(x, y), expected, atol=1e-6)


def test_bad_inputs_give_clear_errors():
    generator = ConditionalGenerator(16, 2, 28, 1, 8)
    discriminator = ProjectionDiscriminator(2, 28, 1, 8)
    with pytest.raises(ValueError, match=r"noise of shape \(B, 16\)"):
        generator(torch.randn(2, 8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="2 inputs but 3 labels"):
        generator(torch.randn(2, 16), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match=r"built for 2 classes \(labels 0..1\)"):
        generator(torch.randn(2, 16), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="integer class labels"):
        discriminator(torch.zeros(2, 1, 28, 28), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"images of shape \(B, 1, 28, 28\)"):
        discriminator(torch.zeros(2, 1, 32, 32), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        ConditionalGenerator(16, 0)


def test_steps_train_with_the_course_loop_and_snapshots_cycle_classes(tmp_path):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8)
    labels = torch.arange(32) % 2
    generator, discriminator = ConditionalGenerator(16, 2, 28, 1, 8), ProjectionDiscriminator(2, 28, 1, 8)
    config = TrainConfig(num_epochs=2, batch_size=8, latent_dim=16, num_samples=4, seed=0)
    result = train_gan(generator, discriminator, (images, labels), config, steps=ConditionalGANSteps(2),
                       checkpoint_dir=tmp_path, progress=False)
    assert set(result.history) == {"loss_d", "score_real", "score_fake", "loss_g"}
    assert len(result.history["loss_d"]) == 2
    assert result.snapshots[2].shape == (4, 1, 28, 28)
    assert snapshot_labels(5, 2).tolist() == [0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match="needs labelled batches"):
        train_gan(ConditionalGenerator(16, 2, 28, 1, 8), ProjectionDiscriminator(2, 28, 1, 8), images,
                  TrainConfig(num_epochs=1, batch_size=8, latent_dim=16), steps=ConditionalGANSteps(2), progress=False)


def test_generate_is_seeded_and_returns_uint8():
    generator = ConditionalGenerator(16, 2, 28, 1, 8)
    labels = torch.tensor([0, 1, 1, 0, 1])
    a, b = generate_conditional(generator, labels, seed=3), generate_conditional(generator, labels, seed=3)
    c = generate_conditional(generator, labels, seed=4)
    assert a.dtype == torch.uint8 and a.shape == (5, 1, 28, 28)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(generate_conditional(generator, labels, seed=3, batch_size=2), a)  # batching does not change the images
    assert generator.training  # left as it was


def test_resnet18_stems_and_shapes():
    for stem in ("medmnist", "pooled"):
        model = build_resnet18(1, 3, stem).eval()
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    assert isinstance(build_resnet18(1, 2, "medmnist").maxpool, torch.nn.Identity)
    assert build_resnet18(3, 2).conv1.stride == (1, 1)
    with pytest.raises(ValueError, match="stem must be one of"):
        build_resnet18(1, 2, "imagenet")
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        build_resnet18(1, 1)


def test_class_weights_match_scikit_learn():
    labels = torch.tensor([0] * 7 + [1] * 20 + [2] * 3)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels.numpy())
    assert torch.allclose(class_weights(labels, 3), torch.tensor(expected, dtype=torch.float32))


def test_train_classifier_learns_a_separable_problem_and_repeats_with_its_seed(one_thread):
    images = torch.zeros(40, 1, 28, 28, dtype=torch.uint8)
    labels = torch.arange(40) % 2
    images[labels == 1, :, :14] = 255  # class 1: bright top half

    def run(seed):
        torch.manual_seed(seed)
        model = build_resnet18(1, 2, "pooled")
        history = train_classifier(model, images, labels, num_classes=2, steps=12, batch_size=8, seed=seed,
                                   augment=ClassicAugment())
        return model, history

    model, history = run(0)
    again, history_again = run(0)
    assert history["loss"] == history_again["loss"]
    probabilities = predict_probabilities(model, images)
    assert probabilities.shape == (40, 2)
    assert (probabilities.argmax(1) == labels).float().mean() > 0.9
    with pytest.raises(ValueError, match="labels must be in 0..1"):
        train_classifier(model, images, labels + 1, num_classes=2, steps=1)
    with pytest.raises(ValueError, match="one label per image"):
        train_classifier(model, images, labels[:5], num_classes=2, steps=1)
    with pytest.raises(ValueError, match="imbalance must be one of"):
        train_classifier(model, images, labels, num_classes=2, steps=1, imbalance="oversample")


def test_affine_warp_agrees_with_rotations_and_shifts():
    torch.manual_seed(0)
    images = torch.rand(2, 1, 8, 8) * 2 - 1
    identity = affine_matrices(torch.zeros(2), torch.zeros(2, 2), torch.ones(2))
    assert torch.allclose(warp(images, identity), images, atol=1e-5)
    quarter = affine_matrices(torch.full((2,), 90.0), torch.zeros(2, 2), torch.ones(2))
    expected = torch.stack([TF.rotate(image, 90.0) for image in images])  # torchvision: counter-clockwise
    assert torch.allclose(warp(images, quarter), expected, atol=1e-5)
    shift = affine_matrices(torch.zeros(2), torch.tensor([[1 / 8, 0.0]] * 2), torch.ones(2))  # one pixel right
    shifted = warp(images, shift, fill=-1.0)
    assert torch.allclose(shifted[..., 1:], images[..., :-1], atol=1e-5)
    assert torch.all(shifted[..., 0] == -1.0)


def test_classic_augmentation_is_batched_seeded_and_in_range():
    images = torch.rand(16, 1, 28, 28) * 2 - 1
    augment = ClassicAugment()
    a = augment(images, torch.Generator().manual_seed(0))
    b = augment(images, torch.Generator().manual_seed(0))
    assert a.shape == images.shape and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    assert not torch.allclose(a, images)
    flipped = random_flip(images, p=1.0)
    assert torch.equal(flipped, images.flip(-1))
    assert torch.allclose(random_intensity(images, 0.0, (1.0, 1.0)), images, atol=1e-6)
    with pytest.raises(ValueError, match="float images"):
        augment(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="flip_p must be a probability"):
        ClassicAugment(flip_p=2.0)
