"""The dataset core: schema, hash and few-shot splits, the base builder's cleaning report, typed settings."""

import re
from collections import Counter

import datasets
import numpy as np
import pytest

from astromer_hf.data.builder import LightCurveBuilder, check_settings, cleaning_report
from astromer_hf.data.schema import lightcurve_features
from astromer_hf.data.splits import few_shot_splits, hash_split, hash_unit


def test_schema_columns_and_types():
    features = lightcurve_features(["A", "B"], flux=True, extra={"field": datasets.Value("int32")})
    assert list(features) == [
        "object_id", "survey", "band", "time", "mag", "mag_err", "label", "ra", "dec", "n_obs", "flux", "flux_err",
        "field",
    ]
    assert features["time"].feature.dtype == "float64" and features["mag"].feature.dtype == "float32"
    assert features["label"].names == ["A", "B"]
    with pytest.raises(ValueError, match="clashes"):
        lightcurve_features(extra={"time": datasets.Value("int32")})


def test_hash_split_is_deterministic_and_follows_the_fractions():
    ids = [f"obj-{i}" for i in range(20_000)]
    first = [hash_split(i) for i in ids]
    assert first == [hash_split(i) for i in ids]
    counts = Counter(first)
    assert abs(counts["train"] / 20_000 - 0.8) < 0.01 and abs(counts["test"] / 20_000 - 0.1) < 0.01
    assert hash_unit("x", salt="a") != hash_unit("x", salt="b")
    assert Counter(hash_split(i, (0.5, 0.0, 0.5)) for i in ids)["validation"] == 0


def labelled(n_per_class=(150, 200, 130)) -> datasets.Dataset:
    labels = [c for c, n in enumerate(n_per_class) for _ in range(n)] + [None] * 7
    features = datasets.Features({"object_id": datasets.Value("string"), "label": datasets.ClassLabel(names=list("abc"))})
    return datasets.Dataset.from_dict({"object_id": [f"o{i}" for i in range(len(labels))], "label": labels}, features)


def test_few_shot_splits_follow_the_protocol():
    dataset = labelled()
    fold = few_shot_splits(dataset, spc=20, fold=0)
    for split, size in (("test", 100), ("train", 20), ("validation", 4)):
        counts = Counter(fold[split]["label"])
        assert counts == {0: size, 1: size, 2: size}, split
    ids = {split: set(fold[split]["object_id"]) for split in fold}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["validation"] and not ids["test"] & ids["validation"]
    again = few_shot_splits(dataset, spc=20, fold=0)
    assert all(again[s]["object_id"] == fold[s]["object_id"] for s in fold)
    other_fold = few_shot_splits(dataset, spc=20, fold=1)
    assert set(other_fold["train"]["object_id"]) != ids["train"]
    bigger = few_shot_splits(dataset, spc=25, fold=0)
    assert ids["train"] <= set(bigger["train"]["object_id"])  # nested training sets
    assert set(bigger["test"]["object_id"]) == ids["test"]  # one test set per fold


def test_few_shot_splits_refuse_small_classes():
    with pytest.raises(ValueError, match="class 'c' has 130 curves"):
        few_shot_splits(labelled(), spc=35)


class HandMadeSurvey(LightCurveBuilder):
    """A survey whose records are written here, to exercise the base class on known dirty input."""

    SURVEY = "handmade"

    def class_names(self):
        return ("X", "Y")

    def _records(self, sources, keep):
        good = np.arange(10.0)
        yield dict(object_id="clean", band="R", time=good, mag=good * 0.1, mag_err=np.full(10, 0.05), label="X")
        t = np.array([5.0, 1, 2, 2, 3, 4, np.nan, 6, 7])
        yield dict(object_id="dirty", band="B", time=t, mag=np.arange(9.0), mag_err=np.r_[0.1, 0.1, 0.1, 0.1, 0.1, 2, 0.1, 0.1, 0.1], label=None, ra=10.5, dec=-3.0)
        yield dict(object_id="short", band="R", time=np.arange(3.0), mag=np.zeros(3), mag_err=np.full(3, 0.1), label="Y")


