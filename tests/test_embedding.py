"""``astromer_hf.embed``, the ``light-curve-embedding`` pipeline and ``astromer embed``: one vector per curve, in input
order, from every input form; dropped curves reported; pooling equal to a hand computation from the model's
per-window outputs; bucketed batches equal to padded ones; the original ``encode()`` row counts and embeddings on the
30 reference curves (skipped, with the reason, where ``../shared`` is absent)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import astromer_hf
from astromer_hf import (
    AstromerConfig,
    AstromerForLightCurveClassification,
    AstromerForMaskedReconstruction,
    AstromerModel,
    AstromerProcessor,
    LightCurveEmbeddings,
    embed,
)
from astromer_hf.cli import main as astromer_main
from astromer_hf.embedding import add_embeddings, embed_to_parquet, read_lightcurves

ROOT = Path(__file__).resolve().parents[1]
T = 16  # window size of the tiny models: curves of a few dozen observations have several windows
COSINE_MIN, EMB_MAX_DIFF = 0.99999, 5e-3  # issue A's tolerances (tests/test_parity.py)
A1_STYLE = dict(residual_style="none", attention_mask_style="additive_one", use_mask_token=False)
A2_STYLE = dict(residual_style="projected", attention_mask_style="key", use_mask_token=True)


def tiny_config(**style) -> AstromerConfig:
    return AstromerConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                          window_size=T, classifier_hidden_sizes=[8], num_labels=3, **style)


def tiny_model(style: dict, seed: int = 0) -> AstromerModel:
    torch.manual_seed(seed)
    return AstromerModel(tiny_config(**style)).eval()


@pytest.fixture(scope="module")
def curves() -> list[np.ndarray]:
    """Six ragged curves: values exactly representable in float32 (the survey schema stores mag and mag_err as
    float32), one too short to keep (index 2), one with a NaN row (index 4), several longer than a window."""
    rng = np.random.default_rng(7)
    out = []
    for n in (40, 9, 3, 17, 55, 16):
        time = np.sort(rng.uniform(0.0, 300.0, n)).astype(np.float32).astype(np.float64) + 50000.0
        mag = rng.normal(15.0, 0.4, n).astype(np.float32).astype(np.float64)
        err = rng.uniform(0.01, 0.1, n).astype(np.float32).astype(np.float64)
        out.append(np.column_stack([time, mag, err]))
    out[4][7, 1] = np.nan
    return out


IDS = ["z-star", "b-star", "short", "a-star", "nan-row", "m-star"]  # not sorted: the output keeps input order


def long_frame(curves, ids=IDS) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"object_id": name, "mjd": c[:, 0], "mag": c[:, 1], "mag_err": c[:, 2]})
                      for name, c in zip(ids, curves)], ignore_index=True)


def survey_dataset(curves, ids=IDS):
    import datasets

    from astromer_hf.data.schema import lightcurve_features

    rows = {"object_id": list(ids), "survey": ["test"] * len(ids), "band": ["R"] * len(ids),
            "time": [c[:, 0] for c in curves], "mag": [c[:, 1] for c in curves], "mag_err": [c[:, 2] for c in curves],
            "label": [i % 2 for i in range(len(ids))], "ra": [0.0] * len(ids), "dec": [0.0] * len(ids),
            "n_obs": [len(c) for c in curves]}
    return datasets.Dataset.from_dict(rows, features=lightcurve_features(["a", "b"]))


def assert_same_vectors(a: np.ndarray, b: np.ndarray, atol: float = 1e-5, err_msg: str = "") -> None:
    np.testing.assert_allclose(a, b, atol=atol, rtol=0, equal_nan=True, err_msg=err_msg)


# ----------------------------------------------------------------------------------------------------------------------
# Hand computations from the model's per-window outputs
# ----------------------------------------------------------------------------------------------------------------------
def per_window_outputs(model: AstromerModel, curves, **processor_settings):
    """The processor's windows (padded to the window size) through the model, and which curve each came from."""
    processor = AstromerProcessor.from_model_config(model.config, padding="max_length", **processor_settings)
    batch = processor(curves)
    with torch.no_grad():
        out = model(batch["magnitudes"], batch["times"], attention_mask=batch["attention_mask"],
                    output_hidden_states=True)
    return batch, out


