"""The few-shot evaluation (``astromer evaluate``): the table regenerated at small size with every method, its output
files, the protocol's splits (no test curve in any training set), the classical features, the scikit-learn
featurizer, the command line and its refusal of bad configurations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from matplotlib.image import imread

import astromer_hf
from astromer_hf import AstromerConfig, AstromerForMaskedReconstruction
from astromer_hf.data.splits import few_shot_splits
from astromer_hf.evaluation import protocol as protocol_module
from astromer_hf.evaluation.config import (METHODS, WINDOW_METHODS, HybridSettings, config_from_mapping,
                                          parse_evaluation_args)

REPO = Path(__file__).resolve().parents[1]
SPC = [5, 10]
FOLDS = 2
N_TEST = 6
#: Every setting small: a 1-block, 16-wide Astromer, one or two epochs, a coarse periodogram grid.
SMALL = {
    "spc": SPC, "folds": FOLDS, "n_test": N_TEST, "torch_threads": 1, "map_method": "tsne",
    "features": {"frequency_grid": 12, "n_jobs": 1}, "forest": {"n_estimators": 30, "n_jobs": 1},
    "head": {"epochs": 2, "hidden_sizes": [16], "batch_size": 64},
    "end_to_end": {"epochs": 1, "hidden_sizes": [16], "batch_size": 32},
    "finetune": {"epochs": 1, "batch_size": 32, "patience": 1},
    "gru": {"epochs": 2, "hidden_size": 8, "mlp_sizes": [8], "batch_size": 64},
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evaluation")


@pytest.fixture(scope="module")
def prepared(workspace) -> Path:
    from astromer_hf.data.prepare import prepare_dataset

    path = workspace / "synthetic"
    prepare_dataset("synthetic", path, config="macho", n_curves=240, seed=5)  # 26 to 34 curves per class
    return path


@pytest.fixture(scope="module")
def tiny_model(workspace) -> Path:
    config = AstromerConfig.from_preset("astromer-2", num_hidden_layers=1, hidden_size=16, num_attention_heads=2,
                                        intermediate_size=16, residual_style="identity")
    torch.manual_seed(7)
    folder = workspace / "tiny-astromer"
    AstromerForMaskedReconstruction(config).save_pretrained(folder)
    return folder


def _config(prepared: Path, model: Path, output: Path, **overrides):
    return config_from_mapping({"data": str(prepared), "models": {"tiny": str(model)}, "output": str(output),
                                **SMALL, **overrides})


@pytest.fixture(scope="module")
def evaluation(prepared, tiny_model, workspace):
    """One run of every method through `astromer evaluate` (in this process, W&B offline), with spies on what each
    fitted component is given."""
    from astromer_hf.cli import main
    from astromer_hf.evaluation import astromer_methods

    seen: dict[str, list] = {"sklearn": [], "finetune": [], "windows": []}
    original_fit_predict = protocol_module.Evaluation._fit_predict
    original_window_split = protocol_module.Evaluation._window_split
    real_finetune = astromer_methods.masked_finetune

    def fit_predict(self, pipeline, X, train, test):
        seen["sklearn"].append((set(self.pool.object_ids[self.needed[train]]),
                                set(self.pool.object_ids[self.needed[test]])))
        return original_fit_predict(self, pipeline, X, train, test)

    def window_split(self, windows, train, validation, test):
        rows, labels = original_window_split(self, windows, train, validation, test)
        fitted = set(self.pool.object_ids[self.needed[np.unique(windows.curve[np.concatenate(rows[:2])])]])
        tested = set(self.pool.object_ids[self.needed[np.unique(windows.curve[rows[2]])]])
        seen["windows"].append((fitted, tested))
        return rows, labels

    def finetune(source, train_curves, val_curves, settings, **kwargs):
        seen["finetune"].append(set(train_curves["object_id"]) | set(val_curves["object_id"]))
        return real_finetune(source, train_curves, val_curves, settings, **kwargs)

    output = workspace / "results"
    recipe = workspace / "eval.yaml"
    recipe.write_text(yaml.safe_dump({"data": str(prepared), "models": {"tiny": str(tiny_model)}, "output": str(output),
                                      "wandb": {"project": "test", "mode": "offline"}, **SMALL, "folds": 1}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(protocol_module.Evaluation, "_fit_predict", fit_predict)
        patch.setattr(protocol_module.Evaluation, "_window_split", window_split)
        patch.setattr(astromer_methods, "masked_finetune", finetune)
        assert main(["evaluate", "--config", str(recipe), "--folds", str(FOLDS)]) == 0
    return parse_evaluation_args(["--config", str(recipe), "--folds", str(FOLDS)]), seen


def test_every_method_fills_the_table(evaluation):
    config, _ = evaluation
    output = Path(config.output)
    table = pd.read_csv(output / "results.csv", index_col="method")
    assert list(table.index) == list(METHODS)
    assert list(table.columns) == [f"SPC {k}" for k in SPC]
    cells = json.loads((output / "scores.json").read_text())["cells"]
    assert len(cells) == len(METHODS) * len(SPC) * FOLDS
    for method in METHODS:
        for spc in SPC:
            scores = [c["f1_curve"] for c in cells if c["method"] == method and c["spc"] == spc]
            assert len(scores) == FOLDS and all(0 <= s <= 1 for s in scores)
            expected = f"{np.mean(scores):.3f} ± {np.std(scores):.3f}"
            assert table.loc[method, f"SPC {spc}"] == expected
            assert re.fullmatch(r"\d\.\d{3} ± \d\.\d{3}", expected)
    for cell in cells:
        assert cell["n_test"] == N_TEST * 8 and cell["n_train"] == cell["spc"] * 8
        assert cell["n_validation"] == 8 * max(1, round(0.2 * cell["spc"]))
        assert np.asarray(cell["confusion"]).sum() == cell["n_test"]
        assert (cell["f1_window"] is not None) == (cell["base_method"] in WINDOW_METHODS)
        if cell["f1_window"] is not None:
            assert cell["n_test_windows"] >= cell["n_test"] and "training" in cell
    # the classical features find the simulator's classes; every F1 is a real number
    features = [c["f1_curve"] for c in cells if c["method"] == "features_rf" and c["spc"] == 10]
    assert np.mean(features) > 0.3
    finetuned = [c for c in cells if c["method"] == "finetuned_skip_mlp"]
    assert all(c["finetuning"]["val_rmse"] for c in finetuned)
    # each hybrid cell records the regularisation its combining regression chose among hybrid.Cs
    assert all(c["hybrid_C"] in HybridSettings().Cs for c in cells if c["method"] == "hybrid_rf")


def test_output_files(evaluation):
    config, _ = evaluation
    output = Path(config.output)
    expected = {"results.csv", "results.md", "results_windows.csv", "scores.csv", "scores.json", "splits.json",
                "f1_vs_spc.png", "embedding_map.png"}
    expected |= {f"confusion_{method}_spc{k}.png" for method in METHODS for k in SPC}
    assert {path.name for path in output.iterdir()} == expected | {"wandb"}
    for name in expected:
        if name.endswith(".png"):
            image = imread(output / name)
            assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200, name
    markdown = (output / "results.md").read_text()
    assert "## Macro F1 per curve" in markdown and "## Macro F1 per window" in markdown
    header = "| method | SPC 5 | SPC 10 |"
    assert markdown.count(header) == 2
    curve_rows = [line for line in markdown.splitlines() if line.startswith("| features_rf |")]
    table = pd.read_csv(output / "results.csv", index_col="method")
    cells = table.loc["features_rf"]
    assert curve_rows == [f"| features_rf | {cells['SPC 5']} | {cells['SPC 10']} |"]
    windows = pd.read_csv(output / "results_windows.csv", index_col="method")
    assert list(windows.index) == [m for m in METHODS if m in WINDOW_METHODS]
    tidy = pd.read_csv(output / "scores.csv")
    assert len(tidy) == len(METHODS) * len(SPC) * FOLDS
    assert set(tidy.columns) >= {"method", "spc", "fold", "f1_curve", "f1_window", "seconds"}
    payload = json.loads((output / "scores.json").read_text())
    assert payload["protocol"]["classes"] == ["RRab", "RRc", "Cep_0", "Cep_1", "EC", "LPV", "DSCT", "NonVar"]
    assert payload["config"]["spc"] == SPC and payload["timing"]["total"] > 0


def test_no_test_curve_in_any_training_set(evaluation, prepared):
    config, seen = evaluation
    splits = json.loads((Path(config.output) / "splits.json").read_text())
    assert sorted(splits) == [f"fold_{fold}" for fold in range(FOLDS)]
    for fold in range(FOLDS):
        entry = splits[f"fold_{fold}"]
        test = set(entry["test"])
        assert len(test) == N_TEST * 8
        previous: set = set()
        for spc in SPC:
            train, validation = set(entry[f"spc_{spc}"]["train"]), set(entry[f"spc_{spc}"]["validation"])
            assert not test & train and not test & validation and not train & validation
            assert previous <= train  # nested training sets
            previous = train
    assert set(splits["fold_0"]["test"]) != set(splits["fold_1"]["test"])
    # the same folds as the training data module's few_shot (the labelled curves of the three splits, pooled)
    loaded = datasets.load_from_disk(str(prepared))
    pooled = datasets.concatenate_datasets([loaded[name] for name in ("train", "validation", "test")])
    reference = few_shot_splits(pooled, 10, 1, n_test=N_TEST)
    assert set(reference["test"]["object_id"]) == set(splits["fold_1"]["test"])
    assert set(reference["train"]["object_id"]) == set(splits["fold_1"]["spc_10"]["train"])
    # what every fitted component was actually given
    cells = len(SPC) * FOLDS
    assert len(seen["sklearn"]) == 4 * cells  # features_rf, random_linear_probe, linear_probe, hybrid_rf
    assert len(seen["windows"]) == 4 * cells  # raw_gru, skip_mlp, finetuned_skip_mlp, end_to_end
    assert len(seen["finetune"]) == cells
    for fitted, tested in seen["sklearn"] + seen["windows"]:
        assert fitted and tested and not fitted & tested
    every_test = {oid for entry in splits.values() for oid in entry["test"]}
    for index, finetuned in enumerate(seen["finetune"]):
        fold_test = set(splits[f"fold_{index // len(SPC)}"]["test"])
        assert finetuned and not finetuned & fold_test
    assert every_test


def test_classical_features_from_the_light_curve_package():
    from astromer_hf.data.simulator import simulate_survey
    from astromer_hf.evaluation.config import FeatureSettings
    from astromer_hf.evaluation.features import LightCurveFeatures, compute_features, feature_names

    curves = [np.stack([r["time"], r["mag"], r["mag_err"]], axis=1) for r in simulate_survey(6, seed=2)]
    short = np.array([[1.0, 15.0, 0.1], [2.0, 15.2, 0.1]])  # dropped by the cleaning (fewer than 5 points)
    flat = np.stack([np.arange(8.0), np.full(8, 16.0), np.full(8, 0.05)], axis=1)  # constant: some features fail
    settings = FeatureSettings(frequency_grid=12, n_jobs=1)
    features = compute_features([*curves, short, flat], settings)
    names = feature_names(settings)
    assert features.shape == (8, len(names)) and len(names) > 30
    for expected in ("amplitude", "stetson_K", "eta", "cusum", "skew", "kurtosis", "periodogram_period_0",
                     "weighted_mean", "inter_percentile_range_25"):
        assert expected in names
    assert np.isfinite(features[:6]).all()
    assert np.isnan(features[6]).all()
    assert np.isnan(features[7]).any() and np.isfinite(features[7]).any()
    transformer = LightCurveFeatures(frequency_grid=12, n_jobs=1).fit(curves)
    assert list(transformer.get_feature_names_out()) == names
    np.testing.assert_array_equal(transformer.transform(curves), features[:6])
    # whatever embed() reads, in the same order: a survey-schema Dataset, chunk by chunk, gives the same rows
    rows = [{"object_id": str(i), "time": c[:, 0], "mag": c[:, 1], "mag_err": c[:, 2]}
            for i, c in enumerate([*curves, short, flat])]
    dataset = datasets.Dataset.from_list(rows)
    np.testing.assert_array_equal(compute_features(dataset, settings, chunk_size=3), features)


def test_featurizer_in_a_sklearn_pipeline(prepared, tiny_model):
    from sklearn.base import clone
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    from astromer_hf.evaluation import AstromerFeaturizer, LightCurveFeatures

    split = datasets.load_from_disk(str(prepared))["train"].select(range(60))
    curves = [np.stack([np.asarray(r["time"]), np.asarray(r["mag"]), np.asarray(r["mag_err"])], axis=1) for r in split]
    labels = np.asarray(split["label"])
    pipeline = make_pipeline(AstromerFeaturizer(str(tiny_model), device="cpu"), StandardScaler(),
                             LogisticRegression(max_iter=500))
    pipeline.fit(curves[:40], labels[:40])
    predictions = pipeline.predict(curves[40:])
    assert predictions.shape == (20,) and set(predictions) <= set(labels[:40])
    featurizer = pipeline.named_steps["astromerfeaturizer"]
    vectors = featurizer.transform(curves[:3])
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, astromer_hf.embed(curves[:3], model=str(tiny_model), device="cpu",
                                                          progress=False).vectors, rtol=1e-5, atol=1e-6)
    assert list(featurizer.get_feature_names_out()[:2]) == ["astromer_0", "astromer_1"]
    assert clone(pipeline).get_params()["astromerfeaturizer__model"] == str(tiny_model)
    # a datasets.Dataset in the survey schema goes in as it is
    np.testing.assert_allclose(featurizer.transform(split.select(range(3))), vectors, rtol=1e-5, atol=1e-6)
    # the hybrid as scikit-learn parts: embeddings and classical features side by side
    hybrid = Pipeline([
        ("both", FeatureUnion([("astromer", AstromerFeaturizer(str(tiny_model), device="cpu")),
                               ("features", LightCurveFeatures(frequency_grid=12, n_jobs=1))])),
        ("impute", SimpleImputer()), ("scale", StandardScaler()), ("classify", LogisticRegression(max_iter=500)),
    ])
    assert hybrid.fit(curves[:40], labels[:40]).predict(curves[40:]).shape == (20,)
    # a curve the cleaning drops: a NaN row, or an error naming it
    short = np.array([[1.0, 15.0, 0.1], [2.0, 15.1, 0.1]])
    assert np.isnan(featurizer.transform([curves[0], short])[1]).all()
    with pytest.raises(ValueError, match="1 curve.*too few valid observations.*positions \\[1\\]"):
        AstromerFeaturizer(str(tiny_model), dropped="raise", device="cpu").fit(None).transform([curves[0], short])
    with pytest.raises(ValueError, match="pooling must be one of"):
        AstromerFeaturizer(str(tiny_model), pooling="median").fit(curves)


def test_results_logged_to_wandb(evaluation):
    from wandb_runs import find_offline_runs, read_offline_run

    config, _ = evaluation
    run = read_offline_run(find_offline_runs(config.output)[-1])
    assert run["finished"]
    table = pd.read_csv(Path(config.output) / "results.csv", index_col="method")
    mean = float(table.loc["linear_probe", "SPC 10"].split(" ± ")[0])
    assert run["summary"]["f1_curve/linear_probe/spc10"] == pytest.approx(mean, abs=5e-4)
    keys = {item["key"] for item in run["media"]}
    assert {"figures/f1_vs_spc", "figures/embedding_map", "figures/confusion_skip_mlp_spc5"} <= keys


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"methods": ["features_rf", "svm"]}, r"unknown method\(s\) \['svm'\]; the methods are"),
        ({"spc": [0, 20]}, r"every spc value must be an integer >= 1, got 0"),
        ({"spc": [20, 20]}, r"spc lists a value twice"),
        ({"folds": 0}, r"folds must be an integer >= 1"),
        ({"models": {}}, r"need an Astromer model: give models"),
        ({"model_recipes": {"other": "recipes/quickstart.yaml"}}, r"model_recipes names \['other'\], which are not"),
        ({"head": {"pooling": "median"}}, r"head.pooling must be 'skip', 'mean' or 'max'"),
        ({"gru": {"hidden_size": 0}}, r"gru.hidden_size must be an integer >= 1"),
        ({"head": {"epoch": 3}}, r"unknown setting\(s\) \['head.epoch'\]"),
        ({"spcs": [5]}, r"unknown setting\(s\) \['spcs'\]"),
        ({"prepare": {"config": "macho"}}, r"prepare needs a 'survey' key"),
        ({"device": "gpu"}, r"device must be 'auto', 'cpu', 'cuda'"),
        ({"validation_fraction": 0}, r"validation_fraction must be in \(0, 1\]"),
        ({"end_to_end": {"encoder_lr": 0}}, r"end_to_end.encoder_lr must be a positive number, got 0"),
        ({"head": {"standardize": "yes"}}, r"head.standardize must be true or false, got 'yes'"),
        ({"end_to_end": {"dropout": 1}}, r"end_to_end.dropout must be a number in \[0, 1\), got 1"),
        ({"hybrid": {"Cs": []}}, r"hybrid.Cs must be a non-empty list of positive numbers, got \[\]"),
        ({"hybrid": {"Cs": [1.0, -2]}}, r"every value of hybrid.Cs must be a positive number, got -2"),
    ],
)
def test_bad_configurations_are_refused(overrides, message, tmp_path):
    base = {"data": str(tmp_path / "data"), "models": {"m": "astromer-base"}, "methods": ["features_rf", "skip_mlp"]}
    with pytest.raises(ValueError, match=message):
        config_from_mapping({**base, **overrides})


def test_bad_runs_are_refused(prepared, tiny_model, tmp_path):
    def run(**overrides):
        protocol_module.run_evaluation(_config(prepared, tiny_model, tmp_path / "out", **overrides), verbose=False)

    with pytest.raises(ValueError, match=r"class '\w+' has \d+ curves, but SPC 30 needs n_test 6 \+ 30 training \+ 6 "
                                         r"validation = 42 per class .* the largest SPC every class allows with "
                                         r"n_test 6 is \d+"):
        run(spc=[5, 30], methods=["features_rf"])
    with pytest.raises(FileNotFoundError, match=r"no prepared dataset at .*missing; run `astromer data prepare"):
        run(data=str(tmp_path / "missing"), methods=["features_rf"])
    with pytest.raises(FileNotFoundError, match=r"model 'tiny': no model folder at .*/nowhere/model; train it first"):
        run(models={"tiny": str(tmp_path / "nowhere" / "model")}, methods=["linear_probe"])
    with pytest.raises(ValueError, match=r"is the preset 'astromer-2' \(random weights\)"):
        run(models={"tiny": "astromer-2"}, methods=["linear_probe"])
    with pytest.raises(ValueError, match=r"no labelled curve in the band\(s\) \['V'\] \(its bands: \['R'\]\)"):
        run(bands=["V"], methods=["features_rf"])
    # two rows (bands) of one object could put the object in both a training and a test set
    rows = {"object_id": ["a", "a", "b", "c", "d"], "survey": ["x"] * 5, "band": ["g", "r", "g", "g", "g"],
            "time": [[1.0, 2.0, 3.0, 4.0, 5.0]] * 5, "mag": [[1.0, 2.0, 1.0, 2.0, 1.0]] * 5,
            "mag_err": [[0.1] * 5] * 5, "label": [0, 0, 1, 0, 1], "ra": [0.0] * 5, "dec": [0.0] * 5, "n_obs": [5] * 5}
    features = datasets.Features({**{k: datasets.Value("string") for k in ("object_id", "survey", "band")},
                                  **{k: datasets.Sequence(datasets.Value("float64"))
                                     for k in ("time", "mag", "mag_err")},
                                  "label": datasets.ClassLabel(names=["A", "B"]), "ra": datasets.Value("float64"),
                                  "dec": datasets.Value("float64"), "n_obs": datasets.Value("int32")})
    split = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": split.select([0, 1, 2]), "validation": split.select([3]),
                          "test": split.select([4])}).save_to_disk(str(tmp_path / "bands"))
    with pytest.raises(ValueError, match=r"1 object\(s\) .* have several labelled rows \(e.g. 'a': one per band\).*"
                                         r"bands: \[NAME\]"):
        run(data=str(tmp_path / "bands"), methods=["features_rf"], spc=[1], n_test=1)


def test_command_line_errors_are_one_line(capsys):
    from astromer_hf.cli import main

    assert main(["evaluate", "--config", str(REPO / "recipes" / "eval_synthetic.yaml"), "--folds", "zero"]) == 2
    error = capsys.readouterr().err.splitlines()
    assert error[0].startswith("astromer evaluate: error: ") and "folds" in error[0] and "zero" in error[0]
    assert main(["evaluate", "--config", str(REPO / "recipes" / "eval_synthetic.yaml"), "--spcs", "[5]"]) == 2
    assert "`astromer evaluate --help` lists every setting" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["evaluate", "--help"])
    assert exited.value.code == 0 and "--finetune.epochs" in capsys.readouterr().out


@pytest.mark.parametrize("recipe", ["eval_synthetic.yaml", "eval_alcock.yaml"])
def test_recipes_parse(recipe):
    config = parse_evaluation_args(["--config", str(REPO / "recipes" / recipe)])
    assert config.methods == list(METHODS) and config.spc == [20, 50, 100, 500] and config.folds == 3
    assert config.n_test == 100 and config.wandb is not None
    if recipe == "eval_alcock.yaml":
        finetune = yaml.safe_load((REPO / "recipes" / "finetune_alcock.yaml").read_text())
        assert config.prepare == finetune["data"]["init_args"]["prepare"]
        assert config.bands == ["R"] and config.models == {"astromer-1": "astromer-1-macho"}
    else:
        assert config.prepare["survey"] == "synthetic"
        assert config.model_recipes == {"quickstart": "recipes/quickstart.yaml"}


def test_a_recipe_evaluates_other_trained_models_without_its_training_recipes():
    """Pointing the quick recipe at encoders of one's own: the recipe's model_recipes name its quickstart model, so
    replacing models alone is refused with the way out, and --model_recipes null takes it."""
    recipe = str(REPO / "recipes" / "eval_synthetic_quick.yaml")
    models = "{mine: outputs/mine/pretrained/best, other: outputs/other/pretrained/best}"
    with pytest.raises(ValueError, match=r"model_recipes names \[.quickstart.\].*--model_recipes null"):
        parse_evaluation_args(["--config", recipe, "--models", models])
    config = parse_evaluation_args(["--config", recipe, "--models", models, "--model_recipes", "null"])
    assert config.model_recipes == {} and list(config.models) == ["mine", "other"]


def test_a_stopped_run_resumes_where_it_stopped_and_a_finished_one_gains_cells(prepared, tiny_model, tmp_path,
                                                                                 monkeypatch):
    """`resume: true` keeps the stored cells as they are and computes only the missing ones; a stored run made with
    settings that change the scores is refused before any work, naming them."""
    output = tmp_path / "out"
    small = {"spc": [5], "folds": 1}
    computed: list[tuple[str, int, int]] = []
    real_run_cell = protocol_module.Evaluation.run_cell

    def run_cell(self, split, label, method, model_name):
        computed.append((label, split.fold, split.spc))
        return real_run_cell(self, split, label, method, model_name)

    def stopped(self, *args):
        raise KeyboardInterrupt  # the run is killed while the linear probe runs

    monkeypatch.setattr(protocol_module.Evaluation, "run_cell", run_cell)
    with monkeypatch.context() as patch:
        patch.setattr(protocol_module.Evaluation, "_linear_probe", stopped)
        with pytest.raises(KeyboardInterrupt):
            protocol_module.run_evaluation(_config(prepared, tiny_model, output, methods=["features_rf",
                                                   "linear_probe"], **small), verbose=False)
    stopped_run = json.loads((output / "scores.json").read_text())
    first = stopped_run["cells"]
    assert [cell["method"] for cell in first] == ["features_rf"]

    computed.clear()
    resumed = protocol_module.run_evaluation(_config(prepared, tiny_model, output, resume=True, methods=[
        "features_rf", "linear_probe"], **small), verbose=False)
    assert computed == [("linear_probe", 0, 5)]
    # the times of both runs: the features were computed by the stopped one only, the embedding by the resumed one
    assert stopped_run["timing"]["features"] > 0
    assert resumed.timing["features"] == pytest.approx(stopped_run["timing"]["features"])
    assert "embeddings" not in stopped_run["timing"] and resumed.timing["embeddings"] > 0
    assert resumed.cells[0] == first[0]  # kept as stored, its time included
    assert pd.read_csv(output / "results.csv", index_col="method").index.tolist() == ["features_rf", "linear_probe"]

    computed.clear()  # a finished run gains a method and an SPC; the stored cells are not computed again
    protocol_module.run_evaluation(_config(prepared, tiny_model, output, resume=True, spc=[5, 10], folds=1,
                                           methods=["features_rf", "linear_probe", "random_linear_probe"]),
                                   verbose=False)
    assert sorted(computed) == [("features_rf", 0, 10), ("linear_probe", 0, 10), ("random_linear_probe", 0, 5),
                                ("random_linear_probe", 0, 10)]
    assert len(json.loads((output / "scores.json").read_text())["cells"]) == 6

    computed.clear()  # a second model: the first one's cells are kept under their new row labels
    protocol_module.run_evaluation(_config(prepared, tiny_model, output, resume=True, methods=["linear_probe"],
                                           models={"tiny": str(tiny_model), "again": str(tiny_model)}, **small),
                                   verbose=False)
    assert computed == [("linear_probe@again", 0, 5)]
    table = pd.read_csv(output / "results.csv", index_col="method")
    assert table.loc["linear_probe@tiny", "SPC 5"] == table.loc["linear_probe@again", "SPC 5"]  # the same weights

    computed.clear()  # resume with nothing stored yet: a fresh run
    protocol_module.run_evaluation(_config(prepared, tiny_model, tmp_path / "fresh", resume=True,
                                           methods=["features_rf"], **small), verbose=False)
    assert computed == [("features_rf", 0, 5)]

    computed.clear()
    with pytest.raises(ValueError, match=r"resume: the stored run .* other probe, split_seed than this"):
        protocol_module.run_evaluation(_config(prepared, tiny_model, output, resume=True, split_seed=3,
                                               probe={"C": 0.5}, methods=["features_rf"], **small), verbose=False)
    with pytest.raises(ValueError, match=r"other models\.tiny than this"):
        protocol_module.run_evaluation(_config(prepared, tiny_model, output, resume=True, methods=["features_rf"],
                                               models={"tiny": str(tmp_path)}, **small), verbose=False)
    assert computed == []  # refused before any cell


def test_the_quick_recipe_is_the_full_one_at_spc_100():
    """eval_synthetic_quick.yaml differs from eval_synthetic.yaml only in its SPC list, methods and output."""
    full = parse_evaluation_args(["--config", str(REPO / "recipes" / "eval_synthetic.yaml")])
    quick = parse_evaluation_args(["--config", str(REPO / "recipes" / "eval_synthetic_quick.yaml")])
    assert quick.spc == [100] and quick.folds == 3
    assert set(quick.methods) == {"features_rf", "raw_gru", "random_linear_probe", "linear_probe", "hybrid_rf",
                                  "end_to_end"}
    differing = {name for name in vars(full) if getattr(full, name) != getattr(quick, name)}
    assert differing == {"spc", "methods", "output", "wandb"}


def test_the_released_weights_recipe_evaluates_on_the_quick_recipes_folds():
    """eval_synthetic_released.yaml scores the released Astromer 1 on the data, folds and feature settings of
    eval_synthetic_quick.yaml, so its features_rf row and its Astromer rows compare with the quick run's."""
    quick = parse_evaluation_args(["--config", str(REPO / "recipes" / "eval_synthetic_quick.yaml")])
    released = parse_evaluation_args(["--config", str(REPO / "recipes" / "eval_synthetic_released.yaml")])
    assert released.models == {"astromer-1": "astromer-1-macho"} and released.model_recipes == {}
    assert released.methods == ["features_rf", "random_linear_probe", "linear_probe", "hybrid_rf"]
    shared = ("data", "prepare", "bands", "spc", "folds", "n_test", "validation_fraction", "split_seed", "seed",
              "embedding_pooling", "embedding_batch_size", "features", "forest", "probe")
    assert {name: getattr(released, name) for name in shared} == {name: getattr(quick, name) for name in shared}
    assert released.output != quick.output


