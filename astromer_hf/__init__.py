"""Astromer, the transformer foundation model for astronomical light curves, on PyTorch and the Hugging Face stack.

Importing the package registers the Astromer classes with the ``transformers`` Auto classes:

=========================================  ===========================================
``AutoConfig``                             :class:`AstromerConfig`
``AutoModel``                              :class:`AstromerModel`
``AutoModelForPreTraining``                :class:`AstromerForMaskedReconstruction`
``AutoModelForSequenceClassification``     :class:`AstromerForLightCurveClassification`
``AutoFeatureExtractor``, ``AutoProcessor``  :class:`AstromerProcessor`
=========================================  ===========================================

Saved folders also carry the modeling code (``auto_map``), so they load with ``trust_remote_code=True`` where this
package is not installed.

It also lets these classes (and ``AstromerConfig``, ``AstromerProcessor``, the Astromer models) load the named
releases: ``AutoModel.from_pretrained("astromer-base")`` (see :mod:`astromer_hf.releases`).
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoProcessor,
)

from .configuration_astromer import ASTROMER_PRESETS, AstromerConfig
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
from .releases import RELEASES, install_release_names

__version__ = "0.1.0.dev0"

AutoConfig.register(AstromerConfig.model_type, AstromerConfig, exist_ok=True)
AutoModel.register(AstromerConfig, AstromerModel, exist_ok=True)
AutoModelForPreTraining.register(AstromerConfig, AstromerForMaskedReconstruction, exist_ok=True)
AutoModelForSequenceClassification.register(AstromerConfig, AstromerForLightCurveClassification, exist_ok=True)
AutoFeatureExtractor.register(AstromerConfig, AstromerProcessor, exist_ok=True)
AutoProcessor.register(AstromerConfig, AstromerProcessor, exist_ok=True)

# Record the code in saved folders so they load with `trust_remote_code=True` without this package.
AstromerConfig.register_for_auto_class()
AstromerModel.register_for_auto_class("AutoModel")
AstromerForMaskedReconstruction.register_for_auto_class("AutoModelForPreTraining")
AstromerForLightCurveClassification.register_for_auto_class("AutoModelForSequenceClassification")
AstromerProcessor.register_for_auto_class("AutoFeatureExtractor")

# Release names ("astromer-base", ...) resolve to folders in from_pretrained.
install_release_names(
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoFeatureExtractor,
    AutoProcessor,
    AstromerConfig,
    AstromerPreTrainedModel,
    AstromerProcessor,
)

__all__ = [
    "ASTROMER_PRESETS",
    "RELEASES",
    "AstromerConfig",
    "AstromerPreTrainedModel",
    "AstromerModel",
    "AstromerForMaskedReconstruction",
    "AstromerForLightCurveClassification",
    "AstromerModelOutput",
    "AstromerMaskedReconstructionOutput",
    "AstromerClassificationOutput",
    "AstromerProcessor",
]
