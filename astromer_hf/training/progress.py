"""Progress a person can follow in a terminal and in a log file.

:class:`EpochLogProgress`
    A Lightning progress bar for runs whose output goes to a file (``nohup``, SLURM, CI): an animated bar writes
    nothing readable there, so this prints one line per epoch instead — epoch and step, the training and
    validation metrics (with the baseline RMSE and R² of reconstruction, or F1 and accuracy of classification),
    windows per second and the time left. ``lightning fit`` / ``astromer fit`` use it whenever standard output is
    not a terminal, and Lightning's bar otherwise.
:func:`fit_summary`
    What a finished fit printed last: how it ended, the final and best metrics, and where the model, the
    checkpoints and the logger's run are.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.callbacks.progress import ProgressBar

#: Metrics shown in the epoch line and the summary, in this order, when they were logged.
SHOWN_METRICS = (
    ("train/rmse", "train RMSE"),
    ("val/rmse", "val RMSE"),
    ("val/baseline_rmse", "baseline"),
    ("val/r2", "R²"),
    ("train/loss_epoch", "train loss"),
    ("val/loss", "val loss"),
    ("val/f1_macro", "val F1"),
    ("val/accuracy", "val acc"),
)


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def metric_text(metrics: dict[str, Any]) -> str:
    """``train RMSE 0.2143 · val RMSE 0.2011 · baseline 0.3512 · R² 0.672`` for the metrics that were logged."""
    parts = []
    for key, label in SHOWN_METRICS:
        value = metrics.get(key)
        if value is not None:
            parts.append(f"{label} {float(value):.4g}")
    return " · ".join(parts)


class EpochLogProgress(ProgressBar):
    """One line per training epoch (see the module docstring). Printed by the global-zero process only.

    The line of an epoch is printed once all of its end-of-epoch hooks have run (when the next epoch starts, or
    when training ends), so that it holds the epoch's own training metrics, which the Astromer modules log last.
    """

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._fit_started = 0.0
        self._steps_at_start = 0
        self._epoch_started = 0.0
        self._training_seconds = 0.0
        self._epoch_windows = 0
        self._pending: tuple[int, int, float, float, int] | None = None  # epoch, step, seconds, train seconds, windows

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, trainer: pl.Trainer, text: str) -> None:
        if self._enabled and trainer.is_global_zero:
            print(text, file=sys.stdout, flush=True)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_started = time.monotonic()
        self._steps_at_start = trainer.global_step
        limits = []
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            limits.append(f"up to {trainer.max_epochs} epochs")
        if trainer.max_steps is not None and trainer.max_steps > 0:
            limits.append(f"{trainer.max_steps} steps")
        start = f" from epoch {trainer.current_epoch + 1}, step {trainer.global_step}" if trainer.global_step else ""
        self._print(trainer, f"Training {' or '.join(limits) or 'until stopped'}{start}; "
                             f"{self.total_train_batches} batches per epoch.")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)
        self._epoch_started = time.monotonic()
        self._training_seconds = 0.0
        self._epoch_windows = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._training_seconds = time.monotonic() - self._epoch_started  # up to the last batch: no validation
        magnitudes = batch.get("magnitudes") if isinstance(batch, dict) else None
        if magnitudes is not None:
            self._epoch_windows += int(magnitudes.shape[0]) * trainer.world_size

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = time.monotonic() - self._epoch_started
        self._pending = (trainer.current_epoch, trainer.global_step, seconds, self._training_seconds,
                         self._epoch_windows)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)

    def _flush(self, trainer: pl.Trainer) -> None:
        if self._pending is None:
            return
        epoch, step, seconds, training_seconds, windows = self._pending
        self._pending = None
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        parts = [f"epoch {epoch + 1}{epochs}", f"step {step}"]
        metrics = metric_text(trainer.callback_metrics)
        if metrics:
            parts.append(metrics)
        if windows and training_seconds > 0:
            parts.append(f"{windows / training_seconds:.0f} windows/s")
        parts.append(f"{format_duration(seconds)} per epoch")
        eta = self._eta(trainer, epoch)
        if math.isfinite(eta) and not trainer.should_stop:
            parts.append(f"ETA {format_duration(eta)}")
        self._print(trainer, " · ".join(parts))

    def _eta(self, trainer: pl.Trainer, epoch: int) -> float:
        elapsed = time.monotonic() - self._fit_started
        done = trainer.global_step - self._steps_at_start
        if done <= 0:
            return float("nan")
        remaining = []
        if trainer.max_steps is not None and trainer.max_steps > 0:
            remaining.append(trainer.max_steps - trainer.global_step)
        batches = self.total_train_batches
        if trainer.max_epochs is not None and trainer.max_epochs > 0 and batches and math.isfinite(batches):
            remaining.append((trainer.max_epochs - epoch - 1) * int(batches))
        return max(min(remaining), 0) * elapsed / done if remaining else float("nan")


def fit_summary(trainer: pl.Trainer, elapsed: float | None = None) -> str:
    """The lines a finished fit ends with (see the module docstring)."""
    epochs = trainer.fit_loop.epoch_progress.current.processed  # finished epochs, the last one possibly cut short
    lines = [f"Finished after {epochs} epoch(s), {trainer.global_step} steps"
             + (f" in {format_duration(elapsed)}" if elapsed is not None else "")]
    for callback in trainer.callbacks:
        if isinstance(callback, EarlyStopping) and callback.stopped_epoch:
            reason = getattr(callback, "stopping_reason_message", None) or f"{callback.monitor} stopped improving"
            lines[0] += f"; stopped early: {reason}"
    final = metric_text(trainer.callback_metrics)
    if final:
        lines.append(f"  final:        {final}")
    saver = next((c for c in trainer.callbacks if hasattr(c, "best_path") and hasattr(c, "best_score")), None)
    if saver is not None and saver.best_score is not None:
        lines.append(f"  best:         {saver.monitor} {saver.best_score:.4g} at epoch {saver.best_epoch + 1}")
        if Path(saver.best_path).exists():
            lines.append(f"  model:        {saver.best_path}   (AutoModel.from_pretrained loads it)")
    checkpoint_dirs = sorted({str(c.dirpath) for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.dirpath})
    for folder in checkpoint_dirs:
        names = ", ".join(sorted(path.name for path in Path(folder).glob("*.ckpt")))
        if names:
            lines.append(f"  checkpoints:  {folder}   ({names}; --ckpt_path last resumes)")
    for logger in trainer.loggers:
        run_dir = getattr(logger, "run_dir", None)  # AstromerWandbLogger
        if run_dir is not None:
            mode = getattr(logger, "mode", "")
            upload = f"; upload it with: wandb sync {run_dir}" if mode == "offline" else ""
            lines.append(f"  W&B run:      {run_dir}   ({mode}{upload})")
            continue
        where = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
        if where:
            lines.append(f"  {type(logger).__name__}: {where}")
    return "\n".join(lines)
