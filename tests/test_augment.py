"""DiffAugment (notebook 08): shapes, ranges, differentiability, each transformation against a plain reference,
and its wiring into DCGANSteps (real and fake augmented, resume still exact, no change when unused)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from course_utils.augmentation.diffaugment import (
    FILL_VALUE,
    POLICIES,
    DiffAugment,
    brightness,
    contrast,
    cutout,
    diff_augment,
    translation,
)
from course_utils.device import set_deterministic
from course_utils.models import DCGANDiscriminator, DCGANGenerator
from course_utils.training import DCGANSteps, TrainConfig, train_gan

TRANSFORMS = {"brightness": brightness, "contrast": contrast, "translation": translation, "cutout": cutout,
              "diff_augment": diff_augment}


def images(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Random float images in [-1, 1]."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("shape", [(6, 1, 28, 28), (3, 3, 16, 16), (2, 1, 8, 8, 8)])
def test_shape_range_and_gradients(name: str, shape: tuple[int, ...]) -> None:
    x = images(shape).requires_grad_(True)
    out = TRANSFORMS[name](x, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.detach().min()) >= -1.0 and float(out.detach().max()) <= 1.0
    weights = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    (out * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert float((x.grad != 0).float().mean()) > 0.3  # the gradient reaches (most) pixels


def test_same_generator_state_gives_same_augmentation_and_gradcheck() -> None:
    x = images((4, 1, 12, 12))
    a = diff_augment(x, generator=torch.Generator().manual_seed(5))
    b = diff_augment(x, generator=torch.Generator().manual_seed(5))
    c = diff_augment(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    small = (images((2, 1, 6, 6), seed=3) * 0.4).double().requires_grad_(True)  # inside the range: no clamping
    for fn in (translation, cutout, brightness, contrast):
        assert torch.autograd.gradcheck(lambda t, fn=fn: fn(t, generator=torch.Generator().manual_seed(7)), (small,))


def test_translation_is_a_shift_with_black_borders() -> None:
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8) / 128 - 1  # distinct values
    out = translation(x, ratio=0.25, generator=torch.Generator().manual_seed(0))  # shifts of up to 2 px
    for sample in range(2):
        matches = []
        for dy, dx in itertools.product(range(-2, 3), repeat=2):  # the reference: NumPy slicing per shift
            expected = np.full((8, 8), FILL_VALUE, dtype=np.float32)
            source = x[sample, 0].numpy()
            expected[max(0, dy):8 + min(0, dy), max(0, dx):8 + min(0, dx)] = \
                source[max(0, -dy):8 + min(0, -dy), max(0, -dx):8 + min(0, -dx)]
            matches.append(np.array_equal(out[sample, 0].numpy(), expected))
        assert sum(matches) == 1, f"sample {sample} is not exactly one shifted copy of its input"
    outputs = {translation(x[:1], ratio=0.25, generator=torch.Generator().manual_seed(seed)).numpy().tobytes()
               for seed in range(40)}
    assert len(outputs) > 10  # different seeds shift differently (25 shifts are possible)


def test_cutout_blacks_out_one_square() -> None:
    x = torch.ones(16, 1, 10, 10) * 0.5
    out = cutout(x, ratio=0.4, generator=torch.Generator().manual_seed(0))  # a 4 x 4 square
    for sample in out[:, 0]:
        black = np.argwhere(sample.numpy() == FILL_VALUE)
        assert 0 < len(black) <= 16
        rows, cols = black[:, 0], black[:, 1]
        assert rows.max() - rows.min() < 4 and cols.max() - cols.min() < 4
        assert len(black) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # a rectangle
        assert np.all(sample.numpy()[sample.numpy() != FILL_VALUE] == 0.5)  # everything else untouched
    assert (out == FILL_VALUE).flatten(1).sum(1).float().mean() > 8  # mostly whole squares inside the image


def test_brightness_and_contrast_match_their_formulas() -> None:
    x = images((5, 1, 6, 6)) * 0.3  # small values: no clamping
    moved = brightness(x, strength=0.5, generator=torch.Generator().manual_seed(0))
    offsets = (moved - x).flatten(1)  # one constant offset per image
    assert torch.allclose(offsets, offsets[:, :1].expand_as(offsets), atol=1e-6)
    assert offsets.abs().max() <= 0.5
    scaled = contrast(x, low=0.5, high=1.5, generator=torch.Generator().manual_seed(0))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    factors = ((scaled - mean) / (x - mean)).flatten(1)
    assert torch.allclose(factors, factors[:, :1].expand_as(factors), atol=1e-4)
    assert float(factors.min()) >= 0.5 - 1e-4 and float(factors.max()) <= 1.5 + 1e-4
    torch.testing.assert_close(scaled.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)))  # the mean stays


def test_errors() -> None:
    with pytest.raises(ValueError, match="policy"):
        DiffAugment(policy=("rotation",))
    with pytest.raises(ValueError, match="policy"):
        diff_augment(images((1, 1, 4, 4)), policy="color")
    with pytest.raises(ValueError, match="float images"):
        translation(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="float images"):
        cutout(torch.zeros(4, 4))
    assert DiffAugment().policy == POLICIES
    with pytest.raises(TypeError, match="augment must be None"):
        DCGANSteps(augment="translation")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- wiring into the training steps


class Spy:
    """An augment function that records what it was given (and returns it unchanged)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        assert isinstance(generator, torch.Generator)
        self.calls.append(tuple(images.shape))
        return images


