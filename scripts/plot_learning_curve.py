"""Learning curve of a training run logged to W&B (online or offline): a table per epoch and a PNG.

    .venv/bin/python scripts/plot_learning_curve.py outputs/quickstart --out docs/figures/quickstart_learning_curve.png

RUN is a run directory (``offline-run-*`` / ``run-*``) or a folder holding runs (the newest is used). Reads the run's
transaction log with the tests' reader ``tests/wandb_runs.py``, so it needs neither network nor login.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from wandb_runs import find_offline_runs, read_offline_run  # noqa: E402

CURVES = ("train/rmse", "train/baseline_rmse", "val/rmse", "val/baseline_rmse")


def epoch_rows(run: dict) -> list[dict]:
    """One dict per epoch with the epoch-level metrics (``epoch``, ``train/rmse``, ``val/rmse``, ``val/r2`` ...)."""
    rows: dict[int, dict] = {}
    for row in run["history"]:
        if "epoch" in row and any(key in row for key in (*CURVES, "val/r2")):
            rows.setdefault(int(row["epoch"]), {"epoch": int(row["epoch"])}).update(
                {key: value for key, value in row.items() if key in (*CURVES, "val/r2", "trainer/global_step")}
            )
    return [rows[epoch] for epoch in sorted(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, help="PNG to write")
    args = parser.parse_args()
    runs = [args.run] if any(args.run.glob("run-*.wandb")) else find_offline_runs(args.run)
    if not runs:
        raise SystemExit(f"no W&B run under {args.run}")
    rows = epoch_rows(read_offline_run(runs[-1]))
    print("| epoch | step | train RMSE | val RMSE | val baseline RMSE | val R² |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['epoch']} | {row.get('trainer/global_step', '')} | {row.get('train/rmse', float('nan')):.4f} | "
              f"{row.get('val/rmse', float('nan')):.4f} | {row.get('val/baseline_rmse', float('nan')):.4f} | "
              f"{row.get('val/r2', float('nan')):.3f} |")
    if args.out:
        figure = Figure(figsize=(6, 3.6), layout="constrained")
        axes = figure.add_subplot()
        for key, style in zip(CURVES, ("-o", ":", "-o", "--")):
            points = [(row["epoch"], row[key]) for row in rows if key in row]
            axes.plot(*zip(*points), style, label=key, markersize=3)
        axes.set_xlabel("epoch")
        axes.set_ylabel("masked RMSE [mag]")
        axes.legend()
        axes.grid(alpha=0.3)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.out, dpi=120)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