@pytest.mark.parametrize("encoder_lr", [None, 1e-3])
def test_end_to_end_trains_the_encoder_at_its_own_learning_rate(encoder_lr):
    """``end_to_end.encoder_lr`` sets the Adam rate of the encoder's parameters, the head keeping ``lr``; without it
    both train at ``lr``."""
    from astromer_hf import AstromerForLightCurveClassification
    from astromer_hf.evaluation.config import EndToEndSettings
    from astromer_hf.evaluation.training import fit_window_classifier

    torch.manual_seed(0)
    config = AstromerConfig.from_preset("astromer-2", hidden_size=16, num_attention_heads=2, intermediate_size=16,
                                        num_hidden_layers=1, window_size=12, num_labels=3,
                                        classifier_hidden_sizes=[8], hidden_dropout_prob=0.0)
    model = AstromerForLightCurveClassification(config)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    inputs = {"magnitudes": torch.randn(24, 12), "times": torch.cumsum(torch.rand(24, 12), 1),
              "attention_mask": torch.ones(24, 12, dtype=torch.long)}
    labels = torch.arange(24) % 3

    def logits(rows, training):
        return model(**{key: value[rows] for key, value in inputs.items()}).logits

    settings = EndToEndSettings(lr=1e-2, encoder_lr=encoder_lr, epochs=1, batch_size=24, patience=1)
    fit_window_classifier(model, logits, labels, logits, labels, settings, seed=0)
    # one Adam step moves every parameter with a gradient by about its learning rate
    steps = {name: (p.detach() - before[name]).abs().max().item() for name, p in model.named_parameters()}
    encoder = max(step for name, step in steps.items() if name.startswith("astromer."))
    head = max(step for name, step in steps.items() if not name.startswith("astromer."))
    assert head == pytest.approx(1e-2, rel=0.05)
    assert encoder == pytest.approx(encoder_lr or 1e-2, rel=0.05)


