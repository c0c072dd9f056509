"""Interactive explorers (ipywidgets) with a static matplotlib fallback when no frontend is attached.

The maths lives in small pure functions (`gan_losses`, `gan_gradients`) that the widgets call and the
tests check. Each explorer returns an ipywidgets box inside a Jupyter kernel, and a matplotlib
`Figure` in headless mode (`COURSE_HEADLESS` set, as the course runner and the tests do, or no kernel).

Introduced in notebook 01 (`loss_playground`); notebook 02 adds `snapshot_replay` and `latent_explorer`.
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


def _live_figure(draw: Any, controls: Any) -> Any:
    """An ipywidgets Output showing the figure `draw()` returns, redrawn whenever a control in `controls` changes."""
    import ipywidgets as widgets
    from IPython.display import display

    plot = widgets.Output()

    def redraw(_change=None) -> None:
        """Replace the shown figure with a fresh one."""
        figure = draw()
        with plot:
            plot.clear_output(wait=True)
            display(figure)

    for control in controls:
        control.observe(redraw, names="value")
    redraw()
    return plot


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

    slider_options = {"min": 0.01, "max": 0.99, "step": 0.01, "continuous_update": False, "readout_format": ".2f"}
    real_slider = widgets.FloatSlider(value=d_real, description="D(x)", **slider_options)
    fake_slider = widgets.FloatSlider(value=d_fake, description="D(G(z))", **slider_options)
    unit_choice = widgets.ToggleButtons(
        options=list(_BASES), value=log_unit(base) if log_unit(base) in _BASES else "nats", description="units"
    )
    numbers = widgets.HTML()

    def draw():
        """Recompute the numbers and the figure for the current slider values."""
        chosen_base = _BASES[unit_choice.value]
        lines = _summary_lines(real_slider.value, fake_slider.value, chosen_base)
        numbers.value = "<pre>" + "\n".join(lines) + "</pre>"
        return loss_playground_figure(real_slider.value, fake_slider.value, chosen_base)

    plot = _live_figure(draw, (real_slider, fake_slider, unit_choice))
    return widgets.VBox([widgets.HBox([real_slider, fake_slider, unit_choice]), numbers, plot])


# ----------------------------------------------------------------------------- notebook 02: DCGAN explorers


def _snapshot_unit(images: Any) -> Any:
    """A snapshot (uint8 0..255 or float [0, 1]) as a float CPU tensor in [0, 1], `(K, C, H, W)`."""
    import torch

    tensor = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.as_tensor(images)
    if tensor.dtype == torch.uint8:
        return tensor.float() / 255.0
    return tensor.float().clamp(0.0, 1.0)


def _check_snapshots(snapshots: Any) -> list[int]:
    """The snapshot epochs in order; ValueError for an empty or malformed dict."""
    if not isinstance(snapshots, dict) or not snapshots:
        raise ValueError(
            "snapshots must be a non-empty dict {epoch: images (K, C, H, W)}, e.g. `result.snapshots` from "
            f"train_gan; got {type(snapshots).__name__} with {len(snapshots) if hasattr(snapshots, '__len__') else '?'} entries."
        )
    for epoch, images in snapshots.items():
        if isinstance(epoch, bool) or not isinstance(epoch, int) or getattr(images, "ndim", 0) != 4:
            raise ValueError(
                f"snapshots maps an epoch (int) to an image batch (K, C, H, W); entry {epoch!r} has "
                f"{type(images).__name__} of shape {tuple(getattr(images, 'shape', ()))}."
            )
    return sorted(snapshots)


def evenly_spaced(items: list[int], count: int) -> list[int]:
    """`count` items spread evenly over `items`, always with the first and the last (all if there are fewer)."""
    if count < 1:
        raise ValueError(f"count must be a positive integer; got {count!r}.")
    if len(items) <= count:
        return list(items)
    if count == 1:
        return [items[-1]]
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in sorted(set(picks.tolist()))]


def snapshot_replay_figure(snapshots: dict[int, Any], title: str, epochs: list[int] | None = None,
                           num_images: int = 16):
    """A static row of sample grids, one per epoch in `epochs` (default: up to 5 evenly spaced snapshots).

    Images are uint8 (0..255) or float in [0, 1], `(K, C, H, W)`; each grid shows the first `num_images`.
    """
    from matplotlib.figure import Figure

    from course_utils import viz

    viz.require_title(title)
    available = _check_snapshots(snapshots)
    chosen = evenly_spaced(available, 5) if epochs is None else list(epochs)
    missing = [e for e in chosen if e not in snapshots]
    if missing or not chosen:
        raise ValueError(f"epochs {missing or chosen} have no snapshot; available: {available}.")
    fig = Figure(figsize=(2.8 * len(chosen), 3.2), layout="constrained")
    axes = fig.subplots(1, len(chosen), squeeze=False)[0]
    for ax, epoch in zip(axes, chosen, strict=True):
        label = "before training" if epoch == 0 else f"epoch {epoch}"
        viz.show_grid(_snapshot_unit(snapshots[epoch])[:num_images], title=label, ax=ax)
    fig.suptitle(title)
    return fig


def snapshot_replay(snapshots: dict[int, Any], title: str, num_images: int = 36):
    """A slider (with a play button) over the epochs of `snapshots` showing that epoch's sample grid.

    `snapshots`: {epoch: images (K, C, H, W)} as in `TrainingResult.snapshots` (uint8, or float in [0, 1]).
    Headless: a static Figure with a row of grids at a few evenly spaced epochs. Introduced in notebook 02.
    """
    from course_utils import viz

    viz.require_title(title)
    epochs = _check_snapshots(snapshots)
    if is_headless():
        return snapshot_replay_figure(snapshots, title, num_images=min(num_images, 16))

    import ipywidgets as widgets
    from matplotlib.figure import Figure

    slider = widgets.SelectionSlider(options=[(str(e), e) for e in epochs], value=epochs[-1], description="epoch",
                                     continuous_update=True)
    play = widgets.Play(min=0, max=len(epochs) - 1, value=len(epochs) - 1, interval=400, description="play")
    widgets.jslink((play, "value"), (slider, "index"))

    def draw():
        """The grid of the selected epoch."""
        epoch = slider.value
        fig = Figure(figsize=(5.5, 5.8), layout="constrained")
        label = "before training" if epoch == 0 else f"epoch {epoch}"
        viz.show_grid(_snapshot_unit(snapshots[epoch])[:num_images], title=f"{title}: {label}", ax=fig.subplots())
        return fig

    plot = _live_figure(draw, (slider,))
    return widgets.VBox([widgets.HBox([play, slider]), plot])


def slerp(z_a: Any, z_b: Any, t: Any) -> Any:
    """Spherical interpolation between latent vectors `z_a`, `z_b` `(D,)` at fractions `t` `(T,)` → `(T, D)`.

    Follows the great circle between the two directions while blending their lengths linearly, so the
    path stays where Gaussian noise lives (a straight line passes through low-norm points that the
    generator never saw). Falls back to a straight line when the vectors are (nearly) parallel.
    Introduced in notebook 02.
    """
    import torch

    z_a, z_b = torch.as_tensor(z_a, dtype=torch.float32), torch.as_tensor(z_b, dtype=torch.float32)
    if z_a.shape != z_b.shape or z_a.dim() != 1:
        raise ValueError(f"z_a and z_b must be two latent vectors of the same shape (D,); got {tuple(z_a.shape)} "
                         f"and {tuple(z_b.shape)}.")
    t = torch.as_tensor(t, dtype=torch.float32).reshape(-1, 1)  # (T, 1)
    norm_a, norm_b = z_a.norm(), z_b.norm()
    cos = torch.dot(z_a / norm_a, z_b / norm_b).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if float(torch.sin(omega)) < 1e-6:  # (anti)parallel: no unique great circle
        return (1 - t) * z_a + t * z_b
    unit = (torch.sin((1 - t) * omega) * (z_a / norm_a) + torch.sin(t * omega) * (z_b / norm_b)) / torch.sin(omega)
    return unit * ((1 - t) * norm_a + t * norm_b)  # (T, D)


def latent_vector(latent_dim: int, seed: int) -> Any:
    """The standard-normal latent vector `(latent_dim,)` of `seed` (drawn on the CPU: the same on every device)."""
    import torch

    return torch.randn(latent_dim, generator=torch.Generator().manual_seed(int(seed)))


def latent_directions(latent_dim: int, count: int, seed: int = 0) -> Any:
    """`count` random orthonormal directions in latent space, `(count, latent_dim)` (QR of Gaussian noise)."""
    import torch

    if not 1 <= count <= latent_dim:
        raise ValueError(f"count must be between 1 and latent_dim={latent_dim}; got {count!r}.")
    noise = torch.randn(latent_dim, count, generator=torch.Generator().manual_seed(int(seed)))
    q, _ = torch.linalg.qr(noise)  # (latent_dim, count), orthonormal columns
    return q.T.contiguous()


def _generate(generator: Any, z: Any, device: Any) -> Any:
    """Images in [0, 1] (CPU) from latent vectors `(N, D)`, with the generator in eval mode (restored after)."""
    import torch

    from course_utils.inference import eval_mode

    with eval_mode(generator), torch.no_grad():
        images = generator(z.to(device))  # (N, C, H, W) in [-1, 1]
    return images.float().add(1.0).div(2.0).clamp(0.0, 1.0).cpu()


def latent_explorer_figure(generator: Any, latent_dim: int, device: Any, seed_a: int = 0, seed_b: int = 1,
                           num_steps: int = 8, direction_seed: int = 0, step_range: float = 6.0):
    """Static: an interpolation strip from seed A to seed B (slerp) and a walk along one latent direction from A."""
    import torch
    from matplotlib.figure import Figure

    from course_utils import viz

    z_a, z_b = latent_vector(latent_dim, seed_a), latent_vector(latent_dim, seed_b)
    fractions = torch.linspace(0.0, 1.0, num_steps)
    path = slerp(z_a, z_b, fractions)  # (num_steps, latent_dim)
    direction = latent_directions(latent_dim, 1, direction_seed)[0]  # (latent_dim,)
    offsets = torch.linspace(-step_range, step_range, num_steps)
    walk = z_a[None] + offsets[:, None] * direction[None]  # (num_steps, latent_dim)
    images = _generate(generator, torch.cat([path, walk]), device)  # (2 * num_steps, C, H, W)
    fig = Figure(figsize=(1.3 * num_steps + 0.5, 3.6), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    viz.show_grid(images[:num_steps], nrow=num_steps, ax=top,
                  title=f"interpolation (slerp) from seed {seed_a} (left) to seed {seed_b} (right)")
    viz.show_grid(images[num_steps:], nrow=num_steps, ax=bottom,
                  title=f"seed {seed_a} moved along latent direction {direction_seed}, "
                        f"from {-step_range:g} to {step_range:g}")
    fig.suptitle("Latent explorer (static view)")
    return fig


def latent_explorer(generator: Any, latent_dim: int, device: Any, seed_a: int = 0, seed_b: int = 1,
                    num_directions: int = 3, step_range: float = 6.0, num_steps: int = 8):
    """Explore a generator's latent space: blend seed A into seed B and move along random latent directions.

    Live: seed boxes, an A→B mix slider (slerp) and `num_directions` direction sliders in
    [-`step_range`, `step_range`], with the image redrawn on every change. Headless: a static Figure with an
    interpolation strip and a walk along one direction (`num_steps` images each). Introduced in notebook 02.
    """
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive integer (the generator's, e.g. 100); got {latent_dim!r}.")
    if is_headless():
        return latent_explorer_figure(generator, latent_dim, device, seed_a, seed_b, num_steps, 0, step_range)

    import ipywidgets as widgets
    import torch
    from matplotlib.figure import Figure

    from course_utils import viz

    directions = latent_directions(latent_dim, num_directions, seed=0)  # (num_directions, latent_dim)
    seed_a_box = widgets.BoundedIntText(value=seed_a, min=0, max=2**31 - 1, description="seed A")
    seed_b_box = widgets.BoundedIntText(value=seed_b, min=0, max=2**31 - 1, description="seed B")
    mix = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="A → B", continuous_update=False)
    sliders = [widgets.FloatSlider(value=0.0, min=-step_range, max=step_range, step=0.1,
                                   description=f"direction {i}", continuous_update=False)
               for i in range(num_directions)]
    reset = widgets.Button(description="reset directions")

    def draw():
        """The generated image for the current controls."""
        z_a, z_b = latent_vector(latent_dim, seed_a_box.value), latent_vector(latent_dim, seed_b_box.value)
        z = slerp(z_a, z_b, torch.tensor([mix.value]))[0]  # (latent_dim,)
        for slider, direction in zip(sliders, directions, strict=True):
            z = z + slider.value * direction
        image = _generate(generator, z[None], device)  # (1, C, H, W)
        fig = Figure(figsize=(3.6, 3.9), layout="constrained")
        moves = ", ".join(f"{s.value:+.1f}" for s in sliders)
        viz.show_grid(image, ax=fig.subplots(),
                      title=f"A={seed_a_box.value} → B={seed_b_box.value} at {mix.value:.2f}\ndirections: {moves}")
        return fig

    def on_reset(_button) -> None:
        """Put every direction slider back to 0."""
        for slider in sliders:
            slider.value = 0.0

    plot = _live_figure(draw, (seed_a_box, seed_b_box, mix, *sliders))
    reset.on_click(on_reset)
    return widgets.HBox([widgets.VBox([seed_a_box, seed_b_box, mix, *sliders, reset]), plot])


# ----------------------------------------------------------------------------- notebook 07: segmentation explorer


def _check_segmentation_volumes(image: Any, truth: Any, predictions: dict[str, Any]) -> None:
    """ValueError unless the image, the truth and every prediction are volumes of one shape."""
    import numpy as np

    shapes = {"image": np.shape(image), "truth": np.shape(truth)}
    shapes.update({f"prediction {name!r}": np.shape(volume) for name, volume in predictions.items()})
    if len(shapes["image"]) != 3 or len(set(shapes.values())) != 1:
        raise ValueError(f"image, truth and predictions must be volumes (D, H, W) of one shape; got {shapes}.")
    if not predictions:
        raise ValueError("predictions is empty; pass {name: predicted label volume}.")


def _segmentation_row(axes: Any, image: Any, truth: Any, predictions: dict[str, Any], index: int, axis: int,
                      class_names: tuple[str, ...], dice: dict[str, Any] | None) -> None:
    """One row of panels for slice `index`: the image, the truth overlay, each prediction's overlay."""
    import numpy as np

    from course_utils import viz

    plane = np.take(image, index, axis=axis)
    layers = {"ground truth": truth, **predictions}
    axes[0].imshow(plane, cmap="gray", interpolation="nearest")
    axes[0].set_title(f"image, slice {index}", fontsize=9)
    for ax, (name, volume) in zip(axes[1:], layers.items(), strict=True):
        ax.imshow(plane, cmap="gray", interpolation="nearest")
        ax.imshow(viz.overlay_rgba(np.take(volume, index, axis=axis), len(class_names)), interpolation="nearest")
        score = "" if dice is None or name not in dice else f"\n3-D Dice {dice[name]:.3f}"
        ax.set_title(f"{name}{score}", fontsize=9)
    for ax in axes:
        ax.axis("off")


