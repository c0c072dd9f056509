"""Figures for the notebooks: image grids, side-by-side panels, mask overlays, curves, volume slices.

Introduced in notebook 00 (`00_setup_and_data`); every later notebook draws with it.

Inputs are torch tensors or NumPy arrays. Images are `(B, C, H, W)`, `(C, H, W)` or `(H, W)` with
C = 1 (grey) or 3 (RGB); `uint8` images are read as 0..255, float images need the `value_range`
they are in: `(-1, 1)` for generator outputs, `(0, 1)` for metrics and plots.

Every function returns a pyplot-managed `matplotlib.figure.Figure` (shown by Jupyter's inline backend
at the end of the cell; end the line with `;` or assign it to avoid showing it twice). Close figures
you no longer need with `plt.close(fig)`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

ValueRange = tuple[float, float]
ArrayLike = Any  # torch.Tensor | np.ndarray
RANGE_TOLERANCE = 0.1  # data may overshoot value_range by this fraction of its width (e.g. bicubic ringing)
SHAPE_HELP = "(B, C, H, W), (C, H, W) or (H, W) with C = 1 (grey) or 3 (RGB)"


# ----------------------------------------------------------------------------- conversion


def require_title(text: Any, what: str = "title") -> str:
    """`text` if it is a non-empty string, else a ValueError (every course figure says what it shows)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what} must be a non-empty string saying what the figure shows; got {text!r}.")
    return text


def _as_tensor(images: ArrayLike, name: str) -> torch.Tensor:
    """A detached CPU tensor from a tensor or NumPy array."""
    if isinstance(images, torch.Tensor):
        return images.detach().cpu()
    if isinstance(images, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(images))
    raise TypeError(f"{name} must be a torch.Tensor or a NumPy array; got {type(images).__name__}.")


def _as_batch(images: torch.Tensor, name: str) -> torch.Tensor:
    """(B, C, H, W), (C, H, W) or (H, W) as a (B, C, H, W) view; ValueError for any other shape."""
    shape = tuple(images.shape)
    if images.ndim == 2:
        batch = images[None, None]  # (1, 1, H, W)
    elif images.ndim == 3:
        batch = images[None]  # (1, C, H, W)
    elif images.ndim == 4:
        batch = images
    else:
        raise ValueError(
            f"{name} must have shape {SHAPE_HELP}; received shape {shape} ({images.ndim} dimensions)."
        )
    channels = batch.shape[1]
    if channels not in (1, 3):
        hint = ""
        if images.ndim == 3:
            hint = (
                " A 3-D input is read as one (C, H, W) image: for a batch of grey images add a channel axis "
                "(`x[:, None]`)"
            )
            hint += ", for a channels-last image use `x.permute(2, 0, 1)`." if shape[-1] in (1, 3) else "."
        elif shape[-1] in (1, 3):
            hint = " It looks channels-last (B, H, W, C): use `x.permute(0, 3, 1, 2)`."
        raise ValueError(
            f"{name} must have shape {SHAPE_HELP}; received shape {shape}, i.e. {channels} channels.{hint}"
        )
    if batch.numel() == 0:
        raise ValueError(
            f"{name} is empty (shape {shape}); expected at least one image of at least 1x1 pixel."
        )
    return batch


def _checked_range(value_range: Any, name: str) -> ValueRange:
    """`value_range` as two finite floats lo < hi; ValueError otherwise."""
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"value_range for {name} must be a pair (low, high) such as (-1, 1) or (0, 1); got {value_range!r}."
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"value_range for {name} must be finite with low < high; got {value_range!r}.")
    return low, high


def _check_values(values: torch.Tensor, value_range: ValueRange, name: str) -> None:
    """ValueError when `values` hold NaN/inf or clearly fall outside `value_range`."""
    if not torch.isfinite(values).all():
        raise ValueError(
            f"{name} contains NaN or infinite values (a diverged model or a division by zero?); "
            "expected finite numbers. Check the tensor with `torch.isfinite(x).all()`."
        )
    low, high = value_range
    found_low, found_high = values.min().item(), values.max().item()
    slack = RANGE_TOLERANCE * (high - low)
    if found_low >= low - slack and found_high <= high + slack:
        return
    if found_low >= -slack and 1.5 < found_high <= 255 + slack:
        hint = "They look like 0..255 intensities: divide by 255 (or convert to uint8)."
    elif found_low < low - slack and found_low >= -1 - slack and found_high <= 1 + slack:
        hint = "They look like generator outputs in [-1, 1]: pass value_range=(-1, 1)."
    else:
        hint = f"Pass the range the data are in, or clamp first: `x.clamp({low:g}, {high:g})`."
    raise ValueError(
        f"{name} has values in [{found_low:.4g}, {found_high:.4g}] but value_range=({low:g}, {high:g}) was "
        f"given, which the data clearly exceed. {hint}"
    )


