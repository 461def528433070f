"""`astromer data prepare synthetic` and `astromer data info`: the offline default dataset end to end."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from datasets import load_from_disk

from astromer_hf.cli import main
from astromer_hf.data.prepare import DatasetBusyError, prepare_dataset
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
    assert "train:" in text and "observations per curve" in text
    table = text[text.index("cleaning:"):].splitlines()
    assert table[1].split() == ["train", "validation", "test"]  # one column per split, one row per rule
    assert any(line.strip().startswith("rows with error outside (0, max_error)") for line in table)
    kept = next(line for line in table if line.strip().startswith("curves kept")).split()[2:]
    assert [int(value.replace(",", "")) for value in kept] == [summary["splits"][n]["curves"]
                                                                for n in ("train", "validation", "test")]


def test_preparation_progress_bars_have_totals(tmp_path):
    """The simulator knows its objects before generating them: each split's bar counts up to its size."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "astromer_hf", "data", "prepare", "synthetic", "--set",
                             "n_curves=40", "--out", str(tmp_path / "data")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    bars = result.stderr.replace("\r", "\n")
    for split in ("train", "validation", "test"):
        finished = [line for line in bars.splitlines() if line.startswith(f"Generating {split} split: 100%")]
        assert finished, split


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


# ------------------------------------------------------------------------------------------------ --set values


@pytest.mark.parametrize("value", ["abc", "1.5", "true", "1e12", "", "2000.0"])
def test_set_values_of_the_wrong_type_name_the_key_the_value_and_the_type(tmp_path, capsys, value):
    code = main(["data", "prepare", "synthetic", "--set", f"n_curves={value}", "--out", str(tmp_path / "x")])
    assert code == 2
    error = capsys.readouterr().err
    assert f"n_curves={value!r}" in error and "expected an integer" in error and "synthetic" in error
    assert "Traceback" not in error and not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "setting, wanted",
    [
        ("max_error=small", "expected a number or null"),
        ("split_fractions=[0.5,0.5]", "expected a list of 3 items"),
        ("min_observations=", "expected an integer"),
        ("download_deadline=soon", "expected a number or null"),
        ("n_curve=5", "unknown setting 'n_curve' of synthetic; the settings are: "),
    ],
)
def test_other_bad_settings_are_named(tmp_path, capsys, setting, wanted):
    assert main(["data", "prepare", "synthetic", "--set", setting, "--out", str(tmp_path / "x")]) == 2
    assert wanted in capsys.readouterr().err


def test_settings_are_read_by_field_type(tmp_path):
    splits = prepare_dataset("synthetic", tmp_path / "typed", config="ztf", n_curves="40", seed=" 3 ", split_salt="007",
                             max_error="null", split_fractions="[0.5, 0.25, 0.25]", download_deadline="null")
    assert sum(len(s) for s in splits.values()) == 40
    with pytest.raises(ValueError, match=r"n_curves=1\.5 of synthetic: expected an integer"):
        prepare_dataset("synthetic", tmp_path / "float", n_curves=1.5)
    with pytest.raises(ValueError, match=r"n_curves=True of synthetic: expected an integer"):
        prepare_dataset("synthetic", tmp_path / "bool", n_curves=True)


# ------------------------------------------------------------------------------------ concurrent and killed runs


def _start_prepare(out, n_curves):
    return subprocess.Popen(
        [sys.executable, "-m", "astromer_hf", "data", "prepare", "synthetic", "--set", f"n_curves={n_curves}",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _staging_of(out, process, timeout=180.0):
    """The staging folder of a running preparation, once it writes into it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.") and p.is_dir()]
        if found and (found[0] / "cache").is_dir():
            return found[0]
        if process.poll() is not None:
            pytest.fail(f"the preparation ended early: {process.communicate()}")
        time.sleep(0.05)
    pytest.fail("no staging folder appeared")


def test_a_running_preparation_locks_its_folder_and_what_a_kill_leaves_is_cleaned_by_the_next_run(tmp_path, capsys):
    """One real child process (importing astromer_hf dominates the time): while it prepares, a second preparation
    of the same folder is refused with a clear message; SIGKILLed, it leaves its staging folder, which the next
    run removes (the lock died with the process)."""
    out = tmp_path / "shared"
    child = _start_prepare(out, 500_000)
    try:
        staging = _staging_of(out, child)
        with pytest.raises(DatasetBusyError, match="being prepared by another process right now"):
            prepare_dataset("synthetic", out, n_curves=20, overwrite=True)
        assert main(["data", "prepare", "synthetic", "--set", "n_curves=20", "--overwrite", "--out", str(out)]) == 2
        assert f"{out} is being prepared by another process" in capsys.readouterr().err
        assert child.poll() is None and staging.is_dir() and not out.exists()  # the first run is undisturbed
        time.sleep(0.3)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert staging.is_dir() and not out.exists()  # what SIGKILL leaves behind

    splits = prepare_dataset("synthetic", out, n_curves=30)

    assert sum(len(split) for split in splits.values()) == 30
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".shared.")] == []


def test_a_dataset_moved_aside_by_a_killed_swap_is_put_back(tmp_path):
    out = tmp_path / "swapped"
    prepare_dataset("synthetic", out, n_curves=20)
    staging = tmp_path / ".swapped.k1ll3d_x"  # the state of a run killed between its two renames
    (staging / "cache").mkdir(parents=True)
    out.rename(staging / "replaced")
    unrelated = tmp_path / ".swapped.notours1"
    (unrelated / "mine").mkdir(parents=True)  # a hidden folder that is not a staging folder

    with pytest.raises(FileExistsError):
        prepare_dataset("synthetic", out, n_curves=25)

    assert sum(len(split) for split in load_from_disk(str(out)).values()) == 20 and not staging.exists()
    assert (unrelated / "mine").is_dir()
    assert sum(len(s) for s in prepare_dataset("synthetic", out, n_curves=25, overwrite=True).values()) == 25
