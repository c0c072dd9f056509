"""Figures: every one has a title, labels where it has axes, and bad inputs fail with a helpful message."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_utils import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _uint8_and_float_pair(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The same images as uint8 (0..255) and as float in [-1, 1]."""
    generator = torch.Generator().manual_seed(0)
    as_uint8 = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
    as_float = as_uint8.float() / 255.0 * 2.0 - 1.0
    return as_uint8, as_float


def _image_arrays(fig: Figure) -> list[np.ndarray]:
    """The arrays drawn by imshow in a figure, axes in order."""
    return [np.asarray(image.get_array()) for ax in fig.axes for image in ax.get_images()]


# ----------------------------------------------------------------------------- to_numpy_image


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((4, 1, 8, 6), (4, 8, 6)),
        ((4, 3, 8, 6), (4, 8, 6, 3)),
        ((1, 8, 6), (8, 6)),
        ((3, 8, 6), (8, 6, 3)),
        ((8, 6), (8, 6)),
    ],
)
def test_to_numpy_image_shapes(shape, expected) -> None:
    out = viz.to_numpy_image(torch.rand(shape), value_range=(0, 1))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.shape == expected
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_uint8_and_minus_one_to_one_give_the_same_display_array() -> None:
    as_uint8, as_float = _uint8_and_float_pair((5, 3, 7, 7))
    from_uint8 = viz.to_numpy_image(as_uint8, value_range=None)
    from_float = viz.to_numpy_image(as_float, value_range=(-1, 1))
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-6)
    np.testing.assert_allclose(from_uint8, as_uint8.permute(0, 2, 3, 1).numpy() / 255.0, atol=1e-6)
    # and the same via the [0, 1] convention and NumPy input
    from_unit = viz.to_numpy_image(((as_float + 1) / 2).numpy(), value_range=(0, 1))
    np.testing.assert_allclose(from_uint8, from_unit, atol=1e-6)


def test_minus_one_maps_to_black_and_one_to_white() -> None:
    out = viz.to_numpy_image(torch.tensor([[-1.0, 0.0, 1.0]]), value_range=(-1, 1))
    np.testing.assert_allclose(out, [[0.0, 0.5, 1.0]])


@pytest.mark.parametrize(
    ("images", "fragments"),
    [
        (torch.rand(2, 4, 8, 8), ["(2, 4, 8, 8)", "C = 1 (grey) or 3 (RGB)"]),
        (torch.rand(5, 8, 8), ["(5, 8, 8)", "x[:, None]"]),
        (torch.rand(2, 8, 8, 3), ["(2, 8, 8, 3)", "channels-last", "permute(0, 3, 1, 2)"]),
        (torch.rand(8), ["(8,)", "(B, C, H, W), (C, H, W) or (H, W)"]),
        (torch.rand(1, 1, 2, 8, 8), ["(1, 1, 2, 8, 8)"]),
    ],
    ids=["4-channels", "3d-not-channels", "channels-last", "1d", "5d"],
)
def test_wrong_shape_says_what_was_received_and_expected(images, fragments) -> None:
    with pytest.raises(ValueError) as info:
        viz.to_numpy_image(images, value_range=(0, 1))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_range_the_data_clearly_violate_is_refused_with_a_hint() -> None:
    with pytest.raises(
        ValueError, match=r"values in \[-1, 1\].*value_range=\(0, 1\).*pass value_range=\(-1, 1\)"
    ):
        viz.to_numpy_image(torch.linspace(-1, 1, 16).reshape(4, 4), value_range=(0, 1))
    with pytest.raises(ValueError, match=r"values in \[0, 255\].*0\.\.255 intensities"):
        viz.to_numpy_image(torch.linspace(0, 255, 16).reshape(4, 4), value_range=(0, 1))
    with pytest.raises(ValueError, match="NaN"):
        viz.to_numpy_image(torch.tensor([[0.0, float("nan")]]), value_range=(0, 1))


def test_small_overshoot_is_clipped_not_refused() -> None:
    out = viz.to_numpy_image(torch.tensor([[-0.05, 0.5, 1.05]]), value_range=(0, 1))  # bicubic ringing
    np.testing.assert_allclose(out, [[0.0, 0.5, 1.0]])


