"""Masked-reconstruction training: ``AstromerPretraining`` (from scratch) and ``AstromerFineTuning`` (from weights).

The Hugging Face model (:class:`~astromer_hf.AstromerForMaskedReconstruction`) owns the weights; these Lightning
modules own the training logic: optimiser and schedule, metrics, logging. ``module.model.save_pretrained(...)`` is
always a complete, loadable Astromer.
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import grad_norm

from ..configuration_astromer import ASTROMER_PRESETS, AstromerConfig
from ..modeling_astromer import AstromerForMaskedReconstruction, AstromerPreTrainedModel
from .metrics import MaskedReconstructionMetrics
from .checkpointing import finish_epoch_in_checkpoint
from .seeding import STREAM_DROPOUT, derived_seed

RECONSTRUCTION_INPUTS = (
    "magnitudes", "times", "attention_mask", "masked_positions", "labels", "probed_positions", "errors"
)
STAGES = ("train", "val", "test")


def load_or_build(model_class: type[AstromerPreTrainedModel], model: str, overrides: dict[str, Any] | None):
    """A preset name builds a new, randomly initialised model; anything else is loaded with ``from_pretrained``
    (a ``save_pretrained`` folder or a hub repo id). ``overrides`` change configuration fields either way.

    The model comes back in training mode: ``from_pretrained`` returns it in eval mode, and Lightning keeps each
    module's mode as it finds it, so a fine-tuned or classified model would otherwise train with dropout off."""
    overrides = dict(overrides or {})
    if model in ASTROMER_PRESETS:
        return model_class(AstromerConfig.from_preset(model, **overrides)).train()
    check_model_name(model)
    return model_class.from_pretrained(model, **overrides).train()


def check_model_name(model: str) -> None:
    """Refuse at once a name that can be no model: not a preset, not a release, not an existing folder and not a
    Hub id (``org/name``) — instead of trying the Hub with it for half a minute."""
    from ..releases import RELEASES

    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be a preset, a release name, a folder or a Hub id, got {model!r}")
    if model in RELEASES or os.path.isdir(model):
        return
    looks_local = model.startswith((".", "/", "~")) or model.count("/") > 1 or (
        model.count("/") == 1 and os.path.isdir(model.split("/")[0])
    )
    if looks_local:
        raise FileNotFoundError(
            f"no model folder at {model}: give a save_pretrained folder that exists (e.g. the pretrained/best folder "
            "of a finished run), a named release or a preset"
        )
    if model.count("/") == 1:  # a Hub repo id, org/name
        return
    raise ValueError(
        f"unknown model name {model!r}: presets (new random weights) are {sorted(ASTROMER_PRESETS)}, named releases "
        f"(pretrained weights) {sorted(RELEASES)}; otherwise give a save_pretrained folder that exists or a Hub "
        "repo id 'org/name'."
    )


