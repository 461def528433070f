"""``gaia_dr3``: Gaia DR3 epoch photometry (G, BP, RP) from the archive's DataLink service, labelled with
``vari_classifier_result.best_class_name``.

Where the data come from
------------------------

* **Light curves**: the DataLink "massive data" service of the Gaia archive,
  ``<base_url>/data-server/data?RETRIEVAL_TYPE=EPOCH_PHOTOMETRY&ID=Gaia DR3 <id>,Gaia DR3 <id>,...&FORMAT=CSV
  &DATA_STRUCTURE=<INDIVIDUAL|COMBINED|RAW>&RELEASE=Gaia DR3`` with ``base_url = https://gea.esac.esa.int``.
  The ``source_ids`` are requested ``batch_size`` at a time (comma-separated, DR-qualified ids).
* **Classes**: a synchronous TAP query,
  ``<base_url>/tap-server/tap/sync?REQUEST=doQuery&LANG=ADQL&FORMAT=csv&QUERY=SELECT source_id, best_class_name
  FROM gaiadr3.vari_classifier_result WHERE source_id IN (...)``, in batches of ``batch_size`` as well; or, with
  ``classes_file``, a CSV of the user's (URL or local path) with the columns ``source_id`` and ``best_class_name``.
  The class names of the dataset are the distinct names found (sorted) unless ``class_names`` fixes the list; a
  source without a classification (or with a class outside a fixed list) gets a null label.

Two CSV layouts are read, told apart by their header:

* the flat ("long") layout, one row per transit and band: ``source_id, transit_id, band, time, mag, flux,
  flux_error, flux_over_error, rejected_by_photometry, rejected_by_variability, other_flags, solution_id``;
* the per-transit layout of the ``epoch_photometry`` data model: ``g_transit_time, g_transit_flux,
  g_transit_flux_error, g_transit_flux_over_error, g_transit_mag, bp_obs_time, bp_flux, bp_flux_error,
  bp_flux_over_error, bp_mag, rp_...`` and ``variability_flag_{g,bp,rp}_reject``, either one row per transit or one
  row per source whose cells hold arrays (``[a, b, ...]``, ``(a, b, ...)`` or ``{a, b, ...}``).

A response may be a plain CSV or a ZIP archive of CSV files (one per source or one for all); both are read.

Conversions
-----------

* ``time`` is Barycentric JD in TCB minus 2455197.5 days, so ``MJD = time + 55197.0`` (one float64 addition). The
  result is a *barycentric TCB* MJD: it is **not** converted to UTC/TT nor made geocentric (TCB runs ahead of TT by
  about 1.55e-8 of the elapsed time, some 20 s in 2016; irrelevant at Astromer's time resolution but not a UTC MJD).
* ``mag`` is the catalogue magnitude (Vega); ``mag_err = 2.5 / ln(10) * flux_error / flux``; ``flux`` and
  ``flux_err`` are kept (e-/s).
* Transits flagged ``rejected_by_photometry`` or ``rejected_by_variability`` (flat layout), or
  ``variability_flag_<band>_reject`` / ``photometry_flag_<band>_reject`` / ``<band>_rejected_by_photometry`` /
  ``<band>_rejected_by_variability`` (per-transit layout) are dropped before cleaning and counted, per row, in the
  metadata column ``n_rejected``. The rows then go through the common cleaning of :mod:`..builder`.

Rows: one per source and band (``object_id`` is the decimal ``source_id``, also stored as the int64 column
``source_id``); ``ra`` / ``dec`` are null (the epoch photometry does not carry them).

Sources checked (documentation pages, read through a search index)
-------------------------------------------------------------------

* Flat layout columns, their meaning and units, ``time`` as "Barycentric JD in TCB - 2455197.5 (day)", the
  rejected_by_* flags: Eyer et al. 2023 (Gaia DR3, A&A 674, A13 companion paper), Table 1 "epoch photometry fields
  of the Gaia DR3 archive (for the INDIVIDUAL and COMBINED data structures)",
  https://www.aanda.org/articles/aa/full_html/2023/06/aa44204-22/T1.html ; and the DR2 ``light_curve`` data model
  https://gea.esac.esa.int/archive/documentation/GDR2/Gaia_archive/chap_datamodel/sec_dm_datalink_tables/ssec_dm_light_curve.html
* Per-transit layout (``g_transit_time``, ``g_transit_flux(_error|_over_error)``, ``g_transit_mag``,
  ``bp_obs_time``, ``bp_flux``...), array-valued with DATA_STRUCTURE=RAW, flat with INDIVIDUAL/COMBINED, and
  T0 = 2010-01-01T00:00:00 = JD 2455197.5: DR3 data model section 20.7.1 ``epoch_photometry``,
  https://gea.esac.esa.int/archive/documentation/GDR3/Gaia_archive/chap_datamodel/sec_dm_photometry/ssec_dm_epoch_photometry.html
  and the DR2 section 14.7.2.
* The DataLink endpoint and its parameters (``data-server/data``, ``RETRIEVAL_TYPE=EPOCH_PHOTOMETRY``, ``ID``,
  ``FORMAT``, ``RELEASE=Gaia DR3``, ``DATA_STRUCTURE=INDIVIDUAL``): seen in public client code using the service
  (e.g. epugaant/tsview ``access_config.py``); lists of source ids per request: DR3/EDR3 archive documentation,
  "product linking capabilities" (source IDs list, DR-qualified identifiers).
* ``vari_classifier_result`` with ``source_id``, ``best_class_name`` (classifier ``nTransits:5+``, 24 classes):
  DR3 data model section 20.13.2,
  https://gea.esac.esa.int/archive/documentation/GDR3/Gaia_archive/chap_datamodel/sec_dm_variability_tables/ssec_dm_vari_classifier_result.html

Not verified (no live access from here): the exact CSV text the service produces for each DATA_STRUCTURE (array
cell syntax, boolean spelling, whether multi-source answers come zipped, which per-band reject-flag names the
per-transit CSV carries); the behaviour of the archive with long ``ID`` lists or long TAP ``QUERY`` strings sent by
GET (keep ``batch_size`` moderate); whether ``FORMAT=csv`` (TAP) answers with a header line exactly
``source_id,best_class_name``.
"""

