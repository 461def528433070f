"""Gaia DR3 epoch photometry through a real loopback HTTP server: DataLink answers in the flat and per-transit
CSV layouts (hand-written rows in the archive's column formats), TAP classes, checked row by row."""

from __future__ import annotations

import io
import math
import urllib.parse
import zipfile

import numpy as np
import pandas as pd
import pytest
from loopback_server import query_file_name, serve_folder

from astromer_hf.data.builder import cleaning_report
from astromer_hf.data.download import DownloadError
from astromer_hf.data.surveys.gaia import GaiaEpochPhotometry, parse_epoch_photometry

SOURCES = [4111834567779557376, 5284240582308398080, 1635721458409799680, 2036212876574547968]
CLASSES = {4111834567779557376: "RR", 5284240582308398080: "ECL", 2036212876574547968: "LPV"}  # third: none
MEAN_G = {SOURCES[0]: 15.42, SOURCES[1]: 16.87, SOURCES[2]: 17.91, SOURCES[3]: 15.05}
ZERO_POINTS = {"G": 25.6874, "BP": 25.3385, "RP": 24.7479}  # DR3 Vega zero points, for realistic fluxes
COLOURS = {"G": 0.0, "BP": 0.35, "RP": -0.55}
SOLUTION_ID = 375316653866487564
N_TRANSITS = 34


def transits_of(source_id: int) -> list[dict]:
    """Per transit: text fields of each band (time, mag, flux, flux_error, over_error) and flags, or None."""
    rng = np.random.default_rng(source_id % 1000)
    times = np.sort(rng.uniform(1700.0, 2700.0, N_TRANSITS))
    out = []
    for k, t in enumerate(times):
        transit = {"transit_id": 17091138263024135 + 1_000_000_000 * k + source_id % 997}
        for band in ("G", "BP", "RP"):
            if band != "G" and k % 17 == 7:
                transit[band] = None  # no BP/RP photometry at this transit
                continue
            mag = MEAN_G[source_id] + COLOURS[band] + 0.3 * math.sin(2.1 * t) + rng.normal(0, 0.01)
            flux = 10 ** (-0.4 * (mag - ZERO_POINTS[band]))
            error = flux / rng.uniform(150.0, 900.0)
            time = t if band == "G" else t + 0.0000463 * (1 if band == "BP" else 2)
            transit[band] = {
                "time": f"{time:.10f}",
                "mag": f"{mag:.6f}",
                "flux": f"{flux:.4f}",
                "flux_error": f"{error:.5f}",
                "over": f"{flux / error:.3f}",
                "phot_reject": band == "BP" and k % 13 == 5,
                "var_reject": k % 11 == 3,
            }
        out.append(transit)
    return out


DATA = {source_id: transits_of(source_id) for source_id in SOURCES}
LONG_HEADER = ("source_id,transit_id,band,time,mag,flux,flux_error,flux_over_error,rejected_by_photometry,"
               "rejected_by_variability,other_flags,solution_id")
PER_TRANSIT_HEADER = [
    "solution_id", "source_id", "n_transits", "transit_id",
    "g_transit_time", "g_transit_flux", "g_transit_flux_error", "g_transit_flux_over_error", "g_transit_mag",
    "g_transit_n_obs", "bp_obs_time", "bp_flux", "bp_flux_error", "bp_flux_over_error", "bp_mag",
    "rp_obs_time", "rp_flux", "rp_flux_error", "rp_flux_over_error", "rp_mag",
    "variability_flag_g_reject", "variability_flag_bp_reject", "variability_flag_rp_reject",
]


def long_csv(source_ids) -> str:
    lines = [LONG_HEADER]
    for source_id in source_ids:
        for transit in DATA[source_id]:
            for band in ("G", "BP", "RP"):
                v = transit[band]
                if v is None:
                    continue
                flags = "1" if v["phot_reject"] else "0"
                lines.append(
                    f"{source_id},{transit['transit_id']},{band},{v['time']},{v['mag']},{v['flux']},"
                    f"{v['flux_error']},{v['over']},{str(v['phot_reject']).lower()},{str(v['var_reject']).lower()},"
                    f"{flags},{SOLUTION_ID}"
                )
    return "\n".join(lines) + "\n"


