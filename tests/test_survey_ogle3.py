"""OGLE-III CVS builder against a loopback server holding a fixture tree in the OIII-CVS layout.

The photometry is real OGLE I-band photometry shipped with MulensModel (first three columns of each file; files in
full JD are written as HJD - 2450000 like the catalogue's). The stars are given catalogue names and coordinates in a
hand-written ``ident.dat`` per class folder: the curves are real, their names and classes are fixtures.
"""

import io
import shutil
import tarfile

import numpy as np
import pytest
from loopback_server import serve_folder
from survey_fixtures import package_folder

from astromer_hf.data.builder import SurveyDataError, cleaning_report
from astromer_hf.data.download import DownloadError, read_manifest
from astromer_hf.data.surveys import ogle3
from astromer_hf.data.surveys.ogle3 import Ogle3Config, Ogle3VariableStars, parse_ident_line, read_photometry


def _columns(path, skip_prefixes=("\\", "|"), jd_offset=0.0):
    """Text lines ``t mag err`` of the first three columns of a MulensModel file (t in HJD - 2450000)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith(skip_prefixes):
            continue
        t, mag, err = line.split()[:3]
        if jd_offset:
            decimals = len(t.split(".")[1])
            t = f"{float(t) - jd_offset:.{decimals}f}"
        lines.append(f"{t} {mag} {err}")
    return lines


def _cep_line(star_id, field, db, mode, ra, dec, ogle2=""):  # byte layout of smc/cep's README (colons between)
    return f"{star_id:<17}  {field:<8} {db:>6} {mode:<8}  {ra} {dec} {ogle2}".rstrip()


def _rrlyr_line(star_id, field, db, subtype, ra, dec, ogle2=""):  # byte layout of lmc/rrlyr's README (spaces)
    return f"{star_id:<20}  {field:<8} {db:>6} {subtype:<5}  {ra} {dec} {ogle2}".rstrip()


# id -> (class, subclass, field, ra degrees, dec degrees)
STARS = {
    "OGLE-LMC-CEP-0001": ("cep", "F", "LMC175.5", 15 * (5 + 21 / 60 + 45.12 / 3600), -(69 + 30 / 60 + 12.5 / 3600)),
    "OGLE-LMC-CEP-0002": ("cep", "1O", "LMC100.1", 15 * (4 + 35 / 60 + 41.86 / 3600), -(0 + 30 / 60 + 7.0 / 3600)),
    "OGLE-LMC-RRLYR-00001": ("rrlyr", "RRab", "LMC162.3", 15 * (5 + 2 / 60 + 3.04 / 3600), -(70 + 1 / 60 + 2.3 / 3600)),
    "OGLE-LMC-RRLYR-00002": ("rrlyr", "RRc", "LMC162.4", 15 * (23 + 59 / 60 + 59.99 / 3600), 1 + 2 / 60 + 3.4 / 3600),
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The served folder and, per (star, band), the [N, 3] values written (HJD - 2450000, mag, err)."""
    source = package_folder("MulensModel") / "data" / "photometry_files"
    curves = {
        ("OGLE-LMC-CEP-0001", "I"): _columns(source / "OB05086" / "starBLG234.6.I.218982.dat"),
        ("OGLE-LMC-CEP-0002", "I"): _columns(source / "OB08092" / "phot_ob08092_O4.dat"),
        ("OGLE-LMC-RRLYR-00001", "I"): _columns(source / "OB140939" / "ob140939_OGLE.dat", jd_offset=2450000.0),
        ("OGLE-LMC-RRLYR-00002", "I"): _columns(source / "OB03235" / "OB03235_OGLE.tbl.txt", jd_offset=2450000.0),
    }
    # cleaning material: a row with a zero error in a real curve, and a V curve too short to keep
    cep1 = curves[("OGLE-LMC-CEP-0001", "I")]
    cep1[10] = " ".join(cep1[10].split()[:2] + ["0.000"])
    curves[("OGLE-LMC-CEP-0002", "V")] = curves[("OGLE-LMC-CEP-0002", "I")][:3]
    # a V curve made of real rows of another star (the fixture has no V photometry of its own)
    curves[("OGLE-LMC-RRLYR-00002", "V")] = curves[("OGLE-LMC-RRLYR-00001", "I")][100:200]

    root = tmp_path_factory.mktemp("ogle3_server")
    idents = {
        "cep": [
            _cep_line("OGLE-LMC-CEP-0001", "LMC175.5", 21218, "F", "05:21:45.12", "-69:30:12.5", "OGLE050549.22-6"),
            _cep_line("OGLE-LMC-CEP-0002", "LMC100.1", 7401, "1O", "04:35:41.86", "-00:30:07.0"),
        ],
        "rrlyr": [
            _rrlyr_line("OGLE-LMC-RRLYR-00001", "LMC162.3", 123, "RRab", "05 02 03.04", "-70 01 02.3", "LMC_SC1 12"),
            _rrlyr_line("OGLE-LMC-RRLYR-00002", "LMC162.4", 4567, "RRc", "23 59 59.99", "+01 02 03.4"),
            # catalogued but without photometry in the archive: no rows
            _rrlyr_line("OGLE-LMC-RRLYR-00003", "LMC162.4", 4568, "RRd", "00 00 00.00", "+00 00 00.0"),
        ],
    }
    for name, lines in idents.items():
        folder = root / "lmc" / name
        folder.mkdir(parents=True)
        (folder / "ident.dat").write_text("\n".join(lines) + "\n")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for (star, band), rows in curves.items():
                if STARS[star][0] != name:
                    continue
                body = ("\n".join(rows) + "\n").encode()
                (folder / "phot" / band).mkdir(parents=True, exist_ok=True)
                (folder / "phot" / band / f"{star}.dat").write_bytes(body)
                prefix = "phot" if name == "cep" else "./phot"  # both member spellings
                info = tarfile.TarInfo(f"{prefix}/{band}/{star}.dat")
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
        (folder / "phot.tar.gz").write_bytes(buffer.getvalue())
    values = {key: np.loadtxt(io.StringIO("\n".join(rows)), ndmin=2) for key, rows in curves.items()}
    return root, values


