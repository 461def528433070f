"""AstromerProcessor: outputs, settings, saving and loading (astromer_hf.processing_astromer)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BatchFeature

from astromer_hf.lightcurves import CleaningReport
from astromer_hf.processing_astromer import AstromerProcessor

FLOAT32_WT = ("magnitudes", "times", "errors")
INT64_W = ("curve_index", "window_start", "window_length")
FLOAT64_W = ("time_offset", "magnitude_offset")
MASK_KEYS = ("masked_positions", "probed_positions", "labels")


def make_curve(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    time = 50000.0 + np.cumsum(rng.uniform(0.1, 2.0, n))
    return np.column_stack([time, rng.normal(15.0, 0.3, n), rng.uniform(0.01, 0.1, n)])


@pytest.fixture
def curves() -> list[np.ndarray]:
    return [make_curve(450, seed=1), make_curve(120, seed=2), make_curve(201, seed=3)]


def test_default_output_keys_shapes_and_dtypes(curves):
    batch = AstromerProcessor()(curves)
    assert isinstance(batch, BatchFeature)
    assert set(batch.keys()) == {*FLOAT32_WT, "attention_mask", *INT64_W, *FLOAT64_W}
    n_windows = 3 + 1 + 2  # tiling: ceil(L / 200)
    for key in FLOAT32_WT:
        assert batch[key].dtype == torch.float32 and batch[key].shape == (n_windows, 200)
    assert batch["attention_mask"].dtype == torch.int64 and batch["attention_mask"].shape == (n_windows, 200)
    for key in INT64_W:
        assert batch[key].dtype == torch.int64 and batch[key].shape == (n_windows,)
    for key in FLOAT64_W:
        assert batch[key].dtype == torch.float64 and batch[key].shape == (n_windows,)
    assert batch["curve_index"].tolist() == [0, 0, 0, 1, 2, 2]
    assert batch["window_length"].tolist() == [150, 150, 150, 120, 101, 100]
    assert torch.equal(batch["attention_mask"].sum(1), batch["window_length"])


def test_numpy_output_equals_torch_output(curves):
    processor = AstromerProcessor()
    as_torch = processor(curves, mask=True, seed=3)
    as_numpy = processor(curves, mask=True, seed=3, return_tensors="np")
    assert set(as_torch.keys()) == set(as_numpy.keys())
    for key, value in as_numpy.items():
        assert isinstance(value, np.ndarray)
        np.testing.assert_array_equal(value, as_torch[key].numpy())
        assert value.dtype == as_torch[key].numpy().dtype


def test_errors_are_raw_and_offsets_uncentre(curves):
    batch = AstromerProcessor()(curves, return_tensors="np")
    windows = zip(batch["curve_index"], batch["window_start"], batch["window_length"])
    for w, (curve, start, length) in enumerate(windows):
        raw = curves[curve][start : start + length]
        np.testing.assert_array_equal(batch["errors"][w, :length], raw[:, 2].astype(np.float32))
        assert (batch["errors"][w, length:] == 0).all()
        np.testing.assert_allclose(batch["times"][w, :length] + batch["time_offset"][w], raw[:, 0], rtol=0, atol=1e-4)
        np.testing.assert_allclose(
            batch["magnitudes"][w, :length] + batch["magnitude_offset"][w], raw[:, 1], rtol=0, atol=1e-5
        )


def test_mask_outputs(curves):
    plain = AstromerProcessor()(curves)
    batch = AstromerProcessor()(curves, mask=True, seed=0)
    assert set(MASK_KEYS) <= set(batch.keys())
    assert batch["masked_positions"].dtype == torch.int64 and batch["probed_positions"].dtype == torch.int64
    assert batch["labels"].dtype == torch.float32
    assert torch.equal(batch["labels"], plain["magnitudes"])
    assert torch.equal(batch["times"], plain["times"])
    assert torch.equal(batch["probed_positions"].sum(1), batch["window_length"] // 2)
    changed = batch["magnitudes"] != plain["magnitudes"]
    assert changed.any() and not (changed & ~batch["probed_positions"].bool()).any()
    assert not (batch["probed_positions"].bool() & (batch["attention_mask"] == 0)).any()


def test_seed_makes_random_windows_and_masks_reproducible(curves):
    processor = AstromerProcessor(windows="random")
    first = processor(curves, mask=True, seed=5)
    again = processor(curves, mask=True, seed=5)
    for key in first:
        assert torch.equal(first[key], again[key]), key
    long_curves = [make_curve(1000, seed=s) for s in range(8)]
    a, b = processor(long_curves, mask=True, seed=5), processor(long_curves, mask=True, seed=6)
    assert not torch.equal(a["window_start"], b["window_start"])
    assert not torch.equal(a["masked_positions"], b["masked_positions"])


def test_window_strategy_per_call(curves):
    processor = AstromerProcessor()
    assert processor(curves, windows="legacy")["window_start"].tolist() == [0, 200, 250, 0, 0, 1]
    assert processor(curves, windows="random", seed=0)["curve_index"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="windows must be one of"):
        processor(curves, windows="overlapping")


def test_input_forms_give_the_same_batch(curves):
    processor = AstromerProcessor(window_size=64)
    expected = processor(curves, return_tensors="np")
    frame = pd.DataFrame(
        {
            "object_id": np.repeat(["x", "y", "z"], [len(c) for c in curves]),
            "time": np.concatenate([c[:, 0] for c in curves]),
            "magnitude": np.concatenate([c[:, 1] for c in curves]),
            "err": np.concatenate([c[:, 2] for c in curves]),
        }
    )
    columns = {"time": [c[:, 0] for c in curves], "mag": [c[:, 1] for c in curves], "err": [c[:, 2] for c in curves]}
    for form in (tuple(curves), columns, frame):
        got = processor(form, return_tensors="np")
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])
    assert processor.last_curve_ids == ["x", "y", "z"]
    single = processor(curves[1], return_tensors="np")
    np.testing.assert_array_equal(single["magnitudes"], expected["magnitudes"][expected["curve_index"] == 1])


def test_cleaning_report_is_kept_and_indices_refer_to_the_input(curves, caplog):
    dirty = [curves[0], make_curve(3), curves[1].copy()]
    dirty[2][10, 1] = np.nan
    processor = AstromerProcessor()
    batch = processor(dirty)
    report = processor.last_cleaning_report
    assert isinstance(report, CleaningReport)
    assert (report.nonfinite_rows, report.short_curves, report.dropped_curves) == (1, 1, (1,))
    assert sorted(set(batch["curve_index"].tolist())) == [0, 2]
    assert "Light-curve cleaning" in caplog.text


def test_strict_processor_raises_instead_of_cleaning(curves):
    unsorted = curves[1][::-1].copy()
    with pytest.raises(ValueError, match=r"curve 1, row 1: time not strictly increasing"):
        AstromerProcessor(clean=False)([curves[0], unsorted])
    assert AstromerProcessor(clean=True)([curves[0], unsorted])["curve_index"].tolist() == [0, 0, 0, 1]


def test_reference_windows_through_the_processor(reference, reference_lightcurves):
    processor = AstromerProcessor(windows="legacy", centering="legacy_float32", max_error=None)
    batch = processor(reference_lightcurves, return_tensors="np")
    assert np.array_equal(batch["times"], reference["win_times"])
    assert np.array_equal(batch["magnitudes"], reference["win_mag"])
    np.testing.assert_array_equal(batch["curve_index"], reference["win_curve"])


SETTINGS = dict(
    window_size=64,
    windows="legacy",
    centering="legacy_float32",
    clean=False,
    min_observations=12,
    max_error=None,
    mask_probed_fraction=0.3,
    mask_random_fraction=0.1,
    mask_same_fraction=0.15,
)


def test_save_and_load_round_trip(tmp_path, curves):
    processor = AstromerProcessor(**SETTINGS)
    processor(curves)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert {key: saved[key] for key in SETTINGS} == SETTINGS
    assert "last_cleaning_report" not in saved and "last_curve_ids" not in saved
    loaded = AstromerProcessor.from_pretrained(tmp_path)
    for key, value in SETTINGS.items():
        assert getattr(loaded, key) == value, key
    assert loaded.to_dict() == processor.to_dict()
    assert AstromerProcessor.from_pretrained(tmp_path, window_size=32).window_size == 32


def test_defaults_round_trip(tmp_path):
    AstromerProcessor().save_pretrained(tmp_path)
    loaded = AstromerProcessor.from_pretrained(tmp_path)
    assert (loaded.window_size, loaded.windows, loaded.centering, loaded.max_error) == (200, "tiling", "float64", 1.0)
    assert (loaded.mask_probed_fraction, loaded.mask_random_fraction, loaded.mask_same_fraction) == (0.5, 0.2, 0.2)
    assert loaded.model_input_names == ["magnitudes", "times", "attention_mask"]


def test_from_model_config():
    config = SimpleNamespace(
        window_size=100, mask_probed_fraction=0.4, mask_random_fraction=0.1, mask_same_fraction=0.3
    )
    processor = AstromerProcessor.from_model_config(config, windows="legacy")
    assert (processor.window_size, processor.windows) == (100, "legacy")
    fractions = (processor.mask_probed_fraction, processor.mask_random_fraction, processor.mask_same_fraction)
    assert fractions == (0.4, 0.1, 0.3)
    with pytest.raises(AttributeError, match="window_size"):
        AstromerProcessor.from_model_config(SimpleNamespace(mask_probed_fraction=0.5))


@pytest.mark.parametrize(
    "setting, value",
    [
        ("window_size", 0),
        ("window_size", 2.5),
        ("windows", "sliding"),
        ("centering", "float16"),
        ("padding", "shortest"),
        ("clean", "yes"),
        ("min_observations", 1),
        ("max_error", 0.0),
        ("max_error", -1.0),
        ("mask_probed_fraction", 1.5),
        ("mask_random_fraction", -0.2),
        ("mask_same_fraction", float("nan")),
    ],
)
def test_invalid_settings_are_rejected(setting, value):
    with pytest.raises(ValueError, match=setting):
        AstromerProcessor(**{setting: value})


def test_processor_defaults_are_the_model_configuration_defaults():
    from astromer_hf import AstromerConfig

    config, processor = AstromerConfig(), AstromerProcessor()
    for name in ("window_size", "mask_probed_fraction", "mask_random_fraction", "mask_same_fraction"):
        assert getattr(processor, name) == getattr(config, name), name
    assert processor.padding == "max_length"
    assert AstromerProcessor.from_model_config(AstromerConfig.from_preset("astromer-1")).padding == "max_length"
    assert AstromerProcessor.from_model_config(AstromerConfig.from_preset("astromer-2")).padding == "longest"


def test_longest_padding_pads_to_the_longest_window_and_leaves_key_masked_outputs_unchanged(curves):
    from astromer_hf import AstromerConfig, AstromerModel

    short = [make_curve(40, seed=4), make_curve(65, seed=5)]
    full = AstromerProcessor()(short)
    trimmed = AstromerProcessor(padding="longest")(short)
    assert full["magnitudes"].shape == (2, 200) and trimmed["magnitudes"].shape == (2, 65)
    for name in ("magnitudes", "times", "errors", "attention_mask"):
        torch.testing.assert_close(trimmed[name], full[name][:, :65], rtol=0, atol=0)
    torch.manual_seed(0)
    model = AstromerModel(AstromerConfig.from_preset("astromer-2", num_hidden_layers=2)).eval()
    with torch.no_grad():
        a = model(full["magnitudes"], full["times"], attention_mask=full["attention_mask"]).last_hidden_state
        b = model(trimmed["magnitudes"], trimmed["times"], attention_mask=trimmed["attention_mask"]).last_hidden_state
    real = trimmed["attention_mask"].bool()
    torch.testing.assert_close(b[real], a[:, :65][real], rtol=1e-5, atol=1e-5)


def test_invalid_return_tensors_is_rejected(curves):
    with pytest.raises(ValueError, match="return_tensors"):
        AstromerProcessor()(curves, return_tensors="tf")


@pytest.mark.parametrize(
    "lightcurves",
    [
        np.zeros((0, 3)),
        np.full((10, 3), np.nan),
        np.column_stack([np.arange(10.0), np.ones(10), np.full(10, 5.0)]),  # every error above max_error
        np.arange(30).reshape(10, 3),  # integers: errors 2, 5, 8, ... all above max_error
        pd.DataFrame({"object_id": [], "time": [], "mag": [], "err": []}),
    ],
    ids=["no-rows", "all-nan", "errors-too-large", "integers", "empty-dataframe"],
)
def test_nothing_left_after_cleaning_is_a_clear_error(lightcurves):
    with pytest.raises(ValueError, match="no light curve left after cleaning: .* what each rule removed"):
        AstromerProcessor()(lightcurves)
