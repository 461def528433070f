"""Peak and steady memory while embedding or pretraining from a very large prepared dataset.

    python -m benchmarks.memory_flatness                       # 1,000,000 curves; embed 50,000; 300 training steps
    python -m benchmarks.memory_flatness --curves 20000 --embed-curves 2000 --train-steps 20   # a quick look

It writes (once; reused when present) a prepared dataset of ``--curves`` simulated light curves in the survey schema
(``train``/``validation``/``test``; 20 to 200 observations each, a random sinusoid on a random cadence: what is
measured here is memory, not science), then runs two jobs, each in a fresh process, while a thread samples the
process's memory from ``/proc/self/status`` every 0.2 s:

* **embed**: :func:`astromer_hf.embed_to_parquet` of the first ``--embed-curves`` training curves of the full dataset
  (opened memory-mapped, as ``astromer embed DATASET`` does), with an Astromer 1 encoder of random weights;
* **pretrain**: ``--train-steps`` steps of :class:`~astromer_hf.training.AstromerPretraining` in a Lightning
  ``Trainer`` on :class:`~astromer_hf.training.AstromerDataModule` over the whole dataset (the quickstart's small
  encoder: the model's own memory is not what grows with the dataset).

For each it prints the resident memory (``VmRSS``) and its anonymous part (``RssAnon``: what the process allocated;
``VmRSS`` also counts the pages of the memory-mapped Arrow files it has read, which the kernel drops under memory
pressure) at 10 %, 25 %, 50 %, 75 % and 100 % of the job's time and their peaks. Flat means the late samples are not
above the early ones: memory does not grow with the curves processed. ``--json`` writes every sample.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "benchmarks-data" / "flat-memory"
SMALL_ENCODER = {"num_hidden_layers": 2, "hidden_size": 128, "intermediate_size": 256, "residual_style": "identity"}


def memory_mb() -> dict[str, float]:
    """VmRSS, RssAnon, RssFile and VmHWM of this process, MB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


