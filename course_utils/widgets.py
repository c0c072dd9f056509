"""Interactive explorers (ipywidgets) with a static matplotlib fallback when no frontend is attached.

The maths lives in small pure functions (`gan_losses`, `gan_gradients`) that the widgets call and the
tests check. Each explorer returns an ipywidgets box inside a Jupyter kernel, and a matplotlib
`Figure` in headless mode (`COURSE_HEADLESS` set, as the course runner and the tests do, or no kernel).

Introduced in notebook 01 (`loss_playground`).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

HEADLESS_ENV = "COURSE_HEADLESS"
DEFAULT_D_REAL = 0.1  # the source article's worked example: D(x) = 0.1 ...
DEFAULT_D_FAKE = 0.9  # ... and D(G(z)) = 0.9
_BASES: dict[str, float] = {"nats": math.e, "bits": 2.0}
_UNITS: dict[float, str] = {math.e: "nats", 2.0: "bits", 10.0: "bans"}


def is_headless() -> bool:
    """True when `COURSE_HEADLESS` is set (non-empty, not "0") or when no IPython kernel is running."""
    value = os.environ.get(HEADLESS_ENV, "").strip()
    if value and value != "0":
        return True
    return not _inside_ipython_kernel()


def _inside_ipython_kernel() -> bool:
    """True inside a Jupyter/IPython kernel (a frontend can show widgets), False in scripts and plain IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def log_unit(base: float) -> str:
    """The name of the information unit of logarithms in `base` ("nats", "bits", or "log_b units")."""
    for known, name in _UNITS.items():
        if math.isclose(base, known):
            return name
    return f"log_{base:g} units"


def _check_base(base: float) -> float:
    """Validate a logarithm base: a finite number > 0 and != 1."""
    base = float(base)
    if not math.isfinite(base) or base <= 0 or math.isclose(base, 1.0):
        raise ValueError(f"base must be a positive number other than 1 (e.g. math.e for nats, 2 for bits); got {base}")
    return base


def _check_probability(name: str, value: Any) -> np.ndarray:
    """Return `value` as a float array, raising ValueError unless every entry lies strictly in (0, 1)."""
    array = np.asarray(value, dtype=float)
    if array.size == 0:
        raise ValueError(f"{name} is empty; pass a discriminator output between 0 and 1")
    bad = ~np.isfinite(array) | (array <= 0.0) | (array >= 1.0)
    if np.any(bad):
        example = float(array[bad].flat[0])
        raise ValueError(
            f"{name} must lie strictly between 0 and 1 (it is a discriminator probability), got {example!r}. "
            "At exactly 0 or 1 the log-losses are infinite; a sigmoid output never reaches them."
        )
    return array


def _out(array: np.ndarray) -> float | np.ndarray:
    """A Python float for 0-d results, the array otherwise."""
    return float(array) if array.ndim == 0 else array


def gan_losses(d_real: Any, d_fake: Any, base: float = math.e) -> dict[str, Any]:
    """The GAN losses for discriminator outputs D(x)=`d_real`, D(G(z))=`d_fake`, in units of log `base`.

    Keys: `d_loss_real` = -log D(x), `d_loss_fake` = -log(1 - D(G(z))), `d_loss` (their sum, the
    two-term discriminator loss), `g_loss_saturating` = log(1 - D(G(z))) (the minimax generator loss),
    `g_loss_non_saturating` = -log D(G(z)), `value` = V = log D(x) + log(1 - D(G(z))) = -d_loss,
    and `unit`. Scalars give floats, arrays give arrays (broadcast together).
    """
    base = _check_base(base)
    real = _check_probability("d_real (D(x))", d_real)
    fake = _check_probability("d_fake (D(G(z)))", d_fake)
    ln_base = math.log(base)
    d_loss_real = -np.log(real) / ln_base
    d_loss_fake = -np.log1p(-fake) / ln_base
    d_loss = d_loss_real + d_loss_fake
    return {
        "d_loss_real": _out(d_loss_real),
        "d_loss_fake": _out(d_loss_fake),
        "d_loss": _out(d_loss),
        "g_loss_saturating": _out(np.log1p(-fake) / ln_base),
        "g_loss_non_saturating": _out(-np.log(fake) / ln_base),
        "value": _out(-d_loss),
        "unit": log_unit(base),
    }