def hand_pooled(model, curves, pooling: str, gamma: torch.Tensor | None = None, **processor_settings) -> np.ndarray:
    """Each curve's pooled vector, one curve at a time, from the per-window outputs (NaN for a dropped curve)."""
    batch, out = per_window_outputs(model, curves, **processor_settings)
    lengths, owners = batch["window_length"].numpy(), batch["curve_index"].numpy()
    layers = [h.numpy().astype(np.float64) for h in out.hidden_states]
    vectors = np.full((len(curves), model.config.hidden_size), np.nan)
    for c in range(len(curves)):
        windows = np.flatnonzero(owners == c)
        if not len(windows):
            continue
        rows = [np.concatenate([layer[w, :lengths[w]] for w in windows]) for layer in layers]
        if pooling == "mean":
            vectors[c] = rows[-1].mean(0)
        elif pooling == "max":
            vectors[c] = rows[-1].max(0)
        else:
            weights = torch.softmax(gamma.detach().double(), 0).numpy()
            vectors[c] = np.mean([w * r.mean(0) for w, r in zip(weights, rows)], axis=0)
    return vectors


# ----------------------------------------------------------------------------------------------------------------------
# Inputs, order, ids, cleaning
# ----------------------------------------------------------------------------------------------------------------------
def assert_same_result(form, reference: LightCurveEmbeddings, model, ids, name: str) -> None:
    result = embed(form, model, device="cpu", chunk_size=4)
    assert_same_vectors(result.vectors, reference.vectors, err_msg=name)
    np.testing.assert_array_equal(result.kept, reference.kept, err_msg=name)
    assert list(result.ids) == ids, name


def test_every_input_form_gives_the_same_vectors_in_input_order(curves):
    model = tiny_model(A2_STYLE)
    reference = embed(curves, model, device="cpu")
    assert reference.ids == list(range(len(curves)))
    columns = {"time": [c[:, 0] for c in curves], "mag": [c[:, 1] for c in curves], "err": [c[:, 2] for c in curves]}
    assert_same_result(columns, reference, model, list(range(len(curves))), "dict of columns")
    assert_same_result(long_frame(curves), reference, model, IDS, "dataframe")
    assert_same_result(survey_dataset(curves), reference, model, IDS, "dataset")
    single = embed(curves[0], model, device="cpu")
    assert_same_vectors(single.vectors, reference.vectors[:1])


def test_astropy_tables_and_time_series_give_the_same_vectors(curves):
    astropy_table = pytest.importorskip("astropy.table", reason="astropy is not installed (an optional input type)")
    from astropy.time import Time
    from astropy.timeseries import TimeSeries

    model = tiny_model(A2_STYLE)
    reference = embed(curves, model, device="cpu")
    frame = long_frame(curves)
    assert_same_result(astropy_table.Table.from_pandas(frame), reference, model, IDS, "astropy table")
    series = TimeSeries(time=Time(frame["mjd"].to_numpy(), format="mjd"),
                        data={"object_id": frame["object_id"].to_numpy(), "mag": frame["mag"].to_numpy(),
                              "mag_err": frame["mag_err"].to_numpy()})
    assert_same_result(series, reference, model, IDS, "astropy timeseries")


def test_dropped_curves_are_nan_rows_with_kept_false_and_in_the_report(curves, caplog):
    result = embed(long_frame(curves), tiny_model(A1_STYLE), device="cpu", return_observations=True)
    assert isinstance(result, LightCurveEmbeddings)
    assert result.vectors.shape == (6, 16) and result.vectors.dtype == np.float32
    np.testing.assert_array_equal(result.kept, [True, True, False, True, True, True])
    assert np.isnan(result.vectors[2]).all() and np.isfinite(result.vectors[result.kept]).all()
    assert result.report.dropped_curves == (2,) and result.report.short_curves == 1
    assert result.report.nonfinite_rows == 1
    assert result.observations[2] is None
    assert "curves dropped as too short:             1 [2]" in caplog.text
    frame = result.to_pandas()
    assert list(frame["id"]) == IDS and frame["embedding"][2] is None and not frame["kept"][2]
    np.testing.assert_array_equal(frame["embedding"][0], result.vectors[0])