from __future__ import annotations

import csv
import math
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np

from ...hashing import text_digest
from ..builder import LightCurveBuilder, LightCurveConfig
from ..download import join_url

DATALINK_PATH = "data-server/data"
TAP_PATH = "tap-server/tap/sync"
RELEASE = "Gaia DR3"
BANDS = ("G", "BP", "RP")
DATA_STRUCTURES = ("INDIVIDUAL", "COMBINED", "RAW")
#: JD 2455197.5 (the Gaia time origin) is MJD 55197.0.
GAIA_TIME_TO_MJD = 55197.0
#: 2.5 / ln(10): d(mag) = MAG_PER_RELATIVE_FLUX * d(flux) / flux.
MAG_PER_RELATIVE_FLUX = 2.5 / math.log(10.0)
#: Cache file names longer than this (bytes) are replaced by a digest of the query.
MAX_CACHE_NAME = 200

# per-transit layout: band -> (time, flux, flux error, magnitude) column names
PER_TRANSIT_COLUMNS = {
    "G": ("g_transit_time", "g_transit_flux", "g_transit_flux_error", "g_transit_mag"),
    "BP": ("bp_obs_time", "bp_flux", "bp_flux_error", "bp_mag"),
    "RP": ("rp_obs_time", "rp_flux", "rp_flux_error", "rp_mag"),
}
LONG_COLUMNS = ("source_id", "band", "time", "mag", "flux", "flux_error")
TRUE_WORDS = {"true", "t", "1", "yes", "y"}
FALSE_WORDS = {"false", "f", "0", "no", "n", "", "null", "none", "nan", "--"}