def _build(tmp_path, server_url, cache="cache", classes=("cep", "rrlyr"), **kwargs):
    builder = Ogle3VariableStars(
        config_name="lmc",
        classes=classes,
        cache_dir=str(tmp_path / cache),
        base_url=server_url,
        download_dir=str(tmp_path / "downloads"),
        split_fractions=(1.0, 0.0, 0.0),
        **kwargs,
    )
    builder.download_and_prepare()
    return builder.as_dataset()["train"]


def _expected(values):
    rows = {}
    for (star, band), curve in values.items():
        good = (curve[:, 2] > 0) & (curve[:, 2] < 1)
        if good.sum() >= 5:
            rows[(star, band)] = curve[good]
    return rows


def test_ident_lines_of_both_separators():
    star = parse_ident_line("OGLE-LMC-DSCT-0001 LMC100.1  12345 SINGLEMODE  5:21:45.12 -69:30:12.5 OGLE052145.12")
    assert star.object_id == "OGLE-LMC-DSCT-0001" and star.field == "LMC100.1" and star.subclass == "SINGLEMODE"
    assert star.ra == pytest.approx(15 * (5 + 21 / 60 + 45.12 / 3600), abs=1e-12)
    assert star.dec == pytest.approx(-(69 + 30 / 60 + 12.5 / 3600), abs=1e-12)
    spaced = parse_ident_line("OGLE-BLG-RRLYR-00001  BLG100.1  99 RRab  17 59 01.00 -00 10 00.0  MACHO 1.2.3")
    assert spaced.subclass == "RRab" and spaced.dec == pytest.approx(-10 / 60, abs=1e-12) and spaced.ra > 269
    assert parse_ident_line("   \n") is None
    with pytest.raises(ValueError, match="no sexagesimal"):
        parse_ident_line("OGLE-LMC-CEP-0001 LMC175.5 1 F")


def test_configurations_are_checked(tmp_path):
    assert Ogle3Config(name="all").fields == ("lmc", "smc", "blg")
    assert Ogle3Config(name="smc", classes=["CEP"]).classes == ("cep",)
    with pytest.raises(ValueError, match="not catalogued"):
        Ogle3Config(name="blg", classes=("dsct",))
    with pytest.raises(ValueError, match="unknown OGLE-III field"):
        Ogle3Config(name="x", fields=("m31",))
    with pytest.raises(ValueError, match="bands"):
        Ogle3Config(name="lmc", bands=("R",))
    blg = Ogle3VariableStars(config_name="blg", cache_dir=str(tmp_path))
    assert blg.class_names() == ("cep", "t2cep", "rrlyr", "lpv")


