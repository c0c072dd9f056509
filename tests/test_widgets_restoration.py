"""Comparison slider and noise-level explorer (notebooks 05 and 06): the wipe maths and the headless figures."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from course_utils.widgets import comparison_slider, noise_level_explorer, wipe_image


def test_wipe_image_takes_columns_from_each_side():
    left, right = np.zeros((4, 10)), np.ones((4, 10))
    view = wipe_image(left, right, 0.3)
    assert (view[:, :3] == 0).all() and (view[:, 3:] == 1).all()
    assert (wipe_image(left, right, 0.0) == 1).all() and (wipe_image(left, right, 1.0) == 0).all()
    with pytest.raises(ValueError, match="one shape"):
        wipe_image(left, np.ones((4, 9)), 0.5)
    with pytest.raises(ValueError, match="position must lie in"):
        wipe_image(left, right, 1.5)


def test_headless_comparison_slider_is_a_titled_figure():
    images = {"ground truth": np.zeros((16, 16)), "bicubic": np.full((16, 16), 0.5), "SRGAN": np.ones((16, 16))}
    fig = comparison_slider(images, title="Wipe")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and fig._suptitle.get_text() == "Wipe"
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    with pytest.raises(ValueError, match="at least 2"):
        comparison_slider({"only": np.zeros((4, 4))}, title="x")


def test_headless_noise_level_explorer_has_a_row_per_level():
    panels = {"noisy": np.zeros((8, 8)), "GAN": np.ones((8, 8)), "clean": np.ones((8, 8))}
    fig = noise_level_explorer({"sigma=0.05": panels, "sigma=0.1": panels}, title="Levels")
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    with pytest.raises(ValueError, match="non-empty dict"):
        noise_level_explorer({}, title="x")