@dataclass
class GaiaConfig(LightCurveConfig):
    """Settings of the Gaia DR3 epoch-photometry builder.

    Args:
        source_ids: Gaia DR3 ``source_id`` values to fetch.
        bands: passbands to keep, among ``G``, ``BP``, ``RP`` (one row per source and band).
        with_classes: label the rows with ``vari_classifier_result.best_class_name``.
        classes_file: URL or local path of a CSV (``source_id``, ``best_class_name``) used instead of the TAP query.
        class_names: fixed list of classes (labels outside it become null); None for the names found.
        batch_size: source ids per DataLink request (and per TAP query).
        data_structure: the DataLink ``DATA_STRUCTURE`` (``INDIVIDUAL``, ``COMBINED`` or ``RAW``).
    """

    source_ids: list[int] = field(default_factory=list)
    bands: tuple[str, ...] = BANDS
    with_classes: bool = True
    classes_file: str | None = None
    class_names: tuple[str, ...] | None = None
    batch_size: int = 100
    data_structure: str = "INDIVIDUAL"

    def __post_init__(self):
        super().__post_init__()
        self.source_ids = [int(source_id) for source_id in self.source_ids]
        if len(set(self.source_ids)) != len(self.source_ids):
            raise ValueError("source_ids holds repeated ids")
        if isinstance(self.bands, str):
            self.bands = (self.bands,)
        self.bands = tuple(str(band).upper() for band in self.bands)
        unknown = [band for band in self.bands if band not in BANDS]
        if unknown or not self.bands:
            raise ValueError(f"bands must be a non-empty subset of {BANDS}, got {self.bands}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        self.data_structure = str(self.data_structure).upper()
        if self.data_structure not in DATA_STRUCTURES:
            raise ValueError(f"data_structure must be one of {DATA_STRUCTURES}, got {self.data_structure!r}")
        if self.class_names is not None:
            self.class_names = tuple(self.class_names)


class GaiaEpochPhotometry(LightCurveBuilder):
    """Gaia DR3 G/BP/RP epoch photometry of chosen sources, labelled with the DR3 variability classification."""

    BUILDER_CONFIG_CLASS = GaiaConfig
    BUILDER_CONFIGS = [GaiaConfig(name="default")]
    DEFAULT_CONFIG_NAME = "default"
    SURVEY = "gaia_dr3"
    FLUX = True
    BASE_URL = "https://gea.esac.esa.int"
    HOMEPAGE = "https://gea.esac.esa.int/archive/"
    CITATION = (
        "Gaia Collaboration, Vallenari et al. 2023, A&A 674, A1 (Gaia DR3 summary); "
        "Eyer et al. 2023, A&A 674, A13 (DR3 variability); Rimoldini et al. 2023, A&A 674, A14 (classification)"
    )

    # ------------------------------------------------------------------------------------------------ schema
    def class_names(self) -> tuple[str, ...]:
        if not self.config.with_classes:
            return ()
        if self.config.class_names is not None:
            return self.config.class_names
        return tuple(sorted(set(self._classes().values())))

    def extra_features(self) -> dict[str, object]:
        return {"source_id": datasets.Value("int64"), "n_rejected": datasets.Value("int32")}

    # ------------------------------------------------------------------------------------------------ downloads
    def _fetch(self, relative_path: str, query: dict) -> Path:
        """:meth:`download`, except that a cache name too long for the file system becomes a digest of the query."""
        encoded = urllib.parse.urlencode(query)
        name = f"{relative_path}__{urllib.parse.unquote(encoded).replace('/', '_')}".rsplit("/", 1)[-1]
        if len(name.encode()) <= MAX_CACHE_NAME:
            return self.download(relative_path, query=query)
        destination = self.download_root() / f"{relative_path}__sha256={text_digest(encoded)[:32]}"
        return self.fetch(f"{join_url(self.base_url(), relative_path)}?{encoded}", destination)

    def _batches(self) -> list[list[int]]:
        ids, size = self.config.source_ids, self.config.batch_size
        return [ids[start : start + size] for start in range(0, len(ids), size)]

    def datalink_query(self, batch: list[int]) -> dict:
        """The DataLink query parameters of one batch of source ids (in the order they are sent)."""
        return {
            "RETRIEVAL_TYPE": "EPOCH_PHOTOMETRY",
            "ID": ",".join(f"{RELEASE} {source_id}" for source_id in batch),
            "FORMAT": "CSV",
            "DATA_STRUCTURE": self.config.data_structure,
            "RELEASE": RELEASE,
        }

    @staticmethod
    def tap_query(batch: list[int]) -> dict:
        """The TAP sync query parameters fetching the classes of one batch of source ids."""
        adql = (
            "SELECT source_id, best_class_name FROM gaiadr3.vari_classifier_result "
            f"WHERE source_id IN ({','.join(str(source_id) for source_id in batch)})"
        )
        return {"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv", "QUERY": adql}

    def _classes(self) -> dict[int, str]:
        """``{source_id: best_class_name}`` of the configured sources (cached on the builder)."""
        if getattr(self, "_classes_cache", None) is None:
            classes: dict[int, str] = {}
            if self.config.classes_file:
                path = self._classes_file()
                with self.reading(path):
                    classes = read_classes(path)
            else:
                for batch in self._batches():
                    path = self._fetch(TAP_PATH, self.tap_query(batch))
                    with self.reading(path):
                        classes.update(read_classes(path))
            wanted = set(self.config.source_ids)
            self._classes_cache = {k: v for k, v in classes.items() if k in wanted}
        return self._classes_cache

    def _classes_file(self) -> Path:
        location = self.config.classes_file
        scheme = urllib.parse.urlsplit(location).scheme.lower()
        if scheme in ("http", "https", "file"):
            name = Path(urllib.parse.urlsplit(location).path).name or "classes.csv"
            return self.fetch(location, self.download_root() / "classes" / f"{text_digest(location)[:16]}_{name}")
        path = Path(location).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"classes_file {path} not found")
        return path

    def _sources(self, dl_manager: datasets.DownloadManager) -> dict:
        if not self.config.source_ids:
            raise ValueError("gaia_dr3 needs source_ids: the Gaia DR3 source_id values to fetch")
        files = [self._fetch(DATALINK_PATH, self.datalink_query(batch)) for batch in self._batches()]
        labels = self._classes() if self.config.with_classes else {}
        return {"files": files, "labels": labels}

    # ------------------------------------------------------------------------------------------------ records
    def _records(self, sources: dict, keep: Callable[[str], bool]) -> Iterator[dict]:
        wanted = set(self.config.source_ids)
        allowed = set(self.class_names())
        seen: set[int] = set()
        for path in sources["files"]:
            with self.reading(path):
                for text in response_tables(path):
                    for source_id, bands in parse_epoch_photometry(text, keep=lambda s: s in wanted and keep(str(s))):
                        if source_id in seen:
                            continue
                        seen.add(source_id)
                        label = sources["labels"].get(source_id)
                        label = label if label in allowed else None
                        for band in self.config.bands:
                            if band in bands:
                                yield self._record(source_id, band, bands[band], label)

    def _record(self, source_id: int, band: str, transits: dict, label: str | None) -> dict:
        flux, flux_err = transits["flux"], transits["flux_error"]
        with np.errstate(divide="ignore", invalid="ignore"):
            mag_err = MAG_PER_RELATIVE_FLUX * flux_err / flux
        return {
            "object_id": str(source_id),
            "source_id": source_id,
            "band": band,
            "time": transits["time"] + GAIA_TIME_TO_MJD,
            "mag": transits["mag"],
            "mag_err": mag_err,
            "flux": flux,
            "flux_err": flux_err,
            "label": label,
            "n_rejected": int(transits["n_rejected"]),
        }


