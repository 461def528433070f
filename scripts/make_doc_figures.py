"""Write the figures of the documentation site into docs/figures/, from the package's own code and a real run.

    .venv/bin/python scripts/make_doc_figures.py                           # the two figures that need no model
    .venv/bin/python scripts/make_doc_figures.py --run outputs/quickstart  # and those of a finished quickstart run

Without a model:

* ``windows_and_masks.png``: one simulated MACHO-like RR Lyrae curve (the built-in simulator) as the processor cuts
  it: the ``tiling`` windows (every observation in exactly one window), the original's ``legacy`` windows, and the
  masks of one pretraining window (hidden, "random" and "same" positions), all computed by
  ``AstromerProcessor``;
* ``time_encoding.png``: a few channels of Astromer's sinusoidal encoding of observation times
  (``sinusoidal_time_encoding``, the function the model calls), over the times of one window.

With ``--run`` (a run folder of ``lightning fit --config recipes/quickstart.yaml``, run from the folder that holds
its ``data/`` and ``outputs/``): ``quickstart_reconstruction.png`` and ``quickstart_attention.png``, the run's best
model on its first validation windows, as ``astromer plot`` draws them (``astromer_hf.training.plots.plot_run``).

tests/test_docs_site.py checks that every figure the pages show exists and that the first two are what this script
draws now.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
#: The simulated curve of the windows figure: class, cadence, and the seed that gives a curve of 3 to 4 windows.
EXAMPLE_CLASS, EXAMPLE_CADENCE, EXAMPLE_SEED = "RRab", "macho", 3
#: Channels of the time-encoding figure: fast to slow.
ENCODING_CHANNELS = (0, 1, 20, 41, 80, 121)
WINDOW_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")


def example_curve() -> np.ndarray:
    """The simulated curve as an ``(N, 3)`` array ``[time, mag, err]``."""
    from astromer_hf.data.simulator import simulate_lightcurve

    record = simulate_lightcurve(np.random.default_rng(EXAMPLE_SEED), EXAMPLE_CLASS, EXAMPLE_CADENCE)
    return np.column_stack([record["time"], record["mag"], record["mag_err"]]).astype(np.float64)


def _window_spans(ax, curve: np.ndarray, inputs, y: float, height: float, label: str, stagger: bool) -> float:
    """Draw each window as a bar over the times it covers (one row, or one row per window with ``stagger``); the
    height used."""
    starts, lengths = np.asarray(inputs["window_start"]), np.asarray(inputs["window_length"])
    rows = len(starts) if stagger else 1
    for index, (start, length) in enumerate(zip(starts, lengths)):
        first, last = curve[start, 0], curve[start + length - 1, 0]
        row_y = y + (rows - 1 - index if stagger else 0) * height
        color = WINDOW_COLORS[index % len(WINDOW_COLORS)]
        ax.broken_barh([(first, last - first)], (row_y, height * 0.85), facecolors=color)
        ax.text((first + last) / 2, row_y + height * 0.42, f"{length}", ha="center", va="center", fontsize=8,
                color="white")
    ax.text(curve[0, 0], y + rows * height, label, fontsize=9, va="bottom")
    return rows * height + 0.6


def windows_and_masks_figure():
    """The figure ``windows_and_masks.png`` (see the module docstring)."""
    from matplotlib.figure import Figure

    from astromer_hf import AstromerProcessor

    curve = example_curve()
    processor = AstromerProcessor()
    tiling = processor([curve], windows="tiling", return_tensors="np")
    legacy = processor([curve], windows="legacy", return_tensors="np")
    masked = processor([curve], windows="random", mask=True, seed=0, return_tensors="np")

    figure = Figure(figsize=(11, 8.5), layout="constrained")
    top, middle, bottom = figure.subplots(3, 1, height_ratios=(3, 1.6, 3))
    top.errorbar(curve[:, 0], curve[:, 1], yerr=curve[:, 2], fmt=".", ms=3, color="0.3", elinewidth=0.5)
    top.invert_yaxis()
    top.set_ylabel("magnitude")
    top.set_title(f"a simulated MACHO-like {EXAMPLE_CLASS} light curve: {len(curve)} observations over "
                  f"{curve[-1, 0] - curve[0, 0]:.0f} days")
    start = int(masked["window_start"][0])
    length = int(masked["window_length"][0])
    top.axvspan(curve[start, 0], curve[start + length - 1, 0], color="#fdd49e", alpha=0.5, zorder=0,
                label="the random pretraining window (below)")
    top.legend(loc="lower left", fontsize=8)

    used = _window_spans(middle, curve, legacy, 0.0, 0.6, f"legacy (the original): "
                         f"{len(legacy['window_start'])} windows, the last one shifted back over its neighbour",
                         stagger=True)
    used += _window_spans(middle, curve, tiling, used, 0.6, f"tiling (default): {len(tiling['window_start'])} "
                          "windows, every observation in exactly one; the numbers are window lengths", stagger=False)
    middle.set_ylim(-0.1, used)
    middle.set_yticks([])
    middle.sharex(top)
    middle.set_xlabel("time [MJD]")

    real = masked["attention_mask"][0] == 1
    times = masked["times"][0][real]
    labels = masked["labels"][0][real]
    shown = masked["magnitudes"][0][real]
    probed = masked["probed_positions"][0][real] == 1
    hidden = probed & (masked["masked_positions"][0][real] == 1)
    replaced = probed & ~hidden & (shown != labels)
    same = probed & ~hidden & ~replaced
    bottom.plot(times[~probed], labels[~probed], ".", color="0.55", ms=4, label=f"visible, not scored ({(~probed).sum()})")
    bottom.plot(times[hidden], labels[hidden], "x", color="#d7301f", ms=6, label=f"hidden: the model must reconstruct them ({hidden.sum()})")
    bottom.plot(times[replaced], shown[replaced], "s", mfc="none", color="#2171b5", ms=5,
                label=f"'random': shown with another observation's magnitude ({replaced.sum()})")
    bottom.plot(times[same], labels[same], "o", mfc="none", color="#238b45", ms=6,
                label=f"'same': shown unchanged, still scored ({same.sum()})")
    bottom.invert_yaxis()
    bottom.set_xlabel("time - window mean [days]")
    bottom.set_ylabel("magnitude - window mean")
    bottom.set_title(f"one pretraining window ({length} observations), centred, with its masks: "
                     f"{probed.sum()} positions enter the loss")
    bottom.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, ncols=2)
    return figure


def time_encoding_figure():
    """The figure ``time_encoding.png`` (see the module docstring)."""
    import torch
    from matplotlib.figure import Figure

    from astromer_hf import AstromerConfig
    from astromer_hf.modeling_astromer import sinusoidal_time_encoding

    config = AstromerConfig.from_preset("astromer-1")
    times = torch.linspace(-150.0, 150.0, 1201, dtype=torch.float64)
    encoding = sinusoidal_time_encoding(times[None], config.hidden_size, config.time_encoding_base)[0].numpy()
    figure = Figure(figsize=(10, 4.2), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=(1.4, 1))
    offsets, names = [], []
    for row, channel in enumerate(ENCODING_CHANNELS):
        period = 2 * np.pi * config.time_encoding_base ** (2 * channel / config.hidden_size)
        offsets.append(-2.6 * row)
        shown = f"{period:.3g}" if period < 1000 else f"{period:,.0f}"
        names.append(f"channel {channel}, {'sin' if channel % 2 == 0 else 'cos'}\nperiod {shown} d")
        left.plot(times, encoding[:, channel] + offsets[-1], lw=1)
    left.set_yticks(offsets, names, fontsize=8)
    left.set_xlabel("window-centred time [days]")
    left.set_title("six channels, each in [-1, 1]")
    image = right.imshow(encoding[::10].T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1,
                         extent=(float(times[0]), float(times[-1]), config.hidden_size - 0.5, -0.5))
    right.set_xlabel("window-centred time [days]")
    right.set_ylabel("channel")
    right.set_title(f"all {config.hidden_size} channels")
    figure.colorbar(image, ax=right)
    return figure


def run_figures(run: Path, out: Path) -> list[Path]:
    """``quickstart_reconstruction.png`` and ``quickstart_attention.png`` of a finished run, into ``out``."""
    from astromer_hf.training.plots import plot_run

    written = []
    with tempfile.TemporaryDirectory() as scratch:
        made = {path.name: path for path in plot_run(run, out=scratch, n_windows=3)}
        for name in ("reconstruction.png", "attention.png"):
            if name not in made:
                raise FileNotFoundError(f"{run} has no best model and dataset to draw {name} from "
                                        "(run the quickstart to its end first, from the folder given here as cwd)")
            target = out / f"quickstart_{name}"
            shutil.copyfile(made[name], target)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a finished quickstart run folder, e.g. outputs/quickstart")
    parser.add_argument("--out", type=Path, default=FIGURES, help="where to write the figures (docs/figures)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in (("windows_and_masks.png", windows_and_masks_figure), ("time_encoding.png", time_encoding_figure)):
        make().savefig(args.out / name, dpi=110)
        print(f"wrote {args.out / name}")
    if args.run is not None:
        for path in run_figures(args.run, args.out):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
