"""``HybridClassifier``: the evaluation's ``hybrid_rf`` as one scikit-learn classifier on raw light curves.

>>> from astromer_hf.evaluation import HybridClassifier
>>> hybrid = HybridClassifier("astromer-base").fit(train_curves, train_labels)
>>> hybrid.score(test_curves, test_labels)

It computes the classical features (:class:`~astromer_hf.evaluation.features.LightCurveFeatures`) and the pooled
Astromer embeddings (:class:`~astromer_hf.evaluation.featurizer.AstromerFeaturizer`) once per call, side by side, and
hands the matrix to :func:`~astromer_hf.evaluation.baselines.stacked_hybrid`: the features' random forest and the
embeddings' standardised linear probe, stacked by a logistic regression on their out-of-fold class probabilities.
A ``StackingClassifier`` built on the two raw-curve pipelines gives the same kind of model, but embeds and
featurises the training curves again for every fold of the stacking: six times with five folds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .baselines import stacked_hybrid
from .config import ForestSettings, HybridSettings, ProbeSettings
from .features import LightCurveFeatures
from .featurizer import AstromerFeaturizer


class HybridClassifier(ClassifierMixin, BaseEstimator):
    """Classical variability features and Astromer embeddings, stacked: the few-shot evaluation's ``hybrid_rf``.

    ``X`` is anything :func:`astromer_hf.embed` reads (a list of ``(N, 3)`` arrays ``[time, mag, err]``, a long
    DataFrame with an id column, a ``datasets.Dataset`` in the survey schema); ``y`` one label per curve. A curve that
    the cleaning drops, or whose features cannot be computed, is imputed (the training median of each feature, the
    training mean of each embedding channel) rather than refused.

    Args:
        model: a release name (``"astromer-base"``), a ``save_pretrained`` folder, a Hub id, or an Astromer model.
        pooling: how a curve's embeddings are pooled: ``"mean"``, ``"max"`` or ``"gamma"``.
        n_estimators, min_samples_leaf: the random forest (:class:`~astromer_hf.evaluation.config.ForestSettings`).
        C, max_iter: the linear probe (:class:`~astromer_hf.evaluation.config.ProbeSettings`).
        Cs: the candidate regularisations of the combining regression, chosen by cross-validation
            (:class:`~astromer_hf.evaluation.config.HybridSettings`; None: its default half decades).
        min_period, frequency_grid, periodogram_peaks: the classical features
            (:class:`~astromer_hf.evaluation.config.FeatureSettings`).
        batch_size, device: the embedding's windows per forward pass and device.
        n_jobs: processes for the features and the forest (-1: every core).
        random_state: seeds the forest, the regressions and the stacking's folds.

    Attributes (after ``fit``):
        classes_: the labels, sorted.
        stack_: the fitted ``StackingClassifier`` (its ``final_estimator_.best_params_["C"]`` is the chosen ``C``).
        n_classical_features_: how many classical features come before the embedding in the stacked matrix.
    """

    def __init__(self, model: Any = "astromer-base", pooling: str = "mean", *, n_estimators: int = 300,
                 min_samples_leaf: int = 1, C: float = 1.0, max_iter: int = 2000, Cs: list[float] | None = None,
                 min_period: float = 0.05, frequency_grid: int = 18, periodogram_peaks: int = 2,
                 batch_size: int = 256, device: str | None = None, n_jobs: int = -1, random_state: int = 0) -> None:
        self.model = model
        self.pooling = pooling
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.C = C
        self.max_iter = max_iter
        self.Cs = Cs
        self.min_period = min_period
        self.frequency_grid = frequency_grid
        self.periodogram_peaks = periodogram_peaks
        self.batch_size = batch_size
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> HybridClassifier:
        forest = ForestSettings(self.n_estimators, self.min_samples_leaf, self.n_jobs)
        probe = ProbeSettings(self.C, self.max_iter)
        # a list as given (an array too); anything else goes to the check as it is, which names it
        hybrid = HybridSettings() if self.Cs is None else HybridSettings(
            list(self.Cs) if np.iterable(self.Cs) and not isinstance(self.Cs, str) else self.Cs)
        for settings in (forest, probe, hybrid):
            settings.check("HybridClassifier")  # errors name the parameter: "HybridClassifier.Cs must be ..."
        labels = np.asarray(y)  # what y alone decides is checked before the curves are featurised and embedded
        if labels.ndim != 1:
            raise ValueError(f"HybridClassifier: y must hold one label per curve, got shape {labels.shape}")
        classes, counts = np.unique(labels, return_counts=True)
        if not len(counts):
            raise ValueError("HybridClassifier: y holds no labels; fit needs labelled training curves")
        if counts.min() < 2:
            raise ValueError(f"HybridClassifier: every class needs at least 2 training curves (the stacking learns "
                             f"from out-of-fold predictions); class {classes[counts.argmin()].item()!r} has 1")
        self.features_ = LightCurveFeatures(self.min_period, self.frequency_grid, self.periodogram_peaks,
                                            self.n_jobs).fit(X)
        self.featurizer_ = AstromerFeaturizer(self.model, self.pooling, self.batch_size, self.device).fit(X)
        matrix = self._matrix(X)
        if len(labels) != len(matrix):
            raise ValueError(f"HybridClassifier: y must hold one label per curve ({len(matrix)}), got {len(labels)}")
        self.n_classical_features_ = int(self.features_.n_features_out_)
        self.stack_ = stacked_hybrid(forest, probe, self.n_classical_features_, self.random_state,
                                     min_class_count=int(counts.min()), hybrid=hybrid).fit(matrix, labels)
        self.classes_ = self.stack_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """``(C, n_classes)`` class probabilities, columns in ``classes_`` order."""
        check_is_fitted(self, "stack_")
        return self.stack_.predict_proba(self._matrix(X))

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "stack_")
        return self.stack_.predict(self._matrix(X))

    def _matrix(self, X: Any) -> np.ndarray:
        """The classical features, then the embedding: one row per curve, computed once."""
        return np.hstack([self.features_.transform(X), self.featurizer_.transform(X).astype(np.float64)])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags
