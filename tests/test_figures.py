"""The diagnostic figures: layout, what is drawn where, and input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from astromer_hf.training.figures import (
    HIDDEN_LABEL,
    MAGNITUDE_LABEL,
    OBSERVED_LABEL,
    PREDICTED_LABEL,
    PROBED_LABEL,
    TIME_LABEL,
    VISIBLE_PROBED_LABEL,
    attention_figure,
    confusion_matrix_figure,
    figure_to_array,
    reconstruction_figure,
)

pytestmark = pytest.mark.timeout(120)


def _windows(batch: int = 3, length: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    """Small windows: the last 3 positions of window 1 are padding; probed and masked positions are fixed."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, 50.0, (batch, length)), axis=1)
    times -= times.mean(axis=1, keepdims=True)
    labels = rng.normal(size=(batch, length))
    attention_mask = np.ones((batch, length))
    probed = np.zeros((batch, length))
    probed[:, [1, 4, 7, 10]] = 1
    if batch > 1:
        attention_mask[1, -3:] = 0
        probed[1, 10] = 0  # padding is never probed
    masked = np.zeros((batch, length))
    masked[:, [1, 7]] = 1
    reconstruction = labels + 0.5
    return {
        "times": times,
        "labels": labels,
        "reconstruction": reconstruction,
        "attention_mask": attention_mask,
        "probed_positions": probed,
        "masked_positions": masked,
    }


def _collections(ax) -> dict[str, np.ndarray]:
    """The scatter collections of an axis, by label, as ``[N, 2]`` (x, y) offsets."""
    return {collection.get_label(): np.asarray(collection.get_offsets()) for collection in ax.collections}


def _points(x: np.ndarray, y: np.ndarray, where: np.ndarray) -> set[tuple[float, float]]:
    return {(round(float(a), 9), round(float(b), 9)) for a, b in zip(x[where], y[where])}


def _as_set(offsets: np.ndarray) -> set[tuple[float, float]]:
    return {(round(float(a), 9), round(float(b), 9)) for a, b in offsets.reshape(-1, 2)}


def test_reconstruction_figure_draws_each_set_where_expected() -> None:
    data = _windows()
    figure = reconstruction_figure(**data, max_windows=4)
    assert isinstance(figure, Figure)
    axes = figure.get_axes()
    assert len(axes) == 3  # min(B, max_windows)
    for index, ax in enumerate(axes):
        assert ax.yaxis_inverted(), "magnitudes are drawn brighter-up"
        assert ax.get_xlabel() == TIME_LABEL and ax.get_ylabel() == MAGNITUDE_LABEL
        assert "masked RMSE 0.500" in ax.get_title()  # reconstruction = labels + 0.5 everywhere

        t, y, r = data["times"][index], data["labels"][index], data["reconstruction"][index]
        real = data["attention_mask"][index] == 1
        probed = real & (data["probed_positions"][index] == 1)
        hidden = probed & (data["masked_positions"][index] == 1)
        drawn = _collections(ax)
        assert set(drawn) == {OBSERVED_LABEL, HIDDEN_LABEL, VISIBLE_PROBED_LABEL, PREDICTED_LABEL}
        assert _as_set(drawn[OBSERVED_LABEL]) == _points(t, y, real & ~probed)
        assert _as_set(drawn[HIDDEN_LABEL]) == _points(t, y, hidden)
        assert _as_set(drawn[VISIBLE_PROBED_LABEL]) == _points(t, y, probed & ~hidden)
        assert _as_set(drawn[PREDICTED_LABEL]) == _points(t, r, probed)
    # padding (window 1, last 3 positions) is drawn nowhere
    padding = _points(data["times"][1], data["labels"][1], data["attention_mask"][1] == 0)
    assert not any(padding & _as_set(offsets) for offsets in _collections(axes[1]).values())
    assert figure_to_array(figure).shape[2] == 3


def test_reconstruction_figure_accepts_tensors_and_limits_windows() -> None:
    data = {name: torch.as_tensor(value).unsqueeze(-1) for name, value in _windows(batch=5).items()}  # [B, T, 1]
    del data["masked_positions"]
    figure = reconstruction_figure(**data, max_windows=2)
    axes = figure.get_axes()
    assert len(axes) == 2
    drawn = _collections(axes[0])
    assert set(drawn) == {OBSERVED_LABEL, PROBED_LABEL, PREDICTED_LABEL}
    assert len(drawn[PROBED_LABEL]) == 4


