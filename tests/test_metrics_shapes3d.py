"""Shape statistics of binary 3-D masks (notebook 08): binarisation rules, volume and surface area against
analytic shapes and an independent face count, nearest-real Dice against a brute-force loop, the comparison
table, and the errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_utils.metrics import (
    binarise,
    compare_shape_distributions,
    connected_components,
    foreground_fraction,
    format_shape_table,
    nearest_real,
    nearest_real_dice,
    shape_volume,
    surface_area,
)
from course_utils.metrics.shapes3d import NEAREST_DICE, STATISTICS, WITHIN_DICE, compare_samples


def ball(radius: float, side: int | None = None) -> np.ndarray:
    """A voxelised ball (voxel centres within `radius` of the grid centre), bool (side, side, side)."""
    side = side or int(2 * radius) + 5
    centre = (side - 1) / 2
    z, y, x = np.mgrid[:side, :side, :side]
    return (z - centre) ** 2 + (y - centre) ** 2 + (x - centre) ** 2 <= radius ** 2


def box_area(a: int, b: int, c: int, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> float:
    """Exact marching-cubes area (level 0.5) of an a×b×c voxel box: flat faces, chamfered edges, corners."""
    sa, sb, sc = spacing
    la, lb, lc = (a - 1) * sa, (b - 1) * sb, (c - 1) * sc  # the flat faces lie half a voxel inside the box
    faces = 2 * (la * lb + lb * lc + la * lc)
    edges = 4 * (la * math.hypot(sb / 2, sc / 2) + lb * math.hypot(sa / 2, sc / 2)
                 + lc * math.hypot(sa / 2, sb / 2))
    corners = 8 * math.sqrt((sa * sb) ** 2 + (sb * sc) ** 2 + (sa * sc) ** 2) / 8
    return faces + edges + corners


def exposed_faces(mask: np.ndarray) -> int:
    """Voxel faces between foreground and background (the face-counting estimate), counted with np.diff."""
    padded = np.pad(mask, 1).astype(np.int8)
    return int(sum(np.abs(np.diff(padded, axis=axis)).sum() for axis in range(3)))


def test_binarise_rules() -> None:
    uint8 = torch.tensor([0, 127, 128, 255], dtype=torch.uint8).reshape(1, 1, 1, 2, 2)
    assert binarise(uint8).ravel().tolist() == [False, False, True, True]
    unit = np.array([0.0, 0.5, 0.51, 1.0]).reshape(1, 1, 2, 2)
    assert binarise(unit).ravel().tolist() == [False, False, True, True]
    tanh = np.array([-1.0, -0.1, 0.1, 1.0]).reshape(1, 1, 2, 2)
    assert binarise(tanh, threshold=0.0).ravel().tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match=r"\[0, 1\].*threshold=0.0"):
        binarise(tanh)
    with pytest.raises(ValueError, match=r"\(N, D, H, W\) or \(N, 1, D, H, W\)"):
        binarise(np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="one channel"):
        binarise(np.zeros((2, 3, 4, 4, 4)))
    with pytest.raises(ValueError, match="empty"):
        binarise(np.zeros((0, 4, 4, 4)))
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        binarise(np.zeros((1, 4, 4, 4)), threshold=math.nan)
    with pytest.raises(ValueError, match="pass a threshold"):
        binarise(np.zeros((1, 4, 4, 4), dtype=np.int64))
    with pytest.raises(TypeError, match="torch.Tensor or NumPy array"):
        binarise([[[[0]]]])


def test_foreground_fraction_and_volume() -> None:
    masks = np.zeros((2, 1, 10, 10, 10), dtype=np.uint8)
    masks[0, 0, :5] = 255  # half the volume
    masks[1, 0, 2:4, 2:4, 2:4] = 255  # 8 voxels
    np.testing.assert_allclose(foreground_fraction(masks), [0.5, 0.008])
    np.testing.assert_allclose(shape_volume(masks), [500, 8])
    np.testing.assert_allclose(shape_volume(masks, spacing=(2.0, 1.0, 0.5)), [500, 8])
    np.testing.assert_allclose(shape_volume(masks, spacing=2), [4000, 64])
    np.testing.assert_allclose(shape_volume(masks, spacing=1.5), ball_volume_counts(masks) * 1.5 ** 3)
    with pytest.raises(ValueError, match="spacing must be"):
        shape_volume(masks, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="spacing must be"):
        shape_volume(masks, spacing=(1.0, 1.0))


def ball_volume_counts(masks: np.ndarray) -> np.ndarray:
    """Foreground voxel counts by a plain loop (an independent count)."""
    return np.array([sum(1 for value in m.ravel() if value > 127) for m in masks], dtype=np.float64)


@pytest.mark.parametrize(("a", "b", "c"), [(1, 1, 1), (3, 3, 3), (10, 10, 10), (2, 5, 7)])
def test_surface_area_of_boxes_is_exact(a: int, b: int, c: int) -> None:
    mask = np.zeros((1, 16, 16, 16), dtype=bool)
    mask[0, 1:1 + a, 2:2 + b, 3:3 + c] = True
    assert surface_area(mask)[0] == pytest.approx(box_area(a, b, c), rel=1e-5)
    spacing = (2.0, 1.0, 0.5)
    assert surface_area(mask, spacing=spacing)[0] == pytest.approx(box_area(a, b, c, spacing), rel=1e-5)


def test_surface_area_touching_the_border_is_closed() -> None:
    full = np.ones((1, 4, 4, 4), dtype=bool)  # padded inside surface_area, so the cube is closed
    assert surface_area(full)[0] == pytest.approx(box_area(4, 4, 4), rel=1e-5)
    assert surface_area(np.zeros((1, 4, 4, 4), dtype=bool))[0] == 0.0


@pytest.mark.parametrize("radius", [4, 6, 8, 12])
def test_surface_area_of_a_ball(radius: int) -> None:
    mask = ball(radius)[None]
    area = surface_area(mask)[0]
    sphere = 4 * math.pi * radius ** 2
    assert area == pytest.approx(sphere, rel=0.12)  # binary marching cubes: +3 to +11 % on these balls
    assert area >= sphere * 0.97
    faces = exposed_faces(mask[0])  # the face count: about 1.5 x the sphere, always more than the mesh
    assert faces / sphere == pytest.approx(1.5, rel=0.1)
    assert area < faces
    assert shape_volume(mask)[0] == pytest.approx(4 / 3 * math.pi * radius ** 3, rel=0.05)


def test_connected_components() -> None:
    masks = np.zeros((3, 8, 8, 8), dtype=bool)
    masks[1, 1, 1, 1] = masks[1, 2, 2, 2] = True  # diagonal neighbours: one 26-connected component
    masks[2, 1, 1, 1] = masks[2, 4, 4, 4] = masks[2, 4, 4, 5] = masks[2, 6:, 6:, 0] = True  # sizes 1, 2, 4
    assert connected_components(masks).tolist() == [0, 1, 3]
    assert connected_components(masks, min_size=2).tolist() == [0, 1, 2]  # the single voxel is a speck
    assert connected_components(masks, min_size=3).tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="min_size"):
        connected_components(masks, min_size=0)


def brute_force_nearest_dice(generated: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best Dice of each generated mask against each real one, by two plain loops."""
    best, index = [], []
    for g in generated:
        scores = []
        for r in real:
            total = g.sum() + r.sum()
            scores.append(1.0 if total == 0 else 2 * np.logical_and(g, r).sum() / total)
        best.append(max(scores))
        index.append(int(np.argmax(scores)))
    return np.array(best), np.array(index)