def test_float_images_need_an_explicit_value_range_and_integers_must_be_uint8() -> None:
    with pytest.raises(ValueError, match="needs an explicit value_range"):
        viz.to_numpy_image(torch.rand(8, 8), value_range=None)
    with pytest.raises(ValueError, match=r"pair \(low, high\)"):
        viz.to_numpy_image(torch.rand(8, 8), value_range=(0, 1, 2))
    with pytest.raises(ValueError, match="integer dtype torch.int64"):
        viz.to_numpy_image(torch.randint(0, 255, (8, 8)), value_range=None)


# ----------------------------------------------------------------------------- show_grid


@pytest.mark.parametrize("channels", [1, 3])
def test_show_grid_draws_grey_or_rgb(channels) -> None:
    fig = viz.show_grid(
        torch.rand(6, channels, 8, 8) * 2 - 1, title="Samples after epoch 1", value_range=(-1, 1)
    )
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title() == "Samples after epoch 1"
    (drawn,) = _image_arrays(fig)
    if channels == 1:
        assert drawn.ndim == 2 and ax.get_images()[0].get_cmap().name == "gray"
    else:
        assert drawn.ndim == 3 and drawn.shape[-1] == 3
    # 6 images, about square: 3 per row, 2 rows of 8 px + padding 2
    assert drawn.shape[:2] == (2 * 10 + 2, 3 * 10 + 2)


@pytest.mark.parametrize(("count", "per_row", "channels"), [(1, 4, 1), (5, 2, 1), (6, 3, 3), (7, 8, 1), (9, 3, 3)])
def test_tile_images_matches_torchvision_make_grid(count, per_row, channels) -> None:
    from torchvision.utils import make_grid

    batch = torch.rand(count, channels, 5, 7)
    expected = make_grid(batch, nrow=per_row, padding=2, pad_value=1.0)  # grey repeated to 3 channels
    tiled = viz.tile_images(batch, per_row)
    assert tiled.shape == (channels, *expected.shape[1:])
    assert torch.equal(tiled, expected[:channels])


def test_viz_does_not_import_torchvision() -> None:
    # torchvision's import costs seconds per notebook kernel; only notebook 04's ResNet-18 needs it
    import subprocess
    import sys

    code = "import sys, course_utils.viz, course_utils.widgets; print('torchvision' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_show_grid_uint8_and_float_draw_the_same_pixels() -> None:
    as_uint8, as_float = _uint8_and_float_pair((4, 1, 6, 6))
    (from_uint8,) = _image_arrays(viz.show_grid(as_uint8, title="uint8", nrow=2))
    (from_float,) = _image_arrays(viz.show_grid(as_float, title="float", nrow=2, value_range=(-1, 1)))
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-6)


def test_show_grid_into_given_axes_and_single_image() -> None:
    fig, (left, right) = plt.subplots(1, 2)
    assert viz.show_grid(torch.rand(4, 1, 5, 5), title="real", ax=left) is fig
    assert viz.show_grid(np.random.rand(5, 5), title="one image", ax=right) is fig
    assert [ax.get_title() for ax in fig.axes] == ["real", "one image"]


def test_show_grid_rejects_bad_input_and_missing_title() -> None:
    with pytest.raises(ValueError, match=r"received shape \(4, 2, 8, 8\)"):
        viz.show_grid(torch.rand(4, 2, 8, 8), title="two channels")
    with pytest.raises(ValueError, match="title must be a non-empty string"):
        viz.show_grid(torch.rand(4, 1, 8, 8), title="  ")
    with pytest.raises(ValueError, match="nrow"):
        viz.show_grid(torch.rand(4, 1, 8, 8), title="grid", nrow=0)


# ----------------------------------------------------------------------------- show_panels


