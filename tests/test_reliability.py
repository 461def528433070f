"""Reliability cases of issue G that the rest of the suite does not cover (see docs/reliability.md for the whole
table), and property-based tests (hypothesis) over the survey parsers.

The parser properties: whatever text, bytes, arrays, dtypes or shapes a source file or a record holds, a parser
either returns well-formed values (float64 arrays of one length, ids as text...) or raises ``ValueError`` /
``TypeError`` whose message names the file (or, for a parser given text, the line, source or column) that is wrong.
Never another exception: an ``IndexError`` or ``KeyError`` from a downloaded file says nothing a user can act on.
Inputs are shaped like the real ones (the column names, separators, sentinels and layouts of each survey, as in the
tests/test_survey_*.py files), then damaged: junk tokens, any Unicode, cut or appended bytes.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fault_server import Fault

from astromer_hf.cli import main
from astromer_hf.data.builder import SurveyDataError, check_settings
from astromer_hf.data.download import DownloadError
from astromer_hf.data.surveys import astromer_archive, atlas, gaia, macho, ogle3, ztf

#: ``RELIABILITY_EXAMPLES=2000`` for a longer hunt than the suite's.
PROPERTY = settings(max_examples=int(os.environ.get("RELIABILITY_EXAMPLES", 100)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

#: Causes a builder may wrap in a SurveyDataError besides ValueError / TypeError: an archive whose compression or
#: container is broken (the message names the error class, the file and what was done with it).
ARCHIVE_ERRORS = (EOFError, tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One folder for the whole module: each example overwrites its own file names there."""
    return tmp_path_factory.mktemp("reliability")


# ------------------------------------------------------------------------------------------------ strategies
# Each file is drawn either clean (values of the right kind for each column) or hostile (any cell may be a junk
# token), then possibly cut short or followed by arbitrary bytes: both the success paths and the refusals are hit.
NUMBER_WORDS = ["", " ", "nan", "NaN", "inf", "-inf", "1e400", "-1e400", "-99.000", "99.999", "0", "-0", "1_000",
                "0x1F", "\u0661\u0662", "9" * 40, "1e-400", "+5", "--", "null", "true", "false", "T", "1.", ".5"]
plain = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(-1e5, 1e5, allow_nan=False).map(repr))
numbers = st.one_of(plain, st.floats().map(repr), st.sampled_from(NUMBER_WORDS))
junk = st.text(max_size=8)  # any Unicode: separators, quotes, NUL, line breaks...
tokens = st.one_of(numbers, numbers, junk)
mjd = st.floats(40000, 60000).map(lambda x: f"{x:.5f}")
mag = st.floats(5, 25).map(lambda x: f"{x:.3f}")
err = st.floats(0.001, 1.5).map(lambda x: f"{x:.3f}")


def cells(draw, clean: st.SearchStrategy) -> st.SearchStrategy:
    """The values of one file: ``clean`` ones, or (one file in two) any cell possibly a hostile token."""
    return clean if draw(st.booleans()) else st.one_of(clean, tokens)


def damaged(data: bytes, draw) -> bytes:
    """``data``, one time in four cut short, one time in six followed by arbitrary bytes."""
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.integers(0, 5)) == 0:
        data += draw(st.binary(min_size=1, max_size=40))
    return data


def encoded(text: str, draw) -> bytes:
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "utf-16"])), errors="replace")


def joined(lines: list[str], draw) -> str:
    return draw(st.sampled_from(["\n", "\n", "\r\n", "\r"])).join(lines) + draw(st.sampled_from(["", "\n"]))


def csv_text(draw, columns: dict[str, st.SearchStrategy], required: tuple[str, ...] = (), max_rows: int = 6) -> str:
    """A CSV: mostly a real header (``required`` and some other ``columns``, any order, any case), sometimes junk
    names; rows of values of each column's kind (see :func:`cells`), sometimes one value short or one too many."""
    names = list(columns)
    if draw(st.integers(0, 3)):
        header = draw(st.permutations([*required, *draw(st.lists(st.sampled_from(names), unique=True, max_size=4))]))
    else:
        header = draw(st.lists(st.one_of(st.sampled_from(names), junk), max_size=len(names) + 2))
    if draw(st.integers(0, 4)) == 0:
        header = [name.upper() if draw(st.booleans()) else f" {name}" for name in header]
    hostile = not draw(st.booleans())
    lines = [",".join(header)]
    for _ in range(draw(st.integers(0, max_rows))):
        values = [draw(st.one_of(columns.get(name.strip().lower(), tokens), tokens) if hostile else
                       columns.get(name.strip().lower(), plain)) for name in header]
        if hostile and draw(st.integers(0, 4)) == 0:
            values = values[:-1] if draw(st.booleans()) else [*values, draw(tokens)]
        lines.append(",".join(values))
    return joined(lines, draw)