def test_reconstruction_figure_without_probed_positions() -> None:
    data = _windows(batch=1)
    data["probed_positions"][:] = 0
    ax = reconstruction_figure(**data).get_axes()[0]
    assert "no probed point" in ax.get_title()
    assert len(_collections(ax)[OBSERVED_LABEL]) == data["attention_mask"].sum()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(labels=d["labels"][:, :-1]), "shape of times"),
        (lambda d: d.update(times=d["times"][0]), r"times must have shape \[B, T\]"),
        (lambda d: d.update(masked_positions=np.zeros((2, 2, 2))), "masked_positions must have shape"),
        (lambda d: d.update(max_windows=0), "max_windows"),
        (lambda d: d.update({name: value[:0] for name, value in d.items()}), "empty"),
    ],
)
def test_reconstruction_figure_rejects_bad_inputs(change, message: str) -> None:
    data = _windows()
    change(data)
    with pytest.raises(ValueError, match=message):
        reconstruction_figure(**data)


def test_attention_figure_one_map_per_head_cropped_with_colorbar() -> None:
    heads, size, length = 6, 10, 7
    attention = torch.softmax(torch.randn(heads, size, size), dim=-1)
    figure = attention_figure(attention, length, layer=2)
    images = [ax for ax in figure.get_axes() if ax.images]
    assert len(images) == heads
    assert len(figure.get_axes()) == heads + 1  # the colorbar
    for head, ax in enumerate(images):
        np.testing.assert_allclose(ax.images[0].get_array(), attention[head, :length, :length].numpy(), rtol=1e-6)
        assert ax.get_title() == f"head {head}"
    assert "layer 2" in figure.get_suptitle()
    # a leading batch axis of one is accepted
    assert len(attention_figure(attention[None], size).get_axes()) == heads + 1


@pytest.mark.parametrize(
    ("attention", "length", "message"),
    [
        (np.ones((2, 4, 5)), 3, r"\[heads, T, T\]"),
        (np.ones((4, 4)), 3, r"\[heads, T, T\]"),
        (np.ones((2, 4, 4)), 0, "length"),
        (np.ones((2, 4, 4)), 5, "length"),
    ],
)
def test_attention_figure_rejects_bad_inputs(attention, length: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        attention_figure(attention, length)


def test_confusion_matrix_figure_rows_true_columns_predicted() -> None:
    matrix = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    figure = confusion_matrix_figure(matrix, ["RRab", "EB", "Cep"])
    heat_map = next(ax for ax in figure.get_axes() if ax.images)
    assert len(figure.get_axes()) == 2  # heat map and colorbar
    assert heat_map.get_xlabel() == "predicted class" and heat_map.get_ylabel() == "true class"
    values = np.asarray(heat_map.images[0].get_array())
    np.testing.assert_allclose(values, [[0.8, 0.2, 0.0], [0.25, 0.75, 0.0], [0.0, 0.0, 0.0]])
    texts = {(round(text.get_position()[0]), round(text.get_position()[1])): text.get_text() for text in heat_map.texts}
    assert texts[(1, 0)] == "0.20" and texts[(0, 1)] == "0.25"  # (column, row): row 0 predicted as class 1
    assert [label.get_text() for label in heat_map.get_yticklabels()] == ["RRab", "EB", "Cep"]

    counts = confusion_matrix_figure(torch.tensor(matrix), ["a", "b", "c"], normalize=False)
    heat_map = next(ax for ax in counts.get_axes() if ax.images)
    assert {text.get_text() for text in heat_map.texts} >= {"8", "2", "3", "1", "0"}


@pytest.mark.parametrize(
    ("matrix", "names", "message"),
    [
        (np.ones((2, 3)), ["a", "b"], "square"),
        (np.ones((2, 2)), ["a"], "class_names"),
        (-np.ones((2, 2)), ["a", "b"], "non-negative"),
    ],
)
def test_confusion_matrix_figure_rejects_bad_inputs(matrix, names, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        confusion_matrix_figure(matrix, names)


def test_figures_are_not_registered_with_pyplot() -> None:
    pyplot = pytest.importorskip("matplotlib.pyplot")
    before = pyplot.get_fignums()
    reconstruction_figure(**_windows(batch=1))
    attention_figure(np.full((1, 3, 3), 1 / 3), 3)
    confusion_matrix_figure(np.eye(2), ["a", "b"])
    assert pyplot.get_fignums() == before