def _segmentation_legend(fig: Any, class_names: tuple[str, ...]) -> None:
    """A legend of the foreground classes below the panels."""
    from matplotlib.patches import Patch

    from course_utils import viz

    handles = [Patch(facecolor=viz.label_colour(k), label=f"{k}: {class_names[k]}") for k in range(1, len(class_names))]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)


def segmentation_explorer_figure(image: Any, truth: Any, predictions: dict[str, Any], class_names: tuple[str, ...],
                                 title: str, axis: int = 0, slices: list[int] | None = None,
                                 dice: dict[str, float] | None = None):
    """Static version: rows of (image, truth overlay, prediction overlays) at a few slices with foreground."""
    import numpy as np
    from matplotlib.figure import Figure

    from course_utils import viz

    viz.require_title(title)
    _check_segmentation_volumes(image, truth, predictions)
    if slices is None:
        labelled = np.flatnonzero(np.moveaxis(np.asarray(truth), axis, 0).reshape(np.shape(truth)[axis], -1).any(axis=1))
        candidates = labelled.tolist() or list(range(np.shape(image)[axis]))
        slices = [candidates[i] for i in evenly_spaced(list(range(len(candidates))), 3)]
    columns = 2 + len(predictions)
    fig = Figure(figsize=(2.3 * columns, 2.5 * len(slices) + 0.6), layout="constrained")
    axes = fig.subplots(len(slices), columns, squeeze=False)
    for row, index in zip(axes, slices, strict=True):
        _segmentation_row(row, image, truth, predictions, index, axis, class_names, dice)
    _segmentation_legend(fig, class_names)
    fig.suptitle(title)
    return fig