def _refused_clearly(error: BaseException, *names: object) -> None:
    """A ValueError / TypeError whose message says what is wrong and names one of ``names``."""
    assert isinstance(error, (ValueError, TypeError)), repr(error)
    message = str(error)
    assert message.strip(), repr(error)
    assert any(str(name) in message for name in names), (message, names)


def _builder_refused_clearly(error: BaseException, path: Path) -> None:
    """A builder's error for an unreadable file: a SurveyDataError naming the file, whose cause is the parser's own
    ValueError / TypeError (or a broken archive), not an IndexError or KeyError from deep inside."""
    assert isinstance(error, SurveyDataError), repr(error)
    assert str(path) in str(error), str(error)
    cause = error.__cause__
    assert cause is None or isinstance(cause, (ValueError, TypeError, *ARCHIVE_ERRORS)), repr(cause)


def _float_columns(*arrays: np.ndarray) -> None:
    lengths = {len(a) for a in arrays}
    assert len(lengths) <= 1, lengths
    for array in arrays:
        assert isinstance(array, np.ndarray) and array.dtype == np.float64 and array.ndim == 1, array


# ------------------------------------------------------------------------------------------------ MACHO
@st.composite
def macho_tiles(draw) -> bytes:
    """A tile file: lines of 39 ``;``-separated fields as in the archive (sentinels included; sometimes another
    count), stars of one tile listed one after another (sometimes not), gzip-compressed or plain."""
    value = cells(draw, plain)
    band = st.one_of(st.tuples(mag, err), st.sampled_from([("-99.000", "-99.000"), ("99.999", "99.999")]))
    lines = []
    stars = sorted(draw(st.lists(st.integers(0, 3), max_size=6)))  # star by star, as the archive lists them
    if stars and draw(st.integers(0, 5)) == 0:
        stars.append(stars[0])  # a star that comes back after others
    for star in stars:
        red, blue = draw(band), draw(band)
        fields = ["", "1", "3319", str(star), draw(mjd), *(draw(value) for _ in range(4)), *red,
                  *(draw(value) for _ in range(13)), *blue, *(draw(value) for _ in range(13))]
        if value is not plain and draw(st.integers(0, 3)) == 0:
            fields = [draw(tokens) for _ in range(draw(st.sampled_from([39, 38, 40, 5, 1])))]
        lines.append(";".join(fields))
    data = encoded(joined(lines, draw), draw)
    if draw(st.booleans()):
        data = gzip.compress(data)
    return damaged(data, draw)


@PROPERTY
@given(macho_tiles())
def test_macho_tile_files_parse_or_are_refused_naming_the_file(scratch, data):
    path = scratch / "F_1.3319.gz"
    path.write_bytes(data)
    try:
        stars = list(macho._stars(path, lambda object_id: True))
    except Exception as error:  # noqa: BLE001 (the property is about which exceptions)
        _refused_clearly(error, path)
        return
    for object_id, epochs in stars:
        assert re.fullmatch(r"-?\d+\.-?\d+\.-?\d+", object_id), object_id
        assert epochs and all(len(epoch) == 5 for epoch in epochs)
        values = np.array(epochs, dtype=np.float64)
        for mag_at, err_at in ((1, 2), (3, 4)):  # a band's missing values are NaN in both columns
            assert (np.isnan(values[:, mag_at]) == np.isnan(values[:, err_at])).all()


@PROPERTY
@given(st.one_of(tokens, st.sampled_from(["LPV_WoodA", "RRab", "Cep_0", " 10 ", "1.0", "12", "-1"])))
def test_macho_class_entries_map_to_an_alcock_class_or_none(value):
    assert macho.alcock_class(value) in (*macho.ALCOCK_CLASSES, None)


@st.composite
def macho_class_tables(draw) -> bytes:
    """The alcock classification CSV: ``id,class`` or ``field,tile,seqn,class`` (aliases too), optional ra/dec."""
    whole = st.integers(0, 9999).map(str)
    columns = {"id": st.builds(lambda f, t, q: f"{f}.{t}.{q}", st.integers(1, 120), st.integers(1, 9999),
                               st.integers(1, 9999)),
               "field": whole, "tile": whole, "seqn": whole, "seq": whole,
               "class": st.one_of(st.integers(0, 12).map(str), st.sampled_from(["LPV_WoodB", "RRc", "EC", "UNK"])),
               "classification": st.integers(0, 12).map(str), "ra": plain, "dec": plain}
    required = draw(st.sampled_from([("id", "class"), ("field", "tile", "seqn", "class"), ("id", "classification")]))
    return damaged(encoded(csv_text(draw, columns, required), draw), draw)


