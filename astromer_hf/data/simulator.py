"""Simulated survey light curves: the package's built-in default data.

The quickstart training run, the tests and the benchmarks all use this module, so it aims for three things:
curves realistic enough that a model has something genuine to learn (physically shaped variability, survey-like
irregular sampling with seasons and weather, magnitude-dependent errors and outliers); determinism (curve ``i`` of
a survey depends only on ``(seed, i)``, so any slice can be produced on its own, in any order, on any worker); and
speed (pure NumPy, vectorised over the observations of a curve, a few thousand curves per second on one core,
memory flat whatever the survey size since :func:`simulate_survey` is a generator).

All the numbers below are approximate, chosen to resemble what the literature typically reports for the Magellanic
Clouds and Galactic bulge surveys (MACHO, OGLE) and for ZTF; they are not fits to any catalogue. Amplitudes are
peak-to-peak in the survey band and are treated as band independent (a simplification: pulsation amplitudes are
really larger in bluer bands).

Classes
-------
``RRab`` (fundamental-mode RR Lyrae)
    Period: log-normal peaked at 0.58 d (sigma 0.07 dex), truncated to 0.45-0.9 d, the usual RRab distribution of
    the bulge and the Clouds. Amplitude 0.5-1.2 mag, anti-correlated with period (Bailey diagram: short-period RRab
    have the largest amplitudes). Shape: a 5-harmonic sine series ``sum_k A_k sin(2 pi k phase + psi_k)``. The
    amplitude ratios fall roughly like ``1/k`` (R21 ~ 0.4-0.55, R31 ~ 0.25-0.4), as in a sawtooth, and the phase
    differences ``phi_k1 = psi_k - k psi_1`` are tied to ``phi_31``, which follows from the period and a
    metallicity drawn around [Fe/H] = -1.5 through the Jurcsik & Kovacs (1996) relation (``phi_31`` ~ 4.5-6 rad,
    ~5.1 at 0.58 d). The result is the classic fast rise (over ~15-35 % of the cycle) and slow decline, with a
    small hump before minimum light.
``RRc`` (first-overtone RR Lyrae)
    Period: normal around 0.32 d (sigma 0.05 d) truncated to 0.2-0.45 d. Amplitude 0.2-0.6 mag. Nearly
    sinusoidal: R21 ~ 0.05-0.2, R31 <= 0.08.
``Cep_0`` (classical Cepheid, fundamental mode)
    Period: log-normal, log10 P ~ N(0.55, 0.3) truncated to 2-60 d, i.e. peaked at 3-4 d with a long tail, as in
    the Magellanic Clouds. Amplitude 0.3-1.2 mag, growing with log P. Shape: an asymmetric (less steep than RRab)
    4-harmonic sine series plus a secondary bump for 5 < P < 20 d whose phase moves from the descending branch
    (P ~ 6 d) through maximum light (P ~ 10 d) to the rising branch (P ~ 15 d): the Hertzsprung progression.
``Cep_1`` (first-overtone Cepheid)
    Period: log10 P ~ N(0.25, 0.18) truncated to 0.8-6 d. Amplitude 0.1-0.5 mag. More sinusoidal than Cep_0
    (R21 ~ 0.1-0.25).
``EC`` (eclipsing binary)
    Flux model ``1 - ellipsoidal - primary eclipse - secondary eclipse``, converted to magnitudes; eclipses have a
    limb-darkening-like ``(1 - x^2)^1.5`` profile. 45 % contact systems (W UMa-like): period log-normal around 0.37
    d truncated to 0.25-1 d, wide eclipses plus strong ellipsoidal variation, so the light changes continuously,
    minima of nearly equal depth (secondary/primary depth 0.7-1). 55 % detached or semi-detached: period log-uniform
    over 0.5-10 d, flat out of eclipse, eclipse width shrinking with period like ``P^(-2/3)`` (Kepler's third law),
    secondary/primary depth 0.05-1 (temperature ratio), and a secondary displaced from phase 0.5 for 30 % of the
    systems longer than 2 d (eccentric orbits). Amplitude (primary depth, follows from the flux model) ~0.05-1.45
    mag. ``period`` is the orbital period (twice the photometric period of contact systems).
``LPV`` (long-period variable)
    40 % Miras: log10 P ~ N(log10 300, 0.15) truncated to 100-600 d, amplitude 2-6 mag, mildly non-sinusoidal.
    60 % semi-regulars: period log-uniform over 80-400 d, amplitude 0.1-1.5 mag (log-uniform), 30 % of them with
    a long secondary period 4-8 times longer. Both have stochastic cycle-to-cycle behaviour: the pulsation phase
    drifts as a random walk (0.02-0.05 cycle per cycle for Miras, 0.05-0.2 for semi-regulars) and the amplitude
    is modulated from cycle to cycle (10 % and 30 %). ``period`` is the mean period, ``amplitude`` the peak-to-peak
    of the realised model over the observed baseline.
``DSCT`` (delta Scuti)
    Period: log10 P ~ N(-1.1, 0.25) truncated to 0.02-0.25 d. Amplitude log-uniform over 0.01-0.3 mag (most are
    low-amplitude); above 0.1 mag (HADS) the shape gets RR-like harmonics. Half of the stars have a second mode
    carrying 20-80 % of the dominant mode's amplitude: for HADS the radial first overtone (period ratio
    0.773 +- 0.005), otherwise a non-radial mode at a ratio of 0.6-0.95. ``amplitude`` is then the sum of the two
    modes' peak-to-peak amplitudes (the envelope of the beating).
``NonVar`` (non-variable)
    Constant. 30 % get weak red noise (a few slow sinusoids, timescales 20-1000 d, peak-to-peak 0.005-0.02 mag),
    standing for residual calibration systematics. ``period`` is NaN, ``amplitude`` the peak-to-peak of that red
    noise (0 for the others).

Cadences
--------
Each curve is observed from a site at a fixed time of night; seasons follow from the sky position: the field is
lost for a 90-125 day (ZTF 60-120 day) gap around its solar conjunction, whose date follows from its right
ascension; within the season the field is observed close to its transit, so observations drift through the night
over the season. Weather comes as whole bad weeks (15 % of weeks with a 10 % chance per night, 85 % otherwise).

``"macho"``
    Band R. Start MJD 48800-48860, baseline 7.0-7.6 yr, ~1 epoch per clear night, 2 per night when the drawn number
    of epochs exceeds the clear nights. N between 100 and 1500, log-Beta distributed (median ~300, mean ~390).
    Fields: LMC (60 %), Galactic bulge (35 %), SMC (5 %). Mean magnitudes 14.5-20.5, detection limit 21.
``"ogle"``
    Band I. Start MJD 52000-52060, baseline 7.5-8.2 yr, bulge-like seasons. N between 300 and 1500 (median ~600).
    Fields: bulge (60 %), LMC (30 %), SMC (10 %). Mean magnitudes 13-19.5, limit 20.5.
``"ztf"``
    Band g or r (drawn per curve). Start MJD 58200-58260, baseline 3.6-4.2 yr, a visit every 1.5-3 nights on
    average, N between 50 and 600 (median ~180; above ~450 only for the most often visited fields). Sky uniform
    north of declination -30 deg. Mean magnitudes 14-20.5, limit 21.

The mean magnitude is drawn uniformly in the survey range, with two selection effects that real catalogues of
variable stars have: the faintest point of the noiseless model stays brighter than the detection limit (a 5-mag
Mira is not placed at 20th magnitude), and a variable's peak-to-peak amplitude is at least
:data:`DETECTION_RATIO` (1) times the typical error at its mean magnitude (a 0.02 mag delta Scuti star is only
catalogued if it is bright); stars for which this leaves less than the brightest 0.5 mag of the range (amplitude
close to the error floor) are drawn in that brightest 0.5 mag. NonVar stars fill the whole range, so
low-amplitude variables are on average brighter than constant stars; the class itself does not set the brightness.

Noise
-----
The true error of a point is ``sigma = sqrt(floor^2 + (a 10^(0.4 (m - m_ref)))^2)`` at the point's noiseless
magnitude ``m`` (MACHO: floor 0.015, a = 0.15 at m_ref = 20; OGLE: 0.005, 0.08 at 19; ZTF: 0.01, 0.1 at 20), times a
per-point seeing and airmass factor (log-normal, sigma 0.2 in natural log), and never below 0.005 mag (errors at
the faint end reach ~0.4-0.7 mag; in practice they stay below 1, the usual cleaning cut). The magnitude gets
Gaussian noise of that sigma; the reported ``mag_err`` is the true sigma times a log-normal jitter (sigma 0.1), so
``(mag - model) / mag_err`` has unit variance to within ~2 %. A fraction :data:`OUTLIER_FRACTION` (0.5 %) of the
points are outliers, offset by ``max(6 sigma, 0.1) + Exp(0.4)`` mag (60 % towards fainter magnitudes) and reported
with their normal error, as real surveys do: nothing flags them.

Determinism
-----------
:func:`simulate_survey` draws curve ``i`` from ``np.random.default_rng([seed, i])``: one uniform number picks the
class, the rest of the stream goes to :func:`simulate_lightcurve`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SIMULATED_CLASSES: tuple[str, ...] = ("RRab", "RRc", "Cep_0", "Cep_1", "EC", "LPV", "DSCT", "NonVar")
CADENCES: tuple[str, ...] = ("macho", "ogle", "ztf")
#: Band names of each cadence (ZTF draws one of the two per curve).
CADENCE_BANDS: dict[str, tuple[str, ...]] = {"macho": ("R",), "ogle": ("I",), "ztf": ("g", "r")}
#: Fraction of the points that are outliers.
OUTLIER_FRACTION = 0.005
#: Variables are only placed where their peak-to-peak amplitude is at least this many typical errors.
DETECTION_RATIO = 1.0
#: Smallest error, in magnitudes.
MIN_ERROR = 0.005

#: Documented period ranges in days (bounds of the distributions; NonVar has no period).
PERIOD_RANGES: dict[str, tuple[float, float]] = {
    "RRab": (0.45, 0.9),
    "RRc": (0.2, 0.45),
    "Cep_0": (2.0, 60.0),
    "Cep_1": (0.8, 6.0),
    "EC": (0.25, 10.0),
    "LPV": (80.0, 600.0),
    "DSCT": (0.02, 0.25),
    "NonVar": (math.nan, math.nan),
}
#: Documented peak-to-peak amplitude ranges of the noiseless model, in magnitudes.
AMPLITUDE_RANGES: dict[str, tuple[float, float]] = {
    "RRab": (0.5, 1.2),
    "RRc": (0.2, 0.6),
    "Cep_0": (0.3, 1.2),
    "Cep_1": (0.1, 0.5),
    "EC": (0.05, 1.45),
    "LPV": (0.1, 6.0),
    "DSCT": (0.01, 0.3),
    "NonVar": (0.0, 0.02),
}

_TWO_PI = 2.0 * math.pi
_MJD_J2000 = 51544.5
_YEAR = 365.25
_PHASE_GRID = np.arange(1024) / 1024.0
_HARMONICS = np.arange(1, 6, dtype=np.float64)


@dataclass(frozen=True)
class _Field:
    ra: float
    dec: float
    radius: float
    weight: float


@dataclass(frozen=True)
class CadenceSpec:
    """Parameters of one survey-like cadence (see the module docstring)."""

    name: str
    bands: tuple[str, ...]
    start_mjd: tuple[float, float]
    baseline_days: tuple[float, float]
    conjunction_gap_days: tuple[float, float]
    visit_every_nights: tuple[float, float]
    n_obs: tuple[int, int]
    n_obs_beta: tuple[float, float]
    max_per_night: int
    midnight_mjd_fraction: float
    mag_range: tuple[float, float]
    mag_limit: float
    error_floor: float
    error_ref_mag: float
    error_at_ref: float
    fields: tuple[_Field, ...] | None
    min_dec: float = -90.0


_LMC = (80.9, -69.75)
_SMC = (13.2, -72.8)
_BULGE = (270.5, -29.5)

CADENCE_SPECS: dict[str, CadenceSpec] = {
    "macho": CadenceSpec(
        name="macho",
        bands=CADENCE_BANDS["macho"],
        start_mjd=(48800.0, 48860.0),
        baseline_days=(7.0 * _YEAR, 7.6 * _YEAR),
        conjunction_gap_days=(90.0, 125.0),
        visit_every_nights=(1.0, 1.0),
        n_obs=(100, 1500),
        n_obs_beta=(1.3, 1.8),
        max_per_night=2,
        midnight_mjd_fraction=0.58,  # Mount Stromlo, 149 deg E
        mag_range=(14.5, 20.5),
        mag_limit=21.0,
        error_floor=0.015,
        error_ref_mag=20.0,
        error_at_ref=0.15,
        fields=(_Field(*_LMC, 3.5, 0.60), _Field(*_BULGE, 4.0, 0.35), _Field(*_SMC, 1.5, 0.05)),
    ),
    "ogle": CadenceSpec(
        name="ogle",
        bands=CADENCE_BANDS["ogle"],
        start_mjd=(52000.0, 52060.0),
        baseline_days=(7.5 * _YEAR, 8.2 * _YEAR),
        conjunction_gap_days=(90.0, 125.0),
        visit_every_nights=(1.0, 1.0),
        n_obs=(300, 1500),
        n_obs_beta=(1.5, 2.0),
        max_per_night=2,
        midnight_mjd_fraction=0.20,  # Las Campanas, 70.7 deg W
        mag_range=(13.0, 19.5),
        mag_limit=20.5,
        error_floor=0.005,
        error_ref_mag=19.0,
        error_at_ref=0.08,
        fields=(_Field(*_BULGE, 5.0, 0.60), _Field(*_LMC, 4.0, 0.30), _Field(*_SMC, 2.0, 0.10)),
    ),
    "ztf": CadenceSpec(
        name="ztf",
        bands=CADENCE_BANDS["ztf"],
        start_mjd=(58200.0, 58260.0),
        baseline_days=(3.6 * _YEAR, 4.2 * _YEAR),
        conjunction_gap_days=(60.0, 120.0),
        visit_every_nights=(1.5, 3.0),
        n_obs=(50, 600),
        n_obs_beta=(1.5, 1.5),
        max_per_night=1,
        midnight_mjd_fraction=0.33,  # Palomar, 116.9 deg W
        mag_range=(14.0, 20.5),
        mag_limit=21.0,
        error_floor=0.01,
        error_ref_mag=20.0,
        error_at_ref=0.10,
        fields=None,
        min_dec=-30.0,
    ),
}


# ----------------------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------------------


def _trunc_normal(rng: np.random.Generator, mu: float, sigma: float, lo: float, hi: float) -> float:
    """One draw of N(mu, sigma) truncated to [lo, hi] (rejection; uniform fallback, never reached in practice)."""
    draws = rng.normal(mu, sigma, 16)
    inside = draws[(draws >= lo) & (draws <= hi)]
    return float(inside[0]) if inside.size else float(rng.uniform(lo, hi))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _sine_series(phase: np.ndarray, amps: np.ndarray, psis: np.ndarray) -> np.ndarray:
    """``sum_k amps[k] sin(2 pi (k+1) phase + psis[k])`` for every phase."""
    k = _HARMONICS[: amps.size]
    return np.sin(np.multiply.outer(_TWO_PI * phase, k) + psis) @ amps


def _sawtooth_series(
    rng: np.random.Generator, ratios: np.ndarray, delta: float, phase_jitter: float
) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic amplitudes and phases of a (softened) sawtooth in magnitudes: slow fading, fast brightening.

    ``delta = 0`` gives the ideal sawtooth (``phi_k1 = (k - 1) pi``); larger ``delta`` softens the rise.
    """
    n = ratios.size + 1
    amps = np.concatenate([[1.0], ratios])
    k = _HARMONICS[:n]
    phi_k1 = (k - 1.0) * (math.pi - delta) + rng.normal(0.0, phase_jitter, n) * (k > 1)
    psi1 = rng.uniform(0.0, _TWO_PI)
    return amps, phi_k1 + k * psi1


