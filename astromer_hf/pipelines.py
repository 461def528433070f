"""The ``"light-curve-embedding"`` task of ``transformers.pipeline``.

After ``import astromer_hf``, importing ``transformers.pipelines`` registers the task (see
:mod:`astromer_hf.auto_registration`), so::

    from transformers import pipeline
    embedder = pipeline("light-curve-embedding", model="astromer-base")   # or a save_pretrained folder
    embedder(curve)            # one (N, 3) array -> {"id": 0, "kept": True, "embedding": (D,) float32 array}
    embedder(curves)           # a list, a DataFrame, a Dataset ... -> one such dict per curve, in input order
    embedder(curves, pooling="max", return_observations=True)

The pipeline loads the base encoder (``AutoModel``) and the folder's :class:`~astromer_hf.AstromerProcessor` when it
has one (else the model configuration's), and hands the whole input to :func:`astromer_hf.embed` in one call: the
windows of all the curves are batched together by length (``batch_size`` counts windows, default 256), rather than
one forward pass per curve. The last call's :class:`~astromer_hf.LightCurveEmbeddings` (with the cleaning report) is
kept as ``pipeline.last_result``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from transformers.pipelines.base import Pipeline

from .embedding import DEFAULT_CHUNK_SIZE, LightCurveEmbeddings, embed

TASK = "light-curve-embedding"
#: Keyword arguments of a call (or of ``pipeline(...)``) that go to :func:`astromer_hf.embed`.
EMBED_PARAMETERS = ("pooling", "return_observations", "legacy", "progress", "chunk_size")


class LightCurveEmbeddingPipeline(Pipeline):
    """Light curves in, one embedding per curve out (:func:`astromer_hf.embed` behind the ``pipeline`` API).

    Call arguments (also accepted by ``pipeline(...)`` as defaults): ``pooling`` (``"mean"``, ``"max"``,
    ``"gamma"``), ``return_observations``, ``legacy``, ``progress``, ``chunk_size``, ``batch_size`` (windows per
    forward pass) and ``dtype`` (None or ``torch.bfloat16``, an autocast on the device).

    Returns one dict per curve: ``id``, ``kept`` (False where the cleaning dropped the curve), ``embedding`` (a float32
    ``(D,)`` array, None for a dropped curve) and, with ``return_observations``, ``observations`` (``(n_i, D)``). A
    single curve (an ``(N, 3)`` array, or a dict of 1-D columns) gives a single dict.
    """

    _load_feature_extractor = None  # the folder's AstromerProcessor when it has one
    _load_tokenizer = False
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_result: LightCurveEmbeddings | None = None

    def _sanitize_parameters(self, dtype: Any = None, **kwargs: Any):
        unknown = sorted(set(kwargs) - set(EMBED_PARAMETERS))
        if unknown:
            raise TypeError(f"unknown argument(s) {unknown} of the {TASK!r} pipeline; it takes "
                            f"{sorted({*EMBED_PARAMETERS, 'batch_size', 'dtype'})}")
        forward = dict(kwargs)
        if dtype is not None:
            forward["dtype"] = dtype
        return {}, forward, {}

    def __call__(self, inputs: Any, *args: Any, batch_size: int | None = None, **kwargs: Any):
        if args:
            raise TypeError(f"the {TASK!r} pipeline takes the light curves as its only positional argument")
        _, forward, _ = self._sanitize_parameters(**kwargs)
        forward = {**self._forward_params, **forward}
        forward["batch_size"] = batch_size or self._batch_size or 256
        return self.postprocess(self._forward(self.preprocess(inputs), **forward))

    def preprocess(self, inputs: Any, **_: Any) -> dict[str, Any]:
        return {"curves": inputs, "single": _is_single_curve(inputs)}

    def _forward(self, model_inputs: dict[str, Any], **parameters: Any) -> dict[str, Any]:
        parameters.setdefault("chunk_size", DEFAULT_CHUNK_SIZE)
        result = embed(model_inputs["curves"], self.model, processor=self.feature_extractor, device=self.device,
                       **parameters)
        self.last_result = result
        return {"result": result, "single": model_inputs["single"]}

    def postprocess(self, model_outputs: dict[str, Any], **_: Any):
        result: LightCurveEmbeddings = model_outputs["result"]
        rows = []
        for index in range(len(result)):
            kept = bool(result.kept[index])
            row = {"id": result.ids[index], "kept": kept, "embedding": result.vectors[index] if kept else None}
            if result.observations is not None:
                row["observations"] = result.observations[index]
            rows.append(row)
        return rows[0] if model_outputs["single"] and len(rows) == 1 else rows


def _is_single_curve(inputs: Any) -> bool:
    """An ``(N, 3)`` array or a dict of 1-D columns: one curve (a list, DataFrame or Dataset: a collection)."""
    if isinstance(inputs, np.ndarray):
        return inputs.ndim == 2
    if isinstance(inputs, Mapping):
        first = next(iter(inputs.values()), None)
        return not (isinstance(first, (list, tuple)) and len(first) > 0 and np.ndim(first[0]) >= 1)
    return False


def register(registry: Any, auto_model: Any) -> None:
    """Register the task with transformers' ``PIPELINE_REGISTRY`` (the model class loaded for it: ``auto_model``)."""
    if TASK in registry.supported_tasks and registry.supported_tasks[TASK]["impl"] is LightCurveEmbeddingPipeline:
        return
    registry.register_pipeline(TASK, pipeline_class=LightCurveEmbeddingPipeline, pt_model=auto_model)


__all__ = ["TASK", "LightCurveEmbeddingPipeline", "register"]
