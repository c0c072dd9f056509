"""Domain classifier features (train, cache, extract) and the optional Inception FID with its offline message."""

from __future__ import annotations

import importlib.util
import urllib.error

import numpy as np
import pytest
import torch

from course_utils.metrics import features
from course_utils.metrics.features import (
    InceptionWeightsUnavailableError,
    classifier_accuracy,
    extract_features,
    inception_fid,
    predict_labels,
)
from course_utils.models.domain_classifier import DomainClassifier
from course_utils.protocols.domain_classifier import load_or_train_domain_classifier
from course_utils.training.supervised import train_domain_classifier

OFFLINE_PHRASE = "ImageNet Inception weights are not available offline"


def synthetic_two_class(n: int = 64, size: int = 28, channels: int = 1, seed: int = 0):
    """uint8 images (n, C, size, size): class 0 dark and smooth, class 1 bright with horizontal stripes."""
    rng = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2  # (n,)
    images = torch.rand(n, channels, size, size, generator=rng) * 0.2  # (n, C, H, W) noise in [0, 0.2]
    images[labels == 1] += 0.4
    images[labels == 1, :, ::2] += 0.3
    return (images * 255).round().to(torch.uint8), labels


@pytest.fixture(scope="module")
def trained():
    images, labels = synthetic_two_class()
    model, history = train_domain_classifier(
        (images, labels), 2, epochs=5, batch_size=16, width=4, feature_dim=8, device="cpu", progress=False
    )
    return model, history, images, labels


# ----------------------------------------------------------------------------- model and training


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 28), (1, 64)])
def test_classifier_shapes(channels, size) -> None:
    model = DomainClassifier(channels=channels, num_classes=3, width=4, feature_dim=8).eval()
    images = torch.rand(5, channels, size, size)
    assert model.features(images).shape == (5, 8)
    assert model(images).shape == (5, 3)


def test_training_learns_and_leaves_global_rng_alone(trained) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    images, labels = synthetic_two_class(seed=1)
    train_domain_classifier((images, labels), 2, epochs=1, batch_size=16, width=4, feature_dim=8, device="cpu",
                            progress=False)
    assert torch.equal(torch.rand(3), expected), "training must not consume the notebook's global RNG"
    model, history, images, labels = trained
    assert len(history["loss"]) == 5 and history["loss"][-1] < history["loss"][0]
    assert classifier_accuracy(model, images, labels) > 0.9  # trivially separable synthetic classes


def test_training_is_reproducible_from_seed() -> None:
    images, labels = synthetic_two_class()
    runs = [train_domain_classifier((images, labels), 2, epochs=1, batch_size=16, width=4, feature_dim=8,
                                    seed=7, device="cpu", progress=False)[0] for _ in range(2)]
    for (name, a), b in zip(runs[0].state_dict().items(), runs[1].state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_features_shape_and_input_forms(trained) -> None:
    model, _, images, _ = trained
    from_uint8 = extract_features(model, images)
    assert from_uint8.shape == (len(images), 8) and from_uint8.dtype == torch.float32
    from_unit = extract_features(model, images.float() / 255)
    assert torch.allclose(from_uint8, from_unit, atol=1e-6)
    from_numpy = extract_features(model, images.numpy(), batch_size=5)  # other batching, NumPy input
    assert torch.allclose(from_uint8, from_numpy, atol=1e-5)
    labels = predict_labels(model, images)
    assert labels.shape == (len(images),) and labels.dtype == torch.int64 and int(labels.max()) <= 1
    assert model.training is False


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda x: x.float() / 127.5 - 1, "to_unit_range"),  # model range [-1, 1]
        (lambda x: x.float(), "divide by 255"),  # 0..255 stored as float
        (lambda x: x[:, 0], r"x\[:, None\]"),  # no channel axis
        (lambda x: x.permute(0, 2, 3, 1).repeat(1, 1, 1, 1), "channels-last"),  # (N, H, W, 1)
        (lambda x: x.expand(-1, 3, -1, -1), "channels"),  # RGB for a grey classifier
        (lambda x: x.int(), "dtype"),
        (lambda x: x[:0], "empty"),
        (lambda x: x.float().div(255).index_fill(0, torch.tensor([0]), float("nan")), "NaN"),
    ],
)
def test_clear_errors_on_wrong_input(trained, make, message) -> None:
    model, _, images, _ = trained
    with pytest.raises(ValueError, match=message):
        extract_features(model, make(images))


def test_other_misuse_is_explained(trained) -> None:
    model, _, images, labels = trained
    with pytest.raises(TypeError, match="DomainClassifier"):
        extract_features(torch.nn.Linear(2, 2), images)
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(model, images, batch_size=0)
    with pytest.raises(TypeError, match="ImageSet"):
        train_domain_classifier(images, 2, epochs=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="one label per image"):
        train_domain_classifier((images, labels[:-1]), 2, epochs=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="num_classes"):
        DomainClassifier(num_classes=1)


# ----------------------------------------------------------------------------- cache round trip