def test_bad_input_gets_a_clear_error(curves):
    model = tiny_model(A1_STYLE)
    with pytest.raises(ValueError, match="missing 'mag' column"):
        embed(pd.DataFrame({"object_id": [1], "time": [0.0], "err": [0.1]}), model, device="cpu")
    with pytest.raises(ValueError, match=r"curve 1: expected 3 columns"):
        embed([curves[0], curves[1][:, :2]], model, device="cpu")
    broken = survey_dataset(curves).map(lambda row, i: {"mag": row["mag"][:-1] if i == 3 else row["mag"]},
                                        with_indices=True)
    with pytest.raises(ValueError, match=r"curve 3 \(id 'a-star'\): columns 'time', 'mag', 'mag_err' hold 17, 16"):
        embed(broken, model, device="cpu")
    with pytest.raises(ValueError, match="pooling must be one of"):
        embed(curves, model, pooling="median")
    with pytest.raises(ValueError, match="fixed windows"):
        embed(curves, model, processor=AstromerProcessor(window_size=T, windows="random"))
    with pytest.raises(TypeError, match="must be an Astromer model"):
        embed(curves, torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="strict|row 7: non-finite"):
        embed(curves, model, processor=AstromerProcessor(window_size=T, clean=False))


# ----------------------------------------------------------------------------------------------------------------------
# Pooling, bucketing, observations
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("style", [A1_STYLE, A2_STYLE], ids=["additive_one", "key"])
@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_pooled_vectors_equal_a_hand_computation(curves, style, pooling):
    model = tiny_model(style)
    result = embed(curves, model, pooling=pooling, device="cpu", batch_size=3)
    assert_same_vectors(result.vectors, hand_pooled(model, curves, pooling))


def test_gamma_pooling_uses_a_classifiers_trained_layer_weights(curves):
    torch.manual_seed(1)
    classifier = AstromerForLightCurveClassification(tiny_config(**A2_STYLE)).eval()
    with torch.no_grad():
        classifier.layer_weights.copy_(torch.tensor([0.5, -1.0, 2.0]))
    result = embed(curves, classifier, pooling="gamma", device="cpu")
    assert_same_vectors(result.vectors, hand_pooled(classifier.astromer, curves, "gamma", classifier.layer_weights))
    # a curve of one window: exactly the classifier's own skip pooling
    short = [curves[1]]
    batch = AstromerProcessor.from_model_config(classifier.config)(short)
    with torch.no_grad():
        pooled = classifier(batch["magnitudes"], batch["times"], attention_mask=batch["attention_mask"]).pooled_output
    assert_same_vectors(embed(short, classifier, pooling="gamma", device="cpu").vectors, pooled.numpy())
    # a model without trained weights: uniform gamma
    uniform = embed(curves, classifier.astromer, pooling="gamma", device="cpu")
    assert_same_vectors(uniform.vectors, hand_pooled(classifier.astromer, curves, "gamma", torch.zeros(3)))


def record_widths(model: AstromerModel) -> list[int]:
    widths: list[int] = []
    model.register_forward_pre_hook(lambda module, args, kwargs: widths.append(args[0].shape[1]), with_kwargs=True)
    return widths


