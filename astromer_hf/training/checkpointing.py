"""Checkpoints that survive kills: written atomically, ``last.ckpt`` at every epoch end and every N steps, and
resumed exactly at an epoch boundary.

:class:`AtomicCheckpointIO`
    Lightning writes a checkpoint into a temporary file of ``$TMPDIR`` and moves it into place; where ``$TMPDIR`` is
    another file system (a node's local disk, the run folder on shared storage) the move is a copy, and a run
    killed during it leaves a truncated checkpoint and a stray temporary file. This plugin writes beside the target
    and renames (atomic on POSIX): a checkpoint is either the old one or the new one, never half of either.
:class:`LastCheckpoint`
    ``ModelCheckpoint(save_last=True)`` rewrites ``last.ckpt`` only when a monitored checkpoint improves, so a run
    killed on a plateau loses up to ``patience`` epochs. This writes ``last.ckpt`` at the end of every epoch, and
    every ``every_n_train_steps`` optimiser steps, whatever the metrics do.
:func:`finish_epoch_in_checkpoint`
    A checkpoint written at the end of a training epoch (``ModelCheckpoint`` saves in ``on_train_epoch_end`` when
    validation runs once per epoch) records the epoch as *processed* but not *completed*. Restoring it, Lightning 2.6
    treats an epoch-limited run (``max_epochs``) as having finished that epoch, but an iteration-limited one
    (``max_steps``) as stopped inside its epoch-end hooks: it runs ``on_train_epoch_end`` of the finished epoch again,
    in a process with no validation metrics yet, so a callback monitoring one (``EarlyStopping`` on ``val/rmse``)
    fails at once, and one that finds its metric counts the epoch twice. This rewrites the loop state of such a
    checkpoint to the state an uninterrupted run is in after those hooks (the next epoch not yet started), so both
    kinds of run continue exactly where the killed one stood. The Astromer Lightning modules apply it in
    ``on_load_checkpoint``, which Lightning calls before it restores the loops.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

_FIT_LOOP = "fit_loop"
# Progress trackers of the epoch loop whose per-epoch ("current") counters restart at 0 with every epoch.
_PER_EPOCH_TRACKERS = ("epoch_loop.batch_progress", "epoch_loop.scheduler_progress")


def _zero(counters: dict[str, Any]) -> None:
    for name in counters:
        counters[name] = 0


def _written_at_epoch_end(epochs: dict[str, Any]) -> bool:
    """Whether the epoch counters say "epoch processed, its end hooks running" (``processed == completed + 1``)."""
    current = epochs.get("current", {})
    values = [current.get(name) for name in ("ready", "started", "processed", "completed")]
    if any(not isinstance(value, int) for value in values):
        return False
    ready, started, processed, completed = values
    return ready == started == processed == completed + 1


def finish_epoch_in_checkpoint(checkpoint: dict[str, Any]) -> bool:
    """Mark the epoch a checkpoint was written at the end of as completed, in place.

    Returns whether the checkpoint was changed (False for checkpoints written anywhere else: mid-epoch, after
    validation, or by another version of Lightning whose loop state has another layout).
    """
    loop = checkpoint.get("loops", {}).get(_FIT_LOOP)
    if not isinstance(loop, dict):
        return False
    epochs = loop.get("epoch_progress")
    batches = loop.get("epoch_loop.batch_progress")
    if not isinstance(epochs, dict) or not isinstance(batches, dict) or not _written_at_epoch_end(epochs):
        return False
    if not batches.get("is_last_batch"):
        return False
    for counters in (epochs["current"], epochs.get("total", {})):
        if "processed" in counters and "completed" in counters:
            counters["completed"] = counters["processed"]
    for name in _PER_EPOCH_TRACKERS:
        tracker = loop.get(name)
        if isinstance(tracker, dict) and isinstance(tracker.get("current"), dict):
            _zero(tracker["current"])
    batches["is_last_batch"] = False
    validation = loop.get("epoch_loop.val_loop.batch_progress")
    if isinstance(validation, dict) and isinstance(validation.get("total"), dict):
        _zero(validation["total"])  # counts the validation batches of the current epoch
    optimizers = loop.get("epoch_loop.automatic_optimization.optim_progress", {}).get("optimizer", {})
    for tracker in optimizers.values():
        if isinstance(tracker, dict) and isinstance(tracker.get("current"), dict):
            _zero(tracker["current"])
    return True


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`~lightning.pytorch.plugins.io.TorchCheckpointIO` that writes ``<name>.tmp-<pid>`` beside the target,
    flushes it to disk and renames it over the target (local paths; other file systems as Lightning does).
    ``lightning fit`` / ``astromer fit`` install it; with a plain ``Trainer`` pass ``plugins=[AtomicCheckpointIO()]``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        try:
            with open(staging, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)


class LastCheckpoint(ModelCheckpoint):
    """Keep ``<dirpath>/last.ckpt``, the state to resume from with ``--ckpt_path last``, up to date: rewritten at the
    end of every training epoch and, when ``every_n_train_steps`` > 0, every that many optimiser steps in between.

    Use it beside a ``ModelCheckpoint`` that keeps the best epoch by a metric (with ``save_last`` off, so the two do
    not both write ``last.ckpt``). A smoke run (``--trainer.fast_dev_run``) writes nothing.

    Args:
        dirpath: the checkpoint folder.
        every_n_train_steps: also save every this many optimiser steps (0: at epoch ends only).
    """

    def __init__(self, dirpath: str, every_n_train_steps: int = 0) -> None:
        if isinstance(every_n_train_steps, bool) or not isinstance(every_n_train_steps, int) or every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be an integer >= 0, got {every_n_train_steps!r}")
        super().__init__(dirpath=dirpath, filename=self.CHECKPOINT_NAME_LAST, monitor=None, save_top_k=1,
                         every_n_epochs=1, enable_version_counter=False)
        self.every_n_steps = every_n_train_steps

    @property
    def path(self) -> Path:
        return Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self.every_n_steps or trainer.fast_dev_run or trainer.global_step % self.every_n_steps:
            return
        if batch_idx + 1 >= trainer.num_training_batches:
            return  # the epoch ends with this batch: its end-of-epoch checkpoint follows
        trainer.save_checkpoint(self.path, weights_only=self.save_weights_only)
