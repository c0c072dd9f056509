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
