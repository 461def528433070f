"""The one schema every survey dataset uses: one row per object and band.

==============  ==========================  ==========================================================
column          type                        meaning
==============  ==========================  ==========================================================
``object_id``   string                      the survey's identifier of the object
``survey``      string                      ``"macho"``, ``"ogle3"``, ``"ztf"``, ``"synthetic"``, ...
``band``        string                      filter / passband of this row's photometry
``time``        list of float64             observation times in days, MJD (survey offsets converted)
``mag``         list of float32             magnitudes
``mag_err``     list of float32             magnitude errors
``label``       ClassLabel (nullable)       the class, null where the object is unlabelled
``ra``          float64                     right ascension, degrees (null when unknown)
``dec``         float64                     declination, degrees (null when unknown)
``n_obs``       int32                       number of observations after cleaning
==============  ==========================  ==========================================================

Flux-based surveys add ``flux`` and ``flux_err`` (lists of float32); each survey may add metadata columns.
Time stays float64 end to end: MJDs near 5e4 need it for sub-second precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from datasets import ClassLabel, Features, List, Value

BASE_COLUMNS = ("object_id", "survey", "band", "time", "mag", "mag_err", "label", "ra", "dec", "n_obs")
FLUX_COLUMNS = ("flux", "flux_err")
SEQUENCE_COLUMNS = ("time", "mag", "mag_err", "flux", "flux_err")


def lightcurve_features(
    class_names: Sequence[str] = (), *, flux: bool = False, extra: Mapping[str, object] | None = None
) -> Features:
    """`datasets.Features` of the common schema.

    Args:
        class_names: names of the label classes (empty for unlabelled surveys; ``label`` is then always null).
        flux: add the ``flux`` / ``flux_err`` columns.
        extra: survey-specific metadata columns, name -> `datasets` feature type.
    """
    columns: dict[str, object] = {
        "object_id": Value("string"),
        "survey": Value("string"),
        "band": Value("string"),
        "time": List(Value("float64")),
        "mag": List(Value("float32")),
        "mag_err": List(Value("float32")),
        "label": ClassLabel(names=list(class_names)),
        "ra": Value("float64"),
        "dec": Value("float64"),
        "n_obs": Value("int32"),
    }
    if flux:
        columns |= {"flux": List(Value("float32")), "flux_err": List(Value("float32"))}
    for name, feature in (extra or {}).items():
        if name in columns:
            raise ValueError(f"extra column {name!r} clashes with a column of the common schema")
        columns[name] = feature
    return Features(columns)
