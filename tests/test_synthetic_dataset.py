"""`astromer data prepare synthetic` and `astromer data info`: the offline default dataset end to end."""

import json

import numpy as np
import pytest
from datasets import load_from_disk

from astromer_hf.cli import main
from astromer_hf.data.schema import BASE_COLUMNS
from astromer_hf.data.simulator import SIMULATED_CLASSES


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "small"
    assert main(["data", "prepare", "synthetic", "--config", "ztf", "--set", "n_curves=300", "--set", "seed=7",
                 "--out", str(out)]) == 0
    return out


def test_prepared_folder_has_the_schema_and_memory_maps(prepared):
    splits = load_from_disk(str(prepared))
    assert set(splits) == {"train", "validation", "test"}
    assert sum(len(s) for s in splits.values()) == 300
    train = splits["train"]
    assert set(BASE_COLUMNS) <= set(train.column_names) and {"period", "amplitude", "mean_mag"} <= set(train.column_names)
    assert train.features["time"].feature.dtype == "float64"
    assert train.features["label"].names == list(SIMULATED_CLASSES)
    assert train.cache_files and all(f["filename"].startswith(str(prepared)) for f in train.cache_files)
    row = train[0]
    assert row["survey"] == "synthetic" and row["band"] in ("g", "r") and row["n_obs"] == len(row["time"])
    assert np.all(np.diff(row["time"]) > 0)
    report = json.loads((prepared / "cleaning_report.json").read_text())
    assert sum(r["curves_in"] for r in report.values()) == 300


def test_a_larger_preparation_contains_the_smaller_one_in_the_same_splits(prepared, tmp_path):
    bigger = tmp_path / "bigger"
    assert main(["data", "prepare", "synthetic", "--config", "ztf", "--set", "n_curves=450", "--set", "seed=7",
                 "--out", str(bigger)]) == 0
    small, large = load_from_disk(str(prepared)), load_from_disk(str(bigger))
    for split in ("train", "validation", "test"):
        rows = {row["object_id"]: row for row in large[split]}
        for row in small[split]:
            assert row["object_id"] in rows, (split, row["object_id"])
            assert rows[row["object_id"]]["time"] == row["time"] and rows[row["object_id"]]["mag"] == row["mag"]


def test_data_info_summarises_a_folder(prepared, capsys):
    assert main(["data", "info", str(prepared), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sum(split["curves"] for split in summary["splits"].values()) == 300
    train = summary["splits"]["train"]
    assert sum(train["classes"].values()) == train["curves"] and train["classes"]["unlabelled"] == 0
    assert sum(train["length_histogram"].values()) == train["curves"]
    assert set(summary["cleaning_report"]) == {"train", "validation", "test"}
    assert main(["data", "info", str(prepared)]) == 0
    text = capsys.readouterr().out
    assert "train:" in text and "observations per curve" in text and "cleaning report" in text


def test_prepare_refuses_to_overwrite_and_names_unknown_surveys(prepared, tmp_path, capsys):
    before = sorted(p.name for p in prepared.iterdir())
    assert main(["data", "prepare", "synthetic", "--set", "n_curves=10", "--out", str(prepared)]) == 2
    assert "exists" in capsys.readouterr().err and sorted(p.name for p in prepared.iterdir()) == before
    assert main(["data", "prepare", "hipparcos", "--out", str(tmp_path / "x")]) == 2
    assert "unknown survey 'hipparcos'" in capsys.readouterr().err
    assert main(["data", "prepare", "synthetic", "--set", "n_curves=0", "--out", str(tmp_path / "y")]) == 2
    assert "n_curves must be positive" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_prepared_folder_is_what_save_to_disk_writes(tmp_path):
    """Preparation moves the builder's Arrow files into the save_to_disk layout instead of copying them: the folder
    must read back exactly like one written by `DatasetDict.save_to_disk`."""
    import json

    from datasets import load_from_disk

    from astromer_hf.data.prepare import prepare_dataset

    moved = prepare_dataset("synthetic", tmp_path / "moved", config="ztf", n_curves=40, seed=2)
    moved.save_to_disk(str(tmp_path / "copied"))
    copied = load_from_disk(str(tmp_path / "copied"))
    assert list(moved) == list(copied) == ["train", "validation", "test"]
    for name in moved:
        assert moved[name].features == copied[name].features
        assert json.dumps(moved[name].to_dict()) == json.dumps(copied[name].to_dict())  # NaN periods compare equal
        for file in ("dataset_info.json", "state.json"):
            ours = json.loads((tmp_path / "moved" / name / file).read_text())
            theirs = json.loads((tmp_path / "copied" / name / file).read_text())
            assert ours.keys() == theirs.keys(), file
        assert [p.name for p in (tmp_path / "moved" / name).glob("*.arrow")] == ["data-00000-of-00001.arrow"]
    assert not list(tmp_path.glob(".moved.*"))  # the staging folder is gone