def run_seed() -> int:
    """The seed of the run: the one ``seed_everything`` set (``PL_GLOBAL_SEED``), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def check_optimizer_settings(lr: float, lr_schedule: str, warmup_steps: int) -> None:
    """Raise a clear error for settings :meth:`AstromerTrainingMixin.configure_optimizers` cannot use."""
    if lr_schedule not in ("constant", "noam"):
        raise ValueError(f"lr_schedule must be 'constant' or 'noam', got {lr_schedule!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
        raise ValueError(f"warmup_steps must be a positive integer, got {warmup_steps!r}")


class AstromerTrainingMixin:
    """What every Astromer Lightning module shares: one ``_shared_step(batch, stage)`` and one
    ``_log_epoch_metrics(stage)`` for train / val / test, Adam with the original's settings and an optional per-step
    warm-up schedule, throughput and gradient-norm logging, and dropout seeded per batch so that a run resumed from
    a checkpoint draws exactly the dropout masks of an uninterrupted run."""

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(
            params,
            lr=self.hparams.lr,
            betas=tuple(self.hparams.betas),
            eps=self.hparams.eps,
            weight_decay=self.hparams.weight_decay,
        )
        if self.hparams.lr_schedule == "constant":
            return optimizer
        warmup = self.hparams.warmup_steps

        def noam(step: int) -> float:  # 1 at step == warmup; step**-0.5 decay after
            step = step + 1
            return min(step**-0.5, step * warmup**-1.5) * warmup**0.5

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, noam)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Dropout depends on (seed, epoch, batch, rank) only: a run resumed from any checkpoint, even mid-epoch,
        # draws the dropout masks of the uninterrupted run.
        torch.manual_seed(derived_seed(run_seed(), STREAM_DROPOUT, self.current_epoch, batch_idx, self.global_rank))
        self._batch_started = time.perf_counter()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        elapsed = time.perf_counter() - getattr(self, "_batch_started", time.perf_counter())
        if elapsed > 0:
            windows = batch["magnitudes"].shape[0] * self.trainer.world_size
            self.log("train/windows_per_sec", windows / elapsed, on_step=True, on_epoch=False)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        max_steps = self.trainer.max_steps
        if max_steps is not None and max_steps > 0 and self.trainer.global_step >= max_steps:
            # Lightning validates at the end of an epoch: a run that `max_steps` stops in the middle of one would
            # end with no validation metrics, so the callbacks monitoring them (EarlyStopping, ModelCheckpoint)
            # would fail and no final checkpoint be written. Asking the trainer to stop makes it validate after
            # this step, as it does before stopping early.
            self.trainer.should_stop = True

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Resumed at an epoch boundary, continue with the next epoch (see training/checkpointing.py).
        finish_epoch_in_checkpoint(checkpoint)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        norms = grad_norm(self, norm_type=2)
        if norms:
            self.log("train/grad_norm", norms["grad_2.0_norm_total"], on_step=True, on_epoch=False)


class AstromerPretraining(AstromerTrainingMixin, pl.LightningModule):
    """Pretrain Astromer by masked reconstruction (Donoso-Oliva et al. 2023): predict the probed magnitudes of each window.

    Logs ``{train,val,test}/loss`` (the batch masked RMSE), epoch-level ``{stage}/rmse``, ``{stage}/r2`` and
    ``{stage}/baseline_rmse`` (predicting the window mean), ``train/lr``, ``train/grad_norm`` and
    ``train/windows_per_sec``. Early-stop and checkpoint on ``val/rmse``.

    Args:
        model: a preset name (``"astromer-1"``, ``"astromer-2"``: new random weights) or a ``save_pretrained``
            folder / hub id to start from.
        config_overrides: configuration fields to change, e.g. ``{"num_hidden_layers": 4, "hidden_dropout_prob": 0}``.
        lr: Adam learning rate (the peak one with the ``"noam"`` schedule).
        betas, eps, weight_decay: Adam settings; the defaults are the original's (β₂ 0.98, ε 1e-9).
        lr_schedule: ``"constant"`` (Astromer 1 paper code, Astromer 2) or ``"noam"``: linear warm-up over
            ``warmup_steps`` then ``step**-0.5`` decay, stepped every optimiser step. With
            ``lr = hidden_size**-0.5 * warmup_steps**-0.5`` (9.88e-4 for 256 and 4000) it is the original
            ``CustomSchedule`` exactly.
        warmup_steps: optimiser steps to the peak of the ``"noam"`` schedule.
        gradient_checkpointing: keep only each block's input for the backward pass and recompute the block there
            (transformers' ``gradient_checkpointing_enable``): the same gradients for much less memory (an
            Astromer 2 step at batch 256 on a CPU: 1.8 GB instead of 4.8 GB peak RSS, docs/benchmarks.md), at the
            cost of a second forward pass of every block.
    """

    def __init__(
        self,
        model: str = "astromer-1",
        config_overrides: dict[str, Any] | None = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-9,
        weight_decay: float = 0.0,
        lr_schedule: Literal["constant", "noam"] = "constant",
        warmup_steps: int = 4000,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        model = os.fspath(model)  # a pathlib.Path is a folder too; the hyperparameters keep a string
        check_optimizer_settings(lr, lr_schedule, warmup_steps)
        self.save_hyperparameters()
        self.model = load_or_build(AstromerForMaskedReconstruction, model, config_overrides)
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        # Keyed "<stage>_metrics": a ModuleDict key may not be "train" (a Module method).
        self.stage_metrics = torch.nn.ModuleDict({f"{stage}_metrics": MaskedReconstructionMetrics() for stage in STAGES})
        self.example_batch: dict[str, torch.Tensor] | None = None

    def forward(self, **inputs: torch.Tensor):
        return self.model(**inputs)

    def _shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        if "probed_positions" not in batch:
            raise ValueError(
                "the batch has no masks; masked-reconstruction training needs AstromerDataModule(task='reconstruction')"
            )
        output = self.model(**{name: batch[name] for name in RECONSTRUCTION_INPUTS if name in batch})
        loss_mask = (batch["probed_positions"] != 0) & (batch["attention_mask"] != 0)
        self.stage_metrics[f"{stage}_metrics"].update(output.reconstruction, batch["labels"], loss_mask)
        loss = output.loss
        if stage == "train" and self.trainer.world_size > 1:
            loss = self._global_batch_rmse(output.window_mse)
        self.log(
            f"{stage}/loss",
            output.loss,
            batch_size=batch["magnitudes"].shape[0],
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            sync_dist=stage != "train",
        )
        return loss

    def _global_batch_rmse(self, window_mse: torch.Tensor) -> torch.Tensor:
        """The loss to back-propagate under data parallelism: the RMSE over the *global* batch.

        Each process computes ``sqrt(mean over the global batch of the window MSEs)``, with the other processes'
        windows entering as constants, times the number of processes (DDP averages gradients). The averaged
        gradient is then exactly the gradient of the global-batch loss, as in one process with the global batch;
        the mean of each process's own RMSE would weigh processes by their RMSE instead.
        """
        valid = ~torch.isnan(window_mse)
        local_sum = window_mse[valid].sum()
        totals = torch.stack([local_sum.detach(), valid.sum().to(local_sum.dtype)])
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        global_mean = (local_sum + (totals[0] - local_sum.detach())) / totals[1]
        return torch.sqrt(global_mean) * self.trainer.world_size

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if batch_idx == 0 and self.example_batch is None:  # for the figures: the same windows every epoch
            self.example_batch = {name: value.detach().cpu() for name, value in batch.items()}
        return self._shared_step(batch, "val")

    def _log_epoch_metrics(self, stage: str) -> None:
        metric = self.stage_metrics[f"{stage}_metrics"]
        if int(metric.windows) == 0 and not torch.distributed.is_initialized():
            return
        values = metric.compute()
        self.log_dict({f"{stage}/{name}": value for name, value in values.items()}, prog_bar=stage == "val")
        metric.reset()


class AstromerFineTuning(AstromerPretraining):
    """Fine-tune a pretrained Astromer with the masked objective on a downstream dataset, as both papers did before classifying.

    The same training as :class:`AstromerPretraining`, starting from ``model``, which must be a ``save_pretrained``
    folder or hub id (not a preset). The originals fine-tuned on all fixed windows of each curve
    (``AstromerDataModule(train_windows="tiling")``) with the pretraining masking fractions; Astromer 1 used
    lr 1e-3, Astromer 2 lr 1e-5.
    """

    def __init__(self, model: str, **kwargs: Any) -> None:
        model = os.fspath(model)
        if model in ASTROMER_PRESETS:
            raise ValueError(
                f"fine-tuning starts from trained weights; {model!r} is a preset (random weights). Give a "
                "save_pretrained folder or hub id, or use AstromerPretraining to train from scratch."
            )
        super().__init__(model=model, **kwargs)