# ---------------------------------------------------------------------------------------------------- parsing
def read_classes(path: Path) -> dict[int, str]:
    """``{source_id: best_class_name}`` from a CSV with those two columns (empty class names are skipped)."""
    rows = _csv_rows(_text(Path(path).read_bytes(), path))
    header = [name.strip().lower() for name in _next_row(rows, path)]
    if "source_id" not in header or "best_class_name" not in header:
        raise ValueError(f"{path} has no source_id / best_class_name columns (header: {header})")
    id_at, class_at = header.index("source_id"), header.index("best_class_name")
    classes = {}
    for number, row in enumerate(_checked_rows(rows, path), 1):
        if len(row) > max(id_at, class_at) and row[class_at].strip():
            classes[_source_id(row[id_at], f"{path}, data row {number}")] = row[class_at].strip()
    return classes


def _text(data: bytes, name: object) -> str:
    """UTF-8 text (a BOM dropped); other bytes are a ValueError naming the file."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{name} is not UTF-8 text: {err}") from None


def _source_id(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{where}: source_id {value[:40]!r} is not an integer") from None


def _next_row(rows: Iterator[list[str]], name: object) -> list[str]:
    return next(_checked_rows(rows, name), [])


def _checked_rows(rows: Iterator[list[str]], name: object) -> Iterator[list[str]]:
    """``rows``, with the csv module's own errors (a field over its size limit...) as ValueErrors naming ``name``."""
    try:
        yield from rows
    except csv.Error as err:
        raise ValueError(f"{name}: unreadable CSV ({err})") from None


