"""U-Net and PatchGAN critic: shapes, receptive field, clear errors, and a U-Net that can overfit one batch."""

from __future__ import annotations

import pytest
import torch

from course_utils.models.critics import PatchGANCritic
from course_utils.models.unet import UNet


@pytest.mark.parametrize(("depth", "size"), [(2, 28), (3, 64), (4, 32)])
def test_unet_keeps_spatial_size(depth, size):
    net = UNet(in_channels=1, out_channels=3, width=8, depth=depth)
    assert net(torch.randn(2, 1, size, size)).shape == (2, 3, size, size)


def test_unet_output_modes():
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    assert UNet(1, 1, width=4, depth=2, output="tanh")(x).abs().max() <= 1
    residual = UNet(1, 1, width=4, depth=2, output="residual")
    torch.nn.init.zeros_(residual.head.weight)
    torch.nn.init.zeros_(residual.head.bias)
    assert torch.equal(residual(x), x), "a zero correction returns the input"


def test_unet_errors_are_explained():
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 8"):
        UNet(1, 1, width=4, depth=3)(torch.randn(1, 1, 28, 28))
    with pytest.raises(ValueError, match="expected images \\(B, 1, H, W\\)"):
        UNet(1, 1, width=4, depth=2)(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="in_channels must equal"):
        UNet(1, 3, output="residual")
    with pytest.raises(ValueError, match="output must be one of"):
        UNet(1, 1, output="sigmoid")


def test_unet_overfits_one_batch():
    torch.manual_seed(0)
    net = UNet(1, 2, width=8, depth=2)
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    labels = (images[:, 0] > 0.2).long()  # a mask that depends on the pixel values
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(net(images), labels)
        first = first if first is not None else loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.1 * first


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_patchgan_shape(spectral_norm):
    critic = PatchGANCritic(in_channels=4, width=8, layers=3, spectral_norm=spectral_norm)
    assert critic(torch.randn(2, 4, 64, 64)).shape == (2, 1, 8, 8)


def test_patchgan_receptive_field_is_38_pixels():
    critic = PatchGANCritic(in_channels=1, width=4, layers=3).eval()
    x = torch.randn(1, 1, 96, 96, requires_grad=True)
    critic(x)[0, 0, 6, 6].backward()  # one output logit
    rows = x.grad[0, 0].abs().sum(dim=1).nonzero().flatten()
    assert int(rows.max() - rows.min() + 1) == 38


def test_patchgan_rejects_wrong_channels():
    with pytest.raises(ValueError, match="stacked as channels"):
        PatchGANCritic(in_channels=4)(torch.randn(1, 1, 32, 32))