def test_show_panels_titles_sizes_and_colorbar() -> None:
    hr = torch.rand(1, 16, 16)
    lr = hr[:, ::4, ::4]  # (1, 4, 4)
    difference = (hr - hr.flip(-1))[0]  # (16, 16) in [-1, 1]
    fig = viz.show_panels(
        [lr, hr, torch.rand(3, 16, 16), difference],
        titles=["LR", "HR", "RGB", "SR - HR"],
        suptitle="x4 super-resolution",
        value_range=[(0, 1), (0, 1), (0, 1), (-1, 1)],
        cmap=["gray", "gray", "gray", "RdBu_r"],
        colorbar=True,
    )
    assert fig.get_suptitle() == "x4 super-resolution"
    image_axes = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in image_axes] == ["LR", "HR", "RGB", "SR - HR"]
    assert len(fig.axes) == 4 + 3  # one colorbar per grey panel, none for RGB
    drawn = _image_arrays(fig)
    assert drawn[0].shape == (4, 4) and drawn[2].shape == (16, 16, 3)
    last = image_axes[-1].get_images()[0]
    assert last.get_clim() == (-1.0, 1.0) and last.get_cmap().name == "RdBu_r"


def test_show_panels_autoscale_and_uint8() -> None:
    fig = viz.show_panels(
        [torch.rand(8, 8) * 1000, torch.zeros(8, 8, dtype=torch.uint8)],
        ["raw MRI", "uint8"],
        suptitle="auto",
        value_range=[None, (0, 1)],
    )
    first, second = (ax.get_images()[0] for ax in fig.axes)
    assert first.get_clim()[1] > 500
    assert second.get_clim() == (0.0, 255.0)


def test_show_panels_rejects_mismatched_titles_and_batches() -> None:
    with pytest.raises(ValueError, match="2 images but 1 titles"):
        viz.show_panels([torch.rand(8, 8), torch.rand(8, 8)], ["only one"], suptitle="s")
    with pytest.raises(ValueError, match=r"single image.*\(4, 1, 8, 8\).*show_grid"):
        viz.show_panels([torch.rand(4, 1, 8, 8)], ["batch"], suptitle="s")
    with pytest.raises(ValueError, match="suptitle must be a non-empty string"):
        viz.show_panels([torch.rand(8, 8)], ["a"], suptitle="")
    with pytest.raises(ValueError, match=r"value_range=\(0, 1\)"):
        viz.show_panels([torch.rand(8, 8) * 255], ["a"], suptitle="s")


# ----------------------------------------------------------------------------- show_overlay


def test_show_overlay_colours_labels_and_names_classes() -> None:
    image = torch.rand(1, 12, 12)
    mask = torch.zeros(12, 12, dtype=torch.long)
    mask[2:5, 2:5] = 1
    mask[7:10, 7:10] = 2
    fig = viz.show_overlay(
        image, mask, title="Hippocampus labels", class_names=["background", "anterior", "posterior"]
    )
    ax = fig.axes[0]
    assert ax.get_title() == "Hippocampus labels"
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["1: anterior", "2: posterior"]
    grey, overlay = _image_arrays(fig)
    assert grey.shape == (12, 12) and overlay.shape == (12, 12, 4)
    assert overlay[0, 0, 3] == 0.0  # background is transparent
    assert overlay[3, 3, 3] == pytest.approx(0.4) and overlay[8, 8, 3] == pytest.approx(0.4)
    assert not np.allclose(overlay[3, 3, :3], overlay[8, 8, :3])  # different classes, different colours


def test_show_overlay_rejects_unnamed_labels_and_wrong_shapes() -> None:
    mask = torch.tensor([[0, 1], [2, 2]])
    with pytest.raises(ValueError, match=r"label 2 but class_names has 2 names.*background"):
        viz.show_overlay(torch.rand(2, 2), mask, title="t", class_names=["grey matter", "white matter"])
    with pytest.raises(ValueError, match=r"image's shape \(2, 2\).*\(3, 3\)"):
        viz.show_overlay(
            torch.rand(2, 2), torch.zeros(3, 3, dtype=torch.long), title="t", class_names=["bg", "a"]
        )
    with pytest.raises(ValueError, match="fractional"):
        viz.show_overlay(torch.rand(2, 2), torch.full((2, 2), 0.5), title="t", class_names=["bg", "a"])


# ----------------------------------------------------------------------------- plot_curves