def response_tables(path: Path) -> Iterator[str]:
    """The CSV texts of a DataLink answer: the file itself, or each CSV member of a ZIP archive."""
    if not zipfile.is_zipfile(path):
        yield _text(Path(path).read_bytes(), path)
        return
    try:
        with zipfile.ZipFile(path) as archive:
            for member in sorted(archive.namelist()):
                if not member.endswith("/"):
                    yield _text(archive.read(member), f"{path}: {member}")
    except (zipfile.BadZipFile, NotImplementedError, EOFError, zlib.error, OSError) as err:
        raise ValueError(f"{path}: damaged or unsupported ZIP archive ({type(err).__name__}: {err})") from None


def _csv_rows(text: str) -> Iterator[list[str]]:
    """CSV rows, skipping blank lines and ``#`` comment / ECSV header lines."""
    lines = (line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return csv.reader(lines, skipinitialspace=True)


def _floats(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        value = value.strip()
        try:
            out[i] = float(value) if value else np.nan
        except ValueError:
            out[i] = np.nan  # "null", "--"...
    return out


def _flags(values: list[str]) -> np.ndarray:
    out = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            out[i] = True
        elif word not in FALSE_WORDS:
            raise ValueError(f"cannot read {value!r} as a boolean flag")
    return out


def _cells(value: str) -> list[str]:
    """The elements of an array-valued cell (``[a, b]``, ``(a b)``, ``{a,b}``), or ``[value]`` for a scalar."""
    stripped = value.strip()
    if len(stripped) >= 2 and stripped[0] in "[({" and stripped[-1] in "])}":
        inner = stripped[1:-1]
        if not inner.strip():
            return []
        return inner.split(",") if "," in inner else inner.split()
    return [value]


def parse_epoch_photometry(text: str, keep: Callable[[int], bool] = lambda s: True) -> Iterator[tuple[int, dict]]:
    """``(source_id, {band: {"time", "mag", "flux", "flux_error", "n_rejected"}})`` per source of a DataLink CSV.

    Either layout (detected from the header). Rejected transits are removed and counted; sources for which ``keep``
    is False are skipped before their values are parsed. Sources come in order of first appearance.
    """
    rows = _checked_rows(_csv_rows(text), "epoch photometry")
    header = [name.strip().lower() for name in next(rows, [])]
    if not header:
        return
    if "band" in header and "time" in header:
        yield from _parse_long(header, rows, keep)
    elif any(columns[0] in header for columns in PER_TRANSIT_COLUMNS.values()):
        yield from _parse_per_transit(header, rows, keep)
    else:
        raise ValueError(f"unknown Gaia epoch-photometry layout, header: {header}")


def _group_rows(header: list[str], rows: Iterator[list[str]]) -> dict[int, list[list[str]]]:
    if "source_id" not in header:
        raise ValueError(f"no source_id column in the epoch photometry (header: {header})")
    id_at = header.index("source_id")
    groups: dict[int, list[list[str]]] = {}
    for number, row in enumerate(rows, 1):
        if len(row) != len(header):
            raise ValueError(f"data row {number} has {len(row)} fields, the header {len(header)}: {row[:4]}...")
        groups.setdefault(_source_id(row[id_at], f"data row {number}"), []).append(row)
    return groups


def _band_values(time, mag, flux, flux_error, rejected) -> dict:
    good = ~rejected
    return {
        "time": time[good],
        "mag": mag[good],
        "flux": flux[good],
        "flux_error": flux_error[good],
        "n_rejected": int(rejected.sum()),
    }


def _parse_long(header, rows, keep) -> Iterator[tuple[int, dict]]:
    missing = [name for name in LONG_COLUMNS if name not in header]
    if missing:
        raise ValueError(f"the flat epoch-photometry layout lacks the columns {missing} (header: {header})")
    at = {name: i for i, name in enumerate(header)}
    flag_columns = [name for name in ("rejected_by_photometry", "rejected_by_variability") if name in at]
    for source_id, group in _group_rows(header, rows).items():
        if not keep(source_id):
            continue
        column = {name: [row[i] for row in group] for name, i in at.items()}
        bands = np.array([value.strip().upper() for value in column["band"]])
        rejected = np.zeros(len(group), dtype=bool)
        for name in flag_columns:
            rejected |= _flags(column[name])
        values = {name: _floats(column[name]) for name in ("time", "mag", "flux", "flux_error")}
        result = {}
        for band in BANDS:
            rows_of_band = bands == band
            if rows_of_band.any():
                result[band] = _band_values(*(values[n][rows_of_band] for n in ("time", "mag", "flux", "flux_error")),
                                            rejected[rows_of_band])
        yield source_id, result


def _reject_columns(band: str, header: list[str]) -> list[str]:
    prefix = band.lower()
    names = (
        f"variability_flag_{prefix}_reject",
        f"photometry_flag_{prefix}_reject",
        f"{prefix}_rejected_by_photometry",
        f"{prefix}_rejected_by_variability",
    )
    return [name for name in names if name in header]


def _parse_per_transit(header, rows, keep) -> Iterator[tuple[int, dict]]:
    at = {name: i for i, name in enumerate(header)}
    for source_id, group in _group_rows(header, rows).items():
        if not keep(source_id):
            continue
        result = {}
        for band, names in PER_TRANSIT_COLUMNS.items():
            if names[0] not in at:
                continue
            missing = [name for name in names if name not in at]
            if missing:
                raise ValueError(f"the per-transit layout lacks the {band} columns {missing}")
            flags = _reject_columns(band, header)
            cells = {name: [x for row in group for x in _cells(row[at[name]])] for name in (*names, *flags)}
            lengths = {len(values) for values in cells.values()}
            if len(lengths) != 1:
                raise ValueError(f"source {source_id}: the {band} columns hold arrays of different lengths")
            time, flux, flux_error, mag = (_floats(cells[name]) for name in names)
            rejected = np.zeros(len(time), dtype=bool)
            for name in flags:
                rejected |= _flags(cells[name])
            # transits without any observation in this band (empty cells) are not observations of the band
            observed = ~(np.isnan(time) & np.isnan(flux))
            if observed.any():
                result[band] = _band_values(time[observed], mag[observed], flux[observed], flux_error[observed],
                                            rejected[observed])
        yield source_id, result
