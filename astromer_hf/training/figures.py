"""Diagnostic figures for training runs: learning curves, reconstructed windows, attention maps and confusion
matrices.

Everything here builds :class:`matplotlib.figure.Figure` objects directly (rendered with the Agg canvas), so no
figure is ever registered with ``pyplot`` and nothing depends on the interactive backend. Inputs may be NumPy
arrays or torch tensors (on any device); they are copied to float64 NumPy arrays first.

Loggers receive these figures through :func:`astromer_hf.training.loggers.log_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "attention_figure",
    "learning_curve_figure",
    "confusion_matrix_figure",
    "figure_to_array",
    "reconstruction_figure",
]

TIME_LABEL = "time \N{MINUS SIGN} window mean [d]"
MAGNITUDE_LABEL = "centred magnitude"

# Labels of the scatter collections of a reconstruction panel (also what the legend shows).
OBSERVED_LABEL = "observed"
PROBED_LABEL = "probed (true)"
HIDDEN_LABEL = "masked (true, hidden)"
VISIBLE_PROBED_LABEL = "probed, visible (true)"
PREDICTED_LABEL = "reconstruction"

_HEADS_PER_ROW = 4


def _as_array(value: Any, name: str) -> np.ndarray:
    """``value`` (NumPy array, torch tensor or nested sequence) as a float64 NumPy array."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().to("cpu").double().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric, got {type(value).__name__}: {error}") from None


def _as_windows(value: Any, name: str) -> np.ndarray:
    """``value`` as a ``[B, T]`` array; the original Astromer's ``[B, T, 1]`` layout is accepted too."""
    array = _as_array(value, name)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape [B, T] (or [B, T, 1]), got shape {tuple(array.shape)}")
    return array


#: Attributes kept on a figure: :func:`figure_to_array`'s last rendering with the draw count it was made at, and
#: how many times anything has drawn the figure (counted by a ``draw_event`` callback from its first rendering).
_PIXELS, _DRAWS = "_astromer_hf_pixels", "_astromer_hf_draws"


def _count_draws(event) -> None:
    figure = event.canvas.figure
    setattr(figure, _DRAWS, getattr(figure, _DRAWS, 0) + 1)


def figure_to_array(figure: Figure) -> np.ndarray:
    """Render ``figure`` with the Agg canvas and return its pixels as a ``uint8`` array ``[height, width, 3]``.

    The pixels stay with the figure until it changes (matplotlib marks it stale) or anything draws it again
    (``savefig``...): the loggers of one step (W&B and the CSV logger's PNG in the recipes) draw a figure once
    between them."""
    kept = getattr(figure, _PIXELS, None)
    if kept is None or figure.stale or kept[1] != getattr(figure, _DRAWS, None):
        if not hasattr(figure, _DRAWS):  # the callbacks belong to the figure: they outlive its canvases
            setattr(figure, _DRAWS, 0)
            figure.canvas.mpl_connect("draw_event", _count_draws)
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        kept = (np.array(canvas.buffer_rgba(), dtype=np.uint8)[..., :3], getattr(figure, _DRAWS))
        setattr(figure, _PIXELS, kept)
    return kept[0].copy()


def _window_rmse(labels: np.ndarray, predictions: np.ndarray, probed: np.ndarray) -> float:
    """Root mean squared error over the probed positions of one window (NaN when none is probed)."""
    if not probed.any():
        return math.nan
    return float(np.sqrt(np.mean((labels[probed] - predictions[probed]) ** 2)))