def test_key_masked_models_pad_each_batch_to_its_longest_window_with_the_same_results(curves):
    model = tiny_model(A2_STYLE)
    widths = record_widths(model)
    short_ones = [c[:9] for c in curves if len(c) >= 9]  # one window each, all 9 long
    mixed = embed(curves + short_ones, model, device="cpu", batch_size=4, return_observations=True)
    assert min(widths) < T and max(widths) == T  # short windows were not padded to the window size
    padded = hand_pooled(model, curves + short_ones, "mean")  # every window padded to T
    assert_same_vectors(mixed.vectors, padded)
    batch, out = per_window_outputs(model, curves + short_ones)
    index = int(np.flatnonzero(batch["curve_index"].numpy() == len(curves))[0])  # the first short curve's window
    np.testing.assert_allclose(mixed.observations[len(curves)], out.last_hidden_state[index, :9].numpy(), atol=1e-5)


def test_additive_masked_models_pack_padding_by_default_and_pad_to_the_window_size_when_asked(curves):
    model = tiny_model(A1_STYLE)
    widths = record_widths(model)
    short_ones = [c[:9] for c in curves if len(c) >= 9]
    packed = embed(curves + short_ones, model, device="cpu", batch_size=2)
    assert min(widths) < T  # short windows: their observations and one position for all of their padding
    widths.clear()
    padded = embed(curves + short_ones, model, device="cpu", batch_size=2, pack_padding=False)
    assert set(widths) == {T}
    assert_same_vectors(packed.vectors, padded.vectors)
    assert_same_vectors(padded.vectors, hand_pooled(model, curves + short_ones, "mean"))


def test_per_observation_embeddings_have_each_curves_own_length(curves):
    model = tiny_model(A2_STYLE)
    result = embed(curves, model, device="cpu", return_observations=True, batch_size=5)
    batch, out = per_window_outputs(model, curves)
    states = out.last_hidden_state.numpy()
    for c, curve in enumerate(curves):
        if not result.kept[c]:
            assert result.observations[c] is None
            continue
        rows = result.observations[c]
        assert rows.shape == (len(curve), 16) and rows.dtype == np.float32
        finite = np.isfinite(curve).all(1)
        assert np.isnan(rows[~finite]).all() and np.isfinite(rows[finite]).all()  # the NaN row of curve 4
        windows = np.flatnonzero(batch["curve_index"].numpy() == c)
        expected = np.concatenate([states[w, :batch["window_length"][w]] for w in windows])
        np.testing.assert_allclose(rows[finite], expected, atol=1e-5)
        np.testing.assert_allclose(result.vectors[c], rows[finite].mean(0), atol=1e-5)


def test_a_progress_bar_counts_curves_and_is_off_on_request(curves, capfd):
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars

    enable_progress_bars()
    if are_progress_bars_disabled():
        pytest.skip("HF_HUB_DISABLE_PROGRESS_BARS is set in this environment")
    model = tiny_model(A1_STYLE)
    embed(curves, model, device="cpu", progress=False)
    assert "Embedding light curves" not in capfd.readouterr().err
    embed(survey_dataset(curves), model, device="cpu", progress=True, chunk_size=4, batch_size=2)
    bar = capfd.readouterr().err
    assert "Embedding light curves: 100%" in bar and "6/6" in bar


def test_bfloat16_autocast_is_close_to_float32(curves):
    model = tiny_model(A2_STYLE)
    full = embed(curves, model, device="cpu").vectors
    half = embed(curves, model, device="cpu", dtype=torch.bfloat16).vectors
    kept = np.isfinite(full).all(1)
    cosine = (full[kept] * half[kept]).sum(1) / np.linalg.norm(full[kept], axis=1) / np.linalg.norm(half[kept], axis=1)
    assert half.dtype == np.float32 and cosine.min() > 0.99


