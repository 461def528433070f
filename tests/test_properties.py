"""Property-based tests (hypothesis): whatever arrays users pass — any shape, dtype, NaN, inf, huge or repeated
values — the processor, the model and the training collate either work and give finite outputs, or raise
``ValueError`` / ``TypeError`` with a message that says which curve or what is wrong. Never another exception,
never a NaN embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from astromer_hf import AstromerConfig, AstromerModel, AstromerProcessor

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODEL = AstromerModel(AstromerConfig(hidden_size=16, num_attention_heads=2, intermediate_size=16, window_size=16,
                                     num_hidden_layers=1)).eval()

special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e300, -1e300, 1e-300, 5e4])
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
values = st.one_of(finite, special, st.floats(allow_nan=True, allow_infinity=True, width=64))
dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.bool_, np.float16])


@st.composite
def curve_arrays(draw) -> np.ndarray:
    rows = draw(st.integers(0, 40))
    columns = draw(st.sampled_from([3, 3, 3, 2, 4, 1]))
    ndim = draw(st.sampled_from([2, 2, 2, 1, 3]))
    shape = {1: (rows,), 2: (rows, columns), 3: (rows, columns, 1)}[ndim]
    dtype = draw(dtypes)
    elements = values if np.issubdtype(dtype, np.floating) else None
    with np.errstate(all="ignore"):
        return draw(hnp.arrays(dtype, shape, elements=elements))


@st.composite
def plausible_curves(draw) -> np.ndarray:
    """(N, 3) curves that look real, with some bad rows mixed in."""
    rows = draw(st.integers(0, 60))
    time = np.sort(np.array(draw(st.lists(st.floats(0, 1e4), min_size=rows, max_size=rows))))
    mag = np.array(draw(st.lists(st.floats(5, 25), min_size=rows, max_size=rows)))
    err = np.array(draw(st.lists(st.floats(0.001, 0.5), min_size=rows, max_size=rows)))
    curve = np.column_stack([time, mag, err]) if rows else np.zeros((0, 3))
    for _ in range(draw(st.integers(0, 3))):
        if rows:
            curve[draw(st.integers(0, rows - 1)), draw(st.integers(0, 2))] = draw(special)
    return curve


def _check_outcome(call) -> None:
    try:
        inputs = call()
    except (ValueError, TypeError) as error:
        message = str(error)
        assert message and ("curve" in message or "light-curve" in message), message
        return
    for name in ("magnitudes", "times", "errors"):
        assert torch.isfinite(inputs[name]).all(), name
    with torch.no_grad():
        embedding = MODEL(inputs["magnitudes"], inputs["times"], attention_mask=inputs["attention_mask"])
    assert torch.isfinite(embedding.last_hidden_state).all()


@PROPERTY_SETTINGS
@given(st.lists(curve_arrays(), min_size=1, max_size=3))
def test_the_processor_refuses_clearly_or_gives_finite_embeddings_for_any_arrays(curves):
    processor = AstromerProcessor(window_size=16)
    _check_outcome(lambda: processor(curves if len(curves) > 1 else curves[0]))


@PROPERTY_SETTINGS
@given(st.lists(plausible_curves(), min_size=1, max_size=4), st.sampled_from(["tiling", "legacy", "random"]),
       st.sampled_from(["max_length", "longest"]), st.booleans())
def test_plausible_curves_with_bad_rows_give_finite_embeddings(curves, windows, padding, mask):
    processor = AstromerProcessor(window_size=16, windows=windows, padding=padding)
    _check_outcome(lambda: processor(curves, mask=mask, seed=0))


@PROPERTY_SETTINGS
@given(st.lists(plausible_curves(), min_size=1, max_size=4))
def test_the_training_collate_gives_finite_batches(curves):
    """The data module's collate, over curves as a prepared dataset stores them (cleaned by preparation)."""
    datasets = pytest.importorskip("datasets")
    from astromer_hf.lightcurves import RaggedCurves, clean_lightcurves
    from astromer_hf.training.windows import ArrowLightCurves, WindowCollator

    try:
        cleaned, _, _ = clean_lightcurves(RaggedCurves.from_list([np.asarray(c, dtype=np.float64) for c in curves]))
    except ValueError as error:
        assert "no light curve left after cleaning" in str(error)
        return
    rows = [cleaned.values[a:b] for a, b in zip(cleaned.offsets[:-1], cleaned.offsets[1:])]
    sequence = datasets.Sequence(datasets.Value("float64"))
    features = datasets.Features({"time": sequence, "mag": sequence, "mag_err": sequence,
                                  "n_obs": datasets.Value("int64"), "label": datasets.Value("int64")})
    split = datasets.Dataset.from_dict({
        "time": [r[:, 0].tolist() for r in rows], "mag": [r[:, 1].tolist() for r in rows],
        "mag_err": [r[:, 2].tolist() for r in rows], "n_obs": [len(r) for r in rows],
        "label": [None] * len(rows),
    }, features=features)
    data = ArrowLightCurves(split, window_size=16, windows="random", seed=0)
    collate = WindowCollator(16, probed_fraction=0.5, random_fraction=0.2, same_fraction=0.2, seed=0)
    batch = collate(data.__getitems__([(index, 0) for index in range(len(data))]))
    for name in ("magnitudes", "times", "labels"):
        assert torch.isfinite(batch[name]).all(), name
    assert batch["attention_mask"].sum() == sum(min(len(r), 16) for r in rows)