def test_base_builder_cleans_reports_and_keeps_float64_time(tmp_path):
    builder = HandMadeSurvey(cache_dir=str(tmp_path), split_fractions=(1.0, 0.0, 0.0))
    builder.download_and_prepare()
    splits = builder.as_dataset()
    train = splits["train"]
    assert sorted(train["object_id"]) == ["clean", "dirty"]
    dirty = train.filter(lambda row: row["object_id"] == "dirty")[0]
    # NaN row dropped, error 2 dropped, re-sorted, duplicate time 2 keeps the last row (mag 3)
    assert dirty["time"] == [1.0, 2.0, 3.0, 5.0, 6.0, 7.0]
    assert dirty["mag"] == [1.0, 3.0, 4.0, 0.0, 7.0, 8.0]
    assert dirty["n_obs"] == 6 and dirty["label"] is None and dirty["survey"] == "handmade" and dirty["ra"] == 10.5
    assert train.features["time"].feature.dtype == "float64"
    report = cleaning_report(train.info)["train"]
    assert report == {
        "curves_in": 3, "curves_out": 2, "observations_in": 22, "observations_out": 16, "nonfinite_rows": 1,
        "bad_error_rows": 1, "resorted_curves": 1, "duplicate_time_rows": 1, "short_curves": 1,
    }


def test_settings_are_converted_by_the_field_types_of_every_survey():
    from astromer_hf.data.surveys.gaia import GaiaConfig
    from astromer_hf.data.surveys.macho import MachoConfig
    from astromer_hf.data.surveys.ogle3 import Ogle3Config
    from astromer_hf.data.surveys.ztf import ZtfConfig

    assert check_settings(MachoConfig, {"tiles": "1.3319,1.3320", "fields": "[1]", "labelled": "TRUE"}) == {
        "tiles": ("1.3319", "1.3320"), "fields": (1,), "labelled": True}
    assert check_settings(ZtfConfig, {"positions": "[[10.5, -3], [1, 2]]", "labels": '{"123": "SN Ia"}',
                                      "object_ids": "[123, \"ZTF1\"]", "radius_arcsec": "2"}) == {
        "positions": ((10.5, -3.0), (1.0, 2.0)), "labels": {"123": "SN Ia"}, "object_ids": (123, "ZTF1"),
        "radius_arcsec": 2.0}
    assert check_settings(Ogle3Config, {"classes": "cep,rrlyr", "fields": "null"}) == {
        "classes": ("cep", "rrlyr"), "fields": None}
    assert check_settings(GaiaConfig, {"source_ids": [1, 2], "bands": "G", "class_names": None}) == {
        "source_ids": [1, 2], "bands": ("G",), "class_names": None}
    assert check_settings(GaiaConfig, {"name": "x", "data_files": None}) == {"name": "x", "data_files": None}
    numpy_values = check_settings(GaiaConfig, {"source_ids": np.array([5, 6]), "batch_size": np.int64(2)})
    assert numpy_values == {"source_ids": [5, 6], "batch_size": 2} and type(numpy_values["batch_size"]) is int
    assert check_settings(ZtfConfig, {"radius_arcsec": np.float32(1.5)}) == {"radius_arcsec": 1.5}
    for settings, message in [
        ({"source_ids": "[1, 2.5]"}, "source_ids='[1, 2.5]' of gaia_dr3: expected a list (JSON or comma-separated), "
                                     "each an integer"),
        ({"labels": "[1]"}, "expected a JSON object"),
        ({"with_classes": "yes"}, "expected true or false"),
        ({"classes_file": 3}, "expected text or null"),
        ({"sources": "1"}, "unknown setting 'sources'"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            check_settings(GaiaConfig if "labels" not in settings else ZtfConfig, settings, "gaia_dr3")