def test_archive_layout_row_by_row_and_download_cache(tmp_path, tree):
    root, values = tree
    expected = _expected(values)
    with serve_folder(root) as (url, requests):
        train = _build(tmp_path, url)
        assert sorted(requests) == ["/lmc/cep/ident.dat", "/lmc/cep/phot.tar.gz",
                                    "/lmc/rrlyr/ident.dat", "/lmc/rrlyr/phot.tar.gz"]
        assert train.features["label"].names == ["cep", "rrlyr"]
        assert sorted((r["object_id"], r["band"]) for r in train) == sorted(expected)
        names = train.features["label"].names
        for row in train:
            star = row["object_id"]
            label, subclass, field, ra, dec = STARS[star]
            curve = expected[(star, row["band"])]
            time = np.array(row["time"], dtype=np.float64)
            np.testing.assert_array_equal(time, curve[:, 0] + 49999.5)  # float64, exact
            np.testing.assert_array_equal(np.array(row["mag"]), curve[:, 1].astype(np.float32))
            np.testing.assert_array_equal(np.array(row["mag_err"]), curve[:, 2].astype(np.float32))
            assert names[row["label"]] == label and row["subclass"] == subclass and row["field"] == field
            assert row["ra"] == pytest.approx(ra, abs=1e-9) and row["dec"] == pytest.approx(dec, abs=1e-9)
            assert row["survey"] == "ogle3" and row["n_obs"] == len(curve)
        first = next(r for r in train if r["object_id"] == "OGLE-LMC-CEP-0001")
        assert first["time"][0] == 2127.52182 + 49999.5  # HJD-2450000 of the file -> MJD
        report = cleaning_report(train.info)["train"]
        assert report["curves_in"] == len(values) and report["curves_out"] == len(expected)
        assert report["bad_error_rows"] == 1 and report["short_curves"] == 1

        # a second preparation (fresh cache) reuses the downloads: no new request
        count = len(requests)
        again = _build(tmp_path, url, cache="cache2")
        assert len(requests) == count and len(again) == len(train)


def test_per_star_files_match_the_archive(tmp_path, tree):
    root, values = tree
    served = tmp_path / "served"
    shutil.copytree(root, served)
    ident = served / "lmc" / "rrlyr" / "ident.dat"  # without the star that has no photometry files
    ident.write_text("".join(line for line in ident.open() if "RRLYR-00003" not in line))
    with serve_folder(served) as (url, requests):
        train = _build(tmp_path, url, photometry="files")
        asked = set(requests)
        assert "/lmc/cep/phot.tar.gz" not in asked and "/lmc/cep/phot/I/OGLE-LMC-CEP-0001.dat" in asked
        assert "/lmc/rrlyr/phot/V/OGLE-LMC-RRLYR-00001.dat" in asked  # 404: no V photometry, skipped
        assert sorted((r["object_id"], r["band"]) for r in train) == sorted(_expected(values))
        count = len(requests)
        _build(tmp_path, url, cache="cache2", photometry="files")
        assert len(requests) == count  # cached files and remembered 404s of V files


def test_missing_files_name_the_url(tmp_path, tree):
    root, _ = tree
    with serve_folder(root) as (url, _requests):
        with pytest.raises(Exception) as failure:
            builder = Ogle3VariableStars(config_name="lmc", classes=("dsct",), cache_dir=str(tmp_path / "c"),
                                         base_url=url, download_dir=str(tmp_path / "d"))
            builder.download_and_prepare()
        text = f"{failure.value} {failure.value.__cause__}"
        assert f"{url}/lmc/dsct/ident.dat" in text and "404" in text

        # a star of ident.dat whose I-band file is missing (per-star layout): an error naming that URL
        with pytest.raises(Exception) as failure:
            _build(tmp_path, url, cache="c3", photometry="files", classes=("rrlyr",))
        text = f"{failure.value} {failure.value.__cause__}"
        assert f"{url}/lmc/rrlyr/phot/I/OGLE-LMC-RRLYR-00003.dat" in text