def per_transit_fields(transit: dict) -> dict:
    fields = {}
    for band, prefix, names in (
        ("G", "g_transit_", ("time", "flux", "flux_error", "flux_over_error", "mag")),
        ("BP", "bp_", ("obs_time", "flux", "flux_error", "flux_over_error", "mag")),
        ("RP", "rp_", ("obs_time", "flux", "flux_error", "flux_over_error", "mag")),
    ):
        v = transit[band]
        keys = ("time", "flux", "flux_error", "over", "mag")
        for name, key in zip(names, keys):
            fields[prefix + name] = "" if v is None else v[key]
        # the per-transit layout here carries the rejections as variability flags (both kinds, see the module)
        fields[f"variability_flag_{band.lower()}_reject"] = (
            "false" if v is None else str(v["phot_reject"] or v["var_reject"]).lower()
        )
    fields["g_transit_n_obs"] = "9"
    fields["transit_id"] = str(transit["transit_id"])
    return fields


def per_transit_csv(source_ids, arrays: bool) -> str:
    lines = [",".join(PER_TRANSIT_HEADER)]
    for source_id in source_ids:
        rows = [per_transit_fields(t) for t in DATA[source_id]]
        common = {"solution_id": str(SOLUTION_ID), "source_id": str(source_id), "n_transits": str(len(rows))}
        if arrays:  # one row per source, array cells (missing values as NaN)
            cells = [common.get(n) or '"[' + ",".join(r[n] or "NaN" for r in rows) + ']"' for n in PER_TRANSIT_HEADER]
            lines.append(",".join(cells))
        else:
            lines += [",".join(common.get(n) or r[n] for n in PER_TRANSIT_HEADER) for r in rows]
    return "\n".join(lines) + "\n"


