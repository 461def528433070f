"""The light-curve simulator (astromer_hf.data.simulator) and the feature baseline (astromer_hf.data.baseline)."""

from __future__ import annotations

import math
import re
import time
import types

import numpy as np
import pytest

from astromer_hf.data import baseline
from astromer_hf.data.simulator import (
    AMPLITUDE_RANGES,
    CADENCE_BANDS,
    CADENCE_SPECS,
    CADENCES,
    OUTLIER_FRACTION,
    PERIOD_RANGES,
    SIMULATED_CLASSES,
    simulate_lightcurve,
    simulate_survey,
)
from astromer_hf.lightcurves import RaggedCurves, clean_lightcurves, validate_lightcurves

ARRAY_KEYS = ("time", "mag", "mag_err")
SCALAR_KEYS = ("band", "label", "period", "amplitude", "mean_mag")


def assert_same_curve(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key in ARRAY_KEYS:
            assert a[key].dtype == b[key].dtype
            np.testing.assert_array_equal(a[key], b[key])
        elif isinstance(a[key], float) and math.isnan(a[key]):
            assert math.isnan(b[key])
        else:
            assert a[key] == b[key], key


def class_sample(class_name: str, n: int, cadence: str = "macho", seed: int = 11) -> list[dict]:
    return [
        simulate_lightcurve(np.random.default_rng([seed, i]), class_name, cadence, include_model=True)
        for i in range(n)
    ]


def brightening_fraction(curve: dict) -> float:
    """Fraction of the cycle during which the noiseless model gets brighter (magnitude decreasing)."""
    phase = (curve["time"] / curve["period"]) % 1.0
    order = np.argsort(phase)
    phase, model = phase[order], curve["mag_model"][order]
    step = np.diff(np.r_[phase, phase[0] + 1.0])
    falling = np.diff(np.r_[model, model[0]]) < 0
    return float(step[falling].sum())


# ----------------------------------------------------------------------------------------------------------
# Determinism and streaming
# ----------------------------------------------------------------------------------------------------------


def test_same_seed_same_curves_and_different_seed_different_curves():
    first = list(simulate_survey(6, seed=3))
    again = list(simulate_survey(6, seed=3))
    for a, b in zip(first, again):
        assert_same_curve(a, b)
    other = list(simulate_survey(6, seed=4))
    for a, b in zip(first, other):
        assert a["object_id"] != b["object_id"]
        assert a["time"].size != b["time"].size or not np.array_equal(a["mag"], b["mag"])


def test_curve_i_is_the_same_from_start_or_from_zero():
    full = list(simulate_survey(12, seed=7, cadence="ogle"))
    for i in (0, 5, 11):
        (alone,) = simulate_survey(1, seed=7, cadence="ogle", start=i)
        assert_same_curve(alone, full[i])
    shard = list(simulate_survey(4, seed=7, cadence="ogle", start=8))
    assert [c["object_id"] for c in shard] == [f"SIM-ogle-7-{i:09d}" for i in range(8, 12)]
    for a, b in zip(shard, full[8:]):
        assert_same_curve(a, b)


def test_survey_curve_is_simulate_lightcurve_after_the_class_draw():
    (curve,) = simulate_survey(1, seed=5, cadence="ztf", start=42)
    rng = np.random.default_rng([5, 42])
    rng.random()  # the class draw
    alone = simulate_lightcurve(rng, curve["label"], "ztf")
    assert_same_curve(alone, {key: curve[key] for key in alone})


def test_include_model_changes_nothing_else():
    plain = simulate_lightcurve(np.random.default_rng(1), "Cep_0", "macho")
    with_model = simulate_lightcurve(np.random.default_rng(1), "Cep_0", "macho", include_model=True)
    model = with_model.pop("mag_model")
    assert_same_curve(plain, with_model)
    assert model.dtype == np.float64 and model.shape == plain["mag"].shape


def test_survey_is_a_lazy_generator_and_start_does_not_generate_earlier_curves():
    stream = simulate_survey(10**12, seed=1, start=10**11)
    assert isinstance(stream, types.GeneratorType)
    began = time.perf_counter()
    curve = next(stream)
    assert time.perf_counter() - began < 1.0
    assert curve["object_id"] == f"SIM-macho-1-{10**11:09d}"


# ----------------------------------------------------------------------------------------------------------
# Schema, cadences, noise
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cadence", CADENCES)
def test_schema_dtypes_and_cadence(cadence):
    spec = CADENCE_SPECS[cadence]
    curves = list(simulate_survey(40, seed=2, cadence=cadence))
    bands = set()
    for i, curve in enumerate(curves):
        assert set(curve) == {*ARRAY_KEYS, *SCALAR_KEYS, "object_id", "ra", "dec", "n_obs"}
        assert curve["object_id"] == f"SIM-{cadence}-2-{i:09d}"
        t, mag, err = curve["time"], curve["mag"], curve["mag_err"]
        assert t.dtype == np.float64 and mag.dtype == np.float32 and err.dtype == np.float32
        assert t.ndim == 1 and t.shape == mag.shape == err.shape and curve["n_obs"] == t.size
        assert spec.n_obs[0] <= t.size <= spec.n_obs[1]
        assert np.all(np.diff(t) > 0)
        assert spec.start_mjd[0] - 1 <= t[0] and t[-1] <= spec.start_mjd[1] + spec.baseline_days[1] + 1
        assert np.all(np.isfinite(mag)) and np.all(err > 0) and np.mean(err < 1.0) > 0.99
        if t[-1] - t[0] > 2 * 365.25:
            assert np.diff(t).max() > 60.0  # a seasonal gap
        assert curve["label"] in SIMULATED_CLASSES and curve["band"] in CADENCE_BANDS[cadence]
        assert spec.mag_range[0] <= curve["mean_mag"] <= spec.mag_range[1]
        assert 0.0 <= curve["ra"] < 360.0 and -90.0 <= curve["dec"] <= 90.0
        bands.add(curve["band"])
    assert bands == set(CADENCE_BANDS[cadence])
    if cadence == "ztf":
        assert min(c["dec"] for c in curves) >= -30.0
    else:  # survey fields: LMC, SMC, bulge
        assert all(c["dec"] < -20.0 for c in curves)


def test_nights_structure_macho():
    curves = list(simulate_survey(30, seed=9, cadence="macho"))
    for curve in curves:
        night = np.floor(curve["time"] - 0.58 + 0.5)  # observing nights centred on local midnight
        # about one epoch per night: at most two on any night
        assert np.bincount((night - night.min()).astype(np.int64)).max() <= 2
    lengths = np.array([c["n_obs"] for c in curves])
    assert lengths.max() / lengths.min() > 3  # a broad distribution of lengths


def test_simulated_curves_pass_the_package_validation_and_cleaning():
    curves = list(simulate_survey(60, seed=4, cadence="macho"))
    ragged = RaggedCurves.from_list([np.column_stack([c["time"], c["mag"], c["mag_err"]]) for c in curves])
    validate_lightcurves(ragged)
    _, kept, report = clean_lightcurves(ragged)
    assert not report.changed, str(report)
    np.testing.assert_array_equal(kept, np.arange(60))


def test_nonvar_scatter_matches_its_errors():
    chi2 = []
    for curve in simulate_survey(80, seed=6, classes=("NonVar",)):
        if curve["amplitude"] > 0:  # weak red noise
            continue
        mag, err = curve["mag"].astype(np.float64), curve["mag_err"].astype(np.float64)
        z = (mag - np.median(mag)) / err
        keep = np.abs(z) < 5.0  # outliers out
        residual = (mag[keep] - np.average(mag[keep], weights=err[keep] ** -2)) / err[keep]
        chi2.append(float(np.sum(residual**2) / (keep.sum() - 1)))
    chi2 = np.array(chi2)
    assert chi2.size > 30
    assert 0.93 < chi2.mean() < 1.1
    assert np.all((chi2 > 0.6) & (chi2 < 1.6))


def test_outlier_fraction_is_as_documented():
    flagged = total = 0
    for curve in simulate_survey(150, seed=8, classes=("NonVar",)):
        if curve["amplitude"] > 0:
            continue
        mag, err = curve["mag"].astype(np.float64), curve["mag_err"].astype(np.float64)
        flagged += int(np.sum(np.abs(mag - np.median(mag)) / err > 4.0))
        total += mag.size
    fraction = flagged / total
    assert 0.6 * OUTLIER_FRACTION < fraction < 1.5 * OUTLIER_FRACTION, fraction


def test_errors_grow_with_magnitude():
    curves = list(simulate_survey(200, seed=10, classes=("NonVar",)))
    mean_mag = np.array([c["mean_mag"] for c in curves])
    median_err = np.array([np.median(c["mag_err"]) for c in curves])
    bright, faint = median_err[mean_mag < 16].mean(), median_err[mean_mag > 19.5].mean()
    assert faint > 4 * bright
    assert np.all(median_err >= 0.005)


# ----------------------------------------------------------------------------------------------------------
# Classes
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("class_name", SIMULATED_CLASSES)
def test_periods_and_amplitudes_within_documented_ranges(class_name):
    curves = class_sample(class_name, 40)
    periods = np.array([c["period"] for c in curves])
    amplitudes = np.array([c["amplitude"] for c in curves])
    lo, hi = AMPLITUDE_RANGES[class_name]
    assert np.all((amplitudes >= lo) & (amplitudes <= hi)), (amplitudes.min(), amplitudes.max())
    if class_name == "NonVar":
        assert np.all(np.isnan(periods))
        assert np.mean(amplitudes == 0) > 0.5
    else:
        lo, hi = PERIOD_RANGES[class_name]
        assert np.all((periods >= lo) & (periods <= hi)), (periods.min(), periods.max())
        assert np.unique(periods).size == periods.size
    for curve in curves:
        model = curve["mag_model"]
        # the amplitude is the model's peak to peak: the sampled model cannot exceed it (LPV: dense-grid estimate)
        assert np.ptp(model) <= curve["amplitude"] * 1.02 + 1e-9
        assert np.all(model - curve["mean_mag"] <= curve["amplitude"] + 1e-9)


def test_period_distributions_peak_where_documented():
    rrab = np.array([c["period"] for c in class_sample("RRab", 150)])
    assert 0.54 < np.median(rrab) < 0.64
    cep0 = np.array([c["period"] for c in class_sample("Cep_0", 150)])
    assert 3.0 < np.median(cep0) < 6.0 and cep0.max() > 10.0
    lpv = class_sample("LPV", 150)
    miras = [c for c in lpv if c["amplitude"] >= 2.0]
    assert 0.2 < len(miras) / len(lpv) < 0.6


def test_rrab_rises_faster_than_it_declines_and_rrc_is_nearly_symmetric():
    rrab = np.array([brightening_fraction(c) for c in class_sample("RRab", 40)])
    rrc = np.array([brightening_fraction(c) for c in class_sample("RRc", 40)])
    assert np.median(rrab) < 0.35 and np.all(rrab < 0.45)
    assert np.median(rrc) > 0.38
    # and it shows in the noisy data: bright RRab have magnitude distributions skewed towards bright values
    skews = []
    for curve in class_sample("RRab", 60, cadence="ogle"):
        if curve["mean_mag"] < 18.0:
            q10, q50, q90 = np.percentile(curve["mag"], [10, 50, 90])
            skews.append((q90 + q10 - 2 * q50) / (q90 - q10))
    assert len(skews) > 10 and np.median(skews) < -0.15


def test_detached_eclipsing_binaries_are_flat_out_of_eclipse():
    flat = []
    curves = [c for c in class_sample("EC", 80) if c["period"] > 3.0]  # no ellipsoidal variation above 3 d
    for curve in curves:
        offsets = curve["mag_model"] - curve["mag_model"].min()
        flat.append(np.mean(offsets < 0.02 * curve["amplitude"]))
    assert len(curves) > 10 and np.median(flat) > 0.8
    contact = [c for c in class_sample("EC", 80) if c["period"] < 0.5]
    for curve in contact:  # continuous variation: hardly any time spent at maximum light
        offsets = curve["mag_model"] - curve["mag_model"].min()
        assert np.mean(offsets < 0.02 * curve["amplitude"]) < 0.3


def test_lpv_are_not_strictly_periodic():
    curve = next(c for c in class_sample("LPV", 20) if c["amplitude"] > 2.0)
    phase = (curve["time"] / curve["period"]) % 1.0
    # a strictly periodic model would give the same magnitude at the same phase; the jitter spreads it
    bins = np.digitize(phase, np.linspace(0, 1, 21))
    spread = [np.ptp(curve["mag_model"][bins == b]) for b in np.unique(bins) if np.sum(bins == b) > 5]
    assert np.median(spread) > 0.2


# ----------------------------------------------------------------------------------------------------------
# Class selection and validation
# ----------------------------------------------------------------------------------------------------------


def test_class_weights_are_honoured():
    only = {c["label"] for c in simulate_survey(50, seed=1, class_weights=[1, 0, 0, 0, 0, 0, 0, 0])}
    assert only == {"RRab"}
    last = {c["label"] for c in simulate_survey(50, seed=1, class_weights=[0] * 7 + [2.5])}
    assert last == {"NonVar"}
    labels = [c["label"] for c in simulate_survey(600, seed=1, classes=("EC", "LPV"), class_weights=(3, 1))]
    assert set(labels) == {"EC", "LPV"}
    assert 0.68 < labels.count("EC") / len(labels) < 0.82
    default = [c["label"] for c in simulate_survey(400, seed=2)]
    counts = np.array([default.count(name) for name in SIMULATED_CLASSES])
    assert counts.min() > 25 and counts.max() < 75


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cadence": "lsst"}, "unknown cadence 'lsst'"),
        ({"classes": ("RRab", "Mira")}, "unknown class 'Mira'"),
        ({"classes": ()}, "classes is empty"),
        ({"class_weights": [1, -1, 0, 0, 0, 0, 0, 0]}, "non-negative"),
        ({"class_weights": [1, 1]}, "2 values for 8 classes"),
        ({"class_weights": [0] * 8}, "sum to zero"),
        ({"start": -1}, "start"),
    ],
)
def test_invalid_arguments_raise_when_called(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        simulate_survey(3, **kwargs)  # no next(): the check is eager


def test_invalid_arguments_of_simulate_lightcurve():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown class 'Cepheid'"):
        simulate_lightcurve(rng, "Cepheid")
    with pytest.raises(ValueError, match="unknown cadence 'tess'"):
        simulate_lightcurve(rng, "RRab", "tess")
    with pytest.raises(ValueError, match="n_curves"):
        simulate_survey(-1)


def test_simulation_is_fast():
    began = time.perf_counter()
    n = sum(1 for _ in simulate_survey(400, seed=3))
    rate = n / (time.perf_counter() - began)
    assert rate > 400, f"{rate:.0f} curves/s (about 3000/s expected on one core)"


# ----------------------------------------------------------------------------------------------------------
# Separability by a classical baseline
# ----------------------------------------------------------------------------------------------------------


def test_classes_are_separable_by_a_simple_feature_baseline():
    train = list(simulate_survey(2000, seed=100, cadence="macho"))
    test = list(simulate_survey(1000, seed=101, cadence="macho"))
    x_train, x_test = baseline.lightcurve_features(train), baseline.lightcurve_features(test)
    assert x_train.shape == (2000, len(baseline.FEATURE_NAMES))
    y_train = [c["label"] for c in train]
    y_test = [c["label"] for c in test]

    softmax = baseline.fit_softmax_regression(x_train, y_train)
    predicted = baseline.predict(softmax, x_test)
    per_class = baseline.per_class_accuracy(y_test, predicted)
    macro = baseline.macro_accuracy(y_test, predicted)
    print(f"softmax regression: macro accuracy {macro:.3f}", {k: round(v, 2) for k, v in per_class.items()})
    assert macro > 0.6  # chance: 1/8; ~0.73 measured
    assert per_class["LPV"] > 0.8 and per_class["RRab"] > 0.6

    centroid = baseline.fit_nearest_centroid(x_train, y_train)
    macro_centroid = baseline.macro_accuracy(y_test, baseline.predict(centroid, x_test))
    print(f"nearest centroid: macro accuracy {macro_centroid:.3f}")
    assert macro_centroid > 0.4  # ~0.57 measured


def test_periodogram_feature_recovers_pulsation_periods():
    curves = [c for c in simulate_survey(40, seed=12, cadence="ogle", classes=("RRab", "Cep_0"))]
    features = baseline.lightcurve_features(curves, periodogram=True)
    assert features.shape == (40, len(baseline.FEATURE_NAMES_WITH_PERIOD))
    found = 10.0 ** features[:, baseline.FEATURE_NAMES_WITH_PERIOD.index("log_period")]
    true = np.array([c["period"] for c in curves])
    assert np.mean(np.abs(found / true - 1.0) < 0.01) > 0.75


def test_baseline_inputs():
    curve = next(simulate_survey(1, seed=0))
    as_array = np.column_stack([curve["time"], curve["mag"], curve["mag_err"]])
    np.testing.assert_allclose(
        baseline.lightcurve_features([as_array]), baseline.lightcurve_features([curve]), rtol=1e-12
    )
    with pytest.raises(ValueError, match="at least 5 points"):
        baseline.lightcurve_features([as_array[:3]])
    with pytest.raises(ValueError, match="expected 3 labels"):
        baseline.fit_nearest_centroid(np.zeros((3, 2)), ["a", "b"])