@PROPERTY
@given(macho_class_tables())
@example(b"class,id\n1\n")  # a short row: no id at all
@example(b"field,tile,seqn,class\n1,2\n")
@example(b"id,class\n1.2.3.4.5,1\n")  # not field.tile.sequence
@example(b"id,class\n" + b"9" * 5000 + b".1.1,1\n")  # more digits than int() reads
def test_macho_classification_tables_parse_or_are_refused_naming_the_file(scratch, data):
    source = scratch / "classes.csv"
    source.write_bytes(data)
    shutil.rmtree(scratch / "downloads", ignore_errors=True)  # a downloaded table is reused: fetch this one
    builder = macho.MachoPhotometry(config_name="alcock", cache_dir=str(scratch / "cache"),
                                    download_dir=str(scratch / "downloads"), classification_url=source.as_uri())
    try:
        table = builder._classifications()
    except Exception as error:  # noqa: BLE001
        _builder_refused_clearly(error, scratch / "downloads" / "macho" / "classifications" / "classes.csv")
        return
    for object_id, entry in table.items():
        assert re.fullmatch(r"-?\d+\.-?\d+\.-?\d+", object_id), object_id
        assert entry["label"] in macho.ALCOCK_CLASSES
        assert all(entry[axis] is None or isinstance(entry[axis], float) for axis in ("ra", "dec"))


# ------------------------------------------------------------------------------------------------ OGLE-III
sexagesimal = st.builds(lambda a, b, c: f"{a:02d}:{b:02d}:{c:05.2f}", st.integers(0, 23), st.integers(0, 59),
                        st.floats(0, 59.99))
out_of_range = st.builds(lambda a, b, c: f"{a:02d}:{b:02d}:{c:05.2f}", st.integers(0, 99), st.integers(0, 99),
                         st.floats(0, 99.99))


@st.composite
def ident_files(draw) -> bytes:
    """``ident.dat`` lines: id, field, database number, subtype, RA, Dec, cross-ids (separators of either kind)."""
    value = cells(draw, st.sampled_from(["", "MACHO 1.3319.7", "OGLE-II 123"]))
    coordinate = cells(draw, st.one_of(sexagesimal, sexagesimal, sexagesimal, out_of_range))
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        ra, dec = draw(coordinate), draw(coordinate)
        if draw(st.booleans()):
            ra, dec = ra.replace(":", " "), dec.replace(":", " ")
        parts = [draw(st.sampled_from(["OGLE-LMC-CEP-0001", "OGLE-BLG-RRLYR-12345", "#", ""])),
                 draw(st.sampled_from(["LMC175.5", "SMC100.1", "BLG1", ""])), str(draw(st.integers(0, 99999))),
                 draw(st.sampled_from(["RRab", "F", "1O", "F1O", "SINGLEMODE", ""])), ra,
                 draw(st.sampled_from(["+", "-", "-", ""])) + dec, draw(value)]
        lines.append(draw(st.sampled_from([" ", "  ", "\t"])).join(parts))
    return damaged(encoded(joined(lines, draw), draw), draw)


@PROPERTY
@given(ident_files())
def test_ogle3_ident_files_parse_or_are_refused_naming_the_file(scratch, data):
    path = scratch / "ident.dat"
    path.write_bytes(data)
    try:
        stars = ogle3.read_ident(path)
    except Exception as error:  # noqa: BLE001
        _refused_clearly(error, path)
        return
    for star in stars:
        assert star.object_id and not star.object_id.startswith("#")
        assert 0.0 <= star.ra <= 360.0 and -90.0 <= star.dec <= 90.0, star


@st.composite
def photometry_files(draw) -> bytes:
    """OGLE photometry: HJD - 2450000, magnitude, error per line (white space; sometimes another column count)."""
    value = cells(draw, plain)
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        line = [draw(st.floats(0, 9000).map(lambda x: f"{x:.5f}")), draw(mag), draw(err)]
        if value is not plain:
            line = [draw(value) for _ in range(draw(st.sampled_from([3, 3, 2, 4, 1])))]
        lines.append(draw(st.sampled_from([" ", "  ", "\t"])).join(line))
    if draw(st.booleans()):
        lines.insert(0, "# HJD-2450000 I sigma")
    return damaged(encoded(joined(lines, draw), draw), draw)


@PROPERTY
@given(photometry_files())
def test_ogle3_photometry_parses_or_is_refused_naming_the_file(scratch, data):
    path = scratch / "OGLE-LMC-CEP-0001.dat"
    path.write_bytes(data)
    for source in (path, data):
        try:
            values = ogle3.read_photometry(source, name="phot/I/OGLE-LMC-CEP-0001.dat")
        except Exception as error:  # noqa: BLE001
            _refused_clearly(error, "OGLE-LMC-CEP-0001.dat")
            continue
        assert values.dtype == np.float64 and values.ndim == 2 and values.shape[1] == 3


