"""A handful of deterministic example light curves, so the package can show itself without any download.

Each curve is a periodic variable (RR Lyrae-like sawtooth, eclipsing binary, near-sinusoidal Cepheid-like) or a
constant star, observed on an irregular cadence with seasonal gaps and heteroscedastic Gaussian errors. This is a
demonstration set, not a survey simulator.
"""

from __future__ import annotations

import numpy as np

EXAMPLE_CLASSES = ("sawtooth", "eclipsing", "sinusoid", "constant")


def _cadence(rng: np.random.Generator, n_obs: int, span_days: float) -> np.ndarray:
    """Sorted MJDs with ~8-month observing seasons separated by ~4-month gaps."""
    t = np.sort(rng.uniform(0.0, span_days, size=4 * n_obs))
    in_season = (t % 365.25) < 240.0
    t = t[in_season][:n_obs]
    return 49000.0 + t


def _shape(kind: str, phase: np.ndarray) -> np.ndarray:
    if kind == "sawtooth":  # fast rise, slow decline (brightening = smaller magnitude)
        return np.where(phase < 0.15, 0.5 - phase / 0.15, -0.5 + (phase - 0.15) / 0.85)
    if kind == "eclipsing":  # primary eclipse at phase 0, shallower secondary at phase 0.5
        to_primary = np.minimum(phase, 1.0 - phase)
        return 0.8 * np.exp(-(to_primary**2) / 0.002) + 0.4 * np.exp(-((phase - 0.5) ** 2) / 0.002)
    if kind == "sinusoid":
        return 0.5 * np.sin(2 * np.pi * phase) + 0.15 * np.sin(4 * np.pi * phase + 0.7)
    return np.zeros_like(phase)


def make_example_lightcurves(n_per_class: int = 3, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Example curves and their class names.

    Returns:
        A list of ``(N, 3)`` float64 arrays ``[time (MJD), magnitude, error]`` with N between 150 and 700, and the
        class name of each curve (one of :data:`EXAMPLE_CLASSES`).
    """
    rng = np.random.default_rng(seed)
    curves, labels = [], []
    for kind in EXAMPLE_CLASSES:
        for _ in range(n_per_class):
            n_obs = int(rng.integers(150, 700))
            time = _cadence(rng, n_obs, span_days=2500.0)
            period = float(rng.uniform(0.3, 0.9) if kind != "sinusoid" else rng.uniform(3.0, 30.0))
            phase = ((time - time[0]) / period + rng.uniform()) % 1.0
            error = rng.uniform(0.01, 0.08, size=time.size)
            magnitude = 17.0 + rng.uniform(0.5, 1.2) * _shape(kind, phase) + rng.normal(0.0, error)
            curves.append(np.column_stack([time, magnitude, error]))
            labels.append(kind)
    return curves, labels
