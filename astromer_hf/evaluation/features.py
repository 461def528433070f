"""Classical variability features from the ``light-curve`` package, the feature baseline of the evaluation.

:func:`feature_extractor` assembles one ``light_curve.Extractor`` (Rust implementations, computed in parallel by
``Extractor.many``) of the usual variability statistics:

* amplitude and spread: ``Amplitude``, ``PercentAmplitude``, ``StandardDeviation``, ``MedianAbsoluteDeviation``,
  ``InterPercentileRange`` (2, 10, 25 %), ``MagnitudePercentageRatio`` (40/5, 20/10),
  ``PercentDifferenceMagnitudePercentile`` (10 %), ``ExcessVariance``;
* shape of the distribution: ``Skew``, ``Kurtosis``, ``AndersonDarlingNormal``, ``BeyondNStd`` (1 and 2 σ),
  ``MedianBufferRangePercentage`` (10 %), ``WeightedMean``;
* variability indices and correlation in time: ``StetsonK``, ``Eta``, ``EtaE``, ``Cusum``, ``ReducedChi2``,
  ``MaximumSlope``, ``LinearFit`` and ``LinearTrend`` (slope, its error, the residual scatter);
* period: the ``peaks`` highest peaks of an FFT Lomb-Scargle periodogram (period and signal-to-noise) on a fixed grid
  of angular frequencies from 0 to ``2 pi / min_period``, and ``Amplitude``, ``Eta``, ``Skew``, ``Kurtosis`` and the
  10 % ``InterPercentileRange`` of the curve folded at the best period.

Curves are cleaned with the processor's rules first (:func:`astromer_hf.lightcurves.select_clean_rows`). A feature that
cannot be computed for a curve (too few points, a degenerate fit) is NaN; a curve that the cleaning drops is a row of
NaN. The classifiers impute them (the training median) before fitting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ..lightcurves import select_clean_rows
from .config import FeatureSettings


def feature_extractor(settings: FeatureSettings | None = None):
    """The ``light_curve.Extractor`` of the evaluation's features (see the module docstring)."""
    import light_curve as lc

    settings = settings or FeatureSettings()
    frequencies = np.linspace(0.0, 2.0 * np.pi / settings.min_period, 2**settings.frequency_grid + 1)
    periodogram = lc.Periodogram(
        peaks=settings.periodogram_peaks,
        freqs=frequencies,
        fast=True,
        phase_features=[lc.Amplitude(), lc.Eta(), lc.Skew(), lc.Kurtosis(), lc.InterPercentileRange(0.1)],
    )
    return lc.Extractor(
        lc.Amplitude(),
        lc.PercentAmplitude(),
        lc.StandardDeviation(),
        lc.MedianAbsoluteDeviation(),
        lc.InterPercentileRange(0.02),
        lc.InterPercentileRange(0.1),
        lc.InterPercentileRange(0.25),
        lc.MagnitudePercentageRatio(0.4, 0.05),
        lc.MagnitudePercentageRatio(0.2, 0.1),
        lc.PercentDifferenceMagnitudePercentile(0.1),
        lc.ExcessVariance(),
        lc.Skew(),
        lc.Kurtosis(),
        lc.AndersonDarlingNormal(),
        lc.BeyondNStd(1.0),
        lc.BeyondNStd(2.0),
        lc.MedianBufferRangePercentage(0.1),
        lc.WeightedMean(),
        lc.StetsonK(),
        lc.Eta(),
        lc.EtaE(),
        lc.Cusum(),
        lc.ReducedChi2(),
        lc.MaximumSlope(),
        lc.LinearFit(),
        lc.LinearTrend(),
        periodogram,
    )


def feature_names(settings: FeatureSettings | None = None) -> list[str]:
    """The column names of :func:`compute_features`."""
    return list(feature_extractor(settings).names)


def compute_features(curves: Any, settings: FeatureSettings | None = None, chunk_size: int = 2048) -> np.ndarray:
    """float64 ``(C, F)`` features of the curves, in input order, NaN where a feature (or a whole cleaned-away
    curve) could not be computed; infinities are turned into NaN too.

    ``curves``: anything :func:`astromer_hf.embed` reads, in the same order: a list of ``(N, 3)`` arrays
    ``[time, mag, err]``, a dict of columns, a long DataFrame or astropy ``Table``, one-curve files or their folder,
    or a ``datasets.Dataset`` / ``DatasetDict`` in the survey schema, read ``chunk_size`` curves at a time.
    """
    from ..embedding import _source  # the readers embed() uses, so the two agree on which curve is which row

    settings = settings or FeatureSettings()
    extractor = feature_extractor(settings)
    source = _source(curves, chunk_size)
    out = np.full((source.n_curves, len(extractor.names)), np.nan)
    for chunk in source.chunks():
        rows, kept, lengths, _ = select_clean_rows(chunk.curves)
        if not len(kept):
            continue
        values = chunk.curves.values[rows]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        triples = [
            tuple(np.ascontiguousarray(values[start:stop, column]) for column in range(3))
            for start, stop in zip(bounds[:-1], bounds[1:])
        ]
        out[chunk.start + kept] = extractor.many(triples, fill_value=np.nan, sorted=True, n_jobs=settings.n_jobs)
    out[~np.isfinite(out)] = np.nan
    return out


class LightCurveFeatures(TransformerMixin, BaseEstimator):
    """The classical features as a scikit-learn transformer: ``transform(curves)`` is :func:`compute_features`.

    Stateless (``fit`` only records the output width), so it composes with :class:`AstromerFeaturizer` in a
    ``FeatureUnion`` and with an imputer and a classifier in a ``Pipeline``;
    :class:`~astromer_hf.evaluation.hybrid.HybridClassifier` stacks the two.

    Args:
        min_period, frequency_grid, periodogram_peaks, n_jobs: as
            :class:`~astromer_hf.evaluation.config.FeatureSettings`.
    """

    def __init__(self, min_period: float = 0.05, frequency_grid: int = 18, periodogram_peaks: int = 2,
                 n_jobs: int = -1) -> None:
        self.min_period = min_period
        self.frequency_grid = frequency_grid
        self.periodogram_peaks = periodogram_peaks
        self.n_jobs = n_jobs

    def _settings(self) -> FeatureSettings:
        settings = FeatureSettings(self.min_period, self.frequency_grid, self.periodogram_peaks, self.n_jobs)
        settings.check("LightCurveFeatures")
        return settings

    def fit(self, X: Any, y: Any = None) -> LightCurveFeatures:
        self.feature_names_ = np.asarray(feature_names(self._settings()), dtype=object)
        self.n_features_out_ = len(self.feature_names_)
        return self

    def transform(self, X: Any) -> np.ndarray:
        return compute_features(X, self._settings())

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(feature_names(self._settings()), dtype=object)
