"""SRResNet, SRGAN discriminator and the feature networks: shapes, clear errors, offline VGG message."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_utils.models.perceptual import (
    DomainFeatureMaps,
    FeatureWeightsUnavailableError,
    load_vgg_features,
)
from course_utils.models.srgan import SRGANDiscriminator, SRResNetGenerator


@pytest.mark.parametrize(("scale", "size"), [(2, 16), (4, 8), (4, 13)])
def test_srresnet_upsamples_by_its_scale(scale, size):
    generator = SRResNetGenerator(scale=scale, width=8, num_blocks=2)
    out = generator(torch.rand(2, 1, size, size) * 2 - 1)
    assert out.shape == (2, 1, scale * size, scale * size) and out.abs().max() <= 1


def test_srresnet_starts_as_bicubic_interpolation():
    generator = SRResNetGenerator(scale=4, width=8, num_blocks=2).eval()
    x = torch.rand(1, 1, 8, 8) * 1.6 - 0.8
    bicubic = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False).clamp(-0.999, 0.999)
    torch.testing.assert_close(generator(x), bicubic, atol=1e-5, rtol=0)


def test_srgan_discriminator_gives_one_logit_per_image():
    critic = SRGANDiscriminator(width=8, num_stages=3)
    assert critic(torch.randn(3, 1, 64, 64)).shape == (3,)
    assert critic(torch.randn(2, 1, 32, 48)).shape == (2,)


def test_srgan_errors_are_explained():
    with pytest.raises(ValueError, match="scale must be 2, 4 or 8"):
        SRResNetGenerator(scale=3)
    with pytest.raises(ValueError, match=r"expected low-resolution images \(B, 1, h, w\)"):
        SRResNetGenerator(width=4, num_blocks=1)(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="width must be a positive integer"):
        SRGANDiscriminator(width=0)


def test_domain_feature_maps_follow_the_classifier():
    from course_utils.models.domain_classifier import DomainClassifier

    classifier = DomainClassifier(channels=1, num_classes=2, width=4, feature_dim=8).eval()
    x = torch.rand(2, 1, 32, 32)
    maps = DomainFeatureMaps(classifier)(x * 2 - 1)
    assert [tuple(m.shape) for m in maps] == [(2, 4, 16, 16), (2, 8, 8, 8), (2, 8, 8, 8)]
    torch.testing.assert_close(maps[-1].mean(dim=(2, 3)), classifier.features(x))  # the pooled features


def test_vgg_offline_message(tmp_path):
    with pytest.raises(FeatureWeightsUnavailableError, match="download .*vgg19"):
        load_vgg_features(allow_download=False, weights_path=tmp_path / "vgg19.pth")


def test_icnr_starts_pixel_shuffle_without_a_checkerboard():
    from course_utils.models.srgan import icnr_

    torch.manual_seed(0)
    generator = SRResNetGenerator(scale=4, width=8, num_blocks=1)
    shuffled = []
    for stage in generator.upsample:
        if isinstance(stage, torch.nn.PixelShuffle):
            stage.register_forward_hook(lambda module, inputs, output: shuffled.append(output))
    generator(torch.rand(2, 1, 8, 8) * 2 - 1)
    assert len(shuffled) == 2
    for output in shuffled:  # every 2 x 2 block of sub-pixels is one value: nearest-neighbour upsampling
        blocks = output.unfold(-2, 2, 2).unfold(-2, 2, 2)  # (B, C, h, w, 2, 2)
        torch.testing.assert_close(blocks, blocks[..., :1, :1].expand_as(blocks))
    plain = torch.nn.Conv2d(4, 16, 3, padding=1)  # PyTorch's default initialisation: sub-pixels differ
    out = torch.nn.PixelShuffle(2)(plain(torch.rand(1, 4, 6, 6)))
    assert float((out[..., 0::2, 0::2] - out[..., 1::2, 1::2]).abs().mean()) > 1e-3
    icnr_(plain)
    out = torch.nn.PixelShuffle(2)(plain(torch.rand(1, 4, 6, 6)))
    torch.testing.assert_close(out[..., 0::2, 0::2], out[..., 1::2, 1::2])
    with pytest.raises(ValueError, match="divisible"):
        icnr_(torch.nn.Conv2d(4, 6, 3))