def gan_gradients(d_real: Any, d_fake: Any, base: float = math.e) -> dict[str, Any]:
    """Derivatives of the losses in `gan_losses`, w.r.t. the probabilities and w.r.t. the logits.

    With D = sigmoid(a), dD/da = D(1 - D). Keys (all divided by ln `base`):
    `d_loss_wrt_d_real` = -1/D(x), `d_loss_wrt_d_fake` = 1/(1 - D(G(z))),
    `d_loss_wrt_real_logit` = D(x) - 1, `d_loss_wrt_fake_logit` = D(G(z)),
    `g_sat_wrt_d_fake` = -1/(1 - D(G(z))), `g_sat_wrt_fake_logit` = -D(G(z))  (vanishes as D(G(z)) -> 0),
    `g_ns_wrt_d_fake` = -1/D(G(z)), `g_ns_wrt_fake_logit` = D(G(z)) - 1  (about -1 when D(G(z)) -> 0).
    """
    base = _check_base(base)
    real = _check_probability("d_real (D(x))", d_real)
    fake = _check_probability("d_fake (D(G(z)))", d_fake)
    ln_base = math.log(base)
    grads = {
        "d_loss_wrt_d_real": -1.0 / real,
        "d_loss_wrt_d_fake": 1.0 / (1.0 - fake),
        "d_loss_wrt_real_logit": real - 1.0,
        "d_loss_wrt_fake_logit": fake,
        "g_sat_wrt_d_fake": -1.0 / (1.0 - fake),
        "g_sat_wrt_fake_logit": -fake,
        "g_ns_wrt_d_fake": -1.0 / fake,
        "g_ns_wrt_fake_logit": fake - 1.0,
    }
    result: dict[str, Any] = {key: _out(value / ln_base) for key, value in grads.items()}
    result["unit"] = log_unit(base)
    return result


def _summary_lines(d_real: float, d_fake: float, base: float) -> list[str]:
    """Human-readable lines with the losses and gradients at one (D(x), D(G(z))) point."""
    losses = gan_losses(d_real, d_fake, base)
    grads = gan_gradients(d_real, d_fake, base)
    unit = losses["unit"]
    return [
        f"D(x) = {d_real:.3f}, D(G(z)) = {d_fake:.3f}   (logs in base {base:.4g}: {unit})",
        f"L_D = -log D(x) - log(1 - D(G(z))) = {losses['d_loss_real']:.3f} + {losses['d_loss_fake']:.3f}"
        f" = {losses['d_loss']:.3f} {unit}",
        f"L_G saturating = log(1 - D(G(z))) = {losses['g_loss_saturating']:.3f} {unit};"
        f" dL/dlogit = {grads['g_sat_wrt_fake_logit']:.3f}, dL/dD(G(z)) = {grads['g_sat_wrt_d_fake']:.3f}",
        f"L_G non-saturating = -log D(G(z)) = {losses['g_loss_non_saturating']:.3f} {unit};"
        f" dL/dlogit = {grads['g_ns_wrt_fake_logit']:.3f}, dL/dD(G(z)) = {grads['g_ns_wrt_d_fake']:.3f}",
        f"L_D gradients w.r.t. logits: real {grads['d_loss_wrt_real_logit']:.3f},"
        f" fake {grads['d_loss_wrt_fake_logit']:.3f}",
    ]


