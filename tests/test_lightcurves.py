"""Parsing, cleaning, windowing and centring of light curves (astromer_hf.lightcurves)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from astromer_hf.lightcurves import (
    RaggedCurves,
    as_lightcurves,
    center_windows,
    clean_lightcurves,
    make_windows,
    validate_lightcurves,
    window_slices,
)

T = 200
FULL_JD_OGLE_CURVES = ("ogle/OB03235/I", "ogle/OB140939/I")


def make_curve(n: int, t0: float = 50000.0, seed: int = 0) -> np.ndarray:
    """A sorted (n, 3) curve with distinct times and errors in (0, 1)."""
    rng = np.random.default_rng(seed)
    time = t0 + np.cumsum(rng.uniform(0.1, 2.0, n))
    return np.column_stack([time, rng.normal(15.0, 0.3, n), rng.uniform(0.01, 0.1, n)])


# ----------------------------------------------------------------------------------------------------------
# Reference parity
# ----------------------------------------------------------------------------------------------------------


def test_legacy_float32_rebuilds_reference_windows_bit_identically(reference, reference_lightcurves):
    # The original A1 loader did not filter on the error, so rows with err >= 1 stay: max_error=None.
    out = make_windows(
        reference_lightcurves, window_size=T, strategy="legacy", centering="legacy_float32", max_error=None
    )
    assert not out.report.changed
    np.testing.assert_array_equal(out.slices.curve_index, reference["win_curve"])
    np.testing.assert_array_equal(out.slices.start, reference["win_pivot"])
    np.testing.assert_array_equal(out.slices.length, reference["win_length"])
    assert out.centred.times.dtype == np.float32 and out.centred.magnitudes.dtype == np.float32
    assert np.array_equal(out.centred.times, reference["win_times"])
    assert np.array_equal(out.centred.magnitudes, reference["win_mag"])
    np.testing.assert_array_equal(1 - out.centred.attention_mask, reference["win_mask_in"])
    np.testing.assert_array_equal(out.centred.attention_mask, reference["win_mask_out"])


def test_reference_has_errors_above_one_that_default_cleaning_drops(reference, reference_lightcurves):
    errors = reference["raw_lc"][:, 2]
    assert (errors > 0).all()
    assert int((errors >= 1.0).sum()) == 74
    offsets = reference["raw_offsets"]
    curves_with_large_errors = set((np.searchsorted(offsets, np.flatnonzero(errors >= 1), side="right") - 1).tolist())
    assert curves_with_large_errors == {0, 1, 3, 5, 8, 9, 10, 17, 18}
    assert all(reference["curve_name"][c].startswith("macho/") for c in curves_with_large_errors)

    out = make_windows(reference_lightcurves, window_size=T, strategy="legacy", centering="legacy_float32")
    assert out.report.bad_error_rows == 74
    assert out.report.observations_out == len(errors) - 74
    assert not np.array_equal(out.centred.magnitudes[: len(reference["win_mag"])], reference["win_mag"])


def test_float64_centring_offsets_are_the_exact_window_means(reference_lightcurves):
    out = make_windows(reference_lightcurves, window_size=T, strategy="legacy", max_error=None)
    for w, (curve, start, length) in enumerate(zip(out.slices.curve_index, out.slices.start, out.slices.length)):
        window = reference_lightcurves[curve][start : start + length]
        exact_time, exact_mag = (math.fsum(window[:, k]) / length for k in (0, 1))
        assert out.centred.time_offset[w] == pytest.approx(exact_time, rel=1e-14, abs=0)
        assert out.centred.magnitude_offset[w] == pytest.approx(exact_mag, rel=1e-14, abs=1e-14)
        np.testing.assert_array_equal(out.centred.times[w, :length], (window[:, 0] - exact_time).astype(np.float32))
        assert (out.centred.times[w, length:] == 0).all() and (out.centred.magnitudes[w, length:] == 0).all()


def test_float64_centring_fixes_the_float32_time_shift_of_full_julian_dates(reference, reference_lightcurves):
    """The documented, deliberate difference: legacy float32 centring shifts full-JD times by up to ~0.9 d."""
    names = list(reference["curve_name"])
    exact = make_windows(reference_lightcurves, window_size=T, strategy="legacy", max_error=None)
    legacy = make_windows(reference_lightcurves, window_size=T, strategy="legacy", centering="legacy_float32", max_error=None)
    for name in FULL_JD_OGLE_CURVES:
        rows = exact.slices.curve_index == names.index(name)
        real = exact.centred.attention_mask[rows] == 1
        true_centred = _exact_centred_times(reference_lightcurves, exact.slices, rows)
        legacy_error = np.abs(legacy.centred.times[rows][real] - true_centred[real]).max()
        float64_error = np.abs(exact.centred.times[rows][real] - true_centred[real]).max()
        assert 0.5 < legacy_error < 1.0
        assert float64_error < 1e-4
    assert np.abs(exact.centred.magnitudes - legacy.centred.magnitudes).max() < 1e-3


def _exact_centred_times(curves: list[np.ndarray], slices, rows: np.ndarray) -> np.ndarray:
    """float64 [w, T]: window times minus their exact mean, for the selected windows."""
    result = np.zeros((int(rows.sum()), T))
    for i, (curve, start, length) in enumerate(zip(slices.curve_index[rows], slices.start[rows], slices.length[rows])):
        time = curves[curve][start : start + length, 0]
        result[i, :length] = time - math.fsum(time) / length
    return result


# ----------------------------------------------------------------------------------------------------------
# Window strategies
# ----------------------------------------------------------------------------------------------------------

# (start, length) of each window, written out by hand from the rules in the spec (T = 200).
EXPECTED_LEGACY = {
    1: [(0, 1)],
    5: [(0, 5)],
    199: [(0, 199)],
    200: [(0, 200), (0, 200)],
    201: [(0, 200), (1, 200)],
    400: [(0, 200), (200, 200), (200, 200)],
    401: [(0, 200), (200, 200), (201, 200)],
    1235: [(0, 200), (200, 200), (400, 200), (600, 200), (800, 200), (1000, 200), (1035, 200)],
}
EXPECTED_TILING = {
    1: [(0, 1)],
    5: [(0, 5)],
    199: [(0, 199)],
    200: [(0, 200)],
    201: [(0, 101), (101, 100)],
    400: [(0, 200), (200, 200)],
    401: [(0, 134), (134, 134), (268, 133)],
    1235: [(0, 177), (177, 177), (354, 177), (531, 176), (707, 176), (883, 176), (1059, 176)],
}
LENGTHS = list(EXPECTED_LEGACY)


@pytest.mark.parametrize("strategy, expected", [("legacy", EXPECTED_LEGACY), ("tiling", EXPECTED_TILING)])
@pytest.mark.parametrize("length", LENGTHS)
def test_deterministic_windows_of_one_curve(strategy, expected, length):
    slices = window_slices(np.array([length]), T, strategy)
    assert list(zip(slices.start.tolist(), slices.length.tolist())) == expected[length]
    assert (slices.curve_index == 0).all()


@pytest.mark.parametrize("strategy, expected", [("legacy", EXPECTED_LEGACY), ("tiling", EXPECTED_TILING)])
def test_deterministic_windows_of_a_batch_follow_curve_order(strategy, expected):
    slices = window_slices(np.array(LENGTHS), T, strategy)
    expected_curves = [c for c, length in enumerate(LENGTHS) for _ in expected[length]]
    expected_slices = [s for length in LENGTHS for s in expected[length]]
    assert slices.curve_index.tolist() == expected_curves
    assert list(zip(slices.start.tolist(), slices.length.tolist())) == expected_slices


@pytest.mark.parametrize("length", LENGTHS)
def test_random_window_of_one_curve(length):
    slices = window_slices(np.array([length]), T, "random", rng=0)
    assert slices.curve_index.tolist() == [0]
    assert slices.length.tolist() == [min(length, T)]
    assert 0 <= slices.start[0] <= max(0, length - T)


def test_random_windows_reach_both_ends_and_are_reproducible():
    lengths = np.full(2000, 203)
    slices = window_slices(lengths, T, "random", rng=np.random.default_rng(7))
    assert set(slices.start.tolist()) == {0, 1, 2, 3}
    again = window_slices(lengths, T, "random", rng=7)
    np.testing.assert_array_equal(slices.start, again.start)
    other = window_slices(lengths, T, "random", rng=8)
    assert not np.array_equal(slices.start, other.start)


def test_tiling_covers_every_observation_exactly_once():
    lengths = np.random.default_rng(3).integers(1, 2500, size=300)
    slices = window_slices(lengths, T, "tiling")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    covered = np.concatenate(
        [np.arange(s, s + n) + offsets[c] for c, s, n in zip(slices.curve_index, slices.start, slices.length)]
    )
    np.testing.assert_array_equal(np.bincount(covered, minlength=lengths.sum()), 1)
    assert (slices.length <= T).all()
    np.testing.assert_array_equal(np.bincount(slices.curve_index), -(-lengths // T))
    for curve in range(len(lengths)):
        own = slices.length[slices.curve_index == curve]
        assert own.max() - own.min() <= 1


def test_window_slices_rejects_bad_arguments():
    with pytest.raises(ValueError, match="strategy"):
        window_slices(np.array([10]), T, "sliding")
    with pytest.raises(ValueError, match="at least one observation"):
        window_slices(np.array([10, 0]), T, "tiling")
    with pytest.raises(ValueError, match="window_size"):
        window_slices(np.array([10]), 0, "tiling")


def test_centring_pads_with_zeros_and_keeps_raw_errors():
    curves = RaggedCurves.from_list([make_curve(7, seed=1), make_curve(3, seed=2)])
    slices = window_slices(curves.lengths, 5, "tiling")
    windows = center_windows(curves, slices, 5)
    assert windows.times.shape == (3, 5)
    np.testing.assert_array_equal(windows.attention_mask, [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(windows.errors[0, :4], curves.curve(0)[:4, 2].astype(np.float32))
    assert (windows.errors[windows.attention_mask == 0] == 0).all()
    restored = windows.magnitudes[2, :3] + windows.magnitude_offset[2]
    np.testing.assert_allclose(restored, curves.curve(1)[:, 1], rtol=1e-6)
    np.testing.assert_allclose(windows.times.sum(axis=1), 0, atol=1e-4)


# ----------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------


def _windows_of(obj) -> tuple[np.ndarray, ...]:
    out = make_windows(obj, window_size=50)
    return out.slices.curve_index, out.centred.times, out.centred.magnitudes, out.centred.errors


def _long_frame(curves: list[np.ndarray], ids: list[str]) -> pd.DataFrame:
    """Long-format frame, curve after curve, with an extra non-light-curve column."""
    return pd.DataFrame(
        {
            "newID": np.repeat(ids, [len(c) for c in curves]),
            "mjd": np.concatenate([c[:, 0] for c in curves]),
            "mag": np.concatenate([c[:, 1] for c in curves]),
            "mag_err": np.concatenate([c[:, 2] for c in curves]),
            "band": "R",
        }
    )


def test_input_forms_give_the_same_windows():
    curves = [make_curve(120, seed=1), make_curve(37, seed=2), make_curve(80, seed=3)]
    expected = _windows_of(curves)
    columns = {
        "mjd": [c[:, 0] for c in curves],
        "Magnitude": [c[:, 1] for c in curves],
        "errmag": [c[:, 2] for c in curves],
    }
    for form in (tuple(curves), [c.tolist() for c in curves], columns, _long_frame(curves, ["b", "a", "c"])):
        for got, want in zip(_windows_of(form), expected):
            np.testing.assert_array_equal(got, want)


def test_interleaved_dataframe_rows_group_by_first_appearance():
    curves = [make_curve(120, seed=1), make_curve(37, seed=2), make_curve(80, seed=3)]
    long = _long_frame(curves, ["b", "a", "c"])
    slot_curve = np.random.default_rng(0).permutation(np.repeat(np.arange(3), [len(c) for c in curves]))
    source = np.empty(len(long), dtype=np.int64)
    source[np.argsort(slot_curve, kind="stable")] = np.arange(len(long))
    interleaved = long.iloc[source]
    first_seen = pd.unique(slot_curve).tolist()
    assert as_lightcurves(interleaved).ids == [["b", "a", "c"][c] for c in first_seen]
    for got, want in zip(_windows_of(interleaved), _windows_of([curves[c] for c in first_seen])):
        np.testing.assert_array_equal(got, want)


def test_single_curve_forms_agree():
    curve = make_curve(90, seed=4)
    expected = _windows_of([curve])
    frame = pd.DataFrame(curve, columns=["time", "mag", "err"])
    for form in (curve, {"time": curve[:, 0], "mag": curve[:, 1], "err": curve[:, 2]}, frame):
        for got, want in zip(_windows_of(form), expected):
            np.testing.assert_array_equal(got, want)
    assert as_lightcurves(frame).ids is None


def test_dataframe_groups_by_first_appearance_and_keeps_row_order():
    frame = pd.DataFrame(
        {"oid": [7, 3, 7, 3, 9], "time": [1.0, 5.0, 2.0, 6.0, 0.0], "mag": [1, 2, 3, 4, 5], "err": 0.1}
    )
    parsed = as_lightcurves(frame)
    assert parsed.ids == [7, 3, 9]
    np.testing.assert_array_equal(parsed.curves[0], [[1.0, 1, 0.1], [2.0, 3, 0.1]])
    np.testing.assert_array_equal(parsed.curves[1], [[5.0, 2, 0.1], [6.0, 4, 0.1]])
    assert all(c.dtype == np.float64 for c in parsed.curves)


@pytest.mark.parametrize(
    "bad, message",
    [
        ([np.zeros((5, 3)), np.zeros(5) + 1], r"curve 1: expected a 2-D array"),
        ([np.zeros((5, 3, 1))], r"curve 0: expected a 2-D array"),
        ([np.zeros((5, 2))], r"curve 0: expected 3 columns"),
        ([make_curve(4), np.zeros((5, 4))], r"curve 1: expected 3 columns"),
        (np.zeros((2, 5, 3)), r"single light curve must be a 2-D array"),
        ([np.array([["a", "b", "c"]] * 5)], r"curve 0: values must be numeric"),
        ([[[1.0, 2.0, None]] * 5], r"curve 0: values must be numeric"),
        ({"time": [1.0, 2.0], "mag": [1.0, 2.0, 3.0], "err": [0.1, 0.1]}, r"curve 0: columns have different lengths"),
        ({"time": [1.0, 2.0], "mag": [1.0, 2.0]}, r"missing 'err' column"),
        ({"time": [1.0], "mjd": [1.0], "mag": [1.0], "err": [0.1]}, r"ambiguous 'time' column"),
        ({"time": [[1.0, 2.0]], "mag": [1.0, 2.0], "err": [[0.1, 0.1]]}, r"columns disagree"),
        ({"time": [[1.0], [2.0]], "mag": [[1.0]], "err": [[0.1], [0.1]]}, r"different numbers of curves"),
        (pd.DataFrame({"time": [1.0], "mag": ["x"], "err": [0.1]}), r"column 'mag' \(mag\) must be numeric"),
        (pd.DataFrame({"time": [1.0], "mag": [1.0]}), r"missing 'err' column"),
        (
            pd.DataFrame({"id": [1, None], "time": [1.0, 2.0], "mag": [1.0, 1.0], "err": [0.1, 0.1]}),
            r"missing object id at row 1",
        ),
        ([], r"no light curves given"),
    ],
)
def test_bad_inputs_raise_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        as_lightcurves(bad)


def test_unsupported_container_is_a_type_error():
    with pytest.raises(TypeError, match="unsupported light-curve container"):
        as_lightcurves("light_curve.csv")


# ----------------------------------------------------------------------------------------------------------
# Cleaning
# ----------------------------------------------------------------------------------------------------------


def _dirty_batch() -> list[np.ndarray]:
    """Curves with one problem each (curve 0 is clean)."""
    clean = make_curve(20, seed=0)
    nan_and_inf = make_curve(20, seed=1)
    nan_and_inf[3, 1] = np.nan
    nan_and_inf[8, 0] = np.inf
    bad_errors = make_curve(20, seed=2)
    bad_errors[[1, 2, 3], 2] = [0.0, -0.1, 1.0]
    unsorted = make_curve(20, seed=3)[::-1].copy()
    duplicated = make_curve(20, seed=4)
    duplicated[5, 0] = duplicated[4, 0]
    duplicated[[4, 5], 1] = [10.0, 11.0]
    return [clean, nan_and_inf, bad_errors, unsorted, duplicated, np.empty((0, 3)), make_curve(1), make_curve(4)]


def test_cleaning_counts_every_rule(caplog):
    curves = RaggedCurves.from_list(_dirty_batch())
    with caplog.at_level(logging.WARNING, logger="astromer_hf.lightcurves"):
        cleaned, kept, report = clean_lightcurves(curves)
    assert report.nonfinite_rows == 2
    assert report.bad_error_rows == 3
    assert report.resorted_curves == 1
    assert report.duplicate_time_rows == 1
    assert report.short_curves == 3 and report.dropped_curves == (5, 6, 7)
    assert (report.curves_in, report.curves_out) == (8, 5)
    assert report.observations_in == 100 + 0 + 1 + 4
    assert report.observations_out == 100 - 2 - 3 - 1
    assert kept.tolist() == [0, 1, 2, 3, 4]
    assert cleaned.lengths.tolist() == [20, 18, 17, 20, 19]
    assert report.to_dict()["dropped_curves"] == [5, 6, 7]
    assert "too short" in str(report) and "[5, 6, 7]" in str(report)
    assert "Light-curve cleaning" in caplog.text


def test_the_pipeline_never_modifies_the_input():
    batch = _dirty_batch()
    snapshot = [curve.copy() for curve in batch]
    make_windows(batch, window_size=8)
    for curve, before in zip(batch, snapshot):
        np.testing.assert_array_equal(curve, before)


def test_cleaning_sorts_stably_and_keeps_the_last_duplicate():
    cleaned, _, _ = clean_lightcurves(RaggedCurves.from_list(_dirty_batch()))
    reversed_curve = cleaned.curve(3)
    np.testing.assert_array_equal(reversed_curve, make_curve(20, seed=3))
    duplicated = cleaned.curve(4)
    assert (np.diff(duplicated[:, 0]) > 0).all()
    assert duplicated[4, 1] == 11.0


def test_duplicates_in_unsorted_input_keep_the_later_row():
    curve = np.array([[3.0, 1, 0.1], [1.0, 2, 0.1], [3.0, 3, 0.1], [2.0, 4, 0.1], [4.0, 5, 0.1], [5.0, 6, 0.1]])
    cleaned, _, report = clean_lightcurves(RaggedCurves.from_list([curve]), min_observations=2)
    np.testing.assert_array_equal(cleaned.values[:, 1], [2, 4, 3, 5, 6])
    assert report.duplicate_time_rows == 1 and report.resorted_curves == 1


def test_max_error_none_keeps_large_but_not_non_positive_errors():
    curve = make_curve(10)
    curve[[0, 1, 2], 2] = [5.0, 0.0, -1.0]
    cleaned, _, report = clean_lightcurves(RaggedCurves.from_list([curve]), max_error=None)
    assert report.bad_error_rows == 2 and cleaned.values[0, 2] == 5.0


def test_clean_input_is_not_reported_or_logged(caplog):
    with caplog.at_level(logging.WARNING):
        _, _, report = clean_lightcurves(RaggedCurves.from_list([make_curve(30)]))
    assert not report.changed and caplog.text == ""


def test_cleaning_that_leaves_nothing_raises():
    with pytest.raises(ValueError, match="no light curve left after cleaning"):
        clean_lightcurves(RaggedCurves.from_list([make_curve(3), np.empty((0, 3))]))


def test_window_curve_index_points_to_the_input_list():
    out = make_windows(_dirty_batch(), window_size=8)
    assert sorted(set(out.slices.curve_index.tolist())) == [0, 1, 2, 3, 4]
    assert out.report.short_curves == 3


@pytest.mark.parametrize(
    "curve_number, message",
    [
        (1, r"curve 1, row 3: non-finite"),
        (2, r"curve 2, row 1: non-positive error"),
        (3, r"curve 3, row 1: time not strictly increasing"),
        (4, r"curve 4, row 5: time not strictly increasing"),
        (5, r"curve 5 has 0 observation"),
        (6, r"curve 6 has 1 observation"),
    ],
)
def test_strict_mode_names_the_curve_and_row(curve_number, message):
    batch = _dirty_batch()
    curves = [batch[0]] * curve_number + [batch[curve_number]]
    with pytest.raises(ValueError, match=message):
        validate_lightcurves(RaggedCurves.from_list(curves))
    with pytest.raises(ValueError, match=message):
        make_windows(curves, window_size=T, clean=False)


def test_strict_mode_accepts_valid_curves_unchanged():
    curves = [make_curve(30, seed=1), make_curve(3, seed=2)]
    out = make_windows(curves, window_size=16, clean=False)
    assert not out.report.changed and out.report.observations_out == 33
    assert out.slices.curve_index.tolist() == [0, 0, 1]
