"""Training throughput on this machine: the data pipeline alone, and full training steps, in windows per second.

Measures, in one run and on the same simulated MACHO-like data:

* the collate (Arrow ``take`` of a batch of curves, random windows, centring, padding, masks) without a model;
* forward + backward + Adam step of the quickstart model, Astromer 1 and Astromer 2 (``torch`` threads as set);

and prints windows/s and the share of a training step the data pipeline would take. Usage::

    .venv/bin/python benchmarks/training_throughput.py                 # batch 64, window 200
    .venv/bin/python benchmarks/training_throughput.py --batch-size 256 --steps 10
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from astromer_hf.data.prepare import prepare_dataset
from astromer_hf.training import AstromerDataModule, AstromerPretraining
from astromer_hf.training.pretraining import RECONSTRUCTION_INPUTS

MODELS = {
    "quickstart": ("astromer-2", {"num_hidden_layers": 2, "hidden_size": 128, "intermediate_size": 256,
                                  "residual_style": "identity"}),
    "astromer-1": ("astromer-1", {}),
    "astromer-2": ("astromer-2", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--curves", type=int, default=2000)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, window 200")

    with tempfile.TemporaryDirectory() as scratch:
        prepare_dataset("synthetic", f"{scratch}/data", config="macho", n_curves=args.curves, seed=0)
        data = AstromerDataModule(path=f"{scratch}/data", batch_size=args.batch_size, window_size=200)
        data.setup()
        loader = data.train_dataloader()
        batches = []
        start = time.perf_counter()
        for batch in loader:
            batches.append(batch)
            if len(batches) == args.steps:
                break
        collate_seconds = (time.perf_counter() - start) / len(batches)
        print(f"{'data pipeline':>14}: {args.batch_size / collate_seconds:10.0f} windows/s "
              f"({1e3 * collate_seconds:.1f} ms per batch)")

        for name in args.models:
            preset, overrides = MODELS[name]
            module = AstromerPretraining(model=preset, config_overrides=overrides)
            optimizer = module.configure_optimizers()
            model = module.model.train()
            times = []
            for batch in [batches[0], *batches]:  # the first step warms up
                begin = time.perf_counter()
                loss = model(**{k: batch[k] for k in RECONSTRUCTION_INPUTS if k in batch}).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                times.append(time.perf_counter() - begin)
            step = sum(times[1:]) / len(times[1:])
            print(f"{name:>14}: {args.batch_size / step:10.0f} windows/s ({1e3 * step:.0f} ms per step, "
                  f"{model.num_parameters():,} parameters; the data pipeline is {collate_seconds / step:.1%} of it)")


if __name__ == "__main__":
    main()