@pytest.mark.parametrize("standardize", [False, True])
def test_the_head_settings_build_the_classifier_they_describe(standardize, tmp_path):
    """``head`` / ``end_to_end`` settings become the classifier's configuration: pooling, MLP widths and the
    standardised input, with the evaluated encoder's weights."""
    from astromer_hf import AstromerForMaskedReconstruction
    from astromer_hf.evaluation.astromer_methods import AstromerUnderTest
    from astromer_hf.evaluation.config import HeadSettings

    torch.manual_seed(0)
    AstromerForMaskedReconstruction(AstromerConfig(hidden_size=16, num_attention_heads=2, intermediate_size=16,
                                                   num_hidden_layers=1, window_size=12)).save_pretrained(tmp_path)
    under_test = AstromerUnderTest("m", str(tmp_path), torch.device("cpu"))
    head = HeadSettings(pooling="mean", hidden_sizes=[8, 4], standardize=standardize, dropout=0.25)
    classifier = under_test.classifier(["a", "b", "c"], head, freeze=True, seed=0)
    layers = [type(layer).__name__ for layer in classifier.classifier]
    assert layers == ["Linear", "ReLU", "Linear", "ReLU", "LayerNorm", "Linear"]
    assert (type(classifier.pooled_norm).__name__ == "AstromerPooledStandardizer") == standardize
    assert classifier.config.classifier_pooling == "mean" and classifier.config.id2label[2] == "c"
    assert classifier.config.freeze_encoder and classifier.config.classifier_dropout == 0.25
    for name, value in under_test.encoder.state_dict().items():
        assert torch.equal(classifier.astromer.state_dict()[name], value), name