def _to_unit(images: torch.Tensor, value_range: Any, name: str) -> torch.Tensor:
    """uint8 (0..255), bool or float images (in `value_range`) as float32 in [0, 1]."""
    if images.dtype == torch.uint8:
        return images.float() / 255.0  # value_range is not needed: uint8 is always 0..255
    if images.dtype == torch.bool:
        return images.float()
    if not images.is_floating_point():
        raise ValueError(
            f"{name} has integer dtype {images.dtype}; images must be uint8 (0..255) or float with a "
            "value_range. Convert with `.float()` and pass value_range, or `.to(torch.uint8)` if the values "
            "are 0..255."
        )
    if value_range is None:
        raise ValueError(
            f"{name} is a float image, so it needs an explicit value_range: (-1, 1) for generator outputs "
            "or (0, 1) for metrics and plots."
        )
    low, high = _checked_range(value_range, name)
    values = images.float()
    _check_values(values, (low, high), name)
    return ((values - low) / (high - low)).clamp(0.0, 1.0)


def _unit_batch(images: ArrayLike, value_range: Any, name: str) -> torch.Tensor:
    """Any accepted image input as a float32 (B, C, H, W) tensor in [0, 1]."""
    return _to_unit(_as_batch(_as_tensor(images, name), name), value_range, name)


def to_numpy_image(images: ArrayLike, value_range: ValueRange | None) -> np.ndarray:
    """Images as float32 NumPy in [0, 1], channels last, ready for `imshow`.

    (B, C, H, W) -> (B, H, W) or (B, H, W, 3); (C, H, W) -> (H, W) or (H, W, 3); (H, W) -> (H, W).
    `value_range` is what float inputs span ((-1, 1) or (0, 1)); it is ignored for uint8 (0..255).
    """
    tensor = _as_tensor(images, "images")
    batch = _to_unit(_as_batch(tensor, "images"), value_range, "images")  # (B, C, H, W) in [0, 1]
    channels_last = batch.permute(0, 2, 3, 1)  # (B, H, W, C)
    if channels_last.shape[-1] == 1:
        channels_last = channels_last[..., 0]  # (B, H, W)
    if tensor.ndim < 4:
        channels_last = channels_last[0]  # drop the batch axis the input did not have
    return channels_last.numpy().astype(np.float32)


