"""The ZTF builder against a loopback IRSA light-curve service, checked row by row.

Fixture provenance: the photometry served here derives from the real ZTF forced photometry of bright transients
shipped in the PyPI package ``ztfparsnip`` (``BTS_plus_TDE/*_bl.csv``, read as data files, never imported). For each
transient, the epochs with a positive baseline-corrected amplitude ``ampl_corr`` at signal-to-noise >= 3 are turned
into magnitudes with the image zeropoint, ``mag = magzp - 2.5 log10(ampl_corr)`` and
``magerr = 1.0857 ampl_err_corr / ampl_corr``, and written as IRSA ``nph_light_curves`` CSV answers (the DR column
set, ``filtercode`` zg / zr / zi). ``mjd`` (``obsmjd``), ``field`` / ``ccdid`` / ``qid``, ``limitmag``, ``magzp``,
``magzprms``, ``clrcoeff``, ``clrcounc``, ``airmass``, ``chi`` (``chi2dof``) and the object positions come from that
file. Synthetic: the ``oid`` values (one per transient, field, CCD quadrant and filter, as in the data releases), the
per-epoch ``ra`` / ``dec`` scatter, ``catflags`` (bit 32768 on every 9th epoch, bit 4 on every 11th, so that
filtering can be checked), ``expid``, ``hjd`` (= mjd + 2400000.5, no heliocentric correction), ``sharp``,
``exptime`` and ``programid``.
"""

from __future__ import annotations

import math
import urllib.parse

import numpy as np
import pandas as pd
import pytest
from loopback_server import query_file_name, serve_folder
from survey_fixtures import package_folder

from astromer_hf.data.builder import cleaning_report
from astromer_hf.data.download import DownloadError
from astromer_hf.data.surveys.ztf import ZtfConfig, ZtfLightCurves, position_key, queries_without_data

SERVICE = "/cgi-bin/ZTF/nph_light_curves"
HEADER = [
    "oid", "expid", "hjd", "mjd", "mag", "magerr", "catflags", "filtercode", "ra", "dec", "chi", "sharp",
    "filefracday", "field", "ccdid", "qid", "limitmag", "magzp", "magzprms", "clrcoeff", "clrcounc", "exptime",
    "airmass", "programid",
]
TRANSIENTS = ("ZTF20acvmzfv", "ZTF20acuobve", "ZTF18aawgrxz", "ZTF20actpavu")
CODES = {"ZTF_g": ("zg", 1), "ZTF_r": ("zr", 2), "ZTF_i": ("zi", 3)}
FAR_AWAY = (10.0, -60.0)  # a cone with no detection in the fixture


def irsa_rows(name: str, index: int) -> tuple[float, float, list[dict]]:
    """The transient's position and its IRSA-format rows (strings, as they will be written)."""
    path = package_folder("ztfparsnip") / "BTS_plus_TDE" / f"{name}_bl.csv"
    header = dict(line[1:].strip().split("=", 1) for line in path.read_text().splitlines() if line.startswith("#"))
    ra, dec = float(header["ra"]), float(header["dec"])
    table = pd.read_csv(path, comment="#", index_col=0)
    table = table[(table["ampl_corr"] > 0) & (table["ampl_corr"] >= 3 * table["ampl_err_corr"])]
    rows = []
    for (field, ccdid, qid, band), group in table.groupby(["fieldid", "ccdid", "qid", "filter"], sort=True):
        code, filterid = CODES[band]
        oid = str(int(field) * 10**10 + int(ccdid) * 10**8 + int(qid) * 10**7 + filterid * 10**6 + 1000 + index)
        for j, epoch in enumerate(group.sort_values("obsmjd").itertuples()):
            flags = 32768 if j % 9 == 4 else 4 if j % 11 == 7 else 0
            fracday = epoch.filename.split("_")[1]
            rows.append({
                "oid": oid, "expid": str(int(fracday) % 10**8), "hjd": repr(epoch.obsmjd + 2400000.5),
                "mjd": repr(epoch.obsmjd),
                "mag": f"{epoch.magzp - 2.5 * math.log10(epoch.ampl_corr):.6f}",
                "magerr": f"{1.0857 * epoch.ampl_err_corr / epoch.ampl_corr:.6f}",
                "catflags": str(flags), "filtercode": code,
                "ra": f"{ra + 2e-6 * (j % 5 - 2):.7f}", "dec": f"{dec + 1.5e-6 * (j % 3 - 1):.7f}",
                "chi": f"{epoch.chi2dof:.3f}", "sharp": "0.012", "filefracday": fracday,
                "field": str(int(field)), "ccdid": str(int(ccdid)), "qid": str(int(qid)),
                "limitmag": f"{epoch.maglim:.4f}", "magzp": f"{epoch.magzp:.6f}", "magzprms": f"{epoch.magzprms:.6f}",
                "clrcoeff": f"{epoch.clrcoeff:.6f}", "clrcounc": f"{epoch.clrcounc:.7g}", "exptime": "30.0",
                "airmass": f"{epoch.airmass:.3f}", "programid": "1",
            })
    return ra, dec, rows