@st.composite
def photometry_archives(draw) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for _ in range(draw(st.integers(0, 4))):
            name = draw(st.one_of(st.sampled_from(["phot/I/OGLE-LMC-CEP-0001.dat", "./V/OGLE-LMC-CEP-0001.dat",
                                                   "phot/I/OGLE-LMC-CEP-0002.dat", "I/x.dat", "phot/README"]),
                                  junk.filter(bool)))
            body = draw(photometry_files())
            info = tarfile.TarInfo(name)
            info.size = len(body)
            if draw(st.integers(0, 5)) == 0:
                info.type = tarfile.DIRTYPE
                info.size, body = 0, b""
            tar.addfile(info, io.BytesIO(body))
    return damaged(buffer.getvalue(), draw)


@PROPERTY
@given(photometry_archives())
def test_ogle3_archives_give_records_or_a_clear_error_naming_the_file(scratch, data):
    ident, archive = scratch / "ogle-ident.dat", scratch / "phot.tar.gz"
    ident.write_text("OGLE-LMC-CEP-0001  LMC175.5  12  F  05:27:05.46  -69:52:24.1\n"
                     "OGLE-LMC-CEP-0002  LMC175.5  13  1O  05:27:06.46  -69:52:25.1\n")
    archive.write_bytes(data)
    builder = ogle3.Ogle3VariableStars(config_name="lmc", cache_dir=str(scratch / "cache"),
                                       download_dir=str(scratch / "downloads"))
    sources = {"parts": [{"folder": "lmc/cep", "label": "cep", "ident": str(ident), "archive": str(archive)}]}
    try:
        records = list(builder._records(sources, lambda object_id: True))
    except Exception as error:  # noqa: BLE001
        _builder_refused_clearly(error, archive)
        return
    for record in records:
        _float_columns(record["time"], record["mag"], record["mag_err"])


# ------------------------------------------------------------------------------------------------ ATLAS
@st.composite
def atlas_detections(draw) -> bytes:
    """A detection CSV: mjd, m, dm, filter (any of their aliases), optional flags."""
    kinds = {"time": mjd, "mag": mag, "mag_err": err, "filter": st.sampled_from(["o", "c", "O", " c "]),
             "flags": st.sampled_from(["0", "0", "1", "2048"])}
    columns = {alias: kinds[name] for name, aliases in atlas.DETECTION_COLUMNS.items() for alias in aliases}
    required = tuple(draw(st.sampled_from(atlas.DETECTION_COLUMNS[name])) for name in ("time", "mag", "mag_err",
                                                                                          "filter"))
    return damaged(encoded(csv_text(draw, columns, required), draw), draw)


@PROPERTY
@given(atlas_detections(), st.booleans())
@example(b"mjd,m,dm,filter\n58000.5,15.2,0.02,\n", False)  # an empty filter: text, not NaN
def test_atlas_detections_parse_or_are_refused_naming_the_file(scratch, data, drop_flagged):
    path = scratch / "detection.csv"
    path.write_bytes(data)
    try:
        frame = atlas.read_detections(path, drop_flagged=drop_flagged)
    except Exception as error:  # noqa: BLE001
        _refused_clearly(error, path)
        return
    _float_columns(*(frame[name].to_numpy() for name in ("time", "mag", "mag_err")))
    assert all(isinstance(value, str) for value in frame["filter"])


@PROPERTY
@given(st.data())
def test_atlas_catalogues_parse_or_are_refused_naming_the_file(scratch, data):
    kinds = {"id": st.integers(1, 10**12).map(str), "ra": plain, "dec": plain,
             "class": st.sampled_from([*atlas.ATLAS_CLASSES, "", "OTHER"])}
    columns = {alias: kinds[name] for name, aliases in atlas.CATALOGUE_COLUMNS.items() for alias in aliases}
    path = scratch / "catalogue.csv"
    text = csv_text(data.draw, columns, ("objid", "ra", "dec", "class"))
    path.write_bytes(damaged(encoded(text, data.draw), data.draw))
    builder = atlas.AtlasVariableStars(cache_dir=str(scratch / "cache"), download_dir=str(scratch / "downloads"))
    try:
        frame = builder._catalogue(path)
    except Exception as error:  # noqa: BLE001
        _refused_clearly(error, path)
        return
    assert list(frame.columns) == ["object_id", "ra", "dec", "atlas_class"]


# ------------------------------------------------------------------------------------------------ ZTF
@st.composite
def ztf_answers(draw) -> bytes:
    """An IRSA light-curve CSV: the columns read (and others) with values of their kind."""
    whole = st.integers(0, 2000).map(str)
    columns = {"oid": st.sampled_from(["686103400067717", " 686103400067717 ", "12"]), "mjd": mjd, "mag": mag,
               "magerr": err, "catflags": st.sampled_from(["0", "0", "32768", "4"]),
               "filtercode": st.sampled_from(["zg", "zr", "zi", "zg"]), "ra": plain, "dec": plain, "field": whole,
               "ccdid": whole, "qid": whole, "expid": whole, "hjd": mjd, "limitmag": mag}
    return damaged(encoded(csv_text(draw, columns, ztf.REQUIRED_COLUMNS), draw), draw)


