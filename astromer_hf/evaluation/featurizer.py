"""``AstromerFeaturizer``: Astromer embeddings as a scikit-learn transformer.

>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from sklearn.linear_model import LogisticRegression
>>> from astromer_hf.evaluation import AstromerFeaturizer
>>> classifier = make_pipeline(AstromerFeaturizer("astromer-base"), StandardScaler(), LogisticRegression(max_iter=2000))
>>> classifier.fit(train_curves, train_labels).score(test_curves, test_labels)

``X`` is anything :func:`astromer_hf.embed` reads: a list of ``(N, 3)`` arrays ``[time, mag, err]``, a long DataFrame
with an id column, a ``datasets.Dataset`` in the survey schema. ``fit`` loads the model once (the encoder is not
trained: fitting only records the output width); ``transform`` returns the float32 ``(C, D)`` pooled embeddings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

_POOLINGS = ("mean", "max", "gamma")
_DROPPED = ("nan", "raise")


class AstromerFeaturizer(TransformerMixin, BaseEstimator):
    """Embed light curves with a pretrained Astromer inside a scikit-learn ``Pipeline``.

    Args:
        model: a release name (``"astromer-base"``), a ``save_pretrained`` folder, a Hub id, or an Astromer model
            instance (any head; its encoder is used).
        pooling: ``"mean"``, ``"max"`` or ``"gamma"`` (see :func:`astromer_hf.embed`).
        batch_size: windows per forward pass.
        device: where the encoder runs (None: CUDA when available, else the CPU).
        dropped: what to do with a curve that the cleaning drops (too few valid observations): ``"nan"`` gives a row
            of NaN (follow with an imputer), ``"raise"`` raises ``ValueError`` naming the curves.

    Attributes (after ``fit``):
        encoder_: the loaded encoder.
        n_features_out_: the embedding width.
    """

    def __init__(self, model: Any = "astromer-base", pooling: str = "mean", batch_size: int = 256,
                 device: str | None = None, dropped: str = "nan") -> None:
        self.model = model
        self.pooling = pooling
        self.batch_size = batch_size
        self.device = device
        self.dropped = dropped

    def _check(self) -> None:
        if self.pooling not in _POOLINGS:
            raise ValueError(f"AstromerFeaturizer: pooling must be one of {_POOLINGS}, got {self.pooling!r}")
        if self.dropped not in _DROPPED:
            raise ValueError(f"AstromerFeaturizer: dropped must be one of {_DROPPED}, got {self.dropped!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"AstromerFeaturizer: batch_size must be a positive integer, got {self.batch_size!r}")

    def fit(self, X: Any = None, y: Any = None) -> AstromerFeaturizer:
        """Load the model (nothing is trained)."""
        import torch

        self._check()
        self.encoder_ = self.model if isinstance(self.model, torch.nn.Module) else _load(self.model, self.pooling)
        config = getattr(self.encoder_, "config", None)
        if getattr(config, "model_type", None) != "astromer":
            raise TypeError(f"AstromerFeaturizer: model must be an Astromer model or a name / folder of one, got "
                            f"{type(self.model).__name__}")
        self.n_features_out_ = int(config.hidden_size)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """float32 ``(C, D)``: one pooled embedding per curve, in input order."""
        import astromer_hf

        check_is_fitted(self, "encoder_")
        self._check()
        result = astromer_hf.embed(X, model=self.encoder_, pooling=self.pooling, batch_size=self.batch_size,
                                   device=self.device, progress=False)
        vectors = np.asarray(result.vectors, dtype=np.float32)
        kept = np.asarray(result.kept, dtype=bool)
        if self.dropped == "raise" and not kept.all():
            raise ValueError(f"AstromerFeaturizer: {int((~kept).sum())} curve(s) have too few valid observations to "
                             f"embed (positions {np.flatnonzero(~kept)[:10].tolist()}); clean them out, or use "
                             "dropped='nan' and an imputer")
        return vectors

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "n_features_out_")
        return np.asarray([f"astromer_{index}" for index in range(self.n_features_out_)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.input_tags.two_d_array = False
        return tags


def _load(model: Any, pooling: str):
    """The encoder of a release name, folder or Hub id; with ``gamma`` pooling, a classifier saved with skip pooling is
    loaded whole so that its trained γ weighs the layers."""
    import os

    from ..configuration_astromer import AstromerConfig
    from ..loading_bars import weight_loading_bars_hidden
    from ..modeling_astromer import AstromerForLightCurveClassification, AstromerModel
    from ..releases import resolve_name_or_path

    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"AstromerFeaturizer: model must be a release name, a folder, a Hub id or an Astromer model, "
                        f"got {type(model).__name__}")
    location = resolve_name_or_path(str(model))
    config = AstromerConfig.from_pretrained(location)
    classifier = pooling == "gamma" and config.classifier_pooling == "skip" and (
        "AstromerForLightCurveClassification" in (config.architectures or []))
    with weight_loading_bars_hidden():
        loaded = (AstromerForLightCurveClassification if classifier else AstromerModel).from_pretrained(location)
    return loaded.eval()