# ----------------------------------------------------------------------------------------------------------------------
# Datasets: chunks, Parquet shards, a new column
# ----------------------------------------------------------------------------------------------------------------------
def test_chunked_dataset_runs_equal_the_in_memory_run(curves, tmp_path):
    import datasets
    import pyarrow.parquet as pq

    model = tiny_model(A2_STYLE)
    in_memory = embed(curves, model, device="cpu", return_observations=True)
    dataset = survey_dataset(curves)
    chunked = embed(dataset, model, device="cpu", chunk_size=2, return_observations=True)
    assert_same_vectors(chunked.vectors, in_memory.vectors)
    assert chunked.report.dropped_curves == in_memory.report.dropped_curves == (2,)
    assert chunked.columns == {"band": ["R"] * 6, "label": [0, 1, 0, 1, 0, 1]}
    for ours, theirs in zip(chunked.observations, in_memory.observations):
        assert (ours is None) == (theirs is None)
        if ours is not None:
            np.testing.assert_allclose(ours, theirs, atol=1e-5)

    written = embed_to_parquet(dataset, model, tmp_path / "shards", shard_size=4, chunk_size=3, device="cpu")
    assert [p.name for p in written.paths] == ["part-00000.parquet", "part-00001.parquet"]
    assert (written.curves, written.kept) == (6, 5)
    table = pd.concat([pq.read_table(p).to_pandas() for p in written.paths], ignore_index=True)
    assert list(table["id"]) == IDS and list(table["kept"]) == list(in_memory.kept)
    assert table["embedding"][2] is None
    np.testing.assert_allclose(np.stack(table["embedding"][in_memory.kept]), in_memory.vectors[in_memory.kept],
                               atol=1e-5)
    with pytest.raises(FileExistsError, match="overwrite"):
        embed_to_parquet(dataset, model, tmp_path / "shards", shard_size=4, device="cpu")

    with_column = add_embeddings(dataset, model, chunk_size=4, device="cpu",
                                 map_kwargs={"keep_in_memory": True})
    assert with_column.column_names == [*dataset.column_names, "embedding"]
    column = with_column["embedding"]
    assert column[2] is None
    np.testing.assert_allclose(np.array([column[i] for i in (0, 1, 3, 4, 5)]),
                               in_memory.vectors[[0, 1, 3, 4, 5]], atol=1e-5)

    splits = datasets.DatasetDict({"train": dataset.select([0, 1, 2]), "test": dataset.select([3, 4, 5])})
    both = embed(splits, model, device="cpu", chunk_size=2)
    assert both.columns["split"] == ["train"] * 3 + ["test"] * 3 and both.ids == IDS
    assert_same_vectors(both.vectors, in_memory.vectors)


# ----------------------------------------------------------------------------------------------------------------------
# The pipeline and the command
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny") / "astromer-tiny"
    torch.manual_seed(3)
    model = AstromerForMaskedReconstruction(tiny_config(**A2_STYLE))
    model.save_pretrained(folder)
    AstromerProcessor.from_model_config(model.config).save_pretrained(folder)
    return folder


def test_embedding_from_a_folder_shows_no_weight_loading_bar_and_leaves_transformers_bars_as_they_were(
        curves, tiny_folder, capfd):
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as transformers_logging

    enable_progress_bars()
    transformers_logging.enable_progress_bar()
    if are_progress_bars_disabled():
        pytest.skip("HF_HUB_DISABLE_PROGRESS_BARS is set in this environment")
    embed(curves, str(tiny_folder), device="cpu", progress=True)
    err = capfd.readouterr().err
    assert "Embedding light curves: 100%" in err and "Loading weights" not in err, err
    assert transformers_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()