ZTF_HEADER = ",".join(ztf.REQUIRED_COLUMNS)
ZTF_ROW = "686103400067717,58300.1,18.5,0.05,0,zg,10.0,20.0,500,3,2"


@PROPERTY
@given(ztf_answers())
@example(f" {ZTF_HEADER.replace(',', ', ')}\n{ZTF_ROW}\n".encode())  # spaces before the names (oid read as text)
@example(f"{ZTF_HEADER}, oid\n{ZTF_ROW},5\n".encode())  # a column named twice once its spaces are stripped
@example(f"{ZTF_HEADER}\n{ZTF_ROW.replace(',500,', ',5e20,')}\n".encode())  # beyond the int32 field column
@example(f"{ZTF_HEADER}\n{ZTF_ROW.replace(',0,zg', ',1e30,zg')}\n".encode())  # catflags beyond int64
def test_ztf_answers_give_records_or_a_clear_error_naming_the_file(scratch, data):
    path = scratch / "nph_light_curves__ID=1&FORMAT=csv"
    path.write_bytes(data)
    builder = ztf.ZtfLightCurves(cache_dir=str(scratch / "cache"), download_dir=str(scratch / "downloads"),
                                 object_ids=[686103400067717], labels={"686103400067717": "SN Ia"})
    try:
        records = list(builder._records({"files": [("id:686103400067717", path)]}, lambda object_id: True))
    except Exception as error:  # noqa: BLE001
        _builder_refused_clearly(error, path)
        return
    for record in records:
        _float_columns(record["time"], record["mag"], record["mag_err"])
        assert record["band"] in ztf.BANDS and isinstance(record["object_id"], str)
        assert all(isinstance(record[name], int) for name in ("field", "ccdid", "qid", "n_flagged"))
        assert all(-2**31 <= record[name] < 2**31 for name in ("field", "ccdid", "qid"))  # the int32 columns


# ------------------------------------------------------------------------------------------------ Gaia DR3
GAIA_IDS = st.sampled_from(["4111834567779557376", "5284240582308398080"])
FLAGS = st.sampled_from(["true", "false", "false", "0", "1"])


@st.composite
def gaia_tables(draw) -> str:
    """A DataLink CSV: the flat layout, or the per-transit one with scalar or array cells."""
    flux = st.floats(1.0, 1e6).map(lambda x: f"{x:.4f}")
    if draw(st.booleans()):
        columns = {"source_id": GAIA_IDS, "transit_id": st.integers(0, 10**17).map(str),
                   "band": st.sampled_from(["G", "BP", "RP"]), "time": mjd, "mag": mag, "flux": flux,
                   "flux_error": flux, "rejected_by_photometry": FLAGS, "rejected_by_variability": FLAGS}
        required = gaia.LONG_COLUMNS
    else:
        kinds = {"time": mjd, "flux": flux, "flux_error": flux, "mag": mag}
        columns = {"source_id": GAIA_IDS}
        for band, names in gaia.PER_TRANSIT_COLUMNS.items():
            columns.update({name: kinds[kind] for name, kind in zip(names, ("time", "flux", "flux_error", "mag"))})
            columns[f"variability_flag_{band.lower()}_reject"] = FLAGS
        if draw(st.booleans()):  # one row per source, arrays in the cells
            columns = {name: value if name == "source_id" else st.lists(value, max_size=3).map(
                lambda items: '"[' + ", ".join(items) + ']"') for name, value in columns.items()}
        required = ("source_id", *gaia.PER_TRANSIT_COLUMNS["G"])
    return csv_text(draw, columns, required)


@PROPERTY
@given(gaia_tables())
def test_gaia_epoch_photometry_parses_or_is_refused_clearly(text):
    try:
        sources = list(gaia.parse_epoch_photometry(text))
    except Exception as error:  # noqa: BLE001
        _refused_clearly(error, "source", "header", "row", "column", "flag", "layout")
        return
    for source_id, bands in sources:
        assert isinstance(source_id, int)
        for band, values in bands.items():
            assert band in gaia.BANDS and isinstance(values["n_rejected"], int)
            _float_columns(values["time"], values["mag"], values["flux"], values["flux_error"])


@st.composite
def gaia_answers(draw) -> bytes:
    if draw(st.booleans()):
        return damaged(encoded(draw(gaia_tables()), draw), draw)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for k in range(draw(st.integers(0, 3))):
            method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2]))
            archive.writestr(f"EPOCH_PHOTOMETRY-{k}.csv", encoded(draw(gaia_tables()), draw), compress_type=method)
    return damaged(buffer.getvalue(), draw)