def zipped(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def datalink_params(batch, structure):
    return {
        "RETRIEVAL_TYPE": "EPOCH_PHOTOMETRY",
        "ID": ",".join(f"Gaia DR3 {s}" for s in batch),
        "FORMAT": "CSV",
        "DATA_STRUCTURE": structure,
        "RELEASE": "Gaia DR3",
    }


def tap_params(batch):
    return {
        "REQUEST": "doQuery",
        "LANG": "ADQL",
        "FORMAT": "csv",
        "QUERY": "SELECT source_id, best_class_name FROM gaiadr3.vari_classifier_result "
        f"WHERE source_id IN ({','.join(map(str, batch))})",
    }


def serve_file(folder, path, params, body):
    target = folder / query_file_name(f"/{path}?{urllib.parse.urlencode(params)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body if isinstance(body, bytes) else body.encode())


def write_server(folder):
    batches = [SOURCES[0:2], SOURCES[2:4]]
    for batch in [*batches, SOURCES]:  # batch_size 2 and 4
        # INDIVIDUAL: a ZIP with one flat CSV per source; COMBINED: per-transit rows; RAW: per-source arrays
        individual = zipped({f"EPOCH_PHOTOMETRY-Gaia DR3 {s}.csv": long_csv([s]) for s in batch})
        serve_file(folder, "data-server/data", datalink_params(batch, "INDIVIDUAL"), individual)
        serve_file(folder, "data-server/data", datalink_params(batch, "COMBINED"), per_transit_csv(batch, False))
        serve_file(folder, "data-server/data", datalink_params(batch, "RAW"), per_transit_csv(batch, True))
        tap = "source_id,best_class_name\n" + "".join(f"{s},{CLASSES[s]}\n" for s in batch if s in CLASSES)
        serve_file(folder, "tap-server/tap/sync", tap_params(batch), tap)
    return batches


def build(tmp_path, url, name, **fields):
    builder = GaiaEpochPhotometry(
        config_name="default",
        cache_dir=str(tmp_path / f"cache_{name}"),
        base_url=url,
        download_dir=str(tmp_path / f"downloads_{name}"),
        split_fractions=(1.0, 0.0, 0.0),
        source_ids=SOURCES,
        **fields,
    )
    builder.download_and_prepare()
    return builder, builder.as_dataset()["train"]


def expected_rows():
    rows = {}
    for source_id, transits in DATA.items():
        for band in ("G", "BP", "RP"):
            observed = [t[band] for t in transits if t[band] is not None]
            kept = [v for v in observed if not (v["phot_reject"] or v["var_reject"])]
            rows[(str(source_id), band)] = (kept, len(observed) - len(kept))
    return rows


@pytest.fixture()
def server(tmp_path):
    folder = tmp_path / "server"
    batches = write_server(folder)
    with serve_folder(folder) as (url, requests):
        yield url, requests, batches


def check_rows(train):
    expected = expected_rows()
    assert sorted((r["object_id"], r["band"]) for r in train) == sorted(expected)
    names = train.features["label"].names
    assert names == ["ECL", "LPV", "RR"]
    for row in train:
        kept, n_rejected = expected[(row["object_id"], row["band"])]
        assert row["survey"] == "gaia_dr3" and row["source_id"] == int(row["object_id"])
        assert row["n_rejected"] == n_rejected > 0 and row["n_obs"] == len(kept)
        time = np.array([float(v["time"]) for v in kept]) + 55197.0
        order = np.argsort(time, kind="stable")
        assert np.array(row["time"]).dtype == np.float64
        np.testing.assert_array_equal(np.array(row["time"]), time[order])  # exact float64
        flux = np.array([float(v["flux"]) for v in kept])[order]
        error = np.array([float(v["flux_error"]) for v in kept])[order]
        np.testing.assert_allclose(row["mag"], np.array([float(v["mag"]) for v in kept])[order], rtol=1e-7)
        np.testing.assert_allclose(row["mag_err"], 2.5 / np.log(10) * error / flux, rtol=1e-6)
        np.testing.assert_allclose(row["flux"], flux, rtol=1e-7)
        np.testing.assert_allclose(row["flux_err"], error, rtol=1e-7)
        assert 14.0 < np.median(row["mag"]) < 18.5 and 1700 + 55197 < row["time"][0] < 2700 + 55197
        label = CLASSES.get(int(row["object_id"]))
        assert (names[row["label"]] if row["label"] is not None else None) == label
        assert row["ra"] is None and row["dec"] is None


def test_flat_layout_row_by_row_and_query_parameters(tmp_path, server):
    url, requests, batches = server
    _, train = build(tmp_path, url, "flat", batch_size=2)
    check_rows(train)
    report = cleaning_report(train.info)["train"]
    assert report["curves_out"] == len(SOURCES) * 3
    # what was sent: two TAP queries and two DataLink requests, one per batch of two ids
    sent = [urllib.parse.urlsplit(r) for r in requests]
    datalink = [urllib.parse.parse_qs(s.query) for s in sent if s.path == "/data-server/data"]
    tap = [urllib.parse.parse_qs(s.query) for s in sent if s.path == "/tap-server/tap/sync"]
    assert len(datalink) == 2 and len(tap) == 2 and len(sent) == 4
    for query, batch in zip(datalink, batches):
        assert query == {
            "RETRIEVAL_TYPE": ["EPOCH_PHOTOMETRY"],
            "ID": [f"Gaia DR3 {batch[0]},Gaia DR3 {batch[1]}"],
            "FORMAT": ["CSV"],
            "DATA_STRUCTURE": ["INDIVIDUAL"],
            "RELEASE": ["Gaia DR3"],
        }
    for query, batch in zip(tap, batches):
        assert query["REQUEST"] == ["doQuery"] and query["LANG"] == ["ADQL"] and query["FORMAT"] == ["csv"]
        assert query["QUERY"] == [
            f"SELECT source_id, best_class_name FROM gaiadr3.vari_classifier_result WHERE source_id IN "
            f"({batch[0]},{batch[1]})"
        ]


def test_all_layouts_give_identical_datasets(tmp_path, server):
    url, requests, _ = server
    tables = {}
    for structure in ("INDIVIDUAL", "COMBINED", "RAW"):
        _, train = build(tmp_path, url, structure, batch_size=2, data_structure=structure)
        tables[structure] = train.sort("object_id").to_pandas()
    check_rows(train)
    for structure in ("COMBINED", "RAW"):
        left, right = tables["INDIVIDUAL"], tables[structure]
        assert list(left.columns) == list(right.columns)
        for column in left.columns:
            for a, b in zip(left[column], right[column]):
                if isinstance(a, np.ndarray):
                    np.testing.assert_array_equal(a, b)
                else:
                    assert a == b or (pd.isna(a) and pd.isna(b)), column


def test_band_selection_user_classes_and_no_classes(tmp_path, server):
    url, requests, _ = server
    classes = tmp_path / "my_classes.csv"
    classes.write_text(f"source_id,best_class_name\n{SOURCES[2]},CEP\n{SOURCES[0]},RR\n")
    _, train = build(tmp_path, url, "user", batch_size=4, data_structure="RAW", bands=["bp", "G"],
                     classes_file=str(classes))
    assert not any("tap-server" in r for r in requests)  # no TAP query with a classes file
    assert sorted(set(train["band"])) == ["BP", "G"] and len(train) == 2 * len(SOURCES)
    names = train.features["label"].names
    assert names == ["CEP", "RR"]
    labels = {r["object_id"]: (names[r["label"]] if r["label"] is not None else None) for r in train}
    assert labels == {str(SOURCES[0]): "RR", str(SOURCES[1]): None, str(SOURCES[2]): "CEP", str(SOURCES[3]): None}
    _, plain = build(tmp_path, url, "none", batch_size=2, with_classes=False, bands=("RP",))
    assert plain.features["label"].names == [] and set(plain["label"]) == {None}
    assert set(plain["band"]) == {"RP"} and len(plain) == len(SOURCES)


def test_server_error_names_the_url(tmp_path, server):
    url, requests, _ = server
    builder = GaiaEpochPhotometry(
        config_name="default", cache_dir=str(tmp_path / "c"), base_url=url, download_dir=str(tmp_path / "d"),
        split_fractions=(1.0, 0.0, 0.0), source_ids=[SOURCES[0], 1234567890123456789], with_classes=False,
    )
    with pytest.raises(DownloadError) as failure:
        builder.download_and_prepare()
    message = str(failure.value)
    assert "404" in message and "/data-server/data?RETRIEVAL_TYPE=EPOCH_PHOTOMETRY" in message
    assert "1234567890123456789" in urllib.parse.unquote_plus(message)


def test_rebuild_uses_the_cache(tmp_path, server):
    url, requests, _ = server
    _, first = build(tmp_path, url, "cached", batch_size=2)
    count = len(requests)
    _, second = build(tmp_path, url, "cached", batch_size=2)
    assert len(requests) == count  # neither TAP nor DataLink asked again
    assert second["object_id"] == first["object_id"] and second["n_rejected"] == first["n_rejected"]
    np.testing.assert_array_equal(np.concatenate(second["time"]), np.concatenate(first["time"]))


def test_parser_rejects_unknown_layouts_and_skips_unkept_sources():
    with pytest.raises(ValueError, match="unknown Gaia epoch-photometry layout"):
        list(parse_epoch_photometry("source_id,foo\n1,2\n"))
    parsed = dict(parse_epoch_photometry(long_csv(SOURCES[:2]), keep=lambda s: s == SOURCES[1]))
    assert list(parsed) == [SOURCES[1]] and set(parsed[SOURCES[1]]) == {"G", "BP", "RP"}


def test_config_checks():
    with pytest.raises(ValueError, match="bands"):
        GaiaEpochPhotometry(config_name="default", source_ids=SOURCES, bands=("V",), with_classes=False)
    with pytest.raises(ValueError, match="data_structure"):
        GaiaEpochPhotometry(config_name="default", source_ids=SOURCES, data_structure="X", with_classes=False)
