"""A callback that SIGKILLs the training process at a chosen point, for kill-and-resume tests through the real CLI
(named by ``class_path: kill_switch.KillAt`` in a recipe; the tests put this folder on ``PYTHONPATH``)."""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl


class KillAt(pl.Callback):
    """Kill the process, as ``kill -9`` would, when training step ``step`` is about to start (the checkpoints of the
    steps before it are written) or when epoch ``epoch`` is about to start (the previous epoch's end, its validation
    and checkpoints are done)."""

    def __init__(self, step: int = -1, epoch: int = -1) -> None:
        super().__init__()
        self.step, self.epoch = step, epoch

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)