@PROPERTY
@given(gaia_answers())
def test_gaia_answers_give_records_or_a_clear_error_naming_the_file(scratch, data):
    path = scratch / "data__RETRIEVAL_TYPE=EPOCH_PHOTOMETRY"
    path.write_bytes(data)
    builder = gaia.GaiaEpochPhotometry(cache_dir=str(scratch / "cache"), download_dir=str(scratch / "downloads"),
                                       source_ids=[4111834567779557376, 5284240582308398080], with_classes=False)
    try:
        records = list(builder._records({"files": [path], "labels": {}}, lambda object_id: True))
    except Exception as error:  # noqa: BLE001
        _builder_refused_clearly(error, path)
        return
    for record in records:
        _float_columns(record["time"], record["mag"], record["mag_err"], record["flux"], record["flux_err"])


@PROPERTY
@given(st.data())
def test_gaia_class_tables_parse_or_are_refused_naming_the_file(scratch, data):
    columns = {"source_id": GAIA_IDS, "best_class_name": st.sampled_from(["RR", "ECL", "LPV", ""])}
    path = scratch / "classes.csv"
    text = csv_text(data.draw, columns, ("source_id", "best_class_name"))
    path.write_bytes(damaged(encoded(text, data.draw), data.draw))
    try:
        classes = gaia.read_classes(path)
    except Exception as error:  # noqa: BLE001
        _refused_clearly(error, path)
        return
    assert all(isinstance(k, int) and isinstance(v, str) and v for k, v in classes.items())


# ------------------------------------------------------------------------------------------------ Astromer archives
@st.composite
def lightcurve_tables(draw) -> bytes:
    """The authors' per-curve files: time, magnitude, error per line, comma-, semicolon- or space-separated."""
    separator = draw(st.sampled_from([",", ";", " ", "\t", ", "]))
    value = cells(draw, plain)
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        line = [draw(mjd), draw(mag), draw(err)]
        if value is not plain:
            line = [draw(value) for _ in range(draw(st.sampled_from([3, 3, 2, 4, 1])))]
        lines.append(separator.join(line))
    if draw(st.booleans()):
        lines.insert(0, separator.join(["mjd", "mag", "errmag"]))
    if draw(st.booleans()):
        lines.insert(0, "# a comment")
    return damaged(encoded(joined(lines, draw), draw), draw)


@PROPERTY
@given(lightcurve_tables())
def test_archive_light_curve_files_parse_or_are_refused_naming_the_file(scratch, data):
    path = scratch / "LCs" / "1.3444.614.R.dat"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    try:
        values = astromer_archive.read_lightcurve_table(path)
    except Exception as error:  # noqa: BLE001
        _refused_clearly(error, path)
        return
    assert values.dtype == np.float64 and values.ndim == 2 and values.shape[1] == 3


column_arrays = {
    "float": st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=6),
    "int": st.lists(st.integers(-2**63, 2**63 - 1), min_size=0, max_size=6),
    "text": st.lists(st.one_of(numbers, junk), min_size=0, max_size=6),
    "bool": st.lists(st.booleans(), min_size=0, max_size=6),
}