@dataclass(frozen=True)
class _Model:
    """A noiseless light-curve model of one star."""

    period: float
    amplitude: float  # peak to peak, magnitudes
    evaluate: Callable[[np.ndarray], np.ndarray]  # times -> magnitude offsets, zero mean over phase or baseline
    faint_excursion: float  # largest positive offset (the faintest point)


def _periodic_model(
    period: float, amplitude: float, t_ref: float, shape_on_phase: Callable[[np.ndarray], np.ndarray]
) -> _Model:
    """Scale a periodic shape to a peak-to-peak ``amplitude`` and zero mean over the phase."""
    grid = shape_on_phase(_PHASE_GRID)
    mean, ptp = float(grid.mean()), float(grid.max() - grid.min())
    scale = amplitude / ptp

    def evaluate(time: np.ndarray) -> np.ndarray:
        phase = ((time - t_ref) / period) % 1.0
        return (shape_on_phase(phase) - mean) * scale

    return _Model(period, amplitude, evaluate, (float(grid.max()) - mean) * scale)


# ----------------------------------------------------------------------------------------------------------
# Variability classes
# ----------------------------------------------------------------------------------------------------------


def _rrab(rng: np.random.Generator, t_ref: float, span: tuple[float, float]) -> _Model:
    period = math.exp(_trunc_normal(rng, math.log(0.58), 0.07 * math.log(10), math.log(0.45), math.log(0.9)))
    amplitude = _trunc_normal(rng, 0.85 - 2.0 * (math.log10(period) - math.log10(0.58)), 0.12, 0.5, 1.2)
    feh = rng.normal(-1.5, 0.3)
    phi31 = (feh + 5.038 + 5.394 * period) / 1.345  # Jurcsik & Kovacs (1996), V band, sine series
    delta = min(max(math.pi - phi31 / 2.0, 0.0), 1.2)
    r21 = rng.uniform(0.40, 0.55)
    ratios = np.array([r21, r21 * rng.uniform(0.6, 0.75), r21 * rng.uniform(0.35, 0.5), r21 * rng.uniform(0.2, 0.32)])
    amps, psis = _sawtooth_series(rng, ratios, delta, 0.08)
    return _periodic_model(period, amplitude, t_ref, lambda ph: _sine_series(ph, amps, psis))


