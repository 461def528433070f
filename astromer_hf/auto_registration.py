"""Registering the Astromer classes with transformers' Auto classes — when those are imported, not before.

``import astromer_hf`` must stay cheap (a command line that answers ``--help`` at once, scripts that only read a
dataset), but transformers' Auto modules cost seconds to import (``AutoProcessor`` alone about 3 s on a 2-core
machine) and our model classes pull in transformers' modeling code. So importing the package only installs this
hook: when one of transformers' Auto modules is imported — by the user's ``from transformers import AutoModel``,
before or after ``import astromer_hf``, or by our own code — the Astromer classes are registered with it right
after it is executed (at once if it already was), and its ``from_pretrained`` learns the release names.

The same hook registers the ``"light-curve-embedding"`` task (:mod:`astromer_hf.pipelines`) with
``transformers.pipelines``' ``PIPELINE_REGISTRY`` when that module is imported (``from transformers import pipeline``).

This is the only place that touches the import system. It wraps the loaders of five named transformers modules (and
of the Astromer modules the registrations import, which may themselves import transformers' modules while they are
being executed) so that the registrations run once each is executed; nothing else about those modules changes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
from collections.abc import Callable
from types import ModuleType

logger = logging.getLogger(__name__)
_AUTO = "transformers.models.auto."


def _register_config(module: ModuleType) -> None:
    from .configuration_astromer import AstromerConfig
    from .releases import install_release_names

    module.AutoConfig.register(AstromerConfig.model_type, AstromerConfig, exist_ok=True)
    install_release_names(module.AutoConfig, AstromerConfig)


def _register_models(module: ModuleType) -> None:
    from .configuration_astromer import AstromerConfig
    from .modeling_astromer import (
        AstromerForLightCurveClassification,
        AstromerForMaskedReconstruction,
        AstromerModel,
        AstromerPreTrainedModel,
    )
    from .releases import install_release_names

    module.AutoModel.register(AstromerConfig, AstromerModel, exist_ok=True)
    module.AutoModelForPreTraining.register(AstromerConfig, AstromerForMaskedReconstruction, exist_ok=True)
    module.AutoModelForSequenceClassification.register(
        AstromerConfig, AstromerForLightCurveClassification, exist_ok=True
    )
    install_release_names(module.AutoModel, module.AutoModelForPreTraining,
                          module.AutoModelForSequenceClassification, AstromerPreTrainedModel)


def _register_feature_extractor(module: ModuleType) -> None:
    from .configuration_astromer import AstromerConfig
    from .processing_astromer import AstromerProcessor
    from .releases import install_release_names

    module.AutoFeatureExtractor.register(AstromerConfig, AstromerProcessor, exist_ok=True)
    install_release_names(module.AutoFeatureExtractor, AstromerProcessor)


def _register_processor(module: ModuleType) -> None:
    from .configuration_astromer import AstromerConfig
    from .processing_astromer import AstromerProcessor
    from .releases import install_release_names

    module.AutoProcessor.register(AstromerConfig, AstromerProcessor, exist_ok=True)
    install_release_names(module.AutoProcessor)


def _register_pipeline(module: ModuleType) -> None:
    from transformers.models.auto.modeling_auto import AutoModel

    from .pipelines import register

    register(module.PIPELINE_REGISTRY, AutoModel)


#: transformers module -> (what to register once it is executed, the Astromer modules that registration imports).
REGISTRATIONS: dict[str, tuple[Callable[[ModuleType], None], tuple[str, ...]]] = {
    _AUTO + "configuration_auto": (_register_config, ("configuration_astromer",)),
    _AUTO + "modeling_auto": (_register_models, ("configuration_astromer", "modeling_astromer")),
    _AUTO + "feature_extraction_auto": (_register_feature_extractor, ("configuration_astromer", "processing_astromer")),
    _AUTO + "processing_auto": (_register_processor, ("configuration_astromer", "processing_astromer")),
    # the "light-curve-embedding" task of transformers.pipeline
    "transformers.pipelines": (_register_pipeline, ("embedding", "pipelines")),
}
_PACKAGE = __name__.rpartition(".")[0]
#: Our modules whose completion may allow a registration that had to wait for them.
_OWN_MODULES = {f"{_PACKAGE}.{name}" for _, needs in REGISTRATIONS.values() for name in needs}
_executing: set[str] = set()  # watched modules being executed right now
_registered: set[str] = set()


def _try(name: str) -> None:
    """Register with the Auto module ``name`` if it is imported and nothing it needs is half-imported."""
    module = sys.modules.get(name)
    if name in _registered or module is None or name in _executing:
        return
    register, needs = REGISTRATIONS[name]
    if any(f"{_PACKAGE}.{own}" in _executing for own in needs):
        return  # one of our modules imported transformers while it was being executed: retried when it is done
    _registered.add(name)
    try:
        register(module)
    except Exception:  # never break the user's transformers import; say what went wrong instead
        _registered.discard(name)
        logger.exception("astromer_hf could not register its classes with %s", name)


class _RunAfterExec(importlib.abc.Loader):
    """The original loader of a watched module; after it has executed the module, the registrations it allows."""

    def __init__(self, loader: importlib.abc.Loader, name: str) -> None:
        self.loader = loader
        self.name = name

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        _executing.add(self.name)
        try:
            self.loader.exec_module(module)
        finally:
            _executing.discard(self.name)
        for name in REGISTRATIONS:
            _try(name)

    def __getattr__(self, attribute: str):  # get_source, is_package, ... as the original loader answers them
        return getattr(self.loader, attribute)


class _WatchedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the watched modules through the other finders and wraps their loaders."""

    def find_spec(self, name: str, path=None, target=None):
        if name not in REGISTRATIONS and name not in _OWN_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RunAfterExec(spec.loader, name)
                return spec
        return None


def install() -> None:
    """Register with the Auto modules already imported, and with the others when they are (idempotent)."""
    if not any(isinstance(finder, _WatchedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WatchedModuleFinder())
    for name in REGISTRATIONS:
        _try(name)


def register_all() -> None:
    """Import the Auto modules now, which registers everything."""
    import importlib

    for name in REGISTRATIONS:
        importlib.import_module(name)