def test_pipeline_task_embeds_offline_from_a_local_folder(curves, tiny_folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import pipeline

    embedder = pipeline("light-curve-embedding", model=str(tiny_folder), device="cpu")
    assert isinstance(embedder.feature_extractor, AstromerProcessor)  # the folder's processor
    expected = embed(curves, str(tiny_folder), device="cpu")
    rows = embedder(long_frame(curves))
    assert [row["id"] for row in rows] == IDS and [row["kept"] for row in rows] == list(expected.kept)
    assert rows[2]["embedding"] is None
    np.testing.assert_allclose(np.stack([rows[i]["embedding"] for i in (0, 1, 3, 4, 5)]),
                               expected.vectors[[0, 1, 3, 4, 5]], atol=1e-5)
    one = embedder(curves[0], pooling="max", return_observations=True)
    assert set(one) == {"id", "kept", "embedding", "observations"} and one["observations"].shape == (40, 16)
    np.testing.assert_allclose(one["embedding"], embed([curves[0]], str(tiny_folder), pooling="max",
                                                        device="cpu").vectors[0], atol=1e-5)
    assert embedder.last_result.report.curves_in == 1
    with pytest.raises(TypeError, match="unknown argument"):
        embedder(curves, windows="random")


def test_astromer_embed_writes_a_readable_parquet_file_from_a_prepared_dataset(curves, tiny_folder, tmp_path, capsys):
    import datasets

    dataset = survey_dataset(curves)
    datasets.DatasetDict({"train": dataset.select([0, 1, 2, 3]), "validation": dataset.select([4, 5])}).save_to_disk(
        tmp_path / "prepared")
    out = tmp_path / "embeddings.parquet"
    arguments = ["embed", str(tmp_path / "prepared"), "--model", str(tiny_folder), "--out", str(out), "--split",
                 "train", "--pooling", "max", "--device", "cpu", "--observations"]
    assert astromer_main(arguments) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "Embedded 3 of 4 light curves" in printed and "1 curve(s) dropped" in printed
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["id", "kept", "split", "band", "label", "embedding", "observations"]
    assert list(frame["id"]) == IDS[:4] and list(frame["split"]) == ["train"] * 4
    expected = embed(curves[:4], str(tiny_folder), pooling="max", device="cpu", return_observations=True)
    np.testing.assert_allclose(np.stack(frame["embedding"][[0, 1, 3]]), expected.vectors[[0, 1, 3]], atol=1e-5)
    assert np.stack(frame["observations"][3]).shape == (17, 16)
    assert astromer_main(arguments) == 2  # the same command again, without --overwrite
    assert "exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert astromer_main([*arguments[:-1], "--shard-size", "2", "--out", str(tmp_path / "shards")]) == 0
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["part-00000.parquet", "part-00001.parquet"]


def test_the_console_script_lists_the_embed_command():
    astromer = ROOT / ".venv" / "bin" / "astromer"
    if not astromer.exists():
        pytest.skip("the console scripts are installed by scripts/setup.sh into .venv")
    result = subprocess.run([str(astromer), "embed", "--help"], capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    for option in ("--model", "--out", "--split", "--pooling", "--observations", "--legacy", "--shard-size"):
        assert option in result.stdout


def test_read_lightcurves_reads_tables_and_single_curve_text_files(curves, tmp_path):
    frame = long_frame(curves)
    frame.to_csv(tmp_path / "curves.csv", index=False)
    frame.to_parquet(tmp_path / "curves.parquet")
    np.savetxt(tmp_path / "one.dat", curves[0], header="time mag err")
    pd.testing.assert_frame_equal(read_lightcurves(tmp_path / "curves.parquet"), frame)
    assert list(read_lightcurves(tmp_path / "curves.csv").columns) == list(frame.columns)
    one = read_lightcurves(tmp_path / "one.dat")
    assert set(one["id"]) == {str(tmp_path / "one.dat")}
    np.testing.assert_allclose(one[["time", "mag", "err"]].to_numpy(), curves[0])
    np.savetxt(tmp_path / "four.dat", np.ones((3, 4)))
    with pytest.raises(ValueError, match="expected three columns time, mag, err, got 4"):
        read_lightcurves(tmp_path / "four.dat")
    with pytest.raises(FileNotFoundError):
        read_lightcurves(tmp_path / "missing.csv")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="neither a prepared dataset .* nor a folder of light-curve files"):
        read_lightcurves(tmp_path / "folder")


def test_a_folder_or_list_of_one_curve_files_embeds_one_row_per_file(curves, tiny_folder, tmp_path, capsys):
    """The archive layout, one file per star: `astromer embed stars/` and `astromer embed stars/*.dat` give one row
    per file, named after it, with the embeddings of the same curves given as arrays."""
    stars = tmp_path / "stars"
    stars.mkdir()
    names = [f"star{index:02d}.{'csv' if index == 1 else 'dat'}" for index in range(len(curves))]
    for name, curve in zip(names, curves):
        np.savetxt(stars / name, curve, header="time mag err")  # a commented header
    pd.DataFrame(curves[1], columns=["mjd", "mag", "magerr"]).to_csv(stars / names[1], index=False)  # a CSV
    np.savetxt(stars / names[3], curves[3], header="mjd mag err", comments="")  # a header line of names
    (stars / ".hidden").write_text("not a curve")
    expected = embed(curves, tiny_folder, device="cpu")  # curve 2 is too short: dropped, a row all the same

    folder_out, files_out = tmp_path / "folder.parquet", tmp_path / "files.parquet"
    assert astromer_main(["embed", str(stars), "--model", str(tiny_folder), "--out", str(folder_out),
                          "--device", "cpu", "--no-progress"]) == 0
    files = [str(stars / name) for name in names]
    assert astromer_main(["embed", *files, "--model", str(tiny_folder), "--out", str(files_out),
                          "--device", "cpu", "--no-progress"]) == 0
    for out, ids in ((folder_out, names), (files_out, files)):
        frame = pd.read_parquet(out)
        assert list(frame["id"]) == ids and list(frame["kept"]) == list(expected.kept) == [True] * 2 + [False] + [True] * 3
        np.testing.assert_allclose(np.stack(frame["embedding"][frame["kept"]]), expected.vectors[expected.kept],
                                   rtol=1e-5, atol=1e-6)

    from_path = embed(stars, tiny_folder, device="cpu")  # the Python call reads the same paths
    assert list(from_path.ids) == names
    from_list = embed([stars / name for name in names], tiny_folder, device="cpu")
    assert list(from_list.ids) == files and np.array_equal(from_list.vectors, from_path.vectors, equal_nan=True)
    np.testing.assert_allclose(from_path.vectors[from_path.kept], expected.vectors[expected.kept], rtol=1e-5,
                               atol=1e-6)

    # a bad file stops the run before anything is written, naming the file
    (stars / "zz_bad.dat").write_text("1 2\n3 4\n")
    bad_out = tmp_path / "bad.parquet"
    with pytest.raises(ValueError, match="zz_bad.dat: expected three columns time, mag, err, got 2"):
        read_lightcurves(stars)
    assert astromer_main(["embed", str(stars), "--model", str(tiny_folder), "--out", str(bad_out)]) != 0
    assert "zz_bad.dat" in capsys.readouterr().err and not bad_out.exists()
    (stars / "zz_bad.dat").write_text("# nothing observed\n")
    with pytest.raises(ValueError, match="zz_bad.dat holds no observation"):
        read_lightcurves(stars)
    long_frame(curves).to_csv(tmp_path / "several.csv", index=False)
    with pytest.raises(ValueError, match=f"holds {len(curves)} curves; with several files each file must hold one"):
        read_lightcurves([tmp_path / "several.csv", stars / names[0]])


# ----------------------------------------------------------------------------------------------------------------------
# The original encode() on the 30 reference curves
# ----------------------------------------------------------------------------------------------------------------------
def reference_frame(reference) -> pd.DataFrame:
    raw, offsets = reference["raw_lc"], reference["raw_offsets"]
    names = np.repeat(reference["curve_name"], np.diff(offsets))
    return pd.DataFrame({"id": names, "time": raw[:, 0], "mag": raw[:, 1], "err": raw[:, 2]})


def test_legacy_row_counts_equal_the_original_encode_rows(reference):
    model = AstromerModel(AstromerConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=8)).eval()
    result = embed(reference_frame(reference), model, legacy=True, return_observations=True, device="cpu")
    assert result.kept.all() and not result.report.changed
    rows = {name: len(observations) for name, observations in zip(result.ids, result.observations)}
    assert list(result.ids) == list(reference["curve_name"])  # input order; the original sorted them:
    assert [rows[name] for name in reference["encode_order"]] == reference["encode_rows"].tolist()


