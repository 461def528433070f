"""Astromer, the transformer foundation model for astronomical light curves, on PyTorch and the Hugging Face stack.

The Astromer classes answer to the ``transformers`` Auto classes:

=============================================  ===========================================
``AutoConfig``                                 :class:`AstromerConfig`
``AutoModel``                                  :class:`AstromerModel`
``AutoModelForPreTraining``                    :class:`AstromerForMaskedReconstruction`
``AutoModelForSequenceClassification``         :class:`AstromerForLightCurveClassification`
``AutoFeatureExtractor``, ``AutoProcessor``    :class:`AstromerProcessor`
=============================================  ===========================================

and their ``from_pretrained`` (and the Astromer classes') load the named releases:
``AutoModel.from_pretrained("astromer-base")`` (see :mod:`astromer_hf.releases`). Saved folders also carry the
modeling code (``auto_map``), so they load with ``trust_remote_code=True`` where this package is not installed.

``astromer_hf.embed(curves, "astromer-base")`` embeds light curves in one call (one vector per curve, in input
order; :mod:`astromer_hf.embedding`), and ``transformers.pipeline("light-curve-embedding", model=...)`` does the same
through the pipeline API.

Importing the package is cheap: the classes below are imported on first use, and the Auto classes learn about
Astromer when transformers imports them (:mod:`astromer_hf.auto_registration`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import auto_registration

__version__ = "0.1.0.dev0"

#: Public name -> the module that defines it (imported on first access).
_EXPORTS = {
    "ASTROMER_PRESETS": "configuration_astromer",
    "AstromerConfig": "configuration_astromer",
    "AstromerPreTrainedModel": "modeling_astromer",
    "AstromerModel": "modeling_astromer",
    "AstromerForMaskedReconstruction": "modeling_astromer",
    "AstromerForLightCurveClassification": "modeling_astromer",
    "AstromerModelOutput": "modeling_astromer",
    "AstromerMaskedReconstructionOutput": "modeling_astromer",
    "AstromerClassificationOutput": "modeling_astromer",
    "AstromerProcessor": "processing_astromer",
    "RELEASES": "releases",
    "embed": "embedding",
    "embed_to_parquet": "embedding",
    "add_embeddings": "embedding",
    "LightCurveEmbeddings": "embedding",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'astromer_hf' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names above are imported on first use
    from .configuration_astromer import ASTROMER_PRESETS, AstromerConfig
    from .embedding import LightCurveEmbeddings, add_embeddings, embed, embed_to_parquet
    from .modeling_astromer import (
        AstromerClassificationOutput,
        AstromerForLightCurveClassification,
        AstromerForMaskedReconstruction,
        AstromerMaskedReconstructionOutput,
        AstromerModel,
        AstromerModelOutput,
        AstromerPreTrainedModel,
    )
    from .processing_astromer import AstromerProcessor
    from .releases import RELEASES

auto_registration.install()