def test_a_trained_heads_dropout_depends_on_its_seed_alone():
    """The dropout masks of a trained variant come from its seed, not from what ran before it in the process: the
    same cell trains to the same weights after any other use of torch's generator, which it leaves as it found it."""
    from astromer_hf.evaluation.config import TrainingSettings
    from astromer_hf.evaluation.training import fit_window_classifier

    features = torch.randn(48, 6, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(48) % 3

    def train(before: int):
        torch.manual_seed(before)  # whatever ran earlier
        torch.rand(before)
        head = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(6, 3))
        with torch.no_grad():
            head[1].weight.fill_(0.1)
            head[1].bias.zero_()
        state = torch.get_rng_state()
        history = fit_window_classifier(head, lambda rows, training: head(features[rows]), labels,
                                        lambda rows, training: head(features[rows]), labels,
                                        TrainingSettings(epochs=3, batch_size=8, patience=3), seed=7)
        assert torch.equal(torch.get_rng_state(), state)
        return head[1].weight.detach().clone(), history.train_loss

    (first, first_losses), (second, second_losses) = train(1), train(5)
    assert torch.equal(first, second) and first_losses == second_losses


def test_curve_logits_weigh_windows_by_observations():
    from astromer_hf.evaluation.training import curve_logits

    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    out = curve_logits(logits, np.array([0, 0, 2]), np.array([100, 300, 50]), 3)
    np.testing.assert_allclose(out, [[0.5, 0.75], [0.0, 0.0], [0.0, 3.0]])


