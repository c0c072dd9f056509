"""Notebook 06's lesion test: sites inside the anatomy, spread over images, with rings that do not overlap."""

from __future__ import annotations

import pytest
import torch

from course_utils.metrics.image_quality import add_disc_lesion, disc_mask, lesion_contrast, lesion_sites


def _regions(count: int = 3, size: int = 64) -> torch.Tensor:
    rows, columns = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = (rows - 32) ** 2 + (columns - 30) ** 2 <= 20**2
    return disc[None, None].repeat(count, 1, 1, 1)


def test_sites_lie_inside_the_region_with_their_rings_and_apart():
    regions, radius = _regions(), 2.5
    sites = lesion_sites(regions, radius, count=9, seed=0)
    assert len(sites) == 9 and sorted({image for image, _, _ in sites}) == [0, 1, 2], "spread over the images"
    for image, row, column in sites:
        ring = disc_mask(64, 64, (row, column), 2 * radius)
        assert bool(regions[image, 0][ring].all()), "disc and ring inside the region"
    for image in range(3):
        centres = torch.tensor([[r, c] for i, r, c in sites if i == image], dtype=torch.float64)
        distances = torch.cdist(centres, centres) + torch.eye(len(centres)) * 1e9
        assert float(distances.min()) >= 4 * radius, "rings of one image do not overlap"
    assert sites == lesion_sites(regions, radius, count=9, seed=0), "reproducible"
    assert sites != lesion_sites(regions, radius, count=9, seed=1)


def test_sites_measure_a_lesion_on_anatomy_by_difference():
    regions = _regions(count=1)
    anatomy = torch.linspace(0.2, 0.8, 64, dtype=torch.float64).repeat(64, 1)[None, None]  # a gradient, not flat
    (image, row, column), = lesion_sites(regions, 3.0, count=1, seed=2)
    with_lesion = add_disc_lesion(anatomy, (row, column), 3.0, 0.1)
    kept = lesion_contrast(with_lesion, (row, column), 3.0) - lesion_contrast(anatomy, (row, column), 3.0)
    torch.testing.assert_close(kept, torch.full((1,), 0.1, dtype=torch.float64))


def test_sites_explain_what_does_not_fit():
    with pytest.raises(ValueError, match="no image has room"):
        lesion_sites(_regions(size=64)[..., :8, :8].contiguous(), 3.0, count=1)
    with pytest.raises(ValueError, match="no room for another"):
        lesion_sites(_regions(count=1), 2.5, count=60)
    with pytest.raises(ValueError, match="count >= 1"):
        lesion_sites(_regions(), 2.5, count=0)
