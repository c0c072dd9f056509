"""Paired data splits and paired training: no leaking slices, losses, and tiny runs that overfit one batch."""

from __future__ import annotations

import pytest
import torch

from course_utils.data.paired import (
    dihedral_augment,
    mni152_clean_splits,
    noisy_pairs,
    random_crops,
    sr_pairs,
)
from course_utils.data.splits import split_report
from course_utils.inference import predict_images
from course_utils.losses import FeatureLoss, pixel_loss
from course_utils.models.critics import PatchGANCritic
from course_utils.models.domain_classifier import DomainClassifier
from course_utils.models.perceptual import DomainFeatureMaps
from course_utils.models.srgan import SRGANDiscriminator, SRResNetGenerator
from course_utils.models.unet import UNet
from course_utils.training import TrainConfig, train_gan
from course_utils.training.steps import PairedSteps
from course_utils.training.supervised import train_pixel_model


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tiny models run fastest on one thread (several threads mostly wait on each other on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_mni152_split_has_no_shared_or_neighbouring_slices():
    data = mni152_clean_splits(size=32)
    assert split_report(data.groups) == {"shared": 0, "neighbours": 0}
    assert all(count > 5 for count in data.sizes().values())
    train = set(data.groups["train"].tolist())
    for split in ("val", "test"):
        gaps = min(abs(a - b) for a in data.groups[split].tolist() for b in train)
        assert gaps >= 2, f"a {split} slice is next to a training slice"
    images = torch.cat(list(data.images.values()))
    assert images.dtype == torch.float32 and float(images.min()) >= 0 and float(images.max()) <= 1
    regions = torch.cat(list(data.regions.values()))
    assert regions.dtype == torch.bool and regions.shape == images.shape and "brain mask" in data.region_name
    share = regions.float().mean(dim=(1, 2, 3))
    assert float(share.min()) > 0.1 and float(share.max()) < 0.9, "the brain covers part of each slice, not all"
    assert float(images[~regions].mean()) < 0.1 < float(images[regions].mean()), "outside the brain it is dark"


def test_erode_shrinks_a_mask_by_whole_pixels():
    from course_utils.data.slicing import erode

    mask = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
    mask[..., 2:10, 3:9] = True  # an 8 x 6 box
    assert erode(mask, 0).sum() == 48 and erode(mask, 1).sum() == 6 * 4 and erode(mask, 2).sum() == 4 * 2
    full = torch.ones(1, 1, 6, 6, dtype=torch.bool)
    assert erode(full, 1).sum() == 16, "the image border counts as outside"


def test_consecutive_runs_are_the_slice_blocks():
    from course_utils.data.splits import consecutive_runs

    assert consecutive_runs(torch.tensor([3, 4, 5, 9, 10, 20])).tolist() == [0, 0, 0, 1, 1, 2]
    assert consecutive_runs(torch.tensor([], dtype=torch.long)).tolist() == []
    data = mni152_clean_splits(size=32)
    runs = consecutive_runs(data.groups["test"])
    assert 3 <= int(runs.max()) + 1 < len(runs), "several blocks of several slices each"
    with pytest.raises(ValueError, match="sorted"):
        consecutive_runs(torch.tensor([5, 3]))


def test_split_report_counts_leaks():
    leaky = {"train": torch.tensor([1, 2, 3]), "test": torch.tensor([3, 4, 9])}
    assert split_report(leaky) == {"shared": 1, "neighbours": 2}  # 3 shared; 2-3 and 3-4 are neighbours
    assert split_report(leaky, kind="subject") == {"shared": 1, "neighbours": 0}


def test_pairs_and_augmentation_shapes():
    clean = torch.rand(3, 1, 32, 32)
    lr, hr = sr_pairs(clean, 4)
    assert lr.shape == (3, 1, 8, 8) and hr is clean
    noisy, target = noisy_pairs(clean, "gaussian", 0.1, seed=0, copies=2)
    assert noisy.shape == target.shape == (6, 1, 32, 32) and not torch.equal(noisy[:3], noisy[3:])
    assert dihedral_augment(clean, 8).shape == (24, 1, 32, 32)
    crops = random_crops(clean, 16, 10, seed=0)
    assert crops.shape == (10, 1, 16, 16) and torch.equal(crops, random_crops(clean, 16, 10, seed=0))


def test_pixel_and_feature_losses():
    a, b = torch.zeros(2, 1, 8, 8), torch.full((2, 1, 8, 8), 0.5)
    assert float(pixel_loss(a, b, "l1")) == 0.5 and float(pixel_loss(a, b, "mse")) == 0.25
    with pytest.raises(ValueError, match="kind must be one of"):
        pixel_loss(a, b, "huber")
    loss = FeatureLoss(DomainFeatureMaps(DomainClassifier(width=4, feature_dim=8)), "domain classifier")
    out = torch.rand(2, 1, 16, 16, requires_grad=True)
    value = loss(out, torch.rand(2, 1, 16, 16))
    value.backward()
    assert float(value.detach()) > 0 and out.grad is not None and float(loss(out.detach(), out.detach())) == 0.0


def _sr_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    hr = torch.nn.functional.avg_pool2d(torch.rand(8, 1, 16, 16, generator=g), 3, stride=1, padding=1)
    lr, hr = sr_pairs(hr, 4)
    return lr * 2 - 1, hr * 2 - 1


def test_pixel_pretraining_overfits_one_batch(tmp_path):
    torch.manual_seed(0)
    lr, hr = _sr_batch()
    generator = SRResNetGenerator(scale=4, width=8, num_blocks=1)
    config = TrainConfig(num_epochs=100, batch_size=8, lr_g=2e-3, betas=(0.9, 0.999), checkpoint_every=0,
                         snapshot_every=0, num_samples=2, log_every=50)
    result = train_pixel_model(generator, lr, hr, config, checkpoint_dir=tmp_path, progress=False)
    losses = result.history["loss_pixel"]
    assert losses[-1] < 0.4 * losses[0], f"pixel loss fell only from {losses[0]:.4f} to {losses[-1]:.4f}"
    assert set(result.history) == {"loss_pixel"}
    out = predict_images(generator, (lr + 1) / 2)
    assert out.shape == (8, 1, 16, 16) and float(out.min()) >= 0 and float(out.max()) <= 1
    again = train_pixel_model(generator, lr, hr, config, checkpoint_dir=tmp_path, progress=False)
    assert again.epochs_completed == 100, "a second call resumes from the finished checkpoint"


def test_srgan_steps_log_every_part_and_learn():
    torch.manual_seed(0)
    lr, hr = _sr_batch()
    steps = PairedSteps(pixel="l1", adversarial_weight=1e-2, feature_weight=0.1,
                        feature_loss=FeatureLoss(DomainFeatureMaps(DomainClassifier(width=4, feature_dim=8)), "domain classifier"))
    config = TrainConfig(num_epochs=40, batch_size=8, lr_g=2e-3, lr_d=1e-4, checkpoint_every=0, snapshot_every=0,
                         num_samples=2, log_every=20)
    result = train_gan(SRResNetGenerator(4, width=8, num_blocks=1), SRGANDiscriminator(width=4, num_stages=2),
                       (lr, hr), config, steps=steps, fixed_noise=lr[:2], progress=False)
    assert set(result.history) == {"loss_d", "d_real", "d_fake", "loss_pixel", "loss_feature", "loss_adv"}
    assert result.history["loss_pixel"][-1] < 0.6 * result.history["loss_pixel"][0]
    assert result.snapshots[40].shape == (2, 1, 16, 16)


def test_conditional_patchgan_denoiser_overfits_one_batch():
    torch.manual_seed(0)
    clean = torch.nn.functional.avg_pool2d(torch.rand(8, 1, 16, 16), 5, stride=1, padding=2)
    noisy, clean = noisy_pairs(clean, "gaussian", 0.15, seed=0)
    steps = PairedSteps(pixel="l1", pixel_weight=100.0, adversarial_weight=1.0, conditional=True)
    config = TrainConfig(num_epochs=60, batch_size=8, lr_g=2e-3, lr_d=2e-4, checkpoint_every=0, snapshot_every=0,
                         num_samples=2, log_every=40)
    result = train_gan(UNet(1, 1, width=4, depth=2, output="residual"), PatchGANCritic(2, width=4, layers=2),
                       (noisy * 2 - 1, clean * 2 - 1), config, steps=steps, fixed_noise=noisy[:2] * 2 - 1,
                       progress=False)
    losses = result.history["loss_pixel"]
    assert losses[-1] < 0.5 * losses[0], f"pixel loss fell only from {losses[0]:.4f} to {losses[-1]:.4f}"


def test_paired_steps_errors_are_explained():
    with pytest.raises(ValueError, match="feature_weight > 0 needs feature_loss"):
        PairedSteps(feature_weight=1.0)
    with pytest.raises(ValueError, match="pixel must be one of"):
        PairedSteps(pixel="l2")
    with pytest.raises(ValueError, match="fixed_noise=inputs"):
        lr, hr = _sr_batch()
        train_gan(SRResNetGenerator(4, width=4, num_blocks=1), SRGANDiscriminator(width=4, num_stages=1), (lr, hr),
                  TrainConfig(num_epochs=1, batch_size=4), steps=PairedSteps(adversarial_weight=1.0), progress=False)


def test_hippocampus_split_is_by_subject(mirror):
    from course_utils.data import load_segmentation_cases
    from course_utils.data.paired import hippocampus_clean_splits

    folder, cases = load_segmentation_cases(download=False)
    data = hippocampus_clean_splits(folder, cases[:10], size=64, seed=0)
    assert data.group_kind == "subject" and split_report(data.groups, kind="subject")["shared"] == 0
    subjects = {split: set(groups.tolist()) for split, groups in data.groups.items()}
    assert sum(len(s) for s in subjects.values()) == 10, "every subject lands in exactly one split"
    assert all(images.shape[1:] == (1, 64, 64) for images in data.images.values())
    for split, regions in data.regions.items():  # the interior is the crop: padding outside it is exactly 0
        assert regions.shape == data.images[split].shape and bool(regions.any(dim=(1, 2, 3)).all())
        assert float(data.images[split][~regions].abs().max()) == 0.0
        assert 0.2 < float(regions.float().mean()) < 0.8, "Task04 crops fill part of the 64 px square"
    narrower = hippocampus_clean_splits(folder, cases[:10], size=64, seed=0, margin=4)
    assert (narrower.regions["test"] <= data.regions["test"]).all() and "4 px in" in narrower.region_name
    assert narrower.regions["test"].sum() < data.regions["test"].sum()