def test_plot_curves_labels_legend_and_reference_lines() -> None:
    fig = viz.plot_curves(
        {"discriminator": [1.5, 1.4, 1.39], "generator": torch.tensor([0.9, 0.8, 0.7, 0.69])},
        title="GAN losses",
        xlabel="step",
        ylabel="loss (nats)",
        reference_lines={"ln 4": math.log(4), "ln 2": math.log(2)},
    )
    ax = fig.axes[0]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("GAN losses", "step", "loss (nats)")
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["discriminator", "generator", "ln 4 = 1.386", "ln 2 = 0.693"]
    lines = ax.get_lines()
    assert list(lines[1].get_xdata()) == [0, 1, 2, 3]
    assert list(lines[2].get_ydata()) == [math.log(4)] * 2


def test_plot_curves_accepts_x_y_pairs_and_rejects_bad_input() -> None:
    fig = viz.plot_curves(
        {"FID": ([1, 5, 10], [80.0, 40.0, 30.0])}, title="FID", xlabel="epoch", ylabel="FID"
    )
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [1, 5, 10]
    with pytest.raises(ValueError, match="non-empty dict"):
        viz.plot_curves({}, title="t", xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="'loss' must be a non-empty 1-D"):
        viz.plot_curves({"loss": []}, title="t", xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="xlabel"):
        viz.plot_curves({"loss": [1.0]}, title="t", xlabel="", ylabel="y")


# ----------------------------------------------------------------------------- show_volume_slices


def test_show_volume_slices_even_interior_slices() -> None:
    volume = torch.arange(20 * 6 * 5, dtype=torch.float32).reshape(20, 6, 5)  # (D, H, W), raw units
    fig = viz.show_volume_slices(volume, title="MNI152 T1", n_slices=4)
    assert fig.get_suptitle() == "MNI152 T1"
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["slice 4", "slice 8", "slice 11", "slice 15"]
    drawn = _image_arrays(fig)
    np.testing.assert_array_equal(drawn[0], volume[4].numpy())
    assert {image.get_clim() for ax in fig.axes for image in ax.get_images()} == {(0.0, 599.0)}  # one scale


def test_show_volume_slices_other_axis_and_bad_input() -> None:
    fig = viz.show_volume_slices(
        np.random.rand(1, 4, 9, 5), title="coronal", n_slices=20, axis=1, value_range=(0, 1)
    )
    assert [ax.get_title() for ax in fig.axes] == [f"slice {k}" for k in range(9)]
    assert _image_arrays(fig)[0].shape == (4, 5)
    with pytest.raises(ValueError, match=r"3-D array \(D, H, W\).*\(8, 8\)"):
        viz.show_volume_slices(torch.rand(8, 8), title="flat")
    with pytest.raises(ValueError, match="axis must be 0, 1 or 2"):
        viz.show_volume_slices(torch.rand(4, 4, 4), title="v", axis=3)


def test_screen_orientation_follows_rotate_up_of_a_ras_volume():
    import numpy as np

    from course_utils.data.slicing import rotate_up, screen_orientation

    volume = np.zeros((4, 5, 6))  # RAS: +x right, +y anterior, +z superior
    volume[3, 2, 3] = 1  # a voxel at the patient's far right, in an axial slice (z = 3)
    axial = rotate_up(volume[:, :, 3])
    assert np.argwhere(axial == 1)[0][1] == axial.shape[1] - 1 and screen_orientation(2)["right"] == "R"
    volume[:] = 0
    volume[1, 4, 3] = 1  # most anterior: at the top of the axial slice
    assert np.argwhere(rotate_up(volume[:, :, 3]) == 1)[0][0] == 0 and screen_orientation(2)["top"] == "A"
    volume[:] = 0
    volume[2, 4, 1] = 1  # sagittal slice x = 2: anterior goes right
    sagittal = rotate_up(volume[2])
    assert np.argwhere(sagittal == 1)[0][1] == sagittal.shape[1] - 1 and screen_orientation(0)["right"] == "A"


def test_mark_orientation_writes_the_letters():
    import matplotlib.pyplot as plt

    from course_utils.viz import mark_orientation

    fig, ax = plt.subplots()
    mark_orientation(ax, {"left": "L", "right": "R", "top": "A", "bottom": "P"})
    assert sorted(t.get_text() for t in ax.texts) == ["A", "L", "P", "R"]
    plt.close(fig)