@st.composite
def long_shards(draw) -> pd.DataFrame:
    rows = draw(st.integers(0, 6))
    columns = {}
    for name in draw(st.lists(st.sampled_from(["mjd", "mag", "errmag", "newID", "other"]), unique=True, max_size=5)):
        kind = draw(st.sampled_from(sorted(column_arrays)))
        values = draw(column_arrays[kind])
        columns[name] = (values * (rows // max(len(values), 1) + 1))[:rows] if values else [None] * rows
    for name in ("mjd", "mag", "errmag", "newID"):  # mostly a complete shard
        if name not in columns and draw(st.integers(0, 4)):
            columns[name] = [float(k) for k in range(rows)] if name != "newID" else [str(k // 2) for k in range(rows)]
    return pd.DataFrame(columns, index=range(rows))


@PROPERTY
@given(long_shards())
def test_archive_parquet_shards_give_curves_or_a_clear_error_naming_the_file(scratch, frame):
    path = scratch / "shard_000.parquet"
    frame.to_parquet(path)
    try:
        curves = list(astromer_archive._grouped_curves(path))
    except Exception as error:  # noqa: BLE001
        _refused_clearly(error, path)
        return
    for new_id, values in curves:
        assert isinstance(new_id, str) and values.dtype == np.float64 and values.shape[1:] == (3,)


# ------------------------------------------------------------------------------------------------ the common builder
any_arrays = st.one_of(
    hnp.arrays(st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.uint8, np.bool_, np.complex64,
                                "U3", "M8[D]", object]), hnp.array_shapes(min_dims=0, max_dims=3, max_side=5)),
    st.lists(st.one_of(st.floats(), st.integers(-2**70, 2**70), st.none(), junk), max_size=6),
    st.floats(), st.none(), junk,
)


@st.composite
def raw_records(draw) -> dict:
    rows = draw(st.integers(0, 8))
    plausible = st.just(np.linspace(0.0, 1.0, rows) * draw(st.floats(0, 1e6)))
    record = {"object_id": draw(st.sampled_from(["1.3319.7", "OGLE-LMC-CEP-0001"])), "band": "R"}
    for name in ("time", "mag", "mag_err", "flux", "flux_err"):
        if name in ("flux", "flux_err") and draw(st.booleans()):
            continue
        record[name] = draw(st.one_of(plausible, plausible, any_arrays))
    return record


@PROPERTY
@given(raw_records())
def test_the_cleaning_of_any_record_keeps_a_clean_curve_or_names_the_object(scratch, record):
    builder = ztf.ZtfLightCurves(cache_dir=str(scratch / "cache"), download_dir=str(scratch / "downloads"),
                                 object_ids=[1])
    report = {name: 0 for name in ("curves_in", "curves_out", "observations_in", "observations_out",
                                   "nonfinite_rows", "bad_error_rows", "resorted_curves", "duplicate_time_rows",
                                   "short_curves")}
    try:
        row = builder._clean(record, report)
    except Exception as error:  # noqa: BLE001
        _refused_clearly(error, record["object_id"])
        return
    if row is None:
        return
    n = row["n_obs"]
    assert n >= builder.config.min_observations
    for name in ("time", "mag", "mag_err"):
        values = np.asarray(row[name], dtype=np.float64)
        assert values.shape == (n,) and np.isfinite(values).all(), name
    assert (np.diff(np.asarray(row["time"], dtype=np.float64)) > 0).all()
    assert all(np.asarray(row[name]).shape == (n,) for name in ("flux", "flux_err") if name in row)


# ------------------------------------------------------------------------------------------------ settings
setting_values = st.one_of(
    numbers, junk, st.booleans(), st.none(), st.integers(-2**80, 2**80), st.floats(),
    st.lists(st.one_of(numbers, st.integers(), st.floats()), max_size=4),
    st.dictionaries(junk, st.one_of(numbers, st.integers()), max_size=3),
    st.sampled_from(["[1, 2]", "[[10.5, -3]]", '{"1": "RR"}', "1.3319,1.3320", "[0.5, 0.25, 0.25]", "null",
                     "[" * 3000 + "]" * 3000, "1e999", "9" * 5000]),
    hnp.arrays(st.sampled_from([np.int64, np.float64]), hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)),
)
CONFIG_CLASSES = {
    "macho": macho.MachoPhotometry, "ogle3": ogle3.Ogle3VariableStars, "atlas": atlas.AtlasVariableStars,
    "ztf": ztf.ZtfLightCurves, "gaia_dr3": gaia.GaiaEpochPhotometry,
    "astromer_archive": astromer_archive.AstromerArchive,
}


@PROPERTY
@given(st.sampled_from(sorted(CONFIG_CLASSES)), st.data())
def test_settings_of_any_type_are_converted_or_refused_naming_the_key(survey, data):
    builder_class = CONFIG_CLASSES[survey]
    fields = sorted(f.name for f in builder_class.BUILDER_CONFIG_CLASS.__dataclass_fields__.values()
                    if f.name not in ("name", "version", "data_files", "description"))
    key = data.draw(st.one_of(st.sampled_from(fields), st.sampled_from(fields), junk))
    value = data.draw(setting_values)
    try:
        checked = check_settings(builder_class.BUILDER_CONFIG_CLASS, {key: value}, survey)
    except Exception as error:  # noqa: BLE001
        _refused_clearly(error, f"{key}=", repr(key))
        return
    assert list(checked) == [key]
    try:  # the configuration's own checks, after the types are right
        builder_class.BUILDER_CONFIG_CLASS(name=builder_class.DEFAULT_CONFIG_NAME, **checked)
    except Exception as error:  # noqa: BLE001
        assert isinstance(error, (ValueError, TypeError)) and str(error).strip(), repr(error)


@pytest.mark.parametrize(
    "setting, value",
    [
        ("catflags_mask", "9" * 5000),  # more digits than int() reads
        ("radius_arcsec", 10**400),  # an integer beyond the float range
        ("positions", "[" * 3000 + "]" * 3000),  # JSON nested deeper than the decoder's recursion limit
        ("labels", '{"a":' * 3000),
    ],
    ids=["long-integer", "huge-integer-as-float", "deep-list", "deep-object"],
)
def test_settings_that_overflow_the_readers_are_refused_naming_the_key(setting, value):
    with pytest.raises(ValueError, match=rf"^setting {setting}=.* of ztf: expected "):
        check_settings(ztf.ZtfConfig, {setting: value}, "ztf")


# ------------------------------------------------------------------------------------------------ downloads: mirrors
def test_a_failed_survey_download_says_how_to_download_from_a_mirror(archive, tmp_path, capsys, monkeypatch):
    """Every retry of a tile fails (HTTP 503): the one error line names the survey, the URL, the attempts, and the
    two ways to a mirror, `--set base_url=URL` and the environment variable the builder reads."""
    monkeypatch.delenv("ASTROMER_MACHO_BASE_URL", raising=False)
    tile = "/F_1/F_1.3319.gz"
    archive.faults[tile] = Fault(status=503)
    code = main(["data", "prepare", "macho", "--config", "photometry", "--set", "tiles=1.3319",
                 "--set", f"base_url={archive.base_url}", "--set", f"download_dir={tmp_path / 'downloads'}",
                 "--set", "download_retries=1", "--out", str(tmp_path / "out")])
    assert code == 2 and archive.count(tile) == 2
    error = capsys.readouterr().err
    line = next(line for line in error.splitlines() if "error:" in line)
    assert f"macho: giving up on {archive.url(tile)} after 2 attempts; last error: HTTP 503" in line
    assert "to download from a mirror, set base_url (astromer data prepare macho --set base_url=URL" in line
    assert "the environment variable ASTROMER_MACHO_BASE_URL" in line and "Traceback" not in error

    # the variable named is the one the builder reads: a mirror given there serves the tile
    archive.faults.pop(tile)
    archive.files[tile] = gzip.compress(b";1;3319;7;48823.5" + b";1" * 34 + b"\n")
    monkeypatch.setenv("ASTROMER_MACHO_BASE_URL", archive.base_url)
    builder = macho.MachoPhotometry(config_name="photometry", cache_dir=str(tmp_path / "cache"),
                                    download_dir=str(tmp_path / "downloads"), tiles=["1.3319"])
    assert builder.download("F_1/F_1.3319.gz").read_bytes() == archive.files[tile]


@pytest.mark.parametrize("survey, builder_class, settings", [
    ("ogle3", ogle3.Ogle3VariableStars, {}),
    ("atlas", atlas.AtlasVariableStars, {}),
    ("ztf", ztf.ZtfLightCurves, {"object_ids": [1]}),
    ("gaia_dr3", gaia.GaiaEpochPhotometry, {"source_ids": [1], "with_classes": False}),
])
def test_every_survey_names_its_own_mirror_variable(archive, tmp_path, monkeypatch, survey, builder_class, settings):
    variable = f"ASTROMER_{survey.upper()}_BASE_URL"
    monkeypatch.setenv(variable, archive.base_url)
    archive.faults["/answer"] = Fault(status=502)
    builder = builder_class(cache_dir=str(tmp_path / "cache"), download_dir=str(tmp_path / "downloads"),
                            download_retries=0, **settings)
    assert builder.mirror_variable() == variable and builder.base_url() == archive.base_url
    with pytest.raises(DownloadError) as info:
        builder.download("answer")
    message = str(info.value)
    assert message.startswith(f"{survey}: giving up on {archive.url('/answer')}") and "HTTP 502" in message
    assert "--set base_url=URL" in message and f"environment variable {variable}" in message


def test_a_download_outside_the_base_url_has_no_mirror_advice(archive, tmp_path):
    """A classification table given as a full URL does not come from base_url: a mirror setting would not help."""
    archive.faults["/tables/classes.csv"] = Fault(status=503)
    builder = macho.MachoPhotometry(config_name="alcock", cache_dir=str(tmp_path / "cache"), download_retries=0,
                                    download_dir=str(tmp_path / "downloads"), base_url="http://127.0.0.1:9/macho",
                                    classification_url=archive.url("/tables/classes.csv"))
    with pytest.raises(DownloadError) as info:
        builder._classifications()
    assert str(info.value).startswith(f"macho: giving up on {archive.url('/tables/classes.csv')}")
    assert "mirror" not in str(info.value)


# ------------------------------------------------------------------------------------------------ pickle refused
def test_pickled_weights_are_refused_without_running_their_code(tmp_path):
    """A model folder whose weights are a pickle (``pytorch_model.bin``) carrying code: ``from_pretrained`` refuses
    to unpickle it (PyTorch's weights-only loader) and the code never runs. The same file, unpickled the unsafe
    way, does run it: the refusal is what protects the user."""
    import pickle

    import torch

    from astromer_hf import AstromerConfig, AstromerModel

    folder, marker = tmp_path / "model", tmp_path / "payload-ran"
    model = AstromerModel(AstromerConfig(hidden_size=16, num_attention_heads=2, intermediate_size=16))
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save({**model.state_dict(), "payload": _Payload(marker)}, folder / "pytorch_model.bin")

    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        AstromerModel.from_pretrained(folder)
    assert not marker.exists()

    torch.load(folder / "pytorch_model.bin", weights_only=False)  # what an unsafe loader would do
    assert marker.exists()


class _Payload:
    """Unpickling this object creates ``marker`` (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)
