"""``synthetic``: labelled light curves from the built-in simulator, the project's offline default data.

Configurations name the cadence (``macho``, ``ogle``, ``ztf``); ``n_curves`` and ``seed`` set the size and the
draw. Curve ``i`` depends only on ``(seed, i)``, so a larger preparation contains every curve of a smaller one.

    from astromer_hf.data.surveys.synthetic import SyntheticLightCurves
    builder = SyntheticLightCurves(config_name="macho", n_curves=2_000, seed=0, cache_dir="cache")
    builder.download_and_prepare()
    splits = builder.as_dataset()        # DatasetDict: train / validation / test
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import datasets

from ..builder import LightCurveBuilder, LightCurveConfig
from ..simulator import CADENCES, SIMULATED_CLASSES, simulate_survey, simulated_object_id

# Simulator outputs kept in the dataset (the schema's columns plus the simulator's metadata).
RECORD_FIELDS = ("object_id", "band", "time", "mag", "mag_err", "label", "ra", "dec", "period", "amplitude", "mean_mag")


@dataclass
class SyntheticConfig(LightCurveConfig):
    """Args: n_curves: how many objects to simulate; seed: the draw; cadence: ``macho``, ``ogle`` or ``ztf``."""

    n_curves: int = 10_000
    seed: int = 0
    cadence: str = "macho"

    def __post_init__(self):
        super().__post_init__()
        if self.n_curves < 1:
            raise ValueError(f"n_curves must be positive, got {self.n_curves}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.cadence not in CADENCES:
            raise ValueError(f"cadence must be one of {CADENCES}, got {self.cadence!r}")


class SyntheticLightCurves(LightCurveBuilder):
    """Simulated RR Lyrae, Cepheids, eclipsing binaries, LPVs, δ Scuti and non-variables."""

    BUILDER_CONFIG_CLASS = SyntheticConfig
    BUILDER_CONFIGS = [
        SyntheticConfig(name=cadence, cadence=cadence, description=f"{cadence.upper()}-like cadence")
        for cadence in CADENCES
    ]
    DEFAULT_CONFIG_NAME = "macho"
    SURVEY = "synthetic"

    def class_names(self) -> tuple[str, ...]:
        return SIMULATED_CLASSES

    def extra_features(self) -> dict[str, object]:
        return {
            "period": datasets.Value("float64"),
            "amplitude": datasets.Value("float32"),
            "mean_mag": datasets.Value("float32"),
        }

    def object_ids(self, sources: dict) -> Iterator[str]:
        config = self.config
        return (simulated_object_id(config.cadence, config.seed, index) for index in range(config.n_curves))

    def _records(self, sources: dict, keep: Callable[[str], bool]) -> Iterator[dict]:
        config = self.config
        for index in range(config.n_curves):  # only the curves of the split being written are simulated
            if keep(simulated_object_id(config.cadence, config.seed, index)):
                record = next(simulate_survey(1, seed=config.seed, cadence=config.cadence, start=index))
                yield {name: record[name] for name in RECORD_FIELDS}
