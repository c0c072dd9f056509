"""DCGAN generator/discriminator: shapes per image size, layer sizes, initialisation, spectral norm, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils.models import DCGANDiscriminator, DCGANGenerator, init_dcgan_weights


def _spatial_sizes(model: nn.Module, layer_type: type[nn.Module], inputs: torch.Tensor) -> list[int]:
    """Output height of every `layer_type` layer, in forward order."""
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1]))
             for m in model.modules() if isinstance(m, layer_type)]
    with torch.no_grad():
        model(inputs)
    for hook in hooks:
        hook.remove()
    return sizes


@pytest.mark.parametrize(("image_size", "channels"), [(28, 1), (64, 3), (128, 1)])
def test_shapes_and_ranges(image_size: int, channels: int) -> None:
    torch.manual_seed(0)
    generator = DCGANGenerator(latent_dim=8, image_size=image_size, channels=channels, base_width=4)
    discriminator = DCGANDiscriminator(image_size=image_size, channels=channels, base_width=4)
    z = torch.randn(3, 8)
    fake = generator(z)
    assert fake.shape == (3, channels, image_size, image_size)
    assert fake.min() >= -1.0 and fake.max() <= 1.0  # tanh
    assert torch.equal(generator(z[:, :, None, None]), fake)  # (B, latent, 1, 1) works too
    logits = discriminator(fake)
    assert logits.shape == (3,)
    assert not any(isinstance(m, nn.Sigmoid) for m in discriminator.modules())  # logits, not probabilities
    logits.sum().backward()
    assert all(p.grad is not None for p in generator.parameters())


@pytest.mark.parametrize(
    ("image_size", "generator_sizes", "discriminator_sizes"),
    [(28, [7, 14, 28], [14, 7, 1]), (64, [4, 8, 16, 32, 64], [32, 16, 8, 4, 1])],
)
def test_layer_stacks(image_size: int, generator_sizes: list[int], discriminator_sizes: list[int]) -> None:
    generator = DCGANGenerator(latent_dim=5, image_size=image_size, channels=1, base_width=2)
    discriminator = DCGANDiscriminator(image_size=image_size, channels=1, base_width=2)
    assert _spatial_sizes(generator, nn.ConvTranspose2d, torch.randn(2, 5)) == generator_sizes
    images = torch.zeros(2, 1, image_size, image_size)
    assert _spatial_sizes(discriminator, nn.Conv2d, images) == discriminator_sizes
    widths = [m.out_channels for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert widths[-2] == 2 and widths[:-1] == sorted(widths[:-1], reverse=True)  # base_width last, doubling back


def test_dcgan_initialisation() -> None:
    torch.manual_seed(1)
    generator = DCGANGenerator(latent_dim=64, image_size=64, channels=1, base_width=32)
    first = generator.net[0].weight.detach()  # (64, 256, 4, 4): 262k draws
    assert abs(float(first.mean())) < 1e-3
    assert float(first.std()) == pytest.approx(0.02, rel=0.02)
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)
    weights = torch.cat([m.weight.detach() for m in norms])
    assert float(weights.mean()) == pytest.approx(1.0, abs=0.01)
    layer = nn.Conv2d(64, 64, 3)
    init_dcgan_weights(layer)
    assert float(layer.weight.detach().std()) == pytest.approx(0.02, rel=0.05)
    assert torch.equal(layer.bias, torch.zeros(64))


def test_spectral_norm_discriminator() -> None:
    torch.manual_seed(2)
    discriminator = DCGANDiscriminator(image_size=28, channels=1, base_width=4, spectral_norm=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in discriminator.modules())
    images = torch.randn(4, 1, 28, 28)
    for _ in range(30):  # each training-mode forward runs one power iteration
        discriminator(images)
    convs = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3
    for conv in convs:
        matrix = conv.weight.detach().reshape(conv.weight.shape[0], -1)
        assert float(torch.linalg.matrix_norm(matrix, ord=2)) == pytest.approx(1.0, abs=0.05)
    with_bn = DCGANDiscriminator(image_size=28, channels=1, base_width=4, spectral_norm=True, batch_norm=True)
    assert any(isinstance(m, nn.BatchNorm2d) for m in with_bn.modules())
    plain = DCGANDiscriminator(image_size=28, channels=1, base_width=4, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())


@pytest.mark.parametrize("image_size", [30, 0, 512, 27.9, True, "64"])
def test_unsupported_sizes(image_size: object) -> None:
    with pytest.raises(ValueError, match="image_size must be one of 28, 32, 64, 128, 256"):
        DCGANGenerator(latent_dim=4, image_size=image_size)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="image_size"):
        DCGANDiscriminator(image_size=image_size)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "name"), [({"channels": 0}, "channels"), ({"base_width": -1}, "base_width"),
                                              ({"latent_dim": 0}, "latent_dim"), ({"channels": 1.5}, "channels")])
def test_invalid_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        DCGANGenerator(**{"latent_dim": 4, **kwargs})
    if name != "latent_dim":
        with pytest.raises(ValueError, match=name):
            DCGANDiscriminator(**kwargs)


def test_wrong_input_shapes_are_explained() -> None:
    generator = DCGANGenerator(latent_dim=4, image_size=28, channels=1, base_width=2)
    discriminator = DCGANDiscriminator(image_size=28, channels=1, base_width=2)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        generator(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        discriminator(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match="batch dimension"):
        discriminator(torch.randn(1, 28, 28))