def tile_images(batch: torch.Tensor, per_row: int, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """A batch `(B, C, H, W)` laid out row by row, `per_row` images per row, as one image `(C, H', W')`.

    `padding` pixels of `pad_value` around and between the images: the layout of torchvision's `make_grid`
    (tested against it), without the 3-channel copy of grey images and without importing torchvision
    (seconds per kernel start). A single image comes back as it is, without padding, as from `make_grid`.
    """
    count, channels, height, width = batch.shape
    if count == 1:
        return batch[0]
    columns = min(per_row, count)
    rows = math.ceil(count / columns)
    cell_h, cell_w = height + padding, width + padding
    grid = batch.new_full((channels, rows * cell_h + padding, columns * cell_w + padding), pad_value)
    for index in range(count):
        top, left = (index // columns) * cell_h + padding, (index % columns) * cell_w + padding
        grid[:, top:top + height, left:left + width] = batch[index]
    return grid


# ----------------------------------------------------------------------------- figures


def show_grid(
    images: ArrayLike,
    title: str,
    nrow: int | None = None,
    value_range: ValueRange | None = (0, 1),
    figsize: tuple[float, float] | None = None,
    ax: plt.Axes | None = None,
) -> Figure:
    """A grid of images (grey for 1 channel, RGB for 3); `nrow` images per row (default: about square)."""
    require_title(title)
    batch = _unit_batch(images, value_range, "images")  # (B, C, H, W) in [0, 1]
    count, channels = batch.shape[0], batch.shape[1]
    per_row = nrow if nrow is not None else math.ceil(math.sqrt(count))
    if not isinstance(per_row, int) or per_row < 1:
        raise ValueError(f"nrow (images per row) must be a positive integer; got {nrow!r}.")
    grid = tile_images(batch, per_row)  # (C, H', W')
    if ax is None:
        if figsize is None:
            width = min(12.0, max(3.0, 1.0 * min(per_row, count)))
            figsize = (width, width * grid.shape[1] / grid.shape[2] + 0.4)
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    else:
        fig = ax.figure
    if channels == 1:
        ax.imshow(grid[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")  # (H', W')
    else:
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")  # (H', W', 3)
    ax.set_title(title)
    ax.axis("off")
    return fig


def _per_panel(option: Any, count: int, is_single: Any, what: str) -> list[Any]:
    """`option` repeated for every panel, or checked to be a list with one entry per panel."""
    if is_single(option):
        return [option] * count
    options = list(option)
    if len(options) != count:
        raise ValueError(
            f"{what} has {len(options)} entries but there are {count} panels; give one per panel."
        )
    return options


def _is_single_range(value: Any) -> bool:
    """True for None or a pair of numbers, False for a list of per-panel ranges."""
    return value is None or (len(value) == 2 and all(isinstance(v, numbers.Real) for v in value))


def _single_image(image: ArrayLike, name: str) -> torch.Tensor:
    """One image as (C, H, W) with C = 1 or 3; a batch of one is accepted."""
    tensor = _as_tensor(image, name)
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]  # (C, H, W)
    if tensor.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be a single image (H, W), (1, H, W) or (3, H, W); received shape {tuple(tensor.shape)}. "
            "To show a batch, use show_grid."
        )
    return _as_batch(tensor, name)[0]  # (C, H, W)


def _grey_display(image: torch.Tensor, value_range: Any, name: str) -> tuple[np.ndarray, float, float]:
    """A grey (H, W) image in its own units plus vmin/vmax, so a colorbar reads in data units."""
    if image.dtype == torch.uint8:
        return image.float().numpy(), 0.0, 255.0
    if image.dtype == torch.bool:
        return image.float().numpy(), 0.0, 1.0
    if not image.is_floating_point():
        _to_unit(image, value_range, name)  # raises the integer-dtype error
    values = image.float()
    if value_range is None:  # scale this image to its own min..max
        if not torch.isfinite(values).all():
            _check_values(values, (0.0, 1.0), name)  # raises the NaN/inf error
        low, high = values.min().item(), values.max().item()
        return values.numpy(), low, high if high > low else low + 1.0
    low, high = _checked_range(value_range, name)
    _check_values(values, (low, high), name)
    return values.numpy(), low, high


def show_panels(
    images: Sequence[ArrayLike],
    titles: Sequence[str],
    suptitle: str,
    value_range: ValueRange | None | Sequence[ValueRange | None] = (0, 1),
    cmap: str | Sequence[str] = "gray",
    colorbar: bool = False,
) -> Figure:
    """Single images side by side with a title each (e.g. LR / bicubic / SR / HR, difference maps).

    `value_range` and `cmap` are one value for all panels or a list with one per panel; a range of None
    scales that panel to its own min..max. Grey panels are drawn in data units, so a colorbar reads true.
    """
    require_title(suptitle, "suptitle")
    images = list(images)
    titles = list(titles)
    if not images:
        raise ValueError("show_panels needs at least one image; got an empty sequence.")
    if len(titles) != len(images):
        raise ValueError(
            f"Got {len(images)} images but {len(titles)} titles; give exactly one title per panel."
        )
    for index, text in enumerate(titles):
        require_title(text, f"titles[{index}]")
    ranges = _per_panel(value_range, len(images), _is_single_range, "value_range")
    cmaps = _per_panel(cmap, len(images), lambda c: not isinstance(c, list | tuple), "cmap")

    count = len(images)
    fig, axes = plt.subplots(
        1,
        count,
        figsize=(3.0 * count + (0.8 * count if colorbar else 0.0), 3.6),
        squeeze=False,
        layout="constrained",
    )
    for ax, image, text, panel_range, panel_cmap in zip(axes[0], images, titles, ranges, cmaps, strict=True):
        name = f"panel {text!r}"
        picture = _single_image(image, name)  # (C, H, W)
        if picture.shape[0] == 3:
            rgb = _to_unit(picture, panel_range, name).permute(1, 2, 0).numpy()  # (H, W, 3) in [0, 1]
            ax.imshow(rgb, interpolation="nearest")
        else:
            grey, low, high = _grey_display(picture[0], panel_range, name)  # (H, W)
            shown = ax.imshow(grey, cmap=panel_cmap, vmin=low, vmax=high, interpolation="nearest")
            if colorbar:
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(text)
        ax.axis("off")
    fig.suptitle(suptitle)
    return fig


def _label_mask(mask: ArrayLike, shape: tuple[int, int]) -> np.ndarray:
    """An integer (H, W) label mask; ValueError for the wrong shape, negative or fractional labels."""
    tensor = _as_tensor(mask, "mask")
    while tensor.ndim > 2 and tensor.shape[0] == 1:
        tensor = tensor[0]  # (1, 1, H, W) / (1, H, W) -> (H, W)
    if tuple(tensor.shape) != shape:
        raise ValueError(
            f"mask must have the image's shape {shape} (or (1, H, W)); received shape {tuple(mask.shape)}. "
            "Resize a mask with nearest-neighbour interpolation (`F.interpolate(..., mode='nearest')`)."
        )
    if tensor.is_floating_point():
        if not torch.equal(tensor, tensor.round()):
            raise ValueError(
                "mask must hold integer labels (0 = background, 1, 2, ...); it has fractional values. "
                "A probability map needs thresholding first, e.g. `(p > 0.5).long()` or `p.argmax(dim=0)`."
            )
    labels = tensor.long().numpy()
    if labels.size and labels.min() < 0:
        raise ValueError(f"mask labels must be >= 0 (0 = background); found {int(labels.min())}.")
    return labels


def label_colour(label: int) -> tuple[float, float, float]:
    """The RGB colour of mask label `label` >= 1 in every course overlay (matplotlib's tab10 cycle)."""
    return tuple(plt.get_cmap("tab10")((label - 1) % 10)[:3])


def overlay_rgba(labels: np.ndarray, num_labels: int, alpha: float = 0.4) -> np.ndarray:
    """An `(H, W, 4)` RGBA layer for an integer label map: label 0 transparent, label k in `label_colour(k)`."""
    overlay = np.zeros((*labels.shape, 4), dtype=np.float32)  # (H, W, RGBA), transparent
    for label in range(1, num_labels):
        overlay[labels == label] = (*label_colour(label), alpha)
    return overlay


def show_overlay(
    image: ArrayLike,
    mask: ArrayLike,
    title: str,
    class_names: Sequence[str],
    alpha: float = 0.4,
    value_range: ValueRange | None = (0, 1),
) -> Figure:
    """A grey image with a coloured label mask on top (label 0 transparent) and a legend of the classes.

    `class_names[k]` names label k, with `class_names[0]` the background (as in MSD's dataset.json).
    """
    require_title(title)
    names = list(class_names)
    if len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"class_names must be strings for every label, background first, e.g. ['background', 'anterior', "
            f"'posterior']; got {class_names!r}."
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (mask opacity) must be between 0 and 1; got {alpha}.")
    picture = _single_image(image, "image")  # (C, H, W)
    if picture.shape[0] != 1:
        raise ValueError(
            f"image must be a single grey image (H, W) or (1, H, W); received shape {tuple(image.shape)}."
        )
    grey, low, high = _grey_display(picture[0], value_range, "image")  # (H, W)
    labels = _label_mask(mask, tuple(grey.shape))  # (H, W) int
    largest = int(labels.max())
    if largest >= len(names):
        raise ValueError(
            f"mask contains label {largest} but class_names has {len(names)} names (labels 0..{len(names) - 1}). "
            "class_names[k] names label k and class_names[0] is the background, e.g. "
            "['background', 'grey matter', 'white matter']."
        )
    overlay = overlay_rgba(labels, len(names), alpha)  # (H, W, RGBA)
    handles = []
    present = set(np.unique(labels).tolist())
    for label in range(1, len(names)):
        colour = label_colour(label)
        suffix = "" if label in present else " (not in mask)"
        handles.append(Patch(facecolor=colour, edgecolor="none", label=f"{label}: {names[label]}{suffix}"))

    fig, ax = plt.subplots(figsize=(5.5, 4.2), layout="constrained")
    ax.imshow(grey, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    ax.imshow(overlay, interpolation="nearest")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    ax.set_title(title)
    ax.axis("off")
    return fig


def _curve_xy(name: str, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """A curve given as y values (plotted against 0..n-1) or as an (x, y) pair, as two 1-D arrays."""

    def as_array(v: Any) -> np.ndarray:
        return (
            v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, dtype=float)
        ).astype(float)

    is_pair = isinstance(values, tuple) and len(values) == 2 and all(np.ndim(v) == 1 for v in values)
    try:
        x, y = (as_array(values[0]), as_array(values[1])) if is_pair else (None, as_array(values))
    except (TypeError, ValueError):
        raise ValueError(
            f"curve {name!r} must be a sequence of numbers (or an (x, y) pair); got {values!r:.80}."
        ) from None
    if y.ndim != 1 or y.size == 0:
        raise ValueError(
            f"curve {name!r} must be a non-empty 1-D sequence of numbers; received shape {y.shape}."
        )
    x = np.arange(y.size) if x is None else x
    if x.shape != y.shape:
        raise ValueError(f"curve {name!r}: x has {x.size} values but y has {y.size}; they must match.")
    return x, y


def plot_curves(
    curves: Mapping[str, Any],
    title: str,
    xlabel: str,
    ylabel: str,
    reference_lines: Mapping[str, float] | None = None,
) -> Figure:
    """Named curves (e.g. loss per step) with optional dashed horizontal reference lines (e.g. ln 4, ln 2).

    A curve is a sequence of y values (plotted against 0..n-1) or an (x, y) pair of sequences.
    """
    require_title(title)
    require_title(xlabel, "xlabel")
    require_title(ylabel, "ylabel")
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(
            "curves must be a non-empty dict {name: values}, e.g. {'discriminator': d_losses, 'generator': g_losses}; "
            f"got {curves!r:.80}."
        )
    fig, ax = plt.subplots(figsize=(7.0, 4.0), layout="constrained")
    for name, values in curves.items():
        x, y = _curve_xy(str(name), values)
        ax.plot(x, y, label=str(name), linewidth=1.4)
    styles = ["--", ":", "-.", (0, (5, 1))]
    for index, (name, value) in enumerate((reference_lines or {}).items()):
        level = float(value)
        ax.axhline(
            level,
            color="0.35",
            linestyle=styles[index % len(styles)],
            linewidth=1.1,
            label=f"{name} = {level:.3f}",
        )
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def mark_orientation(ax: Any, orientation: dict[str, str], fontsize: int = 8) -> None:
    """Letters for the patient's directions at the edges of an image axis (e.g. from `screen_orientation`)."""
    style = {"color": "yellow", "fontsize": fontsize, "fontweight": "bold", "transform": ax.transAxes}
    places = {"left": (0.02, 0.5, "left", "center"), "right": (0.98, 0.5, "right", "center"),
              "top": (0.5, 0.98, "center", "top"), "bottom": (0.5, 0.02, "center", "bottom")}
    for edge, letter in orientation.items():
        x, y, horizontal, vertical = places[edge]
        ax.text(x, y, letter, ha=horizontal, va=vertical, **style)


def slice_indices(size: int, n_slices: int) -> list[int]:
    """`n_slices` evenly spaced interior indices in 0..size-1 (all of them when n_slices >= size)."""
    if n_slices >= size:
        return list(range(size))
    points = np.linspace(0, size - 1, n_slices + 2)[1:-1]  # skip the (often empty) edge slices
    return sorted({int(round(p)) for p in points})


def show_volume_slices(
    volume: ArrayLike,
    title: str,
    n_slices: int = 6,
    axis: int = 0,
    value_range: ValueRange | None = None,
) -> Figure:
    """Evenly spaced slices of a 3-D volume (D, H, W) along `axis`, as a row of "slice k" panels.

    value_range=None shows the volume's own min..max, one grey scale for all slices.
    """
    require_title(title)
    tensor = _as_tensor(volume, "volume")
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]  # (1, D, H, W) -> (D, H, W)
    if tensor.ndim != 3 or min(tensor.shape) == 0:
        raise ValueError(
            f"volume must be a non-empty 3-D array (D, H, W) or (1, D, H, W); received shape {tuple(tensor.shape)}. "
            "For 2-D images use show_grid or show_panels."
        )
    if axis not in (-3, -2, -1, 0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2 (the volume axis to slice along); got {axis!r}.")
    if not isinstance(n_slices, int) or n_slices < 1:
        raise ValueError(f"n_slices must be a positive integer; got {n_slices!r}.")
    grey, low, high = _grey_display(tensor, value_range, "volume")  # (D, H, W), one scale for all slices
    indices = slice_indices(grey.shape[axis], n_slices)
    count = len(indices)
    fig, axes = plt.subplots(1, count, figsize=(2.4 * count, 2.9), squeeze=False, layout="constrained")
    for ax, index in zip(axes[0], indices, strict=True):
        ax.imshow(np.take(grey, index, axis=axis), cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(f"slice {index}")
        ax.axis("off")
    fig.suptitle(title)
    return fig
