"""``astromer plot RUN``: the figures of a training run as PNG files, without W&B.

A recipe's ``CSVLogger`` writes ``<run>/metrics.csv`` (every logged metric) and, through the figure callbacks,
``<run>/figures/*.png`` (reconstructions of masked points and attention maps, every few epochs). ``plot_run`` reads
the run folder and writes:

* ``learning_curve.png``: the epoch metrics (also printed as a table);
* ``reconstruction.png`` and ``attention.png``: the best model (``SavePretrainedCallback``'s folder) on the first
  validation windows of the run's dataset, with the run's fixed validation masks.

Where the run keeps its best model and its data is read from ``<run>/lightning_config.yaml``, the resolved recipe
``lightning fit`` writes there.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import torch
import yaml

from .figures import attention_figure, learning_curve_figure, reconstruction_figure

CONFIG_FILE = "lightning_config.yaml"
HISTORY_FILE = "metrics.csv"


def read_history(run_dir: str | Path) -> list[dict[str, float]]:
    """One dict per epoch (``epoch`` and every metric logged at that epoch) from the run's ``metrics.csv`` files.

    A resumed run appends to the same file: a later value of an epoch replaces an earlier one.
    """
    epochs: dict[int, dict[str, float]] = {}
    for path in sorted(Path(run_dir).rglob(HISTORY_FILE)):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                if not row.get("epoch"):
                    continue
                epoch = int(float(row["epoch"]))
                values = epochs.setdefault(epoch, {"epoch": epoch})
                for key, text in row.items():
                    if key not in ("epoch", "step") and text not in (None, "") and not key.endswith("_step"):
                        value = float(text)
                        if math.isfinite(value):
                            values[key] = value
                if row.get("step"):
                    values["step"] = float(row["step"])
    return [epochs[epoch] for epoch in sorted(epochs)]


def history_table(rows: list[dict[str, float]]) -> str:
    """The epoch metrics as a Markdown table (the columns that were logged)."""
    columns = [key for key in ("train/rmse", "val/rmse", "val/baseline_rmse", "val/r2", "train/loss_epoch",
                               "val/loss", "val/f1_macro", "val/accuracy") if any(key in row for row in rows)]
    lines = ["| epoch | step | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for row in rows:
        cells = [f"{row[key]:.4f}" if key in row else "" for key in columns]
        lines.append(f"| {row['epoch'] + 1} | {int(row.get('step', 0))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _run_settings(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CONFIG_FILE
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def _best_model_folder(run_dir: Path, settings: dict[str, Any]) -> Path | None:
    """The ``SavePretrainedCallback`` folder of the run (relative paths are taken from the run folder's parent
    chain: the recipe's paths are relative to where ``lightning fit`` ran)."""
    callbacks = (settings.get("trainer") or {}).get("callbacks") or []
    for callback in callbacks if isinstance(callbacks, list) else []:
        if str(callback.get("class_path", "")).endswith("SavePretrainedCallback"):
            folder = Path((callback.get("init_args") or {}).get("dirpath", "")) / "best"
            for base in (Path.cwd(), *run_dir.resolve().parents):
                if (base / folder / "config.json").is_file():
                    return base / folder
    fallback = run_dir / "pretrained" / "best"
    return fallback if (fallback / "config.json").is_file() else None


def _data_folder(run_dir: Path, settings: dict[str, Any]) -> Path | None:
    path = ((settings.get("data") or {}).get("init_args") or {}).get("path")
    if not path:
        return None
    for base in (Path.cwd(), *run_dir.resolve().parents):
        if (base / path).is_dir():
            return base / path
    return None


def _model_figures(model_dir: Path, data_dir: Path, settings: dict[str, Any], n_windows: int):
    """Reconstruction and attention figures of the model on the first validation windows of the data."""
    from transformers import AutoModelForPreTraining

    from .data_module import AstromerDataModule

    model = AutoModelForPreTraining.from_pretrained(model_dir).eval()
    config = model.config
    data_args = dict(((settings.get("data") or {}).get("init_args") or {}))
    keep = {"eval_windows", "centering", "bands", "seed"}
    data = AstromerDataModule(
        path=str(data_dir), task="reconstruction", window_size=config.window_size, eval_batch_size=n_windows,
        mask_probed_fraction=config.mask_probed_fraction, mask_random_fraction=config.mask_random_fraction,
        mask_same_fraction=config.mask_same_fraction, **{k: v for k, v in data_args.items() if k in keep},
    )
    data.setup()
    batch = next(iter(data.val_dataloader()))
    names = ("magnitudes", "times", "attention_mask", "masked_positions", "labels", "probed_positions")
    with torch.no_grad():
        output = model(**{name: batch[name] for name in names}, output_attentions=True)
    reconstruction = reconstruction_figure(batch["times"], batch["labels"], output.reconstruction,
                                           batch["attention_mask"], batch["probed_positions"],
                                           batch["masked_positions"], max_windows=n_windows)
    last = len(output.attentions) - 1
    attention = attention_figure(output.attentions[last][0], int(batch["attention_mask"][0].sum()), layer=last)
    return reconstruction, attention


def plot_run(run_dir: str | Path, out: str | Path | None = None, n_windows: int = 4) -> list[Path]:
    """Write the run's figures (see the module docstring) into ``out`` (default ``<run>/figures``); the paths."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run folder at {run_dir} (a recipe's save_dir, e.g. outputs/quickstart)")
    out = Path(out) if out is not None else run_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    rows = read_history(run_dir)
    if rows:
        print(history_table(rows))
        figure = learning_curve_figure(rows)
        figure.savefig(out / "learning_curve.png", dpi=120)
        written.append(out / "learning_curve.png")
    settings = _run_settings(run_dir)
    model_dir, data_dir = _best_model_folder(run_dir, settings), _data_folder(run_dir, settings)
    if model_dir is not None and data_dir is not None and settings.get("data", {}).get("init_args", {}).get(
            "task", "reconstruction") == "reconstruction":
        for name, figure in zip(("reconstruction", "attention"), _model_figures(model_dir, data_dir, settings,
                                                                                  n_windows)):
            figure.savefig(out / f"{name}.png", dpi=120)
            written.append(out / f"{name}.png")
    if not written:
        raise FileNotFoundError(
            f"nothing to plot in {run_dir}: no {HISTORY_FILE} (add a CSVLogger to the recipe's loggers, as the "
            f"recipes in recipes/ do) and no best model with its dataset (from {CONFIG_FILE})"
        )
    return written