def loss_playground_figure(d_real: float = DEFAULT_D_REAL, d_fake: float = DEFAULT_D_FAKE, base: float = math.e):
    """A static three-panel figure: L_D terms, generator losses and their logit gradients over D in (0, 1).

    Markers sit at (`d_real`, `d_fake`). Built without pyplot, so it is shown once when returned in Jupyter.
    """
    from matplotlib.figure import Figure

    base = _check_base(base)
    losses = gan_losses(d_real, d_fake, base)
    grads = gan_gradients(d_real, d_fake, base)
    unit = losses["unit"]
    grid = np.linspace(0.005, 0.995, 397)
    curves = gan_losses(grid, grid, base)
    slopes = gan_gradients(grid, grid, base)

    fig = Figure(figsize=(13, 4.2), layout="constrained")
    ax_d, ax_g, ax_grad = fig.subplots(1, 3)

    ax_d.plot(grid, curves["d_loss_real"], label=r"real term $-\log D(x)$ vs $D(x)$")
    ax_d.plot(grid, curves["d_loss_fake"], label=r"fake term $-\log(1-D(G(z)))$ vs $D(G(z))$")
    ax_d.plot([d_real], [losses["d_loss_real"]], "o", color="C0")
    ax_d.plot([d_fake], [losses["d_loss_fake"]], "s", color="C1")
    ax_d.set(title=f"Discriminator loss terms (sum = {losses['d_loss']:.3f} {unit})",
             xlabel="discriminator output D", ylabel=f"loss ({unit})")
    ax_d.legend(fontsize=8)

    ax_g.plot(grid, curves["g_loss_saturating"], color="C3", label=r"saturating $\log(1-D(G(z)))$")
    ax_g.plot(grid, curves["g_loss_non_saturating"], color="C2", label=r"non-saturating $-\log D(G(z))$")
    ax_g.plot([d_fake], [losses["g_loss_saturating"]], "o", color="C3")
    ax_g.plot([d_fake], [losses["g_loss_non_saturating"]], "o", color="C2")
    ax_g.set(title="Generator losses", xlabel="D(G(z))", ylabel=f"loss ({unit})")
    ax_g.legend(fontsize=8)

    ax_grad.plot(grid, slopes["g_sat_wrt_fake_logit"], color="C3", label="saturating")
    ax_grad.plot(grid, slopes["g_ns_wrt_fake_logit"], color="C2", label="non-saturating")
    ax_grad.plot([d_fake], [grads["g_sat_wrt_fake_logit"]], "o", color="C3")
    ax_grad.plot([d_fake], [grads["g_ns_wrt_fake_logit"]], "o", color="C2")
    ax_grad.axhline(0.0, color="grey", linewidth=0.8)
    ax_grad.set(title="Generator gradient w.r.t. the fake logit", xlabel="D(G(z))",
                ylabel=f"dL_G / d logit ({unit})")
    ax_grad.legend(fontsize=8)

    fig.suptitle(
        f"GAN loss playground at D(x) = {d_real:.2f}, D(G(z)) = {d_fake:.2f}: "
        f"L_D = {losses['d_loss']:.3f}, L_G non-saturating = {losses['g_loss_non_saturating']:.3f} {unit}"
    )
    return fig


def loss_playground(d_real: float = DEFAULT_D_REAL, d_fake: float = DEFAULT_D_FAKE, base: float = math.e):
    """Sliders for D(x) and D(G(z)) with live losses, gradients and plot; a static Figure when headless."""
    _check_probability("d_real (D(x))", d_real)
    _check_probability("d_fake (D(G(z)))", d_fake)
    base = _check_base(base)
    if is_headless():
        return loss_playground_figure(d_real, d_fake, base)

    import ipywidgets as widgets
    from IPython.display import display

    slider_options = {"min": 0.01, "max": 0.99, "step": 0.01, "continuous_update": False, "readout_format": ".2f"}
    real_slider = widgets.FloatSlider(value=d_real, description="D(x)", **slider_options)
    fake_slider = widgets.FloatSlider(value=d_fake, description="D(G(z))", **slider_options)
    unit_choice = widgets.ToggleButtons(
        options=list(_BASES), value=log_unit(base) if log_unit(base) in _BASES else "nats", description="units"
    )
    numbers = widgets.HTML()
    plot = widgets.Output()

    def redraw(_change=None) -> None:
        """Recompute the numbers and the figure for the current slider values."""
        chosen_base = _BASES[unit_choice.value]
        lines = _summary_lines(real_slider.value, fake_slider.value, chosen_base)
        numbers.value = "<pre>" + "\n".join(lines) + "</pre>"
        with plot:
            plot.clear_output(wait=True)
            display(loss_playground_figure(real_slider.value, fake_slider.value, chosen_base))

    for control in (real_slider, fake_slider, unit_choice):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([real_slider, fake_slider, unit_choice]), numbers, plot])