CONFIG = TrainConfig(num_epochs=2, batch_size=8, latent_dim=8, seed=1, log_every=2, num_samples=4)


def make_models(seed: int = 0) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """A tiny 28 px DCGAN pair."""
    torch.manual_seed(seed)
    return DCGANGenerator(8, 28, 1, base_width=4), DCGANDiscriminator(28, 1, base_width=4)


@pytest.fixture(scope="module")
def data() -> torch.Tensor:
    """32 random uint8 images (32, 1, 28, 28)."""
    return torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_real_and_fake_are_augmented_in_both_steps(data) -> None:
    spy = Spy()
    train_gan(*make_models(), data, TrainConfig(num_epochs=1, batch_size=8, latent_dim=8, num_samples=2),
              steps=DCGANSteps(augment=spy), progress=False)
    assert len(spy.calls) == 3 * 4  # 4 steps: real and fake in the d-step, fake in the g-step
    assert set(spy.calls) == {(8, 1, 28, 28)}


def test_without_augment_the_settings_and_run_are_unchanged(data) -> None:
    assert "augment" not in DCGANSteps().settings()  # old checkpoints still match
    assert DCGANSteps(augment=DiffAugment()).settings()["augment"] == "DiffAugment(policy=('color', 'translation', 'cutout'))"
    plain = train_gan(*make_models(), data, CONFIG, progress=False)
    identity = train_gan(*make_models(), data, CONFIG, steps=DCGANSteps(augment=lambda x, g: x), progress=False)
    assert plain.history == identity.history  # an identity augment draws no random numbers: same run
    augmented = train_gan(*make_models(), data, CONFIG, steps=DCGANSteps(augment=DiffAugment()), progress=False)
    assert augmented.history != plain.history


def test_resume_with_diffaugment_is_bit_identical(data, tmp_path) -> None:
    set_deterministic(True)
    reference = train_gan(*make_models(), data, CONFIG, steps=DCGANSteps(augment=DiffAugment()), progress=False)
    first = TrainConfig(**{**CONFIG.__dict__, "num_epochs": 1})
    train_gan(*make_models(), data, first, steps=DCGANSteps(augment=DiffAugment()), checkpoint_dir=tmp_path,
              progress=False)
    resumed = train_gan(*make_models(seed=5), data, CONFIG, steps=DCGANSteps(augment=DiffAugment()),
                        checkpoint_dir=tmp_path, progress=False)
    assert resumed.step_history == reference.step_history
    for got, want in zip(resumed.generator.state_dict().values(), reference.generator.state_dict().values(), strict=True):
        assert torch.equal(got, want)