@pytest.fixture(scope="module")
def converted(reference_dir, tmp_path_factory) -> Path:
    from astromer_hf.convert.convert_tf_checkpoint import convert_tf_checkpoint

    return convert_tf_checkpoint(reference_dir / "macho_a0.zip", tmp_path_factory.mktemp("converted") / "a1")


def test_astromer_embed_reproduces_the_original_embeddings_of_the_reference_curves(reference, converted, tmp_path,
                                                                                      capsys):
    table = tmp_path / "reference.parquet"
    reference_frame(reference).to_parquet(table)
    out = tmp_path / "embeddings.parquet"
    code = astromer_main(["embed", str(table), "--model", str(converted), "--out", str(out), "--legacy",
                          "--observations", "--device", "cpu", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    frame = pd.read_parquet(out)
    assert list(frame["id"]) == list(reference["curve_name"]) and frame["kept"].all()
    observations = [np.stack(rows).astype(np.float64) for rows in frame["observations"]]

    # the stored per-window embeddings of the original, window by window within each curve's rows
    win_curve, win_length = reference["win_curve"], reference["win_length"]
    first_row = np.zeros(len(win_curve), dtype=np.int64)
    for curve in np.unique(win_curve):
        windows = np.flatnonzero(win_curve == curve)
        first_row[windows] = np.concatenate([[0], np.cumsum(win_length[windows])[:-1]])
    for stored, window in zip(reference["emb"], reference["emb_idx"]):
        n = win_length[window]
        ours = observations[win_curve[window]][first_row[window]:first_row[window] + n]
        theirs = stored[:n].astype(np.float64)
        cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
        assert cosine.min() >= COSINE_MIN, f"window {window}: min cosine {cosine.min()}"
        assert np.abs(ours - theirs).max() <= EMB_MAX_DIFF, f"window {window}"

    # the pooled vectors: the mean over each curve's rows, computed by hand from the model on the stored windows
    model = AstromerModel.from_pretrained(converted).eval()
    with torch.no_grad():
        states = model(torch.from_numpy(reference["win_mag"]), torch.from_numpy(reference["win_times"]),
                       attention_mask=torch.from_numpy(1 - reference["win_mask_in"]).long()).last_hidden_state.numpy()
    for curve in range(len(observations)):
        windows = np.flatnonzero(win_curve == curve)
        rows = np.concatenate([states[w, :win_length[w]] for w in windows]).astype(np.float64)
        # the hand computation pads every window to 200; embed packs the padding (the default), which sums the
        # attention in another order: float32 rounding of 2e-5 on channels up to ~5 (a pooling error is far larger)
        np.testing.assert_allclose(frame["embedding"][curve], rows.mean(0), atol=1e-4)
        np.testing.assert_allclose(frame["embedding"][curve], observations[curve].mean(0), atol=1e-5)


def test_import_astromer_hf_still_imports_no_torch():
    code = "import astromer_hf, sys; print(any(m.split('.')[0] == 'torch' for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.stdout.strip() == "False", result.stderr[-2000:]
    assert {"embed", "LightCurveEmbeddings"} <= set(astromer_hf.__all__)


def test_the_task_is_registered_when_transformers_pipelines_was_imported_first(monkeypatch):
    """What ``import astromer_hf`` does after ``from transformers import pipeline``: install() registers with the
    modules already imported (here: after the task is taken out of the registry again)."""
    from transformers.pipelines import PIPELINE_REGISTRY

    from astromer_hf import auto_registration
    from astromer_hf.pipelines import TASK, LightCurveEmbeddingPipeline

    monkeypatch.delitem(PIPELINE_REGISTRY.supported_tasks, TASK)
    monkeypatch.setattr(auto_registration, "_registered", auto_registration._registered - {"transformers.pipelines"})
    auto_registration.install()
    assert PIPELINE_REGISTRY.supported_tasks[TASK]["impl"] is LightCurveEmbeddingPipeline
