"""``atlas``: the ATLAS variable-star catalogue (ATLAS-VAR DR1, Heinze et al. 2018, AJ 156, 241).

What was confirmed (searches of stored copies of the public pages named here):

* The catalogue is the MAST High Level Science Product ``atlas-var`` (DOI 10.17909/T9H98D; pages
  https://archive.stsci.edu/hlsp/atlas-var and https://archive.stsci.edu/prepds/atlas-var/). It has three tables,
  ``object`` (4,734,215 candidate variables), ``observation`` (the images) and ``detection`` (all photometric
  measurements of the candidates, 991,071,517 rows), in the ``HLSP_ATLAS_VAR`` context of MAST CasJobs.
* The ``object`` table is also offered as one FITS file, ``hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits``
  (~74 MB); the ``detection`` table is offered **only** through CasJobs, not as files.
* The machine-learning classes (VizieR J/AJ/156/241, note 7 of ``table4``): ``CBF`` / ``CBH`` (close binaries, full /
  half period), ``DBF`` / ``DBH`` (distant binaries, full / half period), ``IRR``, ``LPV``, ``MIRA``, and further
  classes of the paper (``PULSE``, ``MPULSE``, ``SINE``, ``MSINE``, ``NSINE``, ``dubious``); the ATLAS filters are
  "c" (cyan) and "o" (orange).

Unverified, hence configurable:

* The base URL (``BASE_URL`` follows the usual MAST ``hlsps/<collection>`` layout) and the whole per-object layout
  below. Since MAST publishes detections only through CasJobs, in practice ``base_url`` points at a mirror holding a
  CasJobs export in this layout.
* The catalogue is read as **CSV** (a CasJobs export of ``object``), not the FITS file: no FITS reader is a dependency
  of this project. Column names are matched case-insensitively among aliases (:data:`CATALOGUE_COLUMNS`).
* The detection columns (aliases in :data:`DETECTION_COLUMNS`: MJD, magnitude, error, filter, flags) and the meaning
  of the flags (``drop_flagged`` drops rows with a non-zero flag; off by default).
* The 5-group mapping of the Astromer papers (CB, DB, Mira, Other, Pulse): the papers name the groups but not which
  ATLAS classes went where. :data:`ASTROMER5_GROUPS` is this project's choice; ``dubious`` and unknown classes are
  dropped from ``astromer5``.

Layout, relative to ``base_url``:

* ``catalogue_file`` (default ``hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.csv``): one row per object with
  its ATLAS id, RA, Dec (degrees) and class;
* ``lightcurve_template`` (default ``detection/{object_id}.csv``): one CSV per object holding the detections of both
  filters, one row per detection (``mjd, m, dm, filter, flags``).

Configurations: ``catalogue`` (the ATLAS classes as given; an unknown class makes the curve unlabelled) and
``astromer5`` (the five groups). ``bands`` selects filters (default ``("o", "c")``: one row per object and filter).
A light-curve file answering 404 is skipped and counted: the counts and ids per split are logged and stored in the
dataset description (read them back with :func:`missing_lightcurves`). Any other download failure (5xx after the
``download_retries``, 403...) raises, naming the URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from ..builder import LightCurveBuilder, LightCurveConfig, describe_reports
from ..download import DownloadError

logger = logging.getLogger(__name__)

#: The ML classes of Heinze et al. (2018), config ``catalogue``.
ATLAS_CLASSES = (
    "CBF", "CBH", "DBF", "DBH", "IRR", "LPV", "MIRA", "MPULSE", "MSINE", "NSINE", "PULSE", "SINE", "dubious",
)
#: Five groups of the Astromer papers (config ``astromer5``); the assignment of each ATLAS class is this project's.
ASTROMER5_GROUPS = {
    "CB": ("CBF", "CBH"),
    "DB": ("DBF", "DBH"),
    "Mira": ("MIRA",),
    "Other": ("IRR", "LPV", "MSINE", "NSINE", "SINE"),
    "Pulse": ("PULSE", "MPULSE"),
}
ASTROMER5_CLASSES = tuple(sorted(ASTROMER5_GROUPS))
ASTROMER5_OF = {atlas: group for group, members in ASTROMER5_GROUPS.items() for atlas in members}

#: Accepted column names (case-insensitive), first match wins.
CATALOGUE_COLUMNS = {
    "id": ("atlas_id", "ato_id", "atoid", "objid", "id"),
    "ra": ("ra", "radeg", "ra_deg", "raj2000"),
    "dec": ("dec", "decl", "dedeg", "dec_deg", "dej2000"),
    "class": ("class", "ml_class", "classification"),
}
DETECTION_COLUMNS = {
    "time": ("mjd", "mjd_obs", "time"),
    "mag": ("m", "mag", "magnitude"),
    "mag_err": ("dm", "mag_err", "dmag", "merr", "magerr"),
    "filter": ("filter", "filt", "band"),
    "flags": ("flags", "flag"),
}
MISSING_MARKER = "astromer_hf atlas missing light curves: "


@dataclass
class AtlasConfig(LightCurveConfig):
    """Args:
    classes: ``"catalogue"`` (ATLAS classes) or ``"astromer5"`` (CB, DB, Mira, Other, Pulse).
    bands: ATLAS filters to keep, one row per object and filter (``"o"`` orange, ``"c"`` cyan).
    catalogue_file: path of the object catalogue (CSV) under ``base_url``.
    lightcurve_template: path of an object's detections under ``base_url``; ``{object_id}`` is replaced.
    drop_flagged: drop detections with a non-zero ``flags`` value before cleaning.
    """

    classes: str = "catalogue"
    bands: tuple[str, ...] = ("o", "c")
    catalogue_file: str = "hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.csv"
    lightcurve_template: str = "detection/{object_id}.csv"
    drop_flagged: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.classes not in ("catalogue", "astromer5"):
            raise ValueError(f"classes must be 'catalogue' or 'astromer5', got {self.classes!r}")
        if isinstance(self.bands, str):
            self.bands = tuple(b for b in self.bands.replace(",", " ").split() if b) or tuple(self.bands)
        self.bands = tuple(str(b).strip().lower() for b in self.bands)
        unknown = set(self.bands) - {"o", "c"}
        if not self.bands or unknown:
            raise ValueError(f"bands must be among 'o' and 'c', got {self.bands!r}")
        if "{object_id}" not in self.lightcurve_template:
            raise ValueError(f"lightcurve_template must contain {{object_id}}, got {self.lightcurve_template!r}")


class AtlasVariableStars(LightCurveBuilder):
    """ATLAS-VAR DR1 candidate variables: catalogue classes plus per-object "o" / "c" detections."""

    BUILDER_CONFIG_CLASS = AtlasConfig
    BUILDER_CONFIGS = [AtlasConfig(name="catalogue", classes="catalogue"), AtlasConfig(name="astromer5",
                                                                                      classes="astromer5")]
    DEFAULT_CONFIG_NAME = "catalogue"
    SURVEY = "atlas"
    BASE_URL = "https://archive.stsci.edu/hlsps/atlas-var"
    HOMEPAGE = "https://archive.stsci.edu/hlsp/atlas-var"
    CITATION = (
        "Heinze, A. N., et al. 2018, AJ, 156, 241, 'A First Catalog of Variable Stars Measured by the Asteroid "
        "Terrestrial-impact Last Alert System (ATLAS)'; data: doi:10.17909/T9H98D"
    )

    def class_names(self) -> tuple[str, ...]:
        return ASTROMER5_CLASSES if self.config.classes == "astromer5" else ATLAS_CLASSES

    def extra_features(self) -> dict[str, object]:
        return {"atlas_class": datasets.Value("string")}

    def label_of(self, atlas_class: str | None) -> str | None:
        """The label of an ATLAS class in the current configuration (None: unlabelled / dropped)."""
        if atlas_class is None:
            return None
        if self.config.classes == "astromer5":
            return ASTROMER5_OF.get(atlas_class)
        return atlas_class if atlas_class in ATLAS_CLASSES else None

    # ------------------------------------------------------------------------------------------------ sources
    def _sources(self, dl_manager: datasets.DownloadManager) -> dict:
        return {"catalogue": self.download(self.config.catalogue_file)}

    def _catalogue(self, path: Path) -> pd.DataFrame:
        table = _read_csv(path, dtype=str, keep_default_na=False)
        columns = _resolve(table.columns, CATALOGUE_COLUMNS, path, required=("id", "class"))
        frame = pd.DataFrame({"object_id": table[columns["id"]].str.strip()})
        for name in ("ra", "dec"):
            frame[name] = (
                pd.to_numeric(table[columns[name]], errors="coerce") if name in columns else np.nan
            )
        classes = table[columns["class"]].str.strip()
        frame["atlas_class"] = classes.where(classes != "", None)
        return frame

    # ------------------------------------------------------------------------------------------------ records
    def _generate_examples(self, split: str, sources: dict) -> Iterator[tuple[str, dict]]:
        self._missing_now: list[str] = []
        yield from super()._generate_examples(split, sources)
        missing = getattr(self, "_missing", {})
        missing[split] = {"count": len(self._missing_now), "object_ids": self._missing_now}
        self._missing = missing
        if self._missing_now:
            logger.warning(
                "atlas: %d light curve(s) of split %s not found (404), skipped: %s",
                len(self._missing_now), split, ", ".join(self._missing_now[:20]),
            )
        self.info.description = (
            f"{describe_reports(self.SURVEY, self._reports)}\n{MISSING_MARKER}{json.dumps(missing, sort_keys=True)}"
        )

    def _records(self, sources: dict, keep: Callable[[str], bool]) -> Iterator[dict]:
        config = self.config
        unknown: set[str] = set()
        with self.reading(sources["catalogue"]):
            catalogue = self._catalogue(Path(sources["catalogue"])).to_dict("records")
        for meta in catalogue:
            atlas_class = meta["atlas_class"]
            label = self.label_of(atlas_class)
            if atlas_class is not None and label is None and atlas_class not in ATLAS_CLASSES:
                unknown.add(atlas_class)
            if label is None and config.classes == "astromer5":
                continue
            object_id = meta["object_id"]
            if not object_id or not keep(object_id):
                continue
            relative = config.lightcurve_template.format(object_id=object_id)
            try:
                path = self.download(relative)
            except DownloadError as error:
                if error.status == 404:
                    self._missing_now.append(object_id)
                    continue
                raise
            with self.reading(path):
                detections = read_detections(path, drop_flagged=config.drop_flagged)
            for band in config.bands:
                rows = detections[detections["filter"] == band]
                if len(rows) == 0:
                    continue
                yield {
                    "object_id": object_id,
                    "band": band,
                    "time": rows["time"].to_numpy(dtype=np.float64),
                    "mag": rows["mag"].to_numpy(dtype=np.float64),
                    "mag_err": rows["mag_err"].to_numpy(dtype=np.float64),
                    "label": label,
                    "ra": None if pd.isna(meta["ra"]) else float(meta["ra"]),
                    "dec": None if pd.isna(meta["dec"]) else float(meta["dec"]),
                    "atlas_class": atlas_class,
                }
        if unknown:
            logger.warning("atlas: classes not in the ATLAS list were left unlabelled: %s", sorted(unknown))


def read_detections(path: Path, *, drop_flagged: bool = False) -> pd.DataFrame:
    """``time`` (float64; shortest-repr decimals read back exactly), ``mag``, ``mag_err``, ``filter`` (lower case) of one detection CSV."""
    table = _read_csv(path)
    columns = _resolve(table.columns, DETECTION_COLUMNS, path, required=("time", "mag", "mag_err", "filter"))
    try:
        frame = pd.DataFrame({name: table[columns[name]] for name in ("time", "mag", "mag_err")}).astype(np.float64)
    except (ValueError, TypeError) as err:
        names = [columns[name] for name in ("time", "mag", "mag_err")]
        raise ValueError(f"{path}: the columns {names} must hold numbers ({err})") from None
    frame["filter"] = table[columns["filter"]].astype(object).fillna("").astype(str).str.strip().str.lower()
    if drop_flagged and "flags" in columns:
        flags = pd.to_numeric(table[columns["flags"]], errors="coerce").fillna(0)
        frame = frame[flags.to_numpy() == 0]
    return frame


def _read_csv(path: Path, **options) -> pd.DataFrame:
    """``pandas.read_csv`` of one ATLAS file; one that is not CSV text is a ValueError naming it."""
    try:
        return pd.read_csv(path, **options)
    except ValueError as err:  # pandas' EmptyDataError and ParserError, UnicodeDecodeError
        raise ValueError(f"{path} is not a readable CSV file ({type(err).__name__}: {err})") from None


def _resolve(available, aliases: dict, path: Path, required: tuple[str, ...]) -> dict[str, str]:
    by_lower = {str(c).strip().lower(): c for c in available}
    found = {}
    for name, names in aliases.items():
        match = next((by_lower[a] for a in names if a in by_lower), None)
        if match is not None:
            found[name] = match
    lacking = [name for name in required if name not in found]
    if lacking:
        raise ValueError(
            f"{path} lacks the column(s) {lacking} (accepted names: "
            f"{ {n: aliases[n] for n in lacking} }; columns present: {list(available)})"
        )
    return found


def missing_lightcurves(info: datasets.DatasetInfo) -> dict[str, dict]:
    """Per split, ``{"count": n, "object_ids": [...]}`` of the light curves that answered 404 (empty if none)."""
    for line in (info.description or "").splitlines():
        if line.startswith(MISSING_MARKER):
            return json.loads(line[len(MISSING_MARKER):])
    return {}
