"""course_utils.widgets: the pure loss maths, the headless switch and the static fallback figure."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from course_utils import widgets  # noqa: E402
from course_utils.widgets import gan_gradients, gan_losses, is_headless, loss_playground  # noqa: E402


def test_worked_example_in_nats() -> None:
    # The source article's example: D(x) = 0.1, D(G(z)) = 0.9.
    losses = gan_losses(0.1, 0.9)
    assert losses["unit"] == "nats"
    assert losses["d_loss_real"] == pytest.approx(2.302585, abs=1e-6)  # -ln 0.1
    assert losses["d_loss_fake"] == pytest.approx(2.302585, abs=1e-6)  # -ln(1 - 0.9)
    assert losses["d_loss"] == pytest.approx(4.605170, abs=1e-6)  # both terms, not the article's 2.3
    assert losses["g_loss_non_saturating"] == pytest.approx(0.105361, abs=1e-6)  # -ln 0.9
    assert losses["g_loss_saturating"] == pytest.approx(-2.302585, abs=1e-6)  # ln(1 - 0.9)
    assert losses["value"] == pytest.approx(-4.605170, abs=1e-6)


def test_worked_example_in_bits() -> None:
    losses = gan_losses(0.1, 0.9, base=2)
    assert losses["unit"] == "bits"
    assert losses["g_loss_non_saturating"] == pytest.approx(0.152003, abs=1e-6)  # the article's "0.15"
    assert losses["d_loss"] == pytest.approx(6.643856, abs=1e-6)  # 2 * log2(10)


def test_bits_are_nats_over_ln2() -> None:
    nats = gan_losses(0.3, 0.6)
    bits = gan_losses(0.3, 0.6, base=2.0)
    for key in ("d_loss", "g_loss_saturating", "g_loss_non_saturating"):
        assert bits[key] == pytest.approx(nats[key] / math.log(2))


def test_equilibrium_values() -> None:
    # D = 1/2 everywhere: L_D = ln 4 = 2 ln 2, non-saturating L_G = ln 2.
    losses = gan_losses(0.5, 0.5)
    assert losses["d_loss"] == pytest.approx(math.log(4))
    assert losses["g_loss_non_saturating"] == pytest.approx(math.log(2))


def test_arrays_broadcast() -> None:
    grid = np.array([0.1, 0.5, 0.9])
    losses = gan_losses(grid, 0.5)
    assert isinstance(losses["d_loss"], np.ndarray) and losses["d_loss"].shape == (3,)
    np.testing.assert_allclose(losses["d_loss_real"], -np.log(grid))
    assert isinstance(gan_losses(0.5, 0.5)["d_loss"], float)


@pytest.mark.parametrize("d_real, d_fake", [(0.1, 0.9), (0.8, 0.3), (0.5, 0.01), (0.97, 0.5)])
@pytest.mark.parametrize("base", [math.e, 2.0])
def test_gradients_match_autograd(d_real: float, d_fake: float, base: float) -> None:
    ln_base = math.log(base)
    probs = torch.tensor([d_real, d_fake], dtype=torch.float64, requires_grad=True)
    logits = torch.logit(torch.tensor([d_real, d_fake], dtype=torch.float64)).requires_grad_(True)
    expected = gan_gradients(d_real, d_fake, base)

    def losses_of(real, fake):
        return {
            "d": (-torch.log(real) - torch.log1p(-fake)) / ln_base,
            "sat": torch.log1p(-fake) / ln_base,
            "ns": -torch.log(fake) / ln_base,
        }

    by_prob = losses_of(probs[0], probs[1])
    by_logit = losses_of(torch.sigmoid(logits[0]), torch.sigmoid(logits[1]))
    d_prob = torch.autograd.grad(by_prob["d"], probs, retain_graph=True)[0]
    d_logit = torch.autograd.grad(by_logit["d"], logits, retain_graph=True)[0]
    assert expected["d_loss_wrt_d_real"] == pytest.approx(d_prob[0].item())
    assert expected["d_loss_wrt_d_fake"] == pytest.approx(d_prob[1].item())
    assert expected["d_loss_wrt_real_logit"] == pytest.approx(d_logit[0].item())
    assert expected["d_loss_wrt_fake_logit"] == pytest.approx(d_logit[1].item())
    for name, key in (("sat", "g_sat"), ("ns", "g_ns")):
        g_prob = torch.autograd.grad(by_prob[name], probs, retain_graph=True)[0]
        g_logit = torch.autograd.grad(by_logit[name], logits, retain_graph=True)[0]
        assert expected[f"{key}_wrt_d_fake"] == pytest.approx(g_prob[1].item())
        assert expected[f"{key}_wrt_fake_logit"] == pytest.approx(g_logit[1].item())


def test_saturating_gradient_vanishes_when_discriminator_wins() -> None:
    grads = gan_gradients(0.99, 0.01)
    assert grads["g_sat_wrt_fake_logit"] == pytest.approx(-0.01)
    assert grads["g_ns_wrt_fake_logit"] == pytest.approx(-0.99)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5, float("nan"), float("inf")])
def test_probabilities_outside_open_interval_are_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match=r"d_real \(D\(x\)\) must lie strictly between 0 and 1"):
        gan_losses(bad, 0.5)
    with pytest.raises(ValueError, match=r"d_fake \(D\(G\(z\)\)\) must lie strictly between 0 and 1"):
        gan_gradients(0.5, bad)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        loss_playground(d_real=0.5, d_fake=bad)


def test_array_with_one_bad_entry_is_rejected() -> None:
    with pytest.raises(ValueError, match="got 1.0"):
        gan_losses(np.array([0.2, 1.0]), 0.5)


@pytest.mark.parametrize("base", [1.0, 0.0, -2.0])
def test_bad_base_is_rejected(base: float) -> None:
    with pytest.raises(ValueError, match="base must be a positive number other than 1"):
        gan_losses(0.5, 0.5, base=base)


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_headless_honours_env_var(monkeypatch, value: str, expected: bool) -> None:
    monkeypatch.setattr(widgets, "_inside_ipython_kernel", lambda: True)  # pretend a frontend is attached
    monkeypatch.setenv("COURSE_HEADLESS", value)
    assert is_headless() is expected


def test_headless_without_kernel(monkeypatch) -> None:
    monkeypatch.delenv("COURSE_HEADLESS", raising=False)
    assert is_headless() is True  # pytest is not an IPython kernel


def test_headless_playground_returns_labelled_figure(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    fig = loss_playground()
    assert isinstance(fig, Figure)
    assert fig.get_suptitle()
    assert "4.605" in fig.get_suptitle() and "0.105" in fig.get_suptitle()
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    fig.canvas.draw()  # renders without a display


def test_headless_playground_in_bits(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    fig = loss_playground(d_real=0.1, d_fake=0.9, base=2)
    assert "bits" in fig.get_suptitle() and "0.152" in fig.get_suptitle()


# ----------------------------------------------------------------------------- notebook 02: DCGAN explorers


def _tiny_generator(latent_dim: int = 8):
    from course_utils.models.dcgan import DCGANGenerator

    torch.manual_seed(0)
    return DCGANGenerator(latent_dim=latent_dim, image_size=28, channels=1, base_width=4)


def _fake_snapshots(epochs=(0, 1, 2, 3, 4, 5, 6, 7, 8)) -> dict[int, torch.Tensor]:
    rng = torch.Generator().manual_seed(0)
    return {e: torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8, generator=rng) for e in epochs}


def test_evenly_spaced_keeps_first_and_last() -> None:
    assert widgets.evenly_spaced([0, 1, 2, 3, 4, 5, 6, 7, 8], 5) == [0, 2, 4, 6, 8]
    assert widgets.evenly_spaced([0, 5, 10], 5) == [0, 5, 10]
    assert widgets.evenly_spaced([0, 1, 2], 1) == [2]


def test_headless_snapshot_replay_is_a_titled_row_of_grids(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    fig = widgets.snapshot_replay(_fake_snapshots(), title="DCGAN samples over training")
    assert isinstance(fig, Figure)
    assert fig.get_suptitle() == "DCGAN samples over training"
    assert [ax.get_title() for ax in fig.axes] == ["before training", "epoch 2", "epoch 4", "epoch 6", "epoch 8"]
    fig.canvas.draw()


def test_snapshot_replay_accepts_float_snapshots_and_explicit_epochs() -> None:
    snapshots = {e: torch.rand(4, 1, 28, 28) for e in (1, 2, 3)}
    fig = widgets.snapshot_replay_figure(snapshots, title="float snapshots", epochs=[1, 3])
    assert [ax.get_title() for ax in fig.axes] == ["epoch 1", "epoch 3"]


@pytest.mark.parametrize("bad", [{}, {1: torch.zeros(28, 28)}, [torch.zeros(1, 1, 28, 28)]])
def test_snapshot_replay_rejects_malformed_snapshots(monkeypatch, bad) -> None:
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    with pytest.raises(ValueError, match="snapshots"):
        widgets.snapshot_replay(bad, title="x")


def test_snapshot_replay_needs_a_title() -> None:
    with pytest.raises(ValueError, match="title"):
        widgets.snapshot_replay(_fake_snapshots(), title="")


def test_snapshot_replay_rejects_unknown_epochs() -> None:
    with pytest.raises(ValueError, match="no snapshot"):
        widgets.snapshot_replay_figure(_fake_snapshots((0, 1)), title="x", epochs=[5])


def test_slerp_endpoints_norms_and_parallel_fallback() -> None:
    z_a, z_b = widgets.latent_vector(16, 0), widgets.latent_vector(16, 1)
    path = widgets.slerp(z_a, z_b, torch.linspace(0, 1, 5))
    assert path.shape == (5, 16)
    torch.testing.assert_close(path[0], z_a)
    torch.testing.assert_close(path[-1], z_b)
    # the norm is blended linearly along the path (the straight line would dip in the middle)
    expected = torch.lerp(z_a.norm(), z_b.norm(), torch.linspace(0, 1, 5))
    torch.testing.assert_close(path.norm(dim=1), expected)
    assert path[2].norm() > ((z_a + z_b) / 2).norm()
    parallel = widgets.slerp(z_a, 2 * z_a, torch.tensor([0.5]))
    torch.testing.assert_close(parallel[0], 1.5 * z_a)


def test_slerp_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        widgets.slerp(torch.zeros(4), torch.zeros(5), [0.5])


def test_latent_vectors_and_directions_are_reproducible() -> None:
    assert torch.equal(widgets.latent_vector(10, 3), widgets.latent_vector(10, 3))
    directions = widgets.latent_directions(10, 3, seed=1)
    assert directions.shape == (3, 10)
    torch.testing.assert_close(directions @ directions.T, torch.eye(3), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="count"):
        widgets.latent_directions(4, 5)


def test_headless_latent_explorer_is_a_titled_strip(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    generator = _tiny_generator()
    generator.train()
    fig = widgets.latent_explorer(generator, latent_dim=8, device="cpu", seed_a=0, seed_b=1, num_steps=6)
    assert isinstance(fig, Figure)
    assert fig.get_suptitle()
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 2 and "seed 0" in titles[0] and "seed 1" in titles[0]
    assert generator.training  # the explorer restores the generator's mode
    fig.canvas.draw()


def test_latent_explorer_rejects_bad_latent_dim(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    with pytest.raises(ValueError, match="latent_dim"):
        widgets.latent_explorer(_tiny_generator(), latent_dim=0, device="cpu")


def test_live_widgets_build_without_a_frontend(monkeypatch) -> None:
    pytest.importorskip("ipywidgets")
    monkeypatch.setattr(widgets, "is_headless", lambda: False)
    box = widgets.snapshot_replay(_fake_snapshots((0, 1, 2)), title="live replay")
    assert type(box).__name__ == "VBox"
    explorer = widgets.latent_explorer(_tiny_generator(), latent_dim=8, device="cpu", num_directions=2)
    assert type(explorer).__name__ == "HBox"


def _segmentation_volumes():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(6, 12, 10), dtype=np.uint8)
    truth = np.zeros((6, 12, 10), dtype=np.uint8)
    truth[2:5, 3:7, 2:6] = 1
    truth[2:5, 7:9, 2:6] = 2
    return image, truth, {"supervised": truth.copy(), "with critic": np.zeros_like(truth)}


def test_headless_segmentation_explorer_shows_labelled_slices(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    image, truth, predictions = _segmentation_volumes()
    fig = widgets.segmentation_explorer(image, truth, predictions, ("background", "anterior", "posterior"),
                                        title="case 1", dice={"supervised": 1.0, "with critic": 0.0})
    assert fig._suptitle.get_text() == "case 1"
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 3 * 4  # three slices x (image, truth, two predictions)
    assert all("slice" in t for t in titles[::4])
    assert [int(t.split()[-1]) for t in titles[::4]] == [2, 3, 4], "the slices that contain hippocampus"
    assert "3-D Dice 1.000" in titles[2] and "3-D Dice 0.000" in titles[3]


def test_segmentation_explorer_rejects_mismatched_volumes(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    image, truth, predictions = _segmentation_volumes()
    with pytest.raises(ValueError, match="one shape"):
        widgets.segmentation_explorer(image, truth[:, :5], predictions, ("bg", "a", "p"), title="t")
    with pytest.raises(ValueError, match="predictions is empty"):
        widgets.segmentation_explorer(image, truth, {}, ("bg", "a", "p"), title="t")


def test_interactive_widgets_redraw_when_a_control_changes(monkeypatch) -> None:
    import ipywidgets

    monkeypatch.setattr(widgets, "is_headless", lambda: False)  # as in a notebook with a frontend
    drawn = []
    monkeypatch.setattr("IPython.display.display", lambda figure: drawn.append(figure))
    image, truth, predictions = _segmentation_volumes()
    view = widgets.segmentation_explorer(image, truth, predictions, ("background", "anterior", "posterior"), title="t")
    assert isinstance(view, ipywidgets.VBox) and len(drawn) == 1
    slider = view.children[0]
    slider.value = 2
    assert len(drawn) == 2 and "slice 2" in drawn[-1].axes[0].get_title()
    replay = widgets.snapshot_replay({0: torch.zeros(4, 1, 8, 8), 1: torch.ones(4, 1, 8, 8)}, title="r")
    assert isinstance(replay, ipywidgets.VBox) and len(drawn) == 3
