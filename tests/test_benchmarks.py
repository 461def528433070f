"""``python -m benchmarks``: the quick run prints the table and writes every figure to JSON; the helpers it rests on
(FLOP counts, the batch cap of slow variants, interleaving, target checks) compute what they say."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from astromer_hf import AstromerConfig
from benchmarks import suite

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--no-original", "--json", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, json.loads(out.read_text())


def rows_of(results, section):
    return [row for row in results["rows"] if row["section"] == section]


def test_quick_run_prints_the_table_and_the_targets(quick_run):
    stdout, results = quick_run
    assert "section" in stdout and "% peak" in stdout and "ratio" in stdout
    assert "original: not run" in stdout  # --no-original: said, not silently absent
    assert "targets (issue F):" in stdout
    assert "wrote " in stdout


def test_quick_run_measures_every_task(quick_run):
    _, results = quick_run
    assert {row["variant"] for row in rows_of(results, "matmul peak")} == {
        "torch.mm fp32 256^3", "F.linear fp32 256^3", "torch.mm bf16 256^3", "F.linear bf16 256^3"}
    forward = {(row["model"], row["variant"]) for row in rows_of(results, "encoder forward")}
    for model in ("A1", "A2"):
        assert {(model, "fp32"), (model, "bf16 autocast"), (model, "bf16 model")} <= forward
    assert ("A1", "fp32, Q/K/V columns unpadded") in forward  # the CPU settings' variants, timed beside the default
    assert {row["variant"] for row in rows_of(results, "embed path")} == {
        "embed() fp32", "embed() fp32, full padding", "embed() bf16 autocast"}
    assert len(rows_of(results, "data path")) == 1
    steps = {(row["model"], row["variant"]) for row in rows_of(results, "pretraining step")}
    assert steps == {("A1", "fp32"), ("A1", "bf16-mixed"), ("A2", "fp32"), ("A2", "bf16-mixed")}
    timed = [row for row in results["rows"] if row["rate"] is not None]
    assert all(row["rate"] > 0 and row["samples"] for row in timed)
    memory = rows_of(results, "peak memory")
    assert len(memory) == 4 and all(row["extra"]["peak_rss_mb"] > 100 for row in memory)
    assert results["machine"]["torch"] and results["machine"]["cpus"] >= 1
    assert 0.99 <= results["bf16_cosine"]["pooled_min"] <= 1.0 + 1e-9


def test_quick_run_fractions_follow_from_rates_flops_and_the_measured_peak(quick_run):
    _, results = quick_run
    peaks = results["peaks_gflops"]
    config = AstromerConfig.from_preset("astromer-2", **suite.QUICK_OVERRIDES)
    for row in rows_of(results, "encoder forward"):
        if row["rate"] is None:  # a variant --quick leaves out (ONNX Runtime), with the reason
            assert row["note"]
            continue
        if row["model"] == "A2":
            assert row["gflops"] == pytest.approx(row["rate"] * suite.encoder_flops(config, 200) / 1e9)
        peak = peaks["bf16" if row["variant"].startswith("bf16") else "fp32"]
        assert row["peak_fraction"] == pytest.approx(row["gflops"] / peak)
    for row in rows_of(results, "matmul peak"):  # the peak of a dtype: its faster route
        assert row["gflops"] <= peaks["fp32" if "fp32" in row["variant"] else "bf16"] * (1 + 1e-9)
    for dtype in ("fp32", "bf16"):
        fastest = max(row["gflops"] for row in rows_of(results, "matmul peak") if dtype in row["variant"])
        assert fastest == pytest.approx(peaks[dtype])
    # no original: no ratio anywhere, and the ratio targets are "not measured" rather than passed or failed
    assert all(row["ratio"] is None for row in results["rows"])
    ratio_targets = [t for t in results["targets"] if "ratio" in t["target"]]
    assert ratio_targets and all(t["met"] is None for t in ratio_targets)


def test_encoder_flops_of_astromer_1():
    config = AstromerConfig.from_preset("astromer-1")  # D 256, FF 128, 2 layers, no projected residuals
    t, d, f = 200, 256, 128
    per_layer = 2 * t * d * 3 * d + 2 * t * d * d + 4 * t * t * d + 4 * t * d * f
    assert suite.encoder_flops(config, t) == 2 * per_layer
    assert suite.training_flops(config, t) == 3 * 2 * per_layer
    a2 = AstromerConfig.from_preset("astromer-2")  # projected residuals add two D x D projections per layer
    assert suite.encoder_flops(a2, t) > suite.encoder_flops(
        AstromerConfig.from_preset("astromer-2", residual_style="identity"), t)


def test_capped_batch_keeps_the_batch_when_a_call_fits_and_halves_it_otherwise():
    def make(seconds_per_window):
        return lambda batch: (lambda: seconds_per_window * batch)

    assert suite.capped_batch(make(0.01), 256, cap=10.0) == (256, "")
    batch, note = suite.capped_batch(make(0.1), 256, cap=10.0)
    assert batch == 64 and "batch 64" in note and "256" in note  # 64 windows: 6.4 s; 128: 12.8 s > cap
    assert suite.capped_batch(make(100.0), 256, cap=10.0)[0] == 2  # never below the probe


def test_interleave_alternates_variants_after_one_warm_up_each():
    calls = []

    def variant(name):
        return suite.Variant(name, lambda: calls.append(name) or 0.5, items=10)

    a, b = variant("a"), variant("b")
    suite.interleave([a, b], rounds=2)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert a.samples == [20.0, 20.0] and a.rate() == 20.0


def test_targets_compare_with_their_thresholds():
    rows = [
        suite.Row("encoder forward", "A1", 64, "fp32", 100.0, peak_fraction=0.5, original=80.0, ratio=1.25),
        suite.Row("embed path", "A1", 256, "embed() fp32", 90.0, original=30.0, ratio=3.0),
        suite.Row("peak memory", "A2", 256, "pretraining step, fresh process", 1.0, extra={"peak_rss_mb": 3000.0}),
    ]
    targets = {t["target"]: t["met"] for t in suite.evaluate_targets(rows, {"pooled_min": 0.9995}, (64,))}
    assert targets["A1 forward fp32 batch 64: ratio to the original tf.function >= 1.2"] is True
    assert targets["A1 forward fp32 batch 64: fraction of the fp32 matmul peak >= 0.8"] is False
    assert targets["embed path fp32: ratio to the original encode() >= 4"] is False
    assert targets["bf16 autocast pooled cosine to fp32 >= 0.999"] is True
    assert targets["A2 pretraining step batch 64: peak RSS <= 3700 MB"] is True
    assert targets["A2 pretraining step, gradient checkpointing batch 64: peak RSS <= 3700 MB"] is None
    assert targets["A1 pretraining step fp32 batch 64: ratio to the original >= 1.2"] is None


def test_without_an_interpreter_for_the_original_it_says_how_to_get_one(tmp_path):
    original = suite.Original(None, tmp_path / "log")
    assert not original.available and "bench-tf" in original.reason
    broken = suite.Original(sys.executable + "-missing", tmp_path / "log")
    assert not broken.available and "cannot start" in broken.reason


# ----------------------------------------------------------------------------------------------------------------------
# The speedups the benchmark measures give the same outputs
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("legacy", [False, True], ids=["tiling", "legacy"])
@pytest.mark.parametrize("pooling", ["mean", "max", "gamma"])
def test_packed_padding_gives_the_embeddings_of_full_padding(legacy, pooling):
    import numpy as np
    import torch

    from astromer_hf import AstromerModel, embed

    torch.manual_seed(0)
    model = AstromerModel(AstromerConfig.from_preset("astromer-1", **suite.QUICK_OVERRIDES, window_size=32)).eval()
    assert model.config.attention_mask_style == "additive_one"
    rng = np.random.default_rng(1)
    curves = []
    for n in (5, 31, 32, 33, 70, 64, 9):  # shorter than, equal to and longer than the window, several windows
        times = np.sort(rng.uniform(0, 500, n))
        curves.append(np.stack([times, rng.normal(15, 0.3, n), rng.uniform(0.01, 0.05, n)], axis=1))
    widths = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: widths.append(args[0].shape[1]),
                                           with_kwargs=True)
    padded = embed(curves, model, device="cpu", batch_size=3, pooling=pooling, legacy=legacy,
                   return_observations=True, pack_padding=False)
    widths_padded, widths[:] = list(widths), []
    packed = embed(curves, model, device="cpu", batch_size=3, pooling=pooling, legacy=legacy,
                   return_observations=True, pack_padding=True)
    hook.remove()
    assert set(widths_padded) == {32} and min(widths) < 32  # packed batches are narrower
    np.testing.assert_allclose(packed.vectors, padded.vectors, atol=2e-5)
    for ours, theirs in zip(packed.observations, padded.observations):
        np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_memory_flatness_builds_its_dataset_and_samples_both_jobs(tmp_path, capsys):
    """`python -m benchmarks.memory_flatness` at a tiny size: the dataset is written once in the survey schema (and
    reused), each job runs in its fresh process, and the report holds every sample and the summary it prints."""
    from benchmarks import memory_flatness

    data, report = tmp_path / "flat", tmp_path / "memory.json"
    arguments = ["--curves", "300", "--embed-curves", "50", "--train-steps", "3", "--train-batch", "8",
                 "--data", str(data), "--json", str(report)]
    assert memory_flatness.main(arguments) == 0
    import datasets

    built = datasets.load_from_disk(str(data))
    assert {name: len(split) for name, split in built.items()} == {"train": 294, "validation": 3, "test": 3}
    assert set(built["train"].features) >= {"object_id", "time", "mag", "mag_err", "n_obs"}
    jobs = json.loads(report.read_text())["jobs"]
    assert jobs["embed"]["summary"]["items"] == 50 and jobs["pretrain"]["summary"]["items"] == 3
    for job in jobs.values():
        assert len(job["samples"]) >= 2 and job["summary"]["peak_VmHWM_mb"] > 50
        assert set(job["summary"]["at"]) == {"10%", "25%", "50%", "75%", "100%"}
    assert "peak RssAnon" in capsys.readouterr().out
    assert memory_flatness.main(arguments) == 0  # the dataset is reused, not rebuilt
    with pytest.raises(SystemExit, match="another dataset"):
        memory_flatness.main([*arguments[:1], "400", *arguments[2:]])
