"""The ATLAS-VAR builder against a loopback mirror, checked row by row.

The photometry is REAL: the eight ASAS light curves shipped by ``cesium`` (``asas_training_subset.tar.gz``), written
as ATLAS detections. Their times (HJD - 2450000) are shifted by +49999.5 to MJD-like values, the even rows become
"o"-filter detections and the odd rows "c"-filter ones. The ATLAS classes are assigned by this test (Mira -> MIRA or
LPV, Cepheids -> PULSE or DBF, W UMa -> CBF or CBH), plus a ``dubious`` row and a catalogued object whose light-curve
file is absent (404). Catalogue and detections use the CSV layout documented in ``astromer_hf/data/surveys/atlas.py``.
"""

from __future__ import annotations

import functools
import io
import tarfile

import numpy as np
import pandas as pd
import pytest
from loopback_server import serve_folder
from survey_fixtures import package_folder

import astromer_hf.data.builder as builder_module
from astromer_hf.data.builder import cleaning_report
from astromer_hf.data.download import download_file, join_url
from astromer_hf.data.surveys.atlas import ASTROMER5_OF, AtlasVariableStars, missing_lightcurves

CATALOGUE = "hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.csv"
ATLAS_CLASS_OF = {"Mira": ["MIRA", "LPV", "MIRA"], "Classical_Cepheid": ["PULSE", "DBF"], "W_Ursae_Maj": ["CBF", "CBH"]}


@pytest.fixture(scope="module")
def asas():
    folder = package_folder("cesium") / "tests" / "data"
    classes = pd.read_csv(folder / "asas_training_subset_classes_with_metadata.dat")
    curves = []
    with tarfile.open(folder / "asas_training_subset.tar.gz") as tar:
        for number, target in zip(classes["filename"], classes["target"]):
            text = tar.extractfile(f"asas_training_subset/{number}.dat").read().decode()
            curves.append((str(number), target, np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)))
    return curves


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(builder_module, "download_file", functools.partial(download_file, backoff=0.01))


def write_mirror(folder, asas):
    """Catalogue + detection files; returns {object_id: (atlas_class, ra, dec, {band: [N, 3] expected})}."""
    (folder / "detection").mkdir(parents=True)
    used = {name: 0 for name in ATLAS_CLASS_OF}
    rows, expected = [], {}
    for i, (number, target, values) in enumerate(asas):
        atlas_class = ATLAS_CLASS_OF[target][used[target] % len(ATLAS_CLASS_OF[target])]
        used[target] += 1
        object_id = f"ATO J{100 + i:03d}.{number}+{10 + i:02d}.5000"
        ra, dec = 100.0 + i + int(number) / 1e6, 10.5 + i
        rows.append({"ATO_ID": object_id, "RA": repr(ra), "Dec": repr(dec), "CLASS": atlas_class})
        mjd = values[:, 0] + 49999.5
        bands = np.where(np.arange(len(values)) % 2 == 0, "o", "c")
        flags = np.where(np.arange(len(values)) % 7 == 3, 2, 0)
        pd.DataFrame({"mjd": [repr(float(t)) for t in mjd], "m": values[:, 1], "dm": values[:, 2], "filter": bands,
                      "flags": flags}).to_csv(folder / "detection" / f"{object_id}.csv", index=False)
        per_band = {}
        for band in ("o", "c"):
            chosen = np.column_stack([mjd, values[:, 1], values[:, 2]])[bands == band]
            per_band[band] = (chosen, flags[bands == band])
        expected[object_id] = (atlas_class, ra, dec, per_band)
    rows.append({"ATO_ID": "ATO J200.0000+00.0000", "RA": "200.0", "Dec": "0.0", "CLASS": "dubious"})
    rows.append({"ATO_ID": "ATO J201.0000-01.0000", "RA": "201.0", "Dec": "-1.0", "CLASS": "CBH"})  # no file: 404
    pd.DataFrame(rows).to_csv(folder / CATALOGUE, index=False)
    return expected


def clean(values: np.ndarray) -> np.ndarray:
    good = (values[:, 2] > 0) & (values[:, 2] < 1) & np.isfinite(values).all(axis=1)
    values = values[good]
    return values[np.argsort(values[:, 0], kind="stable")]