def test_nearest_real_dice_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    real = rng.random((23, 9, 9, 9)) < rng.uniform(0.02, 0.3, size=(23, 1, 1, 1))
    generated = rng.random((17, 9, 9, 9)) < 0.1
    generated[3] = real[5]  # an exact copy scores 1
    generated[4] = False  # an empty mask scores 0 against non-empty ones
    expected, expected_index = brute_force_nearest_dice(generated, real)
    for chunk in (1, 5, 256):
        found = nearest_real(generated, real, chunk=chunk)
        np.testing.assert_allclose(found.dice, expected, rtol=1e-12)
        np.testing.assert_array_equal(found.index, expected_index)
    assert found.dice[3] == 1.0 and found.index[3] == 5 and found.dice[4] == 0.0
    uint8 = torch.from_numpy(generated.astype(np.uint8) * 255)[:, None]  # (N, 1, D, H, W) uint8 works too
    np.testing.assert_allclose(nearest_real_dice(uint8, real), expected, rtol=1e-12)
    empty = np.zeros((1, 9, 9, 9), dtype=bool)
    assert nearest_real_dice(empty, np.concatenate([real, empty]))[0] == 1.0  # two empty masks are identical


def test_nearest_real_dice_exclude_self() -> None:
    rng = np.random.default_rng(1)
    real = rng.random((12, 6, 6, 6)) < 0.2
    real[7] = real[2]  # a duplicate elsewhere is still found
    found = nearest_real(real, real, exclude_self=True, chunk=5)
    assert found.index[2] == 7 and found.dice[2] == 1.0
    assert all(found.index[i] != i for i in range(12))
    others = [brute_force_nearest_dice(real[i:i + 1], np.delete(real, i, axis=0))[0][0] for i in range(12)]
    np.testing.assert_allclose(found.dice, others, rtol=1e-12)
    with pytest.raises(ValueError, match="same set twice"):
        nearest_real(real[:3], real, exclude_self=True)
    with pytest.raises(ValueError, match="same size"):
        nearest_real_dice(real[:, :5], real)
    with pytest.raises(ValueError, match="chunk"):
        nearest_real(real, real, chunk=0)