def reconstruction_figure(
    times: Any,
    labels: Any,
    reconstruction: Any,
    attention_mask: Any,
    probed_positions: Any,
    masked_positions: Any | None = None,
    max_windows: int = 4,
) -> Figure:
    """One panel per window comparing the true light curve with the model's reconstruction.

    Args:
        times: ``[B, T]`` observation times minus the window mean, in days.
        labels: ``[B, T]`` true centred magnitudes.
        reconstruction: ``[B, T]`` the model's reconstructed magnitudes.
        attention_mask: ``[B, T]``, 1 for real observations and 0 for padding.
        probed_positions: ``[B, T]``, 1 where the position counts in the loss.
        masked_positions: ``[B, T]``, 1 where the value was hidden from the model (a subset of the probed
            positions). When given, hidden and visible-but-probed points get different markers.
        max_windows: at most this many windows (the first ones) are drawn.

    Returns:
        A figure with ``min(B, max_windows)`` axes. Real observations that are not probed are grey dots, probed
        observations show their true value, and the reconstruction is drawn at the probed positions only. The
        magnitude axis is inverted (brighter is up) and each panel's title gives its masked RMSE.

    Raises:
        ValueError: on arrays of different or non-``[B, T]`` shapes, an empty batch, or ``max_windows < 1``.
    """
    if isinstance(max_windows, bool) or not isinstance(max_windows, int) or max_windows < 1:
        raise ValueError(f"max_windows must be an integer >= 1, got {max_windows!r}")
    arrays = {
        "times": _as_windows(times, "times"),
        "labels": _as_windows(labels, "labels"),
        "reconstruction": _as_windows(reconstruction, "reconstruction"),
        "attention_mask": _as_windows(attention_mask, "attention_mask"),
        "probed_positions": _as_windows(probed_positions, "probed_positions"),
    }
    if masked_positions is not None:
        arrays["masked_positions"] = _as_windows(masked_positions, "masked_positions")
    shape = arrays["times"].shape
    mismatched = {name: tuple(array.shape) for name, array in arrays.items() if array.shape != shape}
    if mismatched:
        raise ValueError(f"all inputs must have the shape of times {tuple(shape)}; got {mismatched}")
    if shape[0] == 0:
        raise ValueError("the batch is empty: there is no window to draw")

    n_windows = min(shape[0], max_windows)
    figure = Figure(figsize=(8.0, 2.6 * n_windows), layout="constrained")
    axes = figure.subplots(n_windows, 1, squeeze=False)[:, 0]
    for index, ax in enumerate(axes):
        real = arrays["attention_mask"][index] != 0
        probed = real & (arrays["probed_positions"][index] != 0)
        time, label = arrays["times"][index], arrays["labels"][index]
        predicted = arrays["reconstruction"][index]

        observed = real & ~probed
        ax.scatter(time[observed], label[observed], s=10, c="0.6", marker="o", linewidths=0, label=OBSERVED_LABEL)
        if "masked_positions" in arrays:
            hidden = probed & (arrays["masked_positions"][index] != 0)
            visible = probed & ~hidden
            ax.scatter(time[hidden], label[hidden], s=22, c="tab:blue", marker="o", label=HIDDEN_LABEL)
            ax.scatter(
                time[visible], label[visible], s=26, facecolors="none", edgecolors="tab:green", marker="s",
                label=VISIBLE_PROBED_LABEL,
            )
        else:
            ax.scatter(time[probed], label[probed], s=22, c="tab:blue", marker="o", label=PROBED_LABEL)
        ax.scatter(time[probed], predicted[probed], s=30, c="tab:red", marker="x", label=PREDICTED_LABEL)

        rmse = _window_rmse(label, predicted, probed)
        summary = f"masked RMSE {rmse:.3f} over {int(probed.sum())} probed" if probed.any() else "no probed point"
        ax.set_title(f"window {index}: {summary} ({int(real.sum())} observations)", fontsize="medium")
        ax.set_xlabel(TIME_LABEL)
        ax.set_ylabel(MAGNITUDE_LABEL)
        ax.invert_yaxis()
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="outside upper center", ncols=len(names), fontsize="small")
    return figure


def attention_figure(attention: Any, length: int, layer: int | None = None) -> Figure:
    """The attention maps of every head for one window.

    Args:
        attention: ``[heads, T, T]`` attention probabilities of one window (rows are queries, columns keys); a
            leading batch axis of size 1 is accepted.
        length: number of real observations in the window; each map is cropped to ``[length, length]``.
        layer: index of the layer, shown in the title when given.

    Returns:
        A figure with one image axis per head and a shared colorbar (one more axis).

    Raises:
        ValueError: on a badly shaped ``attention`` or a ``length`` outside ``[1, T]``.
    """
    weights = _as_array(attention, "attention")
    if weights.ndim == 4 and weights.shape[0] == 1:
        weights = weights[0]
    if weights.ndim != 3 or weights.shape[1] != weights.shape[2] or weights.shape[0] == 0:
        raise ValueError(f"attention must have shape [heads, T, T], got shape {tuple(weights.shape)}")
    n_heads, size = weights.shape[0], weights.shape[1]
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or not 1 <= length <= size:
        raise ValueError(f"length must be an integer in [1, {size}], got {length!r}")
    length = int(length)
    maps = weights[:, :length, :length]

    n_cols = min(n_heads, _HEADS_PER_ROW)
    n_rows = math.ceil(n_heads / n_cols)
    figure = Figure(figsize=(3.0 * n_cols + 1.0, 3.0 * n_rows + 0.4), layout="constrained")
    grid = figure.subplots(n_rows, n_cols, squeeze=False)
    head_axes = list(grid.ravel()[:n_heads])
    for ax in grid.ravel()[n_heads:]:
        figure.delaxes(ax)
    upper = float(np.nanmax(maps)) if np.isfinite(maps).any() else 1.0
    image = None
    for head, ax in enumerate(head_axes):
        image = ax.imshow(maps[head], cmap="viridis", vmin=0.0, vmax=max(upper, 1e-12), interpolation="nearest")
        ax.set_title(f"head {head}", fontsize="medium")
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
    figure.colorbar(image, ax=head_axes, label="attention weight", shrink=0.9)
    title = f"attention over {length} observations"
    figure.suptitle(f"layer {layer}: {title}" if layer is not None else title)
    return figure


