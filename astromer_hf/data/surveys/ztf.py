"""``ztf``: light curves of the ZTF public data releases, fetched from the IRSA ZTF light-curve service.

Source
------
IRSA serves the PSF-fit photometry of the ZTF data-release objects through an HTTP API, documented at
https://irsa.ipac.caltech.edu/docs/program_interface/ztf_lightcurve_api.html ("ZTF Lightcurve Queries"). What this
module relies on, and where it was checked:

* **Endpoint** ``https://irsa.ipac.caltech.edu/cgi-bin/ZTF/nph_light_curves``. The IRSA page above names the API
  but the excerpt we could read does not show the path; the path is the one used by many public client scripts
  (for example ``POS=CIRCLE+<ra>+<dec>+<radius>&BAD_CATFLAGS_MASK=32768&FORMAT=csv`` URLs). Confirmed indirectly.
* **Parameters**: the IRSA page's table lists ``ID`` (objects by identifier), ``POS`` or ``CIRCLE``, ``BAND``,
  ``BANDNAME``, ``NOBS_MIN``, ``MAG`` (objects by position and other constraints), ``TIME`` and
  ``BAD_CATFLAGS_MASK`` (restricting the epochs), ``COLLECTION`` (the data release) and ``FORMAT`` (the output
  table, VOTable by default). Confirmed on that page. The value syntax ``POS=CIRCLE <ra> <dec> <radius in deg>``,
  ``BANDNAME=g,r,i`` and ``FORMAT=csv`` is taken from public client code that calls the service; we did not read it
  on the IRSA page itself (unverified there).
* **CSV columns** ``oid, expid, hjd, mjd, mag, magerr, catflags, filtercode, ra, dec, chi, sharp, filefracday,
  field, ccdid, qid, limitmag, magzp, magzprms, clrcoeff, clrcounc, exptime, airmass, programid``, with
  ``filtercode`` one of ``zg`` / ``zr`` / ``zi``: confirmed only through public client code and test fixtures that
  quote the header IRSA returned; not read on an IRSA page. Only ``oid, mjd, mag, magerr, catflags, filtercode, ra,
  dec, field, ccdid, qid`` are used here, by name, so extra or reordered columns do no harm.
* ``catflags`` bit 32768 marks epochs of bad quality (the value public clients pass as ``BAD_CATFLAGS_MASK``).
  Unverified on an IRSA page.
* A query that matches nothing is assumed to answer with the header line only, or with an empty body (both are
  handled). Unverified.

What is built
-------------
One query per configured object id (``ID=<oid>&FORMAT=csv``) and one per configured position
(``POS=CIRCLE <ra> <dec> <radius deg>&BANDNAME=<bands>&FORMAT=csv``); each answer is cached as its own file under
``<download_dir>/ztf/`` (see :meth:`~astromer_hf.data.builder.LightCurveBuilder.download`), so a rebuild makes no
request. ``BAD_CATFLAGS_MASK`` is *not* sent: flagged epochs are dropped here instead
(``catflags & catflags_mask != 0``), so that they can be counted in the ``n_flagged`` column.

Each answer is grouped by ``oid`` and ``filtercode``; every group becomes one row: ``object_id`` the oid, ``band``
``g`` / ``r`` / ``i``, ``time`` the ``mjd`` column (float64, unchanged), ``mag`` / ``mag_err`` from ``mag`` /
``magerr``, ``ra`` / ``dec`` the median over the group's epochs (flagged ones included), and the metadata columns
``field``, ``ccdid``, ``qid`` (a ZTF DR object lives on one field / CCD / quadrant) and ``n_flagged``. An oid found by
several queries (an id and a cone around it, two overlapping cones) is written once. Answers without detections
yield nothing; their number and the queries are stored in the dataset description (:func:`queries_without_data`).

Labels: ``labels`` maps an oid, or a position written ``"<ra>,<dec>"`` exactly as configured, to a class name; a
position's label applies to every object found in its cone (an oid's own label wins).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from ..builder import LightCurveBuilder, LightCurveConfig

logger = logging.getLogger(__name__)

SERVICE_PATH = "cgi-bin/ZTF/nph_light_curves"
FILTER_CODES = {"zg": "g", "zr": "r", "zi": "i"}
BANDS = ("g", "r", "i")
REQUIRED_COLUMNS = ("oid", "mjd", "mag", "magerr", "catflags", "filtercode", "ra", "dec", "field", "ccdid", "qid")
EMPTY_MARKER = "ztf queries without detections: "


@dataclass
class ZtfConfig(LightCurveConfig):
    """Args:
    object_ids: ZTF data-release object ids (``oid``, integers or digit strings), one query each.
    positions: ``[ra, dec]`` pairs in degrees, one cone query each.
    radius_arcsec: radius of the cone queries, arcseconds.
    bands: ZTF bands kept (any of ``g``, ``r``, ``i``).
    labels: class name of an oid, or of a position written ``"<ra>,<dec>"``; None for an unlabelled set.
    catflags_mask: epochs with ``catflags & catflags_mask != 0`` are dropped and counted (0 keeps all epochs).
    """

    object_ids: Sequence[int | str] | None = None
    positions: Sequence[Sequence[float]] | None = None
    radius_arcsec: float = 1.5
    bands: Sequence[str] = BANDS
    labels: Mapping[str, str] | None = None
    catflags_mask: int = 32768

    def __post_init__(self):
        super().__post_init__()
        self.object_ids = [_oid(value) for value in (self.object_ids or [])]
        positions = []
        for position in self.positions or []:
            if len(position) != 2:
                raise ValueError(f"a position is [ra, dec] in degrees, got {position!r}")
            ra, dec = float(position[0]), float(position[1])
            if not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
                raise ValueError(f"position out of range: ra={ra}, dec={dec}")
            positions.append([ra, dec])
        self.positions = positions
        if not self.radius_arcsec > 0:
            raise ValueError(f"radius_arcsec must be positive, got {self.radius_arcsec}")
        if isinstance(self.bands, str):
            self.bands = [band.strip() for band in self.bands.split(",")]
        self.bands = [str(band) for band in self.bands]
        unknown = sorted(set(self.bands) - set(BANDS))
        if unknown or not self.bands:
            raise ValueError(f"ZTF bands are g, r and i, got {list(self.bands)}")
        self.labels = {str(key): str(value) for key, value in (self.labels or {}).items()}
        self.catflags_mask = int(self.catflags_mask or 0)
        if self.catflags_mask < 0:
            raise ValueError(f"catflags_mask must be a non-negative bit mask, got {self.catflags_mask}")


def _oid(value: int | str) -> str:
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError(f"a ZTF data-release object id is an integer (oid), got {value!r}")
    return str(int(text))


def position_key(ra: float, dec: float) -> str:
    """How a configured position is named in ``labels`` and in the report: ``"<ra>,<dec>"``."""
    return f"{float(ra)!r},{float(dec)!r}"


class ZtfLightCurves(LightCurveBuilder):
    """ZTF data-release light curves from IRSA, by object id or by cone, one row per object and band."""

    BUILDER_CONFIG_CLASS = ZtfConfig
    BUILDER_CONFIGS = [ZtfConfig(name="default")]
    DEFAULT_CONFIG_NAME = "default"
    SURVEY = "ztf"
    BASE_URL = "https://irsa.ipac.caltech.edu"
    HOMEPAGE = "https://irsa.ipac.caltech.edu/docs/program_interface/ztf_lightcurve_api.html"
    CITATION = (
        "Masci, F. J., Laher, R. R., Rusholme, B., et al. 2019, The Zwicky Transient Facility: Data Processing, "
        "Products, and Archive, PASP, 131, 018003; Bellm, E. C., Kulkarni, S. R., Graham, M. J., et al. 2019, "
        "PASP, 131, 018002"
    )

    def class_names(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.config.labels.values())))

    def extra_features(self) -> dict[str, object]:
        return {
            "field": datasets.Value("int32"),
            "ccdid": datasets.Value("int32"),
            "qid": datasets.Value("int32"),
            "n_flagged": datasets.Value("int32"),
        }

    # ------------------------------------------------------------------------------------------------ queries
    def queries(self) -> list[tuple[str, dict[str, str]]]:
        """``(name, query parameters)`` of every request: ``"id:<oid>"`` and ``"pos:<ra>,<dec>"``."""
        config = self.config
        found = []
        for oid in config.object_ids:
            found.append((f"id:{oid}", {"ID": oid, "FORMAT": "csv"}))
        radius = f"{config.radius_arcsec / 3600.0:.10g}"
        for ra, dec in config.positions:
            found.append(
                (
                    f"pos:{position_key(ra, dec)}",
                    {"POS": f"CIRCLE {ra!r} {dec!r} {radius}", "BANDNAME": ",".join(config.bands), "FORMAT": "csv"},
                )
            )
        if not found:
            raise ValueError("the ztf builder needs object_ids or positions (none were configured)")
        return found

    def _sources(self, dl_manager: datasets.DownloadManager) -> dict:
        return {"files": [(name, self.download(SERVICE_PATH, query=query)) for name, query in self.queries()]}

    # ------------------------------------------------------------------------------------------------ records
    def _records(self, sources: dict, keep: Callable[[str], bool]) -> Iterator[dict]:
        config = self.config
        seen: set[tuple[str, str]] = set()
        empty: list[str] = []
        for name, path in sources["files"]:
            with self.reading(path):
                table = read_response(Path(path))
                if table.empty:
                    empty.append(name)
                    continue
                label_of_query = config.labels.get(name.split(":", 1)[1]) if name.startswith("pos:") else None
                for (oid, code), group in table.groupby(["oid", "filtercode"], sort=True):
                    band = FILTER_CODES.get(str(code).strip())
                    if band is None:
                        raise ValueError(f"unknown ZTF filtercode {code!r} in {path}")
                    if band not in config.bands or (oid, band) in seen:
                        continue
                    seen.add((oid, band))
                    if keep(oid):
                        yield self._record(oid, band, group, config.labels.get(oid, label_of_query))
        self._empty_queries = empty
        if empty:
            logger.info("%d ZTF queries returned no detections: %s", len(empty), ", ".join(empty))

    def _record(self, oid: str, band: str, group: pd.DataFrame, label: str | None) -> dict:
        mask = self.config.catflags_mask
        where = f"object {oid} band {band}"
        flags = _numbers(group, "catflags", where, whole=True)
        good = (flags & mask) == 0
        return {
            "object_id": oid,
            "band": band,
            "time": _numbers(group, "mjd", where)[good],
            "mag": _numbers(group, "mag", where)[good],
            "mag_err": _numbers(group, "magerr", where)[good],
            "label": label,
            "ra": float(np.median(_numbers(group, "ra", where))),
            "dec": float(np.median(_numbers(group, "dec", where))),
            "field": int(_numbers(group.iloc[:1], "field", where, whole=True)[0]),
            "ccdid": int(_numbers(group.iloc[:1], "ccdid", where, whole=True)[0]),
            "qid": int(_numbers(group.iloc[:1], "qid", where, whole=True)[0]),
            "n_flagged": int((~good).sum()),
        }

    def _generate_examples(self, split: str, sources: dict) -> Iterator[tuple[str, dict]]:
        yield from super()._generate_examples(split, sources)
        empty = getattr(self, "_empty_queries", [])
        self.info.description += f"\n{EMPTY_MARKER}{json.dumps(empty)}"


def _numbers(group: pd.DataFrame, column: str, where: str, whole: bool = False) -> np.ndarray:
    """One column of an object's rows as float64, or int64 when ``whole`` (whole numbers below 2**31: the schema's
    int32 columns and the catflags bits); anything else is a ValueError naming the object and the column."""
    try:
        values = group[column].to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: column {column} holds text that is not a number ({err})") from None
    if not whole:
        return values
    bad = ~(np.isfinite(values) & (np.round(values) == values) & (np.abs(values) < 2**31))
    if bad.any():
        raise ValueError(f"{where}: column {column} must hold whole numbers below 2**31, found {float(values[bad][0])!r}")
    return values.astype(np.int64)


def read_response(path: Path) -> pd.DataFrame:
    """The rows of one IRSA CSV answer (empty frame when the answer holds no detection)."""
    if path.stat().st_size == 0:
        return pd.DataFrame(columns=list(REQUIRED_COLUMNS))
    try:
        header = pd.read_csv(path, nrows=0).columns  # ids and codes stay text, whatever spaces pad their names
        table = pd.read_csv(path, dtype={name: str for name in header if str(name).strip() in ("oid", "filtercode")})
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(REQUIRED_COLUMNS))
    table.columns = [str(column).strip() for column in table.columns]
    repeated = sorted({column for column in REQUIRED_COLUMNS if list(table.columns).count(column) > 1})
    if repeated:
        raise ValueError(f"{path}: the column(s) {repeated} appear more than once in its header")
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        head = path.read_text(errors="replace")[:200]
        raise ValueError(
            f"{path} is not an IRSA ZTF light-curve CSV: columns {missing} missing (it starts with {head!r})"
        )
    table["oid"] = table["oid"].str.strip()
    return table


def queries_without_data(info: datasets.DatasetInfo) -> list[str]:
    """Names (``id:<oid>``, ``pos:<ra>,<dec>``) of the queries whose answer held no detection, from ``info``."""
    for line in reversed((info.description or "").splitlines()):
        if line.startswith(EMPTY_MARKER):
            return json.loads(line[len(EMPTY_MARKER) :])
    return []
