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


# ----------------------------------------------------------------------------- operator norms (notebook 08)


def _dense_operator_norm(conv: torch.nn.Module, input_shape: tuple[int, ...]) -> float:
    """The conv's largest singular value from its full matrix (built column by column on a small input)."""
    from course_utils.models.critics import _used_weight

    weight = _used_weight(conv).double()
    n = int(torch.tensor(input_shape).prod())
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *input_shape)
    columns = torch.nn.functional.conv2d(basis, weight, None, conv.stride, conv.padding)  # (n, C_out, h, w)
    return float(torch.linalg.matrix_norm(columns.reshape(n, -1), ord=2))


@pytest.mark.parametrize(("stride", "padding"), [(1, 1), (2, 1), (2, 0)])
def test_conv_operator_norm_matches_the_dense_matrix(stride, padding):
    from course_utils.models.critics import conv_operator_norm

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 4 if stride == 2 else 3, stride=stride, padding=padding)
    expected = _dense_operator_norm(conv, (2, 8, 8))
    estimate = conv_operator_norm(conv, (2, 8, 8))
    assert estimate <= expected * (1 + 1e-12) and estimate == pytest.approx(expected, rel=1e-3)  # from below


def test_spectral_norm_bounds_the_kernel_matrix_not_the_convolution():
    from course_utils.models.critics import conv_operator_norm

    one_by_one = torch.nn.Conv2d(3, 4, 1, bias=False)  # a 1x1 conv mixes channels: operator = kernel matrix
    kernel_norm = float(torch.linalg.matrix_norm(one_by_one.weight.detach().flatten(1), ord=2))
    assert conv_operator_norm(one_by_one, (3, 5, 5)) == pytest.approx(kernel_norm, rel=1e-6)
    box = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        box.weight.fill_(1 / 3)  # the reshaped kernel is a 9-vector of norm 1 ...
    box = torch.nn.utils.parametrizations.spectral_norm(box)
    for _ in range(3):
        box(torch.randn(1, 1, 4, 4))  # training-mode passes: the power iteration converges (rank 1: at once)
    assert float(torch.linalg.vector_norm(box.weight.detach())) == pytest.approx(1.0, rel=1e-5)
    buffers = {k: v.clone() for k, v in box.state_dict().items()}
    norm = conv_operator_norm(box, (1, 32, 32))
    # ... but the blur it applies to a constant image multiplies it by 9 / 3 = 3 (less at the zero-padded edge)
    assert 2.9 < norm <= 3.0 + 1e-9
    assert all(torch.equal(buffers[k], v) for k, v in box.state_dict().items()) and box.training


def test_conv_operator_norms_of_a_spectrally_normalised_discriminator():
    from course_utils.models import DCGANDiscriminator
    from course_utils.models.critics import conv_operator_norm, conv_operator_norms

    torch.manual_seed(1)
    critic = DCGANDiscriminator(28, 1, base_width=4, spectral_norm=True)
    before = {k: v.clone() for k, v in critic.state_dict().items()}
    norms = conv_operator_norms(critic, torch.zeros(1, 1, 28, 28), iterations=50)
    assert all(torch.equal(before[k], v) for k, v in critic.state_dict().items())  # u, v of the power iteration too
    convs = [m for m in critic.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(norms) == len(convs) and all(n > 0 for n in norms) and critic.training
    first = convs[0]
    assert norms[0] == pytest.approx(conv_operator_norm(first, (1, 28, 28), iterations=50), rel=1e-9)
    with pytest.raises(ValueError, match="input_shape"):
        conv_operator_norm(first, (2, 28, 28))