def _rrc(rng: np.random.Generator, t_ref: float, span: tuple[float, float]) -> _Model:
    period = _trunc_normal(rng, 0.32, 0.05, 0.2, 0.45)
    amplitude = _trunc_normal(rng, 0.4, 0.1, 0.2, 0.6)
    ratios = np.array([rng.uniform(0.05, 0.2), rng.uniform(0.0, 0.08)])
    amps, psis = _sawtooth_series(rng, ratios, rng.uniform(0.3, 0.9), 0.2)
    return _periodic_model(period, amplitude, t_ref, lambda ph: _sine_series(ph, amps, psis))


def _cep0(rng: np.random.Generator, t_ref: float, span: tuple[float, float]) -> _Model:
    log_p = _trunc_normal(rng, 0.55, 0.3, math.log10(2.0), math.log10(60.0))
    period = 10.0**log_p
    amplitude = _trunc_normal(rng, 0.45 + 0.4 * (log_p - 0.3), 0.15, 0.3, 1.2)
    # Fourier amplitude ratio dips near P = 10 d (Hertzsprung progression), where the bump takes over.
    r21 = rng.uniform(0.3, 0.48) * (1.0 - 0.5 * math.exp(-(((log_p - 1.0) / 0.1) ** 2)))
    ratios = np.array([r21, r21 * rng.uniform(0.45, 0.65), r21 * rng.uniform(0.2, 0.35)])
    amps, psis = _sawtooth_series(rng, ratios, rng.uniform(0.6, 1.0), 0.1)
    # Bump: present for 0.7 < log P < 1.3; its phase after maximum light moves from ~0.35 (P ~ 6 d) to ~-0.15.
    bump_strength = 0.25 * math.exp(-(((log_p - 1.0) / 0.15) ** 2))
    phase_max_light = float(_PHASE_GRID[np.argmin(_sine_series(_PHASE_GRID, amps, psis))])
    bump_phase = (phase_max_light + 0.35 - 1.25 * (log_p - 0.78)) % 1.0
    width = 0.06

    def shape(ph: np.ndarray) -> np.ndarray:
        series = _sine_series(ph, amps, psis)
        if bump_strength < 1e-3:
            return series
        d = (ph - bump_phase + 0.5) % 1.0 - 0.5
        return series - bump_strength * np.exp(-0.5 * (d / width) ** 2)  # brighter = smaller magnitude

    return _periodic_model(period, amplitude, t_ref, shape)