def csv_text(rows: list[dict]) -> str:
    return "\n".join([",".join(HEADER)] + [",".join(row[c] for c in HEADER) for row in rows]) + "\n"


def write_answer(folder, query: dict, rows: list[dict]) -> str:
    url = f"{SERVICE}?{urllib.parse.urlencode(query)}"
    target = folder / query_file_name(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(csv_text(rows))
    return url


@pytest.fixture(scope="module")
def transients():
    return {name: irsa_rows(name, i) for i, name in enumerate(TRANSIENTS)}


@pytest.fixture(scope="module")
def service(tmp_path_factory, transients):
    """The served folder: one ID answer per oid, one cone answer (2 arcsec, bands g,r) per transient, one empty."""
    folder = tmp_path_factory.mktemp("irsa")
    for ra, dec, rows in transients.values():
        for oid in sorted({row["oid"] for row in rows}):
            write_answer(folder, {"ID": oid, "FORMAT": "csv"}, [row for row in rows if row["oid"] == oid])
        cone = {"POS": f"CIRCLE {ra!r} {dec!r} {2.0 / 3600:.10g}", "BANDNAME": "g,r", "FORMAT": "csv"}
        write_answer(folder, cone, [row for row in rows if row["filtercode"] in ("zg", "zr")])
    far = {"POS": f"CIRCLE {FAR_AWAY[0]!r} {FAR_AWAY[1]!r} {2.0 / 3600:.10g}", "BANDNAME": "g,r", "FORMAT": "csv"}
    write_answer(folder, far, [])
    with serve_folder(folder) as (base_url, requests):
        yield base_url, requests


def expected_curves(rows: list[dict], mask: int = 32768) -> dict[tuple[str, str], dict]:
    """(oid, band) -> what the builder should write, computed from the served strings."""
    curves = {}
    for oid in sorted({row["oid"] for row in rows}):
        group = [row for row in rows if row["oid"] == oid]
        kept = [row for row in group if int(row["catflags"]) & mask == 0]
        if len(kept) < 5:  # min_observations: too short after filtering
            continue
        times = np.array([float(row["mjd"]) for row in kept])
        assert np.all(np.diff(times) > 0)  # no duplicate epochs inside one oid, so cleaning keeps every row
        curves[(oid, group[0]["filtercode"][1])] = dict(
            time=times,
            mag=np.array([float(row["mag"]) for row in kept]),
            mag_err=np.array([float(row["magerr"]) for row in kept]),
            ra=float(np.median([float(row["ra"]) for row in group])),
            dec=float(np.median([float(row["dec"]) for row in group])),
            field=int(group[0]["field"]), ccdid=int(group[0]["ccdid"]), qid=int(group[0]["qid"]),
            n_flagged=sum(int(row["catflags"]) & mask != 0 for row in group),
        )
    return curves


def build(tmp_path, base_url, name="cache", **fields):
    builder = ZtfLightCurves(
        config_name="default", cache_dir=str(tmp_path / name), base_url=base_url,
        download_dir=str(tmp_path / "downloads"), split_fractions=(1.0, 0.0, 0.0), **fields,
    )
    builder.download_and_prepare()
    return builder.as_dataset()["train"]


def check_rows(train, expected, labels):
    assert sorted(zip(train["object_id"], train["band"])) == sorted(expected)
    names = train.features["label"].names
    for row in train:
        want = expected[(row["object_id"], row["band"])]
        np.testing.assert_array_equal(np.array(row["time"], dtype=np.float64), want["time"])  # float64, exact
        np.testing.assert_allclose(row["mag"], want["mag"], rtol=0, atol=2e-6)  # float32 storage
        np.testing.assert_allclose(row["mag_err"], want["mag_err"], rtol=1e-6)
        assert row["ra"] == want["ra"] and row["dec"] == want["dec"]
        assert (row["field"], row["ccdid"], row["qid"]) == (want["field"], want["ccdid"], want["qid"])
        assert row["n_flagged"] == want["n_flagged"] and row["n_obs"] == len(want["time"])
        assert row["survey"] == "ztf"
        label = labels.get(row["object_id"])
        assert (names[row["label"]] if row["label"] is not None else None) == label


def test_object_ids_row_by_row_with_labels_flags_and_cache(tmp_path, service, transients):
    base_url, requests = service
    rows = transients["ZTF20acvmzfv"][2] + transients["ZTF18aawgrxz"][2]
    oids = sorted({row["oid"] for row in rows})
    labels = {oid: "SN Ic-BL" for oid in oids if row_of(rows, oid)["filtercode"] != "zi"}
    first = len(requests)
    train = build(tmp_path, base_url, object_ids=oids, labels=labels)

    expected = expected_curves(rows)
    assert {band for _, band in expected} == {"g", "r", "i"} and len(expected) >= 4
    assert train.features["label"].names == ["SN Ic-BL"]
    check_rows(train, expected, labels)
    assert sum(train["n_flagged"]) > 0
    report = cleaning_report(train.info)["train"]
    assert report["observations_out"] == sum(len(c["time"]) for c in expected.values())

    # one request per object, with exactly the documented parameters
    sent = [urllib.parse.urlsplit(path) for path in requests[first:]]
    assert [s.path for s in sent] == [SERVICE] * len(oids)
    assert [urllib.parse.parse_qs(s.query) for s in sent] == [{"ID": [oid], "FORMAT": ["csv"]} for oid in oids]

    # a rebuild into a new cache reads the downloaded answers: no request at all
    again = build(tmp_path, base_url, name="cache2", object_ids=oids, labels=labels)
    assert len(requests) == first + len(oids)
    assert sorted(again["object_id"]) == sorted(train["object_id"])


def row_of(rows, oid):
    return next(row for row in rows if row["oid"] == oid)


def test_catflags_mask_zero_keeps_every_epoch_and_bands_select(tmp_path, service, transients):
    base_url, _ = service
    rows = transients["ZTF18aawgrxz"][2]
    oids = sorted({row["oid"] for row in rows})
    train = build(tmp_path, base_url, object_ids=oids, catflags_mask=0, bands=["i"])
    expected = {key: value for key, value in expected_curves(rows, mask=0).items() if key[1] == "i"}
    assert len(expected) == 1
    check_rows(train, expected, {})
    assert train["n_flagged"] == [0]
    # a mask of bit 4 only drops the other flagged epochs
    train = build(tmp_path, base_url, name="cache4", object_ids=oids, catflags_mask=4, bands=["g"])
    expected = {key: value for key, value in expected_curves(rows, mask=4).items() if key[1] == "g"}
    check_rows(train, expected, {})


def test_positions_find_every_object_in_the_cone(tmp_path, service, transients):
    base_url, requests = service
    positions = [list(transients[name][:2]) for name in ("ZTF20actpavu", "ZTF20acuobve")] + [list(FAR_AWAY)]
    key = position_key(*positions[0])
    rows_pavu = transients["ZTF20actpavu"][2]
    own = next(row["oid"] for row in rows_pavu if row["filtercode"] == "zr")
    labels = {key: "SN Ia", own: "SN II"}
    first = len(requests)
    train = build(tmp_path, base_url, positions=positions, radius_arcsec=2.0, bands=["g", "r"], labels=labels)

    rows = rows_pavu + transients["ZTF20acuobve"][2]
    expected = {k: v for k, v in expected_curves(rows).items() if k[1] in ("g", "r")}
    assert len({oid for oid, _ in expected if oid.endswith("1003")}) == 4  # two fields x two bands
    want_labels = {oid: ("SN II" if oid == own else "SN Ia") for oid in {r["oid"] for r in rows_pavu}}
    assert train.features["label"].names == ["SN II", "SN Ia"]
    check_rows(train, expected, want_labels)

    sent = [urllib.parse.parse_qs(urllib.parse.urlsplit(path).query) for path in requests[first:]]
    assert len(sent) == 3
    for query, (ra, dec) in zip(sent, positions):
        assert query["BANDNAME"] == ["g,r"] and query["FORMAT"] == ["csv"] and "ID" not in query
        shape, q_ra, q_dec, radius = query["POS"][0].split(" ")
        assert shape == "CIRCLE" and (float(q_ra), float(q_dec)) == (ra, dec)
        assert float(radius) == pytest.approx(2.0 / 3600, rel=1e-9)
    # the empty answer yields nothing, and is reported
    assert queries_without_data(train.info) == [f"pos:{position_key(*FAR_AWAY)}"]


def test_a_server_error_names_the_url(tmp_path, service):
    base_url, _ = service
    with pytest.raises(Exception) as failure:
        build(tmp_path, base_url, object_ids=[123456789012345])
    chain, error = [], failure.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    download_errors = [e for e in chain if isinstance(e, DownloadError)]
    assert download_errors and "404" in str(download_errors[0])
    assert f"{base_url}{SERVICE}?ID=123456789012345&FORMAT=csv" in str(download_errors[0])


def test_configuration_is_checked():
    with pytest.raises(ValueError, match="object_ids or positions"):
        ZtfLightCurves(config_name="default").queries()
    with pytest.raises(ValueError, match="bands"):
        ZtfConfig(name="x", object_ids=[1], bands=["u"])
    with pytest.raises(ValueError, match="oid"):
        ZtfConfig(name="x", object_ids=["ZTF20acvmzfv"])
    with pytest.raises(ValueError, match="position"):
        ZtfConfig(name="x", positions=[[400.0, 0.0]])
    with pytest.raises(ValueError, match="radius"):
        ZtfConfig(name="x", positions=[[1.0, 0.0]], radius_arcsec=0)