def test_photometry_is_parsed_only_for_kept_objects(tmp_path, tree, monkeypatch):
    root, _ = tree
    parsed = []
    original = ogle3.read_photometry
    monkeypatch.setattr(ogle3, "read_photometry", lambda data: parsed.append(1) or original(data))
    with serve_folder(root) as (url, _requests):
        builder = Ogle3VariableStars(config_name="lmc", classes=("cep", "rrlyr"), cache_dir=str(tmp_path / "c"),
                                     base_url=url, download_dir=str(tmp_path / "d"))
        sources = builder._sources(None)
        records = list(builder._records(sources, keep=lambda object_id: object_id == "OGLE-LMC-RRLYR-00002"))
    assert [(r["object_id"], r["band"]) for r in records] == [
        ("OGLE-LMC-RRLYR-00002", "I"), ("OGLE-LMC-RRLYR-00002", "V")]
    assert len(parsed) == 2
    assert read_photometry(b"# comment\n\n").shape == (0, 3)


def _served_copy(tmp_path, root):
    served = tmp_path / "served"
    shutil.copytree(root, served)
    return served


def test_a_truncated_archive_served_with_200_is_not_cached_and_a_repaired_mirror_is_asked_again(tmp_path, tree):
    root, values = tree
    served = _served_copy(tmp_path, root)
    archive = served / "lmc" / "cep" / "phot.tar.gz"
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2])  # served with status 200 and the cut length
    cached = tmp_path / "downloads" / "ogle3" / "lmc" / "cep" / "phot.tar.gz"
    with serve_folder(served) as (url, requests):
        with pytest.raises(DownloadError) as failure:
            _build(tmp_path, url, cache="c1")
        message = str(failure.value)
        assert message.startswith("ogle3: ") and f"{url}/lmc/cep/phot.tar.gz" in message and "truncated" in message
        assert not cached.exists() and "phot.tar.gz" not in read_manifest(cached.parent)

        archive.write_bytes(whole)  # the mirror is repaired: the next run asks for the archive again
        asked = requests.count("/lmc/cep/phot.tar.gz")
        train = _build(tmp_path, url, cache="c2")
        assert requests.count("/lmc/cep/phot.tar.gz") == asked + 1
    assert sorted((r["object_id"], r["band"]) for r in train) == sorted(_expected(values))


def _garbage_member_archive():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        body = b"<html><body>Please log in to download OGLE-LMC-RRLYR-00001</body></html>\n"
        info = tarfile.TarInfo("phot/I/OGLE-LMC-RRLYR-00001.dat")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


@pytest.mark.parametrize("garbage", ["an error page", "an archive of error pages"])
def test_a_garbage_archive_names_the_survey_and_the_file_and_is_not_kept(tmp_path, tree, garbage):
    root, values = tree
    served = _served_copy(tmp_path, root)
    archive = served / "lmc" / "rrlyr" / "phot.tar.gz"
    whole = archive.read_bytes()
    archive.write_bytes(b"<!DOCTYPE html><html><body>Service unavailable</body></html>" if garbage == "an error page"
                        else _garbage_member_archive())
    cached = tmp_path / "downloads" / "ogle3" / "lmc" / "rrlyr" / "phot.tar.gz"
    with serve_folder(served) as (url, requests):
        with pytest.raises((DownloadError, SurveyDataError)) as failure:
            _build(tmp_path, url, cache="c1")
        message = str(failure.value)
        assert message.startswith("ogle3: ") and "phot.tar.gz" in message and f"{url}/lmc/rrlyr/phot.tar.gz" in message
        if garbage == "an error page":  # refused before it reached the cache
            assert isinstance(failure.value, DownloadError) and "not a gzip file" in message
        else:  # a readable archive whose photometry is not: the parse failure names the file, which is deleted
            assert isinstance(failure.value, SurveyDataError) and str(cached) in message and "deleted" in message
        assert not cached.exists() and "phot.tar.gz" not in read_manifest(cached.parent)

        archive.write_bytes(whole)
        asked = requests.count("/lmc/rrlyr/phot.tar.gz")
        train = _build(tmp_path, url, cache="c2")
        assert requests.count("/lmc/rrlyr/phot.tar.gz") == asked + 1
    assert sorted((r["object_id"], r["band"]) for r in train) == sorted(_expected(values))