def _cep1(rng: np.random.Generator, t_ref: float, span: tuple[float, float]) -> _Model:
    period = 10.0 ** _trunc_normal(rng, 0.25, 0.18, math.log10(0.8), math.log10(6.0))
    amplitude = _trunc_normal(rng, 0.25, 0.1, 0.1, 0.5)
    ratios = np.array([rng.uniform(0.1, 0.25), rng.uniform(0.0, 0.08)])
    amps, psis = _sawtooth_series(rng, ratios, rng.uniform(0.5, 1.1), 0.2)
    return _periodic_model(period, amplitude, t_ref, lambda ph: _sine_series(ph, amps, psis))


def _eclipse_profile(distance: np.ndarray, width: float) -> np.ndarray:
    x = np.minimum(np.abs(distance) / width, 1.0)
    return (1.0 - x * x) ** 1.5


def _ec(rng: np.random.Generator, t_ref: float, span: tuple[float, float]) -> _Model:
    if rng.random() < 0.45:  # contact (W UMa-like)
        period = math.exp(_trunc_normal(rng, math.log(0.37), 0.35, math.log(0.25), math.log(1.0)))
        ellipsoidal = rng.uniform(0.05, 0.25)
        depth1 = rng.uniform(0.02, 0.25)
        depth2 = depth1 * rng.uniform(0.7, 1.0)
        width1 = rng.uniform(0.15, 0.25)
        width2 = width1 * rng.uniform(0.9, 1.1)
        secondary_phase = 0.5
    else:  # detached or semi-detached
        period = _log_uniform(rng, 0.5, 10.0)
        ellipsoidal = rng.uniform(0.0, 0.03) if period < 3.0 else 0.0
        depth1 = rng.uniform(0.05, 0.7)
        depth2 = depth1 * rng.uniform(0.05, 1.0)
        width1 = min(max(rng.uniform(0.03, 0.08) * period ** (-2.0 / 3.0), 0.012), 0.15)
        width2 = width1 * rng.uniform(0.7, 1.3)
        eccentric = period > 2.0 and rng.random() < 0.3
        secondary_phase = 0.5 + (rng.normal(0.0, 0.03) if eccentric else 0.0)

    def flux_mag(ph: np.ndarray) -> np.ndarray:
        d1 = (ph + 0.5) % 1.0 - 0.5
        d2 = (ph - secondary_phase + 0.5) % 1.0 - 0.5
        flux = 1.0 - ellipsoidal * 0.5 * (1.0 + np.cos(2.0 * _TWO_PI * ph))  # faintest at conjunctions
        flux = flux - depth1 * _eclipse_profile(d1, width1) - depth2 * _eclipse_profile(d2, width2)
        return -2.5 * np.log10(flux)

    grid = flux_mag(_PHASE_GRID)
    amplitude = float(grid.max() - grid.min())
    return _periodic_model(period, amplitude, t_ref, flux_mag)


