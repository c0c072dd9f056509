"""The time-conditioned U-Net of notebook 10: shapes at 28 and 64 px, that the time really conditions the
output, that it learns in a few steps with either loss, parameter counts matched to the DCGAN generator,
and clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.models.dcgan import DCGANGenerator
from course_utils.models.denoiser import (
    TimeConditionedUNet,
    default_multipliers,
    matching_width,
    parameter_count,
    parameter_counts,
    sinusoidal_embedding,
)
from course_utils.training.diffusion import noise_prediction_loss
from course_utils.training.flow_matching import velocity_loss

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster on a busy CPU


@pytest.mark.parametrize("size", [28, 64])
def test_output_has_the_input_shape(size: int) -> None:
    model = TimeConditionedUNet(image_size=size, width=8)
    x = torch.randn(2, 1, size, size)
    assert model(x, torch.rand(2)).shape == x.shape
    assert (
        len(model.down_blocks) == len(default_multipliers(size)) == (3 if size == 28 else 4)
    )  # 28→7, 64→8 px


def test_the_time_conditions_the_output() -> None:
    torch.manual_seed(0)
    model = TimeConditionedUNet(width=8).eval()
    x = torch.randn(1, 1, 28, 28).expand(2, -1, -1, -1)
    out = model(x, torch.tensor([0.1, 0.9]))
    assert (out[0] - out[1]).abs().mean() > 1e-3  # same image, different times
    torch.testing.assert_close(
        model(x, torch.tensor([0.1, 0.1]))[1], out[0], atol=1e-6, rtol=0
    )  # per-image time


def test_sinusoidal_embedding_closed_form() -> None:
    emb = sinusoidal_embedding(torch.tensor([0.0, 0.5]), 8)
    assert emb.shape == (2, 8)
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))  # cos 0 = 1, sin 0 = 0
    assert emb[1, 0].item() == pytest.approx(math.cos(500.0), abs=1e-4)  # 1000·t at the highest frequency
    assert emb[1, 5].item() == pytest.approx(math.sin(500.0 / 10), abs=1e-4)  # f_1 = 10000^(-1/4) = 0.1


@pytest.mark.parametrize("loss_name", ["diffusion", "flow"])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(loss_name: str) -> None:
    torch.manual_seed(0)
    model = TimeConditionedUNet(width=8)
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(6):
        g = torch.Generator().manual_seed(1)  # the same t and noise every step: a fixed objective
        loss = (
            noise_prediction_loss(model, x, generator=g)
            if loss_name == "diffusion"
            else velocity_loss(model, x, generator=g)
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_parameter_counts_match_the_dcgan_generator() -> None:
    counts = parameter_counts(image_size=28, dcgan_width=64)
    assert (
        counts["dcgan_generator"] == parameter_count(DCGANGenerator(image_size=28, base_width=64)) == 759_681
    )
    assert counts["denoiser_width"] == 32
    assert counts["denoiser"] == parameter_count(TimeConditionedUNet(image_size=28, width=32))
    assert 0.8 < counts["denoiser"] / counts["dcgan_generator"] < 1.25
    assert matching_width(64, 64) == 64  # 3.9 M vs 3.6 M parameters


def test_clear_errors() -> None:
    model = TimeConditionedUNet(width=8)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model(torch.zeros(2, 1, 32, 32), torch.zeros(2))
    with pytest.raises(ValueError, match=r"time must be a tensor \(B,\)"):
        model(torch.zeros(2, 1, 28, 28), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="image_size must be one of"):
        TimeConditionedUNet(image_size=30)
    with pytest.raises(ValueError, match="cannot be halved 3 times"):
        TimeConditionedUNet(image_size=28, multipliers=(1, 2, 2, 2))