def build(tmp_path, url, config="catalogue", tag="a", **fields):
    builder = AtlasVariableStars(
        config_name=config, cache_dir=str(tmp_path / f"cache_{tag}"), base_url=url,
        download_dir=str(tmp_path / f"downloads_{tag}"), split_fractions=(1.0, 0.0, 0.0), **fields,
    )
    builder.download_and_prepare()
    return builder.as_dataset()["train"]


def check_rows(train, expected, label_of, bands=("o", "c"), drop_flagged=False):
    names = train.features["label"].names
    seen = set()
    for row in train:
        atlas_class, ra, dec, per_band = expected[row["object_id"]]
        values, flags = per_band[row["band"]]
        if drop_flagged:
            values = values[flags == 0]
        values = clean(values)
        assert row["survey"] == "atlas" and row["atlas_class"] == atlas_class
        assert names[row["label"]] == label_of(atlas_class)
        assert row["ra"] == ra and row["dec"] == dec
        time = np.array(row["time"])
        assert time.dtype == np.float64
        np.testing.assert_array_equal(time, values[:, 0])  # MJD float64, exactly
        np.testing.assert_array_equal(np.array(row["mag"], dtype=np.float32), values[:, 1].astype(np.float32))
        np.testing.assert_array_equal(np.array(row["mag_err"], dtype=np.float32), values[:, 2].astype(np.float32))
        assert row["n_obs"] == len(values)
        seen.add((row["object_id"], row["band"]))
    wanted = {(o, b) for o, e in expected.items() for b in bands if label_of(e[0]) is not None}
    assert seen == wanted


def test_catalogue_classes_both_bands_and_missing_curve(tmp_path, asas):
    expected = write_mirror(tmp_path / "mirror", asas)
    with serve_folder(tmp_path / "mirror") as (url, requests):
        train = build(tmp_path, url)
        assert "/detection/ATO%20J201.0000-01.0000.csv" in requests
        check_rows(train, expected, lambda c: c)
        assert len(train) == 2 * len(expected)
        assert "ATO J201.0000-01.0000" not in train["object_id"]
        missing = ["ATO J200.0000+00.0000", "ATO J201.0000-01.0000"]  # the dubious object has no file either
        assert missing_lightcurves(train.info) == {"train": {"count": 2, "object_ids": missing}}
        assert cleaning_report(train.info)["train"]["curves_out"] == len(train)

        # the prepared cache is reused: no request at all on a rebuild
        count = len(requests)
        again = build(tmp_path, url)
        assert len(requests) == count and len(again) == len(train)
        assert again["time"][0] == train["time"][0]
        # a fresh cache with the same download folder re-reads the kept files: only the 404 is asked again
        fresh = AtlasVariableStars(config_name="catalogue", cache_dir=str(tmp_path / "cache_b"), base_url=url,
                                   download_dir=str(tmp_path / "downloads_a"), split_fractions=(1.0, 0.0, 0.0))
        fresh.download_and_prepare()
        assert requests[count:] == ["/detection/ATO%20J200.0000%2B00.0000.csv", "/detection/ATO%20J201.0000-01.0000.csv"]


def test_astromer5_groups_one_band_and_flags(tmp_path, asas):
    expected = write_mirror(tmp_path / "mirror", asas)
    with serve_folder(tmp_path / "mirror") as (url, requests):
        train = build(tmp_path, url, config="astromer5", bands=("o",), drop_flagged=True)
    assert train.features["label"].names == ["CB", "DB", "Mira", "Other", "Pulse"]
    check_rows(train, expected, ASTROMER5_OF.get, bands=("o",), drop_flagged=True)
    groups = {train.features["label"].names[label] for label in train["label"]}
    assert groups == {"CB", "DB", "Mira", "Other", "Pulse"}
    assert set(train["band"]) == {"o"}
    # dubious objects are not part of astromer5 and are never downloaded
    assert not any("J200.0000" in path for path in requests)


def test_server_error_is_raised_with_the_url(tmp_path, asas):
    expected = write_mirror(tmp_path / "mirror", asas[:2])
    broken = sorted(expected)[0]
    with serve_folder(tmp_path / "mirror", errors={f"detection/{broken}.csv": 503}) as (url, _):
        with pytest.raises(Exception) as failure:
            build(tmp_path, url)
    chain, error = [], failure.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    text = " | ".join(chain)
    assert join_url(url, f"detection/{broken}.csv") in text
    assert "503" in text
