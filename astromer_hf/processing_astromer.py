"""``AstromerProcessor``: light curves in, model-ready windows out.

It chains the steps of :mod:`astromer_hf.lightcurves` (parse, clean, window, centre) and, for pretraining, the
masking of :mod:`astromer_hf.masking`. As a :class:`~transformers.FeatureExtractionMixin` it is saved to and
loaded from ``preprocessor_config.json`` with ``save_pretrained`` / ``from_pretrained``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin

from .configuration_astromer import AstromerConfig
from .lightcurves import (
    CENTERING_MODES,
    DEFAULT_MAX_ERROR,
    DEFAULT_MIN_OBSERVATIONS,
    MIN_CURVE_LENGTH,
    WINDOW_STRATEGIES,
    CleaningReport,
    make_windows,
)
from .masking import mask_windows, validate_fraction

RETURN_TENSOR_TYPES = ("pt", "np", None)
PADDING_MODES = ("max_length", "longest")
#: The settings a processor shares with its model; their defaults are the model configuration's.
MODEL_SETTINGS = ("window_size", "mask_probed_fraction", "mask_random_fraction", "mask_same_fraction")
#: Attributes describing the last call, not settings: never saved.
_RUNTIME_ATTRIBUTES = ("last_cleaning_report", "last_curve_ids")


class AstromerProcessor(FeatureExtractionMixin):
    """Turn light curves into Astromer windows.

    The window size and the masking fractions are the model's: build the processor of a model with
    :meth:`from_model_config` (its defaults are :class:`~astromer_hf.AstromerConfig`'s).

    Args:
        window_size: T, the longest window (the model's ``config.window_size``; 200 for the released models).
        windows: default window strategy, ``"tiling"`` (every observation in exactly one window, the windows of a
            curve as equal in length as possible), ``"legacy"`` (the original inference rule) or ``"random"`` (one
            random window per curve, for pretraining). See :mod:`astromer_hf.lightcurves`.
        centering: ``"float64"`` (exact) or ``"legacy_float32"`` (bit-identical to the original code).
        padding: ``"max_length"`` pads every window to ``window_size`` positions, as the original did;
            ``"longest"`` pads only to the longest window of the call. Astromer 1's additive attention mask lets
            padding change the outputs (``docs/architecture.md``), so its models keep ``"max_length"``; with
            Astromer 2's key mask padding changes nothing and ``"longest"`` only saves work.
        clean: apply the cleaning rules (and report them); when False, invalid curves raise ``ValueError``.
        min_observations: curves with fewer observations are dropped by the cleaning (at least 2).
        max_error: rows with an error not below this are dropped by the cleaning; None keeps them
            (non-positive errors are always dropped).
        mask_probed_fraction, mask_random_fraction, mask_same_fraction: the masking fractions (``docs/architecture.md``,
            "Masked modelling").

    After each call, ``last_cleaning_report`` holds the :class:`~astromer_hf.lightcurves.CleaningReport` and
    ``last_curve_ids`` the object ids of a DataFrame input (None otherwise); ``curve_index`` in the output
    indexes both the caller's curves and these ids.
    """

    model_input_names = ["magnitudes", "times", "attention_mask"]

    def __init__(
        self,
        window_size: int = AstromerConfig.window_size,
        windows: str = "tiling",
        centering: str = "float64",
        padding: str = "max_length",
        clean: bool = True,
        min_observations: int = DEFAULT_MIN_OBSERVATIONS,
        max_error: float | None = DEFAULT_MAX_ERROR,
        mask_probed_fraction: float = AstromerConfig.mask_probed_fraction,
        mask_random_fraction: float = AstromerConfig.mask_random_fraction,
        mask_same_fraction: float = AstromerConfig.mask_same_fraction,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("feature_extractor_type", None)
        super().__init__(**kwargs)
        self.window_size = _positive_int(window_size, "window_size", minimum=1)
        self.windows = _choice(windows, "windows", WINDOW_STRATEGIES)
        self.centering = _choice(centering, "centering", CENTERING_MODES)
        self.padding = _choice(padding, "padding", PADDING_MODES)
        if not isinstance(clean, bool):
            raise ValueError(f"clean must be True or False, got {clean!r}")
        self.clean = clean
        self.min_observations = _positive_int(min_observations, "min_observations", minimum=MIN_CURVE_LENGTH)
        self.max_error = _max_error(max_error)
        self.mask_probed_fraction = validate_fraction(mask_probed_fraction, "mask_probed_fraction")
        self.mask_random_fraction = validate_fraction(mask_random_fraction, "mask_random_fraction")
        self.mask_same_fraction = validate_fraction(mask_same_fraction, "mask_same_fraction")
        self.last_cleaning_report: CleaningReport | None = None
        self.last_curve_ids: list | None = None

    @classmethod
    def from_model_config(cls, config: Any, **kwargs: Any) -> AstromerProcessor:
        """The processor of a model: its window size and masking fractions, and ``padding="longest"`` when its
        attention mask removes padding (``attention_mask_style="key"``).

        ``config`` is an :class:`~astromer_hf.AstromerConfig` (or any object with ``window_size`` and the
        ``mask_*_fraction``s); ``kwargs`` set the remaining processor settings (and override the model's).
        """
        missing = [name for name in MODEL_SETTINGS if not hasattr(config, name)]
        if missing:
            raise AttributeError(f"{type(config).__name__} lacks the attribute(s) {missing} needed by the processor")
        settings = {name: getattr(config, name) for name in MODEL_SETTINGS}
        if getattr(config, "attention_mask_style", None) == "key":
            settings["padding"] = "longest"
        return cls(**{**settings, **kwargs})

    def to_dict(self) -> dict[str, Any]:
        """The settings, without the state of the last call."""
        output = super().to_dict()
        for name in _RUNTIME_ATTRIBUTES:
            output.pop(name, None)
        return output

    def __call__(
        self,
        lightcurves: Any,
        *,
        windows: str | None = None,
        mask: bool = False,
        seed: int | np.random.Generator | None = None,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """Clean, window, centre and optionally mask light curves.

        Args:
            lightcurves: anything :func:`~astromer_hf.lightcurves.as_lightcurves` reads (an ``(N, 3)`` array,
                a list of them, a dict of columns, a long-format DataFrame).
            windows: window strategy for this call; defaults to the processor's ``windows``.
            mask: also draw the pretraining masks and apply the "random" substitution.
            seed: makes the random windows and the masks reproducible. Without it, random windows use fresh
                entropy and masks the global torch RNG.
            return_tensors: ``"pt"`` (torch), ``"np"`` or None (both give NumPy arrays for the latter two).

        Returns:
            :class:`~transformers.BatchFeature` with W windows of T positions:

            * ``magnitudes``: float32 ``[W, T]`` centred (after the random substitution when ``mask``);
            * ``times``: float32 ``[W, T]`` centred;
            * ``errors``: float32 ``[W, T]`` raw errors, 0 at padding;
            * ``attention_mask``: int64 ``[W, T]``, 1 real, 0 padding;
            * ``curve_index``, ``window_start``, ``window_length``: int64 ``[W]``;
            * ``time_offset``, ``magnitude_offset``: float64 ``[W]``, the subtracted means;
            * with ``mask``: ``masked_positions``, ``probed_positions`` (int64 ``[W, T]``) and ``labels``
              (float32 ``[W, T]``, the true centred magnitudes).
        """
        strategy = _choice(windows if windows is not None else self.windows, "windows", WINDOW_STRATEGIES)
        if return_tensors not in RETURN_TENSOR_TYPES:
            raise ValueError(f"return_tensors must be one of {RETURN_TENSOR_TYPES}, got {return_tensors!r}")
        rng = np.random.default_rng(seed)
        prepared = make_windows(
            lightcurves,
            window_size=self.window_size,
            strategy=strategy,
            centering=self.centering,
            clean=self.clean,
            min_observations=self.min_observations,
            max_error=self.max_error,
            rng=rng,
            padding=self.padding,
        )
        self.last_cleaning_report = prepared.report
        self.last_curve_ids = prepared.ids
        centred, slices = prepared.centred, prepared.slices
        data: dict[str, np.ndarray] = {
            "magnitudes": centred.magnitudes,
            "times": centred.times,
            "errors": centred.errors,
            "attention_mask": centred.attention_mask,
            "curve_index": slices.curve_index,
            "window_start": slices.start,
            "window_length": slices.length,
            "time_offset": centred.time_offset,
            "magnitude_offset": centred.magnitude_offset,
        }
        if mask:
            data.update(self._mask(centred.magnitudes, centred.attention_mask, rng if seed is not None else None))
        return BatchFeature(data, tensor_type=return_tensors)

    def _mask(
        self, magnitudes: np.ndarray, attention_mask: np.ndarray, rng: np.random.Generator | None
    ) -> dict[str, np.ndarray]:
        """Masking outputs as NumPy arrays; ``rng`` (when given) seeds the torch generator."""
        generator = None if rng is None else torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        masked = mask_windows(
            torch.from_numpy(magnitudes),
            torch.from_numpy(attention_mask),
            self.mask_probed_fraction,
            self.mask_random_fraction,
            self.mask_same_fraction,
            generator=generator,
        )
        return {
            "magnitudes": masked.inputs.numpy(),
            "masked_positions": masked.masked_positions.numpy(),
            "probed_positions": masked.probed_positions.numpy(),
            "labels": masked.labels.numpy(),
        }


# Saved processor configurations name this class in their `auto_map`, for `trust_remote_code=True` loading.
AstromerProcessor.register_for_auto_class("AutoFeatureExtractor")


def _positive_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int after checking it is an integer not below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """``value`` after checking it is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _max_error(value: Any) -> float | None:
    """``value`` as a float after checking it is None or a positive finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < value < np.inf:
        raise ValueError(f"max_error must be a positive number or None, got {value!r}")
    return float(value)