def test_the_stacked_hybrid_combines_what_each_side_knows_and_ignores_an_uninformative_embedding():
    """hybrid_rf stacks the forest on the classical features and the probe on the embedding: when each side knows
    half of the class (the features which pair, the embedding which member), the hybrid knows all of it; when the
    embedding is noise with more channels than curves (a probe fitted on all of them memorises them), the combining
    regression, taught on out-of-fold probabilities, does not trust it and the hybrid stays with the features."""
    from astromer_hf.evaluation.baselines import random_forest, stacked_hybrid
    from astromer_hf.evaluation.config import ForestSettings, ProbeSettings

    rng = np.random.default_rng(0)
    n_classes, per_class = 4, 40
    labels = np.repeat(np.arange(n_classes), per_class)
    features = rng.normal(size=(len(labels), 6)) + 2.5 * (labels // 2)[:, None]  # which pair: {0, 1} or {2, 3}
    embedding = rng.normal(size=(len(labels), 16)) + 2.5 * (labels % 2)[:, None]  # which member of the pair
    train, test = np.arange(0, len(labels), 2), np.arange(1, len(labels), 2)
    forest = ForestSettings(n_estimators=50, n_jobs=1)

    def accuracy(model, X):
        return (model.fit(X[train], labels[train]).predict(X[test]) == labels[test]).mean()

    alone = accuracy(random_forest(forest, 0), features)
    hybrid = accuracy(stacked_hybrid(forest, ProbeSettings(), 6, 0, min_class_count=per_class // 2),
                      np.hstack([features, embedding]))
    assert alone < 0.65 and hybrid > 0.85, (alone, hybrid)

    noise = rng.normal(size=(len(labels), 256))
    noisy_hybrid = accuracy(stacked_hybrid(forest, ProbeSettings(), 6, 0, min_class_count=per_class // 2),
                            np.hstack([features, noise]))
    assert noisy_hybrid >= alone - 0.1, (alone, noisy_hybrid)

    with pytest.raises(ValueError, match="at least 2 training curves in every class"):
        stacked_hybrid(forest, ProbeSettings(), 6, 0, min_class_count=1)


def test_the_hybrids_combining_regression_is_regularised_as_cross_validation_chooses():
    """The combining regression's C is the candidate of hybrid.Cs with the best cross-validated log loss on the
    out-of-fold probabilities: the least regularisation when one model is right and confident on every curve (its
    probabilities can then be trusted as far as the candidates allow), a given single candidate as it is."""
    from astromer_hf.evaluation.baselines import stacked_hybrid
    from astromer_hf.evaluation.config import ForestSettings, HybridSettings, ProbeSettings

    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 30)
    features = rng.normal(size=(len(labels), 4)) + 6.0 * labels[:, None]  # every class far apart
    X = np.hstack([features, rng.normal(size=(len(labels), 8))])
    forest = ForestSettings(n_estimators=30, n_jobs=1)

    def chosen(Cs):
        hybrid = stacked_hybrid(forest, ProbeSettings(), 4, 0, min_class_count=30, hybrid=HybridSettings(Cs=Cs))
        return hybrid.fit(X, labels).final_estimator_.best_params_["C"]

    assert chosen([0.001, 0.1, 10.0]) == 10.0
    assert chosen([0.05]) == 0.05


def test_the_hybrid_classifier_is_the_evaluations_hybrid_on_raw_curves(prepared, tiny_model, monkeypatch):
    """HybridClassifier fits the evaluation's stacked hybrid on raw curves: the same predictions as stacked_hybrid on
    the features and embeddings side by side, each computed once per call (not once per fold of the stacking), from
    any input embed() reads."""
    from sklearn.base import clone

    from astromer_hf.evaluation import HybridClassifier, compute_features
    from astromer_hf.evaluation.baselines import stacked_hybrid
    from astromer_hf.evaluation.config import FeatureSettings, ForestSettings, ProbeSettings

    split = datasets.load_from_disk(str(prepared))["train"].select(range(96))
    curves = [np.stack([np.asarray(r["time"]), np.asarray(r["mag"]), np.asarray(r["mag_err"])], axis=1) for r in split]
    labels = np.asarray(split["label"])
    train, test = np.arange(64), np.arange(64, 96)
    assert np.bincount(labels[train]).min() >= 2

    calls = []
    real_embed = astromer_hf.embed
    monkeypatch.setattr(astromer_hf, "embed", lambda curves, **kwargs: calls.append(1) or real_embed(curves, **kwargs))
    hybrid = HybridClassifier(str(tiny_model), n_estimators=30, frequency_grid=12, n_jobs=1, device="cpu",
                              random_state=3)
    hybrid.fit([curves[i] for i in train], labels[train])
    assert len(calls) == 1  # a StackingClassifier over the two raw-curve pipelines embeds six times
    probabilities = hybrid.predict_proba([curves[i] for i in test])
    assert probabilities.shape == (len(test), len(hybrid.classes_))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)

    def matrix(rows):
        chosen = [curves[i] for i in rows]
        embedded = real_embed(chosen, model=str(tiny_model), device="cpu", progress=False).vectors
        return np.hstack([compute_features(chosen, FeatureSettings(frequency_grid=12, n_jobs=1)), embedded])

    by_hand = stacked_hybrid(ForestSettings(n_estimators=30, n_jobs=1), ProbeSettings(), hybrid.n_classical_features_,
                             3, min_class_count=np.bincount(labels[train]).min()).fit(matrix(train), labels[train])
    np.testing.assert_allclose(probabilities, by_hand.predict_proba(matrix(test)), rtol=1e-6, atol=1e-9)
    assert hybrid.stack_.final_estimator_.best_params_["C"] == by_hand.final_estimator_.best_params_["C"]
    # a prepared dataset goes in as it is; the estimator clones like any scikit-learn one
    np.testing.assert_allclose(hybrid.predict_proba(split.select(test)), probabilities, rtol=1e-5, atol=1e-7)
    assert clone(hybrid).get_params()["random_state"] == 3

    calls.clear()
    with pytest.raises(ValueError, match=r"HybridClassifier: every class needs at least 2 training curves .*; class 1 has 1"):
        HybridClassifier(str(tiny_model), n_jobs=1, device="cpu").fit(curves[:3], [0, 0, 1])
    with pytest.raises(ValueError, match=r"HybridClassifier: y holds no labels"):
        HybridClassifier(str(tiny_model), n_jobs=1, device="cpu").fit([], [])
    assert not calls  # refused before anything is embedded
    with pytest.raises(ValueError, match=r"HybridClassifier.Cs must be a non-empty list of positive numbers"):
        HybridClassifier(str(tiny_model), Cs=[], n_jobs=1).fit(curves[:4], [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"HybridClassifier.Cs must be a non-empty list of positive numbers, got 5"):
        HybridClassifier(str(tiny_model), Cs=5, n_jobs=1).fit(curves[:4], [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"HybridClassifier: y must hold one label per curve \(4\), got 5"):
        HybridClassifier(str(tiny_model), n_estimators=10, frequency_grid=12, n_jobs=1,
                         device="cpu").fit(curves[:4], [0, 0, 1, 1, 1])