def confusion_matrix_figure(matrix: Any, class_names: Sequence[str], normalize: bool = True) -> Figure:
    """An annotated confusion-matrix heat map: rows are true classes, columns predicted classes.

    Args:
        matrix: ``[C, C]`` counts (NumPy array or tensor).
        class_names: the ``C`` class names, in the matrix's order.
        normalize: divide each row by its total (rows without samples stay at 0), so the diagonal is each
            class's recall.

    Returns:
        A figure with the heat-map axis and its colorbar.

    Raises:
        ValueError: on a non-square matrix, negative or non-finite entries, or a wrong number of class names.
    """
    counts = _as_array(matrix, "matrix")
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"matrix must be a non-empty square [C, C] array, got shape {tuple(counts.shape)}")
    names = [str(name) for name in class_names]
    if len(names) != counts.shape[0]:
        raise ValueError(f"class_names has {len(names)} names for a {counts.shape[0]}x{counts.shape[0]} matrix")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("matrix entries must be finite and non-negative")

    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        upper, text_format, colorbar_label = 1.0, "{:.2f}", "fraction of the true class"
    else:
        values = counts
        upper = max(float(counts.max()), 1.0)
        integral = bool(np.all(counts == np.round(counts)))
        text_format, colorbar_label = ("{:.0f}" if integral else "{:.3g}"), "count"

    n_classes = len(names)
    side = max(4.0, 0.6 * n_classes + 2.5)
    figure = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=upper, interpolation="nearest")
    figure.colorbar(image, ax=ax, label=colorbar_label)
    ax.set_xticks(range(n_classes), names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n_classes), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalize else " (counts)"))
    font_size = "small" if n_classes <= 12 else "xx-small"
    for row in range(n_classes):
        for column in range(n_classes):
            value = values[row, column]
            colour = "white" if value > 0.6 * upper else "black"
            ax.text(column, row, text_format.format(value), ha="center", va="center", color=colour, fontsize=font_size)
    return figure


#: The curves of a learning-curve figure: (metric, line style).
LEARNING_CURVES = (
    ("train/rmse", "-o"),
    ("val/rmse", "-o"),
    ("train/baseline_rmse", ":"),
    ("val/baseline_rmse", "--"),
    ("train/loss_epoch", "-o"),
    ("val/loss", "-o"),
)


def learning_curve_figure(rows: Sequence[dict[str, float]]) -> Figure:
    """Epoch-level metrics against the epoch: masked RMSE and the baseline of predicting the window mean
    (reconstruction), or the training and validation loss (classification); R² or macro F1 on a second panel
    when logged.

    Args:
        rows: one dict per epoch with ``epoch`` and any of the logged epoch metrics.
    """
    if not rows:
        raise ValueError("no epoch metrics to plot")
    has = {key for row in rows for key in row}
    reconstruction = "val/rmse" in has or "train/rmse" in has
    curves = [(key, style) for key, style in LEARNING_CURVES
              if key in has and (reconstruction == ("rmse" in key))]
    second = next((key for key in ("val/r2", "val/f1_macro") if key in has), None)
    figure = Figure(figsize=(9 if second else 6, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2 if second else 1, squeeze=False)[0]
    for key, style in curves:
        points = [(row["epoch"] + 1, row[key]) for row in rows if key in row]
        axes[0].plot(*zip(*points), style, label=key, markersize=3)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("masked RMSE [mag]" if reconstruction else "loss")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    if second:
        points = [(row["epoch"] + 1, row[second]) for row in rows if second in row]
        axes[1].plot(*zip(*points), "-o", markersize=3, color="tab:green")
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel(second)
        axes[1].grid(alpha=0.3)
    return figure