def segmentation_explorer(image: Any, truth: Any, predictions: dict[str, Any], class_names: tuple[str, ...],
                          title: str, axis: int = 0, dice: dict[str, float] | None = None):
    """A slice slider over one volume: the image, the true mask and each model's predicted mask as overlays.

    `image`, `truth` and each value of `predictions` are `(D, H, W)` arrays (labels 0..K-1 for the masks);
    `dice` optionally maps a prediction's name to its 3-D Dice for the panel titles. Headless: a static
    figure with three labelled slices. Introduced in notebook 07.
    """
    import numpy as np

    from course_utils import viz

    viz.require_title(title)
    _check_segmentation_volumes(image, truth, predictions)
    if is_headless():
        return segmentation_explorer_figure(image, truth, predictions, class_names, title, axis=axis, dice=dice)

    import ipywidgets as widgets
    from matplotlib.figure import Figure

    count = np.shape(image)[axis]
    labelled = np.flatnonzero(np.moveaxis(np.asarray(truth), axis, 0).reshape(count, -1).any(axis=1))
    start = int(labelled[len(labelled) // 2]) if len(labelled) else count // 2
    slider = widgets.IntSlider(value=start, min=0, max=count - 1, description="slice", continuous_update=True)

    def draw():
        """The panels of the selected slice."""
        columns = 2 + len(predictions)
        fig = Figure(figsize=(2.6 * columns, 3.4), layout="constrained")
        _segmentation_row(fig.subplots(1, columns), image, truth, predictions, slider.value, axis, class_names, dice)
        _segmentation_legend(fig, class_names)
        fig.suptitle(title)
        return fig

    plot = _live_figure(draw, (slider,))
    return widgets.VBox([slider, plot])


# ----------------------------------------------------------------------------- notebooks 05 and 06: image restoration


def wipe_image(left: Any, right: Any, position: float) -> Any:
    """One image `(H, W)` showing `left` up to column `position * W` and `right` after it (comparison slider)."""
    left, right = np.asarray(left, dtype=float), np.asarray(right, dtype=float)
    if left.shape != right.shape or left.ndim != 2:
        raise ValueError(f"left and right must be two (H, W) images of one shape; got {left.shape} and {right.shape}.")
    if not 0.0 <= float(position) <= 1.0:
        raise ValueError(f"position must lie in [0, 1] (share of the width shown from `left`); got {position!r}.")
    cut = int(round(float(position) * left.shape[1]))
    out = right.copy()
    out[:, :cut] = left[:, :cut]
    return out


def _wipe_axes(ax: Any, images: dict[str, Any], left: str, right: str, position: float) -> None:
    """Draw the wipe of `images[left]` | `images[right]` at `position` on `ax` with a divider line."""
    view = wipe_image(images[left], images[right], position)
    ax.imshow(view, cmap="gray", vmin=0, vmax=1)
    ax.axvline(position * view.shape[1] - 0.5, color="yellow", linewidth=1)
    ax.set_title(f"← {left} | {right} →", fontsize=9)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")


def _check_named_images(images: dict[str, Any], minimum: int = 2) -> list[str]:
    """The names of a dict of same-shape `(H, W)` images in [0, 1]; ValueError otherwise."""
    if not isinstance(images, dict) or len(images) < minimum:
        raise ValueError(f"images must be a dict of at least {minimum} named (H, W) images in [0, 1].")
    shapes = {np.shape(v) for v in images.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"every image must be (H, W) and of one shape; got shapes {sorted(shapes)}.")
    return list(images)


def comparison_slider_figure(images: dict[str, Any], title: str, reference: str | None = None,
                             position: float = 0.5):
    """Static fallback of `comparison_slider`: one wipe panel per method against `reference` (the first image)."""
    from matplotlib.figure import Figure

    from course_utils import viz

    viz.require_title(title)
    names = _check_named_images(images)
    reference = reference or names[0]
    others = [n for n in names if n != reference]
    fig = Figure(figsize=(3.2 * len(others), 3.6), layout="constrained")
    for ax, name in zip(fig.subplots(1, len(others), squeeze=False)[0], others, strict=True):
        _wipe_axes(ax, images, name, reference, position)
    fig.suptitle(title)
    return fig


def comparison_slider(images: dict[str, Any], title: str, reference: str | None = None):
    """Drag a divider across one image: a method's output on the left, `reference` on the right (notebook 05).

    `images`: {name: (H, W) array in [0, 1]}, e.g. {"ground truth": hr, "bicubic": ..., "SRGAN": ...};
    `reference` defaults to the first. A dropdown picks the method. Headless: a static figure with one wipe
    per method at the middle.
    """
    from course_utils import viz

    viz.require_title(title)
    names = _check_named_images(images)
    reference = reference or names[0]
    if is_headless():
        return comparison_slider_figure(images, title, reference)

    import ipywidgets as widgets
    from matplotlib.figure import Figure

    method = widgets.Dropdown(options=[n for n in names if n != reference], description="left")
    position = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="divider",
                                   continuous_update=True)

    def draw():
        """The wipe at the slider's position."""
        fig = Figure(figsize=(5.5, 5.8), layout="constrained")
        _wipe_axes(fig.subplots(), images, method.value, reference, position.value)
        fig.suptitle(title)
        return fig

    plot = _live_figure(draw, (method, position))
    return widgets.VBox([widgets.HBox([method, position]), plot])


def _level_row(axes: Any, panels: dict[str, Any], level_name: str) -> None:
    """One row of restoration panels (noisy, methods, clean) for one noise level."""
    for ax, (name, image) in zip(axes, panels.items(), strict=True):
        ax.imshow(np.asarray(image), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name}\n({level_name})", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])


def _check_levels(by_level: dict[str, dict[str, Any]]) -> list[str]:
    """The level names of `by_level` ({level name: {panel name: (H, W) image}}); ValueError otherwise."""
    if not isinstance(by_level, dict) or not by_level:
        raise ValueError("by_level must be a non-empty dict {noise level name: {method name: (H, W) image}}.")
    for panels in by_level.values():
        _check_named_images(panels, minimum=1)
    return list(by_level)


def noise_level_explorer_figure(by_level: dict[str, dict[str, Any]], title: str):
    """Static fallback of `noise_level_explorer`: one row of panels per noise level."""
    from matplotlib.figure import Figure

    from course_utils import viz

    viz.require_title(title)
    levels = _check_levels(by_level)
    columns = max(len(p) for p in by_level.values())
    fig = Figure(figsize=(2.2 * columns, 2.4 * len(levels) + 0.5), layout="constrained")
    axes = fig.subplots(len(levels), columns, squeeze=False)
    for row, level in zip(axes, levels, strict=True):
        _level_row(row[: len(by_level[level])], by_level[level], level)
    fig.suptitle(title)
    return fig


def noise_level_explorer(by_level: dict[str, dict[str, Any]], title: str):
    """A slider over noise levels showing the noisy image, each denoiser's output and the clean image (notebook 06).

    `by_level`: {level name: {panel name: (H, W) image in [0, 1]}}, in the order of the slider.
    Headless: a static figure with one row per level.
    """
    from course_utils import viz

    viz.require_title(title)
    levels = _check_levels(by_level)
    if is_headless():
        return noise_level_explorer_figure(by_level, title)

    import ipywidgets as widgets
    from matplotlib.figure import Figure

    slider = widgets.SelectionSlider(options=levels, value=levels[len(levels) // 2], description="noise",
                                     continuous_update=True)

    def draw():
        """The panels of the selected level."""
        panels = by_level[slider.value]
        fig = Figure(figsize=(2.6 * len(panels), 3.2), layout="constrained")
        _level_row(fig.subplots(1, len(panels), squeeze=False)[0], panels, slider.value)
        fig.suptitle(title)
        return fig

    plot = _live_figure(draw, (slider,))
    return widgets.VBox([slider, plot])
