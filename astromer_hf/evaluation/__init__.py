"""The papers' few-shot classification protocol as one command, its baselines, and scikit-learn interop.

``astromer evaluate --config recipes/eval_synthetic.yaml`` (:func:`run_evaluation` with an :class:`EvaluationConfig`)
compares, on SPC 20 / 50 / 100 / 500 training curves per class and several folds, Astromer (frozen embeddings with a
linear probe, the papers' γ-skip + MLP head, masked fine-tuning then that head, end-to-end training) with classical
variability features + random forest, a raw GRU, Astromer with random weights, and features + embeddings together.
See docs/evaluation.md.

Modules: :mod:`~astromer_hf.evaluation.config` (every setting), :mod:`~astromer_hf.evaluation.protocol` (the folds
and the run), :mod:`~astromer_hf.evaluation.features` (the light-curve package's features),
:mod:`~astromer_hf.evaluation.baselines` (random forest, linear probe, raw GRU),
:mod:`~astromer_hf.evaluation.astromer_methods` (the Astromer rows), :mod:`~astromer_hf.evaluation.training` (the
small training loop), :mod:`~astromer_hf.evaluation.report` (tables and figures),
:mod:`~astromer_hf.evaluation.featurizer` (:class:`AstromerFeaturizer`), :mod:`~astromer_hf.evaluation.hybrid`
(:class:`HybridClassifier`: features and embeddings stacked, on raw curves).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "EvaluationConfig": "config",
    "METHODS": "config",
    "config_from_mapping": "config",
    "run_evaluation": "protocol",
    "EvaluationResult": "protocol",
    "AstromerFeaturizer": "featurizer",
    "HybridClassifier": "hybrid",
    "LightCurveFeatures": "features",
    "compute_features": "features",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'astromer_hf.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from .config import METHODS, EvaluationConfig, config_from_mapping
    from .features import LightCurveFeatures, compute_features
    from .featurizer import AstromerFeaturizer
    from .hybrid import HybridClassifier
    from .protocol import EvaluationResult, run_evaluation