def test_cache_round_trip(empty_data, tmp_path, monkeypatch, capsys) -> None:
    """Offline and without MedMNIST: trains on the visible MNI152 fallback, caches, then loads the same weights."""
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    recipe = {"epochs": 1, "batch_size": 16, "width": 4, "feature_dim": 8, "device": "cpu"}
    first = load_or_train_domain_classifier("pneumoniamnist", 28, **recipe)
    assert not first.from_cache and first.checkpoint_path.is_file()
    assert first.checkpoint_path.parent == tmp_path / "checkpoints" / "domain_classifier_pneumoniamnist28"
    assert "fallback" in first.checkpoint_path.name and 0.0 <= first.test_accuracy <= 1.0
    second = load_or_train_domain_classifier("pneumoniamnist", 28, **recipe)
    assert second.from_cache and second.test_accuracy == first.test_accuracy
    assert second.class_names == first.class_names
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a.cpu(), b.cpu()), name
    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    assert torch.allclose(extract_features(first.model, images), extract_features(second.model, images))
    other = load_or_train_domain_classifier("pneumoniamnist", 28, **{**recipe, "epochs": 2})
    assert not other.from_cache and other.checkpoint_path != first.checkpoint_path  # one file per recipe
    first.checkpoint_path.write_bytes(b"not a checkpoint")  # a damaged cache is replaced, with a note
    capsys.readouterr()
    third = load_or_train_domain_classifier("pneumoniamnist", 28, **recipe)
    assert not third.from_cache and "Not using the cached classifier" in capsys.readouterr().out


# ----------------------------------------------------------------------------- Inception FID


def _pretend_fidelity_installed(monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(features.importlib.util, "find_spec",
                        lambda name, *a: object() if name == "torch_fidelity" else real_find_spec(name, *a))


def test_inception_fid_without_torch_fidelity_says_how_to_get_weights(monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(features.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch_fidelity" else real_find_spec(name, *a))
    images = torch.rand(4, 1, 28, 28)
    with pytest.raises(InceptionWeightsUnavailableError) as caught:
        inception_fid(images, images)
    text = str(caught.value)
    assert text.startswith(OFFLINE_PHRASE) and "torch-fidelity" in text
    assert "How to get them" in text and "pip install torch-fidelity" in text and features.INCEPTION_WEIGHTS_FILE in text


def test_inception_fid_failed_download_is_explained(monkeypatch) -> None:
    _pretend_fidelity_installed(monkeypatch)
    import torchmetrics.image.fid as fid_module

    def offline(**kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(fid_module, "FrechetInceptionDistance", offline)
    with pytest.raises(InceptionWeightsUnavailableError, match=OFFLINE_PHRASE) as caught:
        inception_fid(torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28))
    assert "URLError" in str(caught.value) and "How to get them" in str(caught.value)


def test_inception_fid_no_download_and_missing_file(monkeypatch, tmp_path) -> None:
    _pretend_fidelity_installed(monkeypatch)
    monkeypatch.setattr(features.torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    images = torch.rand(4, 1, 28, 28)
    with pytest.raises(InceptionWeightsUnavailableError, match="allow_download=False"):
        inception_fid(images, images, allow_download=False)
    with pytest.raises(InceptionWeightsUnavailableError, match="no file at weights_path"):
        inception_fid(images, images, weights_path=tmp_path / "missing.pth")


def test_inception_fid_feeds_rgb_unit_images(monkeypatch) -> None:
    """The happy path with a stand-in metric: grey batches arrive as 3-channel floats in [0, 1]."""
    _pretend_fidelity_installed(monkeypatch)
    import torchmetrics.image.fid as fid_module

    seen: list[tuple[bool, tuple[int, ...], float, float]] = []

    class StandIn:
        def __init__(self, **kwargs):
            assert kwargs["feature"] == 2048 and kwargs["normalize"] is True

        def to(self, device):
            return self

        def update(self, batch, real):
            seen.append((real, tuple(batch.shape), float(batch.min()), float(batch.max())))

        def compute(self):
            return torch.tensor(1.5)

    monkeypatch.setattr(fid_module, "FrechetInceptionDistance", StandIn)
    real = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    fake = torch.rand(3, 1, 28, 28)
    assert inception_fid(real, fake, batch_size=2) == 1.5
    assert [s[0] for s in seen] == [True, True, True, False, False]
    assert all(s[1][1:] == (3, 28, 28) and 0.0 <= s[2] and s[3] <= 1.0 for s in seen)


def test_inception_fid_checks_inputs_first() -> None:
    with pytest.raises(ValueError, match="to_unit_range"):
        inception_fid(torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28))
    with pytest.raises(ValueError, match="at least 2"):
        inception_fid(torch.rand(1, 1, 28, 28), torch.rand(4, 1, 28, 28))
    with pytest.raises(ValueError, match="channels"):
        inception_fid(np.zeros((4, 2, 28, 28), dtype=np.uint8), torch.rand(4, 1, 28, 28))


def test_imagenet_inception_score_offline_says_how_to_get_weights(monkeypatch, tmp_path) -> None:
    _pretend_fidelity_installed(monkeypatch)
    monkeypatch.setattr(features.torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(InceptionWeightsUnavailableError, match="allow_download=False"):
        features.imagenet_inception_score(torch.rand(12, 1, 28, 28), allow_download=False)
    with pytest.raises(ValueError, match="10 splits"):
        features.imagenet_inception_score(torch.rand(4, 1, 28, 28))


def test_imagenet_inception_score_feeds_rgb_unit_images(monkeypatch) -> None:
    _pretend_fidelity_installed(monkeypatch)
    import torchmetrics.image.inception as inception_module

    seen: list[tuple[int, ...]] = []

    class StandIn:
        def __init__(self, **kwargs):
            assert kwargs == {"normalize": True}

        def to(self, device):
            return self

        def update(self, batch):
            assert 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0
            seen.append(tuple(batch.shape))

        def compute(self):
            return torch.tensor(1.25), torch.tensor(0.1)

    monkeypatch.setattr(inception_module, "InceptionScore", StandIn)
    images = torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8)
    assert features.imagenet_inception_score(images, batch_size=5) == 1.25
    assert seen == [(5, 3, 28, 28), (5, 3, 28, 28), (2, 3, 28, 28)]