def _random_walk(
    rng: np.random.Generator, t0: float, t1: float, step: float, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Knots every ``step`` days covering [t0, t1] and a Gaussian random walk of step ``sigma`` on them."""
    n = int((t1 - t0) / step) + 3
    knots = t0 - step + step * np.arange(n)
    return knots, np.cumsum(rng.normal(0.0, sigma, n))


def _lpv(rng: np.random.Generator, t_ref: float, span: tuple[float, float]) -> _Model:
    t0, t1 = span
    if rng.random() < 0.4:  # Mira
        period = 10.0 ** _trunc_normal(rng, math.log10(300.0), 0.15, math.log10(100.0), math.log10(600.0))
        amplitude = rng.uniform(2.0, 6.0)
        drift_per_cycle, amp_modulation = rng.uniform(0.02, 0.05), 0.1
        ratios = np.array([rng.uniform(0.05, 0.2), rng.uniform(0.0, 0.06)])
        delta = rng.uniform(0.8, 1.3)
        lsp_period, lsp_ratio = 0.0, 0.0
    else:  # semi-regular
        period = _log_uniform(rng, 80.0, 400.0)
        amplitude = _log_uniform(rng, 0.1, 1.5)
        drift_per_cycle, amp_modulation = rng.uniform(0.05, 0.2), 0.3
        ratios = np.array([rng.uniform(0.0, 0.1)])
        delta = rng.uniform(0.5, 1.5)
        has_lsp = rng.random() < 0.3
        lsp_period = period * rng.uniform(4.0, 8.0) if has_lsp else 0.0
        lsp_ratio = rng.uniform(0.3, 0.8) if has_lsp else 0.0
    amps, psis = _sawtooth_series(rng, ratios, delta, 0.2)
    # phase random walk on knots every quarter period; amplitude modulation on knots every period
    step = period / 4.0
    phase_knots, phase_walk = _random_walk(rng, t0, t1, step, drift_per_cycle / 2.0)
    amp_knots = t0 - period + period * np.arange(int((t1 - t0) / period) + 3)
    amp_values = np.maximum(1.0 + rng.normal(0.0, amp_modulation, amp_knots.size), 0.15)
    lsp_phase = rng.uniform(0.0, _TWO_PI)

    def raw(time: np.ndarray) -> np.ndarray:
        phase = (time - t_ref) / period + np.interp(time, phase_knots, phase_walk)
        value = np.interp(time, amp_knots, amp_values) * _sine_series(phase % 1.0, amps, psis)
        if lsp_period:
            value = value + lsp_ratio * np.sin(_TWO_PI * (time - t_ref) / lsp_period + lsp_phase)
        return value

    dense = np.linspace(t0, t1, int((t1 - t0) / (period / 50.0)) + 2)
    grid = raw(dense)
    mean, ptp = float(grid.mean()), float(grid.max() - grid.min())
    scale = amplitude / ptp
    return _Model(period, amplitude, lambda time: (raw(time) - mean) * scale, (float(grid.max()) - mean) * scale)


def _dsct(rng: np.random.Generator, t_ref: float, span: tuple[float, float]) -> _Model:
    period = 10.0 ** _trunc_normal(rng, -1.1, 0.25, math.log10(0.02), math.log10(0.25))
    amplitude = _log_uniform(rng, 0.01, 0.3)
    hads = amplitude > 0.1
    if hads:
        r21 = rng.uniform(0.15, 0.35)
        amps, psis = _sawtooth_series(rng, np.array([r21, r21 * rng.uniform(0.3, 0.6)]), rng.uniform(0.3, 0.8), 0.1)
    else:
        amps, psis = np.array([1.0]), np.array([rng.uniform(0.0, _TWO_PI)])
    if rng.random() < 0.5:
        ratio = rng.normal(0.773, 0.005) if hads else rng.uniform(0.6, 0.95)
        period2, share2 = period * ratio, rng.uniform(0.2, 0.8)
    else:
        period2, share2 = 0.0, 0.0
    grid = _sine_series(_PHASE_GRID, amps, psis)
    ptp1 = float(grid.max() - grid.min())
    scale1 = amplitude / (1.0 + share2) / ptp1
    amp2 = amplitude * share2 / (1.0 + share2) / 2.0  # semi-amplitude of the (sinusoidal) second mode
    phase2 = rng.uniform(0.0, _TWO_PI)

    def evaluate(time: np.ndarray) -> np.ndarray:
        value = _sine_series(((time - t_ref) / period) % 1.0, amps, psis) * scale1
        if period2:
            value = value + amp2 * np.sin(_TWO_PI * (time - t_ref) / period2 + phase2)
        return value

    return _Model(period, amplitude, evaluate, float(grid.max()) * scale1 + amp2)


def _nonvar(rng: np.random.Generator, t_ref: float, span: tuple[float, float]) -> _Model:
    if rng.random() >= 0.3:
        return _Model(math.nan, 0.0, lambda time: np.zeros_like(time), 0.0)
    t0, t1 = span
    timescales = np.exp(rng.uniform(math.log(20.0), math.log(1000.0), 4))
    weights = np.sqrt(timescales / timescales.max()) * rng.uniform(0.5, 1.0, 4)
    phases = rng.uniform(0.0, _TWO_PI, 4)
    target = rng.uniform(0.005, 0.02)

    def raw(time: np.ndarray) -> np.ndarray:
        return np.sin(np.multiply.outer(time - t_ref, _TWO_PI / timescales) + phases) @ weights

    grid = raw(np.linspace(t0, t1, int((t1 - t0) / 2.0) + 2))
    mean, scale = float(grid.mean()), target / float(grid.max() - grid.min())
    return _Model(math.nan, target, lambda time: (raw(time) - mean) * scale, (float(grid.max()) - mean) * scale)


_CLASS_MODELS = {
    "RRab": _rrab,
    "RRc": _rrc,
    "Cep_0": _cep0,
    "Cep_1": _cep1,
    "EC": _ec,
    "LPV": _lpv,
    "DSCT": _dsct,
    "NonVar": _nonvar,
}


# ----------------------------------------------------------------------------------------------------------
# Sky positions, cadences and noise
# ----------------------------------------------------------------------------------------------------------


def _sky_position(rng: np.random.Generator, spec: CadenceSpec) -> tuple[float, float]:
    if spec.fields is None:
        ra = rng.uniform(0.0, 360.0)
        dec = math.degrees(math.asin(rng.uniform(math.sin(math.radians(spec.min_dec)), 1.0)))
        return ra, dec
    weights = np.array([f.weight for f in spec.fields])
    field = spec.fields[int(np.searchsorted(np.cumsum(weights) / weights.sum(), rng.random(), side="right"))]
    rho, theta = field.radius * math.sqrt(rng.random()), rng.uniform(0.0, _TWO_PI)
    dec = field.dec + rho * math.sin(theta)
    ra = (field.ra + rho * math.cos(theta) / math.cos(math.radians(field.dec))) % 360.0
    return ra, dec


def _observation_times(rng: np.random.Generator, spec: CadenceSpec, ra: float) -> np.ndarray:
    """Sorted, strictly increasing MJDs: seasons from the sky position, bad-weather weeks, visits near transit."""
    start = rng.uniform(*spec.start_mjd)
    n_nights = int(rng.uniform(*spec.baseline_days))
    night = math.floor(start) + np.arange(n_nights, dtype=np.float64)
    # days since the field's solar conjunction (the Sun crosses RA 0 at the March equinox, ~79 d after J2000.0)
    conjunction = _MJD_J2000 + 79.0 + ra / 360.0 * _YEAR
    since = (night - conjunction) % _YEAR
    half_gap = 0.5 * rng.uniform(*spec.conjunction_gap_days)
    usable = (since > half_gap) & (since < _YEAR - half_gap)
    n_weeks = n_nights // 7 + 1
    clear_chance = np.where(rng.random(n_weeks) < 0.15, 0.1, 0.85)
    usable &= rng.random(n_nights) < clear_chance[np.arange(n_nights) // 7]
    every = rng.uniform(*spec.visit_every_nights)
    if every > 1.0:
        usable &= rng.random(n_nights) < 1.0 / every
    nights = np.flatnonzero(usable)

    lo, hi = spec.n_obs
    target = int(round(math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * rng.beta(*spec.n_obs_beta))))
    n_obs = max(min(target, nights.size * spec.max_per_night), lo)
    if n_obs <= nights.size:
        chosen = nights[np.sort(rng.choice(nights.size, n_obs, replace=False))]
    else:  # second epochs on some nights
        chosen = np.sort(np.concatenate([nights, rng.choice(nights, n_obs - nights.size)]))
    # the field transits at local midnight at opposition, ~4 minutes earlier each following night
    transit = 0.5 - since[chosen] / _YEAR
    offset = np.clip(transit, -0.25, 0.25) + rng.normal(0.0, 0.04, n_obs)
    time = night[chosen] + spec.midnight_mjd_fraction + offset
    time.sort()
    # strictly increasing, at least ~1.4 minutes apart
    ramp = 1e-3 * np.arange(n_obs)
    return np.maximum.accumulate(time - ramp) + ramp


def _detection_limit(spec: CadenceSpec, class_name: str, amplitude: float) -> float:
    """Faintest mean magnitude at which a variable's peak-to-peak amplitude still reaches
    :data:`DETECTION_RATIO` times the typical error (``inf`` for NonVar; ``-inf`` when even the error floor is
    too large, and the star is then put at the bright end of the range)."""
    if class_name == "NonVar":
        return math.inf
    target = amplitude / DETECTION_RATIO
    if target <= spec.error_floor:
        return -math.inf
    return spec.error_ref_mag + 2.5 * math.log10(math.sqrt(target**2 - spec.error_floor**2) / spec.error_at_ref)


def _errors(rng: np.random.Generator, spec: CadenceSpec, model_mag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True per-point sigma (magnitude dependent, with seeing scatter) and the reported error."""
    term = spec.error_at_ref * 10.0 ** (0.4 * (model_mag - spec.error_ref_mag))
    sigma = np.sqrt(spec.error_floor**2 + term * term) * rng.lognormal(0.0, 0.2, model_mag.size)
    sigma = np.maximum(sigma, MIN_ERROR)
    reported = np.maximum(sigma * rng.lognormal(0.0, 0.1, model_mag.size), MIN_ERROR)
    return sigma, reported


# ----------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------


def _check_cadence(cadence: str) -> CadenceSpec:
    if cadence not in CADENCE_SPECS:
        raise ValueError(f"unknown cadence {cadence!r}; expected one of {CADENCES}")
    return CADENCE_SPECS[cadence]


def _check_class(class_name: str) -> None:
    if class_name not in _CLASS_MODELS:
        raise ValueError(f"unknown class {class_name!r}; expected one of {SIMULATED_CLASSES}")


def _simulate(
    rng: np.random.Generator, class_name: str, spec: CadenceSpec, include_model: bool
) -> tuple[dict[str, Any], float, float]:
    ra, dec = _sky_position(rng, spec)
    band = spec.bands[0] if len(spec.bands) == 1 else spec.bands[int(rng.integers(len(spec.bands)))]
    time = _observation_times(rng, spec, ra)
    t_ref = time[0] - rng.uniform(0.0, 1000.0)
    model = _CLASS_MODELS[class_name](rng, t_ref, (float(time[0]), float(time[-1])))
    mag_lo, mag_hi = spec.mag_range
    mag_hi = min(mag_hi, spec.mag_limit - model.faint_excursion, _detection_limit(spec, class_name, model.amplitude))
    mean_mag = rng.uniform(mag_lo, mag_hi if mag_hi > mag_lo + 0.5 else mag_lo + 0.5)
    model_mag = mean_mag + model.evaluate(time)
    sigma, reported = _errors(rng, spec, model_mag)
    mag = model_mag + sigma * rng.standard_normal(time.size)
    outliers = np.flatnonzero(rng.random(time.size) < OUTLIER_FRACTION)
    if outliers.size:
        size = np.maximum(6.0 * sigma[outliers], 0.1) + rng.exponential(0.4, outliers.size)
        sign = np.where(rng.random(outliers.size) < 0.6, 1.0, -1.0)
        mag[outliers] += sign * size
    curve: dict[str, Any] = {
        "time": time,
        "mag": mag.astype(np.float32),
        "mag_err": reported.astype(np.float32),
        "band": band,
        "label": class_name,
        "period": float(model.period),
        "amplitude": float(model.amplitude),
        "mean_mag": float(mean_mag),
    }
    if include_model:
        curve["mag_model"] = model_mag
    return curve, ra, dec


def simulate_lightcurve(
    rng: np.random.Generator, class_name: str, cadence: str = "macho", *, include_model: bool = False
) -> dict[str, Any]:
    """One simulated light curve.

    Args:
        rng: the random generator; the curve is a deterministic function of its state.
        class_name: one of :data:`SIMULATED_CLASSES`.
        cadence: one of :data:`CADENCES`.
        include_model: also return ``mag_model``, the noiseless magnitudes (float64) at the observed times; this
            does not change any other value.

    Returns:
        A dict with ``time`` (float64 MJD, strictly increasing), ``mag`` (float32), ``mag_err`` (float32, > 0),
        ``band`` (str), ``label`` (the class name), ``period`` (days; the orbital period for EC, the mean period for
        LPV, NaN for NonVar), ``amplitude`` (peak-to-peak of the noiseless model, mag) and ``mean_mag`` (the mean
        of the noiseless model over the phase, or over the baseline for LPV and NonVar).
    """
    _check_class(class_name)
    spec = _check_cadence(cadence)
    return _simulate(rng, class_name, spec, include_model)[0]


def simulated_object_id(cadence: str, seed: int, index: int) -> str:
    """The ``object_id`` of curve ``index`` of :func:`simulate_survey` (known without simulating the curve)."""
    return f"SIM-{cadence}-{seed}-{index:09d}"


def simulate_survey(
    n_curves: int,
    *,
    seed: int = 0,
    cadence: str = "macho",
    classes: Sequence[str] = SIMULATED_CLASSES,
    class_weights: Sequence[float] | None = None,
    start: int = 0,
) -> Iterator[dict[str, Any]]:
    """Stream ``n_curves`` simulated curves, those of indices ``start, ..., start + n_curves - 1``.

    Curve ``i`` depends only on ``(seed, i)`` (it is drawn from ``np.random.default_rng([seed, i])``), and on
    ``cadence``, ``classes`` and ``class_weights``: ``simulate_survey(n, start=k)`` yields exactly the curves
    ``k, ..., k + n - 1`` of ``simulate_survey(k + n)``, without generating the first ``k``, so shards can be
    produced independently and in parallel. Memory stays flat: one curve at a time.

    Each yielded dict is the :func:`simulate_lightcurve` dict plus ``object_id``
    (``"SIM-{cadence}-{seed}-{i:09d}"``), ``ra`` and ``dec`` (degrees; survey fields for MACHO and OGLE, uniform
    north of -30 deg for ZTF) and ``n_obs``.

    Arguments are checked when the function is called, not at the first ``next()``.

    Raises:
        ValueError: negative ``n_curves`` or ``start``, an unknown cadence or class, no classes, weights of the
            wrong length, negative or non-finite weights, or weights summing to zero.
    """
    if int(n_curves) != n_curves or n_curves < 0:
        raise ValueError(f"n_curves must be a non-negative integer, got {n_curves!r}")
    if int(start) != start or start < 0:
        raise ValueError(f"start must be a non-negative integer, got {start!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    spec = _check_cadence(cadence)
    if isinstance(classes, str):
        classes = (classes,)
    classes = tuple(classes)
    if not classes:
        raise ValueError("classes is empty")
    for name in classes:
        _check_class(name)
    if class_weights is None:
        weights = np.ones(len(classes))
    else:
        weights = np.asarray(class_weights, dtype=np.float64)
        if weights.shape != (len(classes),):
            raise ValueError(f"class_weights has {weights.size} values for {len(classes)} classes")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"class_weights must be finite and non-negative, got {weights.tolist()}")
        if weights.sum() <= 0:
            raise ValueError("class_weights sum to zero")
    cumulative = np.cumsum(weights) / weights.sum()
    cumulative[-1] = 1.0
    return _survey(int(n_curves), int(seed), spec, classes, cumulative, int(start))


def _survey(
    n_curves: int, seed: int, spec: CadenceSpec, classes: tuple[str, ...], cumulative: np.ndarray, start: int
) -> Iterator[dict[str, Any]]:
    for index in range(start, start + n_curves):
        rng = np.random.default_rng([seed, index])
        class_name = classes[int(np.searchsorted(cumulative, rng.random(), side="right"))]
        curve, ra, dec = _simulate(rng, class_name, spec, False)
        yield {
            "object_id": simulated_object_id(spec.name, seed, index),
            **curve,
            "ra": float(ra),
            "dec": float(dec),
            "n_obs": int(curve["time"].size),
        }