class Sampler(threading.Thread):
    """Samples :func:`memory_mb` every ``interval`` seconds until stopped."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval, self.samples, self.started = interval, [], time.perf_counter()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append({"seconds": time.perf_counter() - self.started, **memory_mb()})
            self._stop_event.wait(self.interval)

    def stop(self) -> list[dict]:
        self._stop_event.set()
        self.join()
        self.samples.append({"seconds": time.perf_counter() - self.started, **memory_mb()})
        return self.samples


# ----------------------------------------------------------------------------------------------------------------------
# The dataset
# ----------------------------------------------------------------------------------------------------------------------
def _curves(n: int, seed: int, chunk: int = 5000):
    """Rows of the survey schema: ``n`` curves, drawn ``chunk`` at a time with numpy (no loop per observation)."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        lengths = rng.integers(20, 201, size)
        total = int(lengths.sum())
        steps = rng.exponential(2.0, total) + 0.01
        owner = np.repeat(np.arange(size), lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        times = 49000.0 + np.cumsum(steps) - np.repeat(np.cumsum(steps)[offsets[:-1]] - steps[offsets[:-1]], lengths)
        period = rng.uniform(0.2, 50.0, size)[owner]
        mags = (15 + rng.normal(0, 1, size)[owner] + rng.uniform(0.05, 1, size)[owner]
                * np.sin(2 * np.pi * times / period) + rng.normal(0, 0.02, total)).astype(np.float32)
        errors = rng.uniform(0.01, 0.05, total).astype(np.float32)
        for i in range(size):
            a, b = offsets[i], offsets[i + 1]
            yield {"object_id": f"flat-{seed}-{start + i}", "survey": "synthetic", "band": "V",
                   "time": times[a:b], "mag": mags[a:b], "mag_err": errors[a:b], "label": None,
                   "ra": 0.0, "dec": 0.0, "n_obs": int(b - a)}


def build_dataset(path: Path, n_curves: int) -> Path:
    """The prepared dataset of ``n_curves`` curves at ``path`` (98 % train, 1 % validation, 1 % test)."""
    import datasets

    from astromer_hf.data.schema import lightcurve_features

    if (path / "dataset_dict.json").is_file():
        built = datasets.load_from_disk(str(path))
        if sum(len(split) for split in built.values()) == n_curves:
            return path
        raise SystemExit(f"{path} holds another dataset ({sum(len(s) for s in built.values())} curves); remove it "
                         f"or give --data")
    features = lightcurve_features()
    held_out = max(1, n_curves // 100)
    sizes = {"train": n_curves - 2 * held_out, "validation": held_out, "test": held_out}
    cache = path.with_name(path.name + ".cache")
    splits = {}
    for seed, (name, size) in enumerate(sizes.items()):
        splits[name] = datasets.Dataset.from_generator(_curves, gen_kwargs={"n": size, "seed": seed},
                                                       features=features, cache_dir=str(cache))
    datasets.DatasetDict(splits).save_to_disk(str(path))
    shutil.rmtree(cache, ignore_errors=True)
    return path


# ----------------------------------------------------------------------------------------------------------------------
# The jobs (each in a fresh process)
# ----------------------------------------------------------------------------------------------------------------------
def job_embed(data: str, curves: int, batch: int) -> dict:
    import tempfile

    import torch

    from astromer_hf import AstromerConfig, AstromerModel, embed_to_parquet
    from astromer_hf.embedding import read_lightcurves

    torch.manual_seed(0)
    model = AstromerModel(AstromerConfig.from_preset("astromer-1")).eval()
    dataset = read_lightcurves(data, splits=["train"])["train"]
    subset = dataset.select(range(min(curves, len(dataset))))
    sampler = Sampler()
    sampler.start()
    with tempfile.TemporaryDirectory() as out:
        written = embed_to_parquet(subset, model, Path(out) / "embeddings.parquet", batch_size=batch,
                                   device="cpu", progress=False)
    return {"items": written.curves, "unit": "curves", "samples": sampler.stop()}


def job_pretrain(data: str, steps: int, batch: int) -> dict:
    import lightning.pytorch as pl

    from astromer_hf.training import AstromerDataModule, AstromerPretraining

    pl.seed_everything(0, verbose=False)
    module = AstromerPretraining(model="astromer-2", config_overrides=SMALL_ENCODER)
    data_module = AstromerDataModule(path=data, batch_size=batch, seed=0)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=steps, limit_val_batches=20,
                         val_check_interval=max(1, steps // 3), logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    sampler = Sampler()
    sampler.start()
    trainer.fit(module, datamodule=data_module)
    return {"items": trainer.global_step, "unit": "steps", "samples": sampler.stop()}


def run_job(name: str, arguments: argparse.Namespace) -> dict:
    job = {"job": name, "data": str(arguments.data), "curves": arguments.embed_curves, "steps": arguments.train_steps,
           "batch": arguments.batch if name == "embed" else arguments.train_batch}
    from .suite import run_child

    return run_child(job, module="benchmarks.memory_flatness")


def child(job: dict) -> dict:
    if job["job"] == "embed":
        return job_embed(job["data"], job["curves"], job["batch"])
    return job_pretrain(job["data"], job["steps"], job["batch"])


def summary(result: dict) -> dict:
    samples = result["samples"]
    seconds = np.array([s["seconds"] for s in samples])
    at = {}
    for fraction in (0.1, 0.25, 0.5, 0.75, 1.0):
        index = int(np.searchsorted(seconds, fraction * seconds[-1]))
        sample = samples[min(index, len(samples) - 1)]
        at[f"{int(fraction * 100)}%"] = {"VmRSS": round(sample["VmRSS"]), "RssAnon": round(sample["RssAnon"])}
    late = [s["RssAnon"] for s in samples if s["seconds"] >= 0.5 * seconds[-1]]
    early = [s["RssAnon"] for s in samples if 0.1 * seconds[-1] <= s["seconds"] < 0.5 * seconds[-1]] or late
    return {"seconds": round(float(seconds[-1]), 1), "items": result["items"], "unit": result["unit"],
            "peak_VmHWM_mb": round(max(s["VmHWM"] for s in samples)),
            "peak_RssAnon_mb": round(max(s["RssAnon"] for s in samples)),
            "anon_growth_second_half_mb": round(max(late) - max(early)), "at": at}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory_flatness", description=__doc__.split("\n")[0])
    parser.add_argument("--curves", type=int, default=1_000_000, help="curves in the dataset (default 1,000,000)")
    parser.add_argument("--embed-curves", type=int, default=50_000, help="curves embedded (default 50,000)")
    parser.add_argument("--train-steps", type=int, default=300, help="pretraining steps (default 300)")
    parser.add_argument("--batch", type=int, default=256, help="embedding batch (default 256)")
    parser.add_argument("--train-batch", type=int, default=64, help="pretraining batch (default 64)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"where the dataset is (default {DEFAULT_DATA})")
    parser.add_argument("--json", type=Path, default=None, help="write the samples and the summary here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.child:
        print(json.dumps(child(json.loads(arguments.child))))
        return 0
    if min(arguments.curves, arguments.embed_curves, arguments.train_steps) < 1:
        parser.error("--curves, --embed-curves and --train-steps must be positive")
    started = time.perf_counter()
    print(f"dataset: {arguments.curves:,} curves at {arguments.data} ...", flush=True)
    build_dataset(arguments.data, arguments.curves)
    print(f"  ready in {time.perf_counter() - started:.0f} s", flush=True)
    report = {"dataset_curves": arguments.curves, "jobs": {}}
    for name in ("embed", "pretrain"):
        print(f"{name} job (fresh process) ...", flush=True)
        result = run_job(name, arguments)
        report["jobs"][name] = {"summary": summary(result), "samples": result["samples"]}
        s = report["jobs"][name]["summary"]
        print(f"  {s['items']:,} {s['unit']} in {s['seconds']} s; peak VmRSS {s['peak_VmHWM_mb']} MB, peak RssAnon "
              f"{s['peak_RssAnon_mb']} MB; RssAnon growth in the second half {s['anon_growth_second_half_mb']} MB",
              flush=True)
        for point, values in s["at"].items():
            print(f"    at {point:>4} of the time: VmRSS {values['VmRSS']} MB, RssAnon {values['RssAnon']} MB")
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