def random_shapes(count: int, radius_range: tuple[float, float], seed: int) -> np.ndarray:
    """Balls of random radius at random centres in a 16³ grid, bool (count, 16, 16, 16)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:16, :16, :16]
    masks = np.zeros((count, 16, 16, 16), dtype=bool)
    for i in range(count):
        cz, cy, cx = rng.uniform(6, 10, size=3)
        r = rng.uniform(*radius_range)
        masks[i] = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r * r
    return masks


def test_compare_shape_distributions() -> None:
    train, held_out = random_shapes(60, (2.5, 4.0), 0), random_shapes(40, (2.5, 4.0), 1)
    same = random_shapes(40, (2.5, 4.0), 2)
    larger = random_shapes(40, (5.0, 6.0), 3)
    close = compare_shape_distributions(same, held_out, train=train, held_out=held_out)
    far = compare_shape_distributions(larger, held_out, train=train, held_out=held_out)
    assert list(close) == [*STATISTICS, WITHIN_DICE, NEAREST_DICE]
    for name in STATISTICS[:3]:
        assert close[name].ks_statistic < 0.35 and close[name].within_factor(1.5)
        assert far[name].ks_statistic > 0.9 and not far[name].within_factor(1.5)
    assert far["volume"].ratio > 3
    row = close["volume"]
    assert row.real_mean == pytest.approx(shape_volume(held_out).mean())
    assert row.real_sd == pytest.approx(shape_volume(held_out).std(ddof=1))
    assert row.generated_mean == pytest.approx(shape_volume(same).mean())
    dice_row = close[NEAREST_DICE]
    assert dice_row.real_mean == pytest.approx(nearest_real_dice(held_out, train).mean())
    assert dice_row.generated_mean == pytest.approx(nearest_real_dice(same, train).mean())
    assert far[NEAREST_DICE].generated_mean < dice_row.real_mean
    table = format_shape_table(far)
    assert "nearest_train_dice" in table and "surface_area" in table and " no" in table
    plain = compare_shape_distributions(torch.from_numpy(same.astype(np.float32)), held_out)
    assert list(plain) == [*STATISTICS, WITHIN_DICE]
    collapsed = compare_shape_distributions(np.repeat(same[:1], 40, axis=0), held_out)
    assert collapsed[WITHIN_DICE].generated_mean == 1.0 and collapsed[WITHIN_DICE].real_mean < 0.9
    assert collapsed[WITHIN_DICE].real_mean == pytest.approx(
        nearest_real_dice(held_out, held_out, exclude_self=True).mean())
    with pytest.raises(ValueError, match="both train and held_out"):
        compare_shape_distributions(same, held_out, train=train)
    with pytest.raises(ValueError, match="same size"):
        compare_shape_distributions(same[:, :8], held_out)
    with pytest.raises(ValueError, match="at least two values"):
        compare_samples([1.0], [1.0, 2.0])


def test_random_blob_masks_have_the_asked_foreground_but_no_particular_shape() -> None:
    from course_utils.metrics.shapes3d import random_blob_masks

    masks = random_blob_masks(6, 16, 0.05, seed=3)
    assert masks.shape == (6, 1, 16, 16, 16) and masks.dtype == torch.uint8
    assert set(torch.unique(masks).tolist()) == {0, 255}
    np.testing.assert_allclose(foreground_fraction(masks), 0.05, atol=1 / 16**3)
    assert torch.equal(masks, random_blob_masks(6, 16, 0.05, seed=3))
    assert not torch.equal(masks, random_blob_masks(6, 16, 0.05, seed=4))
    # blurred noise forms blobs: far fewer pieces than the same number of voxels scattered at random
    scattered = (torch.rand(6, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0)) < 0.05).to(torch.uint8)
    assert connected_components(masks).mean() < connected_components(scattered * 255).mean() / 3
    with pytest.raises(ValueError, match="foreground must be a fraction"):
        random_blob_masks(2, 16, 1.5)
