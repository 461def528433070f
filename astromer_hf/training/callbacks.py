"""Callbacks: the best model as a ``save_pretrained`` folder, and reconstruction / attention figures."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn

from ..hub import push_folder_to_hub
from ..loading_bars import weight_loading_bars_hidden
from ..model_card import card_for_folder
from .figures import attention_figure, reconstruction_figure
from .loggers import log_figure
from .pretraining import RECONSTRUCTION_INPUTS

BEST_FOLDER = "best"
METRICS_FILE = "training_metrics.json"


class SavePretrainedCallback(pl.Callback):
    """Keep the best model seen so far as a ``save_pretrained`` folder that ``AutoModel.from_pretrained`` loads.

    After every validation, when ``monitor`` improves, ``<dirpath>/best`` is replaced (written beside it and renamed
    into place, so a crash never leaves a half-written folder) by the LightningModule's Hugging Face ``model``, the
    data module's processor configuration, ``training_metrics.json`` (epoch, step and every logged metric) and a
    ``README.md`` model card with those metrics and the training settings. At
    the end of ``fit``, loggers that keep model artifacts (:class:`~astromer_hf.training.AstromerWandbLogger`)
    receive the folder.

    Args:
        dirpath: where the ``best`` folder goes.
        monitor: the metric to watch (``val/rmse`` for reconstruction, ``val/loss`` or ``val/f1_macro`` for
            classification).
        mode: ``"min"`` or ``"max"``.
    """

    def __init__(self, dirpath: str = "outputs/pretrained", monitor: str = "val/rmse", mode: Literal["min", "max"] = "min"):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.dirpath = Path(dirpath)
        self.monitor = monitor
        self.mode = mode
        self.best_score: float | None = None
        self.best_epoch: int | None = None

    @property
    def best_path(self) -> Path:
        return self.dirpath / BEST_FOLDER

    def _improved(self, score: float) -> bool:
        if math.isnan(score):
            return False
        if self.best_score is None:
            return True
        return score < self.best_score if self.mode == "min" else score > self.best_score

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:  # a smoke test never replaces the real best model
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            rank_zero_warn(f"SavePretrainedCallback: metric {self.monitor!r} was not logged; nothing saved")
            return
        score = float(value)
        if not self._improved(score):
            return
        self.best_score, self.best_epoch = score, trainer.current_epoch
        if trainer.is_global_zero:
            self._write(trainer, pl_module)
        trainer.strategy.barrier()

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".best-", dir=self.dirpath))
        with weight_loading_bars_hidden():  # no "Writing model shards" bar at every improvement
            try:
                pl_module.model.save_pretrained(staging)
                processor = getattr(trainer.datamodule, "processor", None) if trainer.datamodule is not None else None
                if callable(processor):
                    processor().save_pretrained(staging)
                metrics = {name: float(value) for name, value in trainer.callback_metrics.items()
                           if value.numel() == 1}
                record = {
                    "epoch": trainer.current_epoch,
                    "global_step": trainer.global_step,
                    "monitor": self.monitor,
                    "best_score": self.best_score,
                    "metrics": metrics,
                    "training": training_summary(trainer, pl_module),
                }
                (staging / METRICS_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
                card_for_folder(staging).save(staging / "README.md")
                previous = self.dirpath / f".previous-{BEST_FOLDER}"
                shutil.rmtree(previous, ignore_errors=True)
                if self.best_path.exists():
                    self.best_path.rename(previous)
                staging.rename(self.best_path)
                shutil.rmtree(previous, ignore_errors=True)
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.fast_dev_run or not self.best_path.exists():
            return
        for logger in trainer.loggers:
            log_folder = getattr(logger, "log_pretrained_folder", None)
            if callable(log_folder):
                log_folder(self.best_path, metadata={"monitor": self.monitor, "best_score": self.best_score,
                                                     "epoch": self.best_epoch})

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict.get("best_score")
        self.best_epoch = state_dict.get("best_epoch")


class ReconstructionFigureCallback(pl.Callback):
    """Every ``every_n_epochs`` epochs (from the first; and at the last of ``max_epochs``), log a figure of reconstructed windows (observed points, probed points,
    predictions) and the attention maps of one window, from the first validation batch (its windows and masks are
    the same every epoch, so the figures show the model improving on the same curves).

    Needs a reconstruction module (:class:`~astromer_hf.training.AstromerPretraining` or
    :class:`~astromer_hf.training.AstromerFineTuning`).
    """

    def __init__(self, every_n_epochs: int = 5, max_windows: int = 4) -> None:
        super().__init__()
        if every_n_epochs < 1 or max_windows < 1:
            raise ValueError(f"every_n_epochs and max_windows must be >= 1, got {every_n_epochs}, {max_windows}")
        self.every_n_epochs = every_n_epochs
        self.max_windows = max_windows

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not trainer.loggers:
            return
        epoch = trainer.current_epoch
        if epoch % self.every_n_epochs != 0 and epoch + 1 != trainer.max_epochs:
            return
        batch = getattr(pl_module, "example_batch", None)
        if batch is None:
            return
        batch = {name: value[: self.max_windows] for name, value in batch.items()}
        inputs = {name: batch[name].to(pl_module.device) for name in RECONSTRUCTION_INPUTS if name in batch}
        with torch.no_grad():
            output = pl_module.model(**inputs, output_attentions=True)
        step = trainer.global_step
        figure = reconstruction_figure(
            batch["times"],
            batch["labels"],
            output.reconstruction.float().cpu(),
            batch["attention_mask"],
            batch["probed_positions"],
            batch.get("masked_positions"),
            max_windows=self.max_windows,
        )
        length = int(batch["attention_mask"][0].sum())
        last = len(output.attentions) - 1
        attention = attention_figure(output.attentions[last][0].float().cpu(), length, layer=last)
        for logger in trainer.loggers:
            log_figure(logger, "val/reconstruction", figure, step, close=False)
            log_figure(logger, "val/attention", attention, step, close=False)
        figure.clear()
        attention.clear()


def training_summary(trainer: pl.Trainer, pl_module: pl.LightningModule) -> str:
    """Markdown for a model card: the module's and the data module's settings and the training length."""
    import yaml

    parts = {"model": dict(pl_module.hparams)}
    if trainer.datamodule is not None:
        parts["data"] = dict(trainer.datamodule.hparams)
    parts["trainer"] = {"epochs_run": trainer.current_epoch + 1, "global_step": trainer.global_step,
                        "max_epochs": trainer.max_epochs, "precision": str(trainer.precision),
                        "world_size": trainer.world_size}
    settings = yaml.safe_dump(json.loads(json.dumps(parts, default=str)), sort_keys=False)
    return (
        f"Trained with astromer_hf's `{type(pl_module).__name__}` (Lightning). Settings:\n\n```yaml\n{settings}```"
    )


class PushToHubCallback(pl.Callback):
    """Push the best model (the folder :class:`SavePretrainedCallback` keeps) to a Hub repo every
    ``every_n_epochs`` epochs when it has improved, and once more at the end of ``fit``; the model card carries the
    latest metrics. Off unless added to the trainer's callbacks (see ``docs/publishing.md``).

    Args:
        repo_id: the model repo (``org/name``), created if needed.
        every_n_epochs: how often to push during training (0: only at the end).
        private: create the repo private.
        revision: branch to push to (created if needed).
        token: a Hub token; None reads ``HF_TOKEN`` / the login (never logged).
    """

    def __init__(self, repo_id: str, every_n_epochs: int = 0, private: bool | None = None,
                 revision: str | None = None, token: str | None = None) -> None:
        super().__init__()
        if "/" not in repo_id:
            raise ValueError(f"repo_id must be 'namespace/name', got {repo_id!r}")
        if every_n_epochs < 0:
            raise ValueError(f"every_n_epochs must be >= 0, got {every_n_epochs}")
        self.repo_id = repo_id
        self.every_n_epochs = every_n_epochs
        self.private = private
        self.revision = revision
        self.token = token
        self.pushed_epoch: int | None = None
        self.commits: list[str] = []

    def _saver(self, trainer: pl.Trainer) -> SavePretrainedCallback:
        for callback in trainer.callbacks:
            if isinstance(callback, SavePretrainedCallback):
                return callback
        raise ValueError("PushToHubCallback pushes the folder of a SavePretrainedCallback; add one to the callbacks")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._saver(trainer)

    def _push(self, trainer: pl.Trainer, reason: str) -> None:
        saver = self._saver(trainer)
        if not trainer.is_global_zero or not saver.best_path.exists() or saver.best_epoch == self.pushed_epoch:
            return
        commit = push_folder_to_hub(
            saver.best_path, self.repo_id, private=self.private, revision=self.revision, token=self.token,
            commit_message=f"{reason}: best {saver.monitor} = {saver.best_score:.5g} at epoch {saver.best_epoch}",
        )
        self.pushed_epoch = saver.best_epoch
        self.commits.append(commit.oid)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self.every_n_epochs or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        self._push(trainer, f"Epoch {trainer.current_epoch}")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._push(trainer, "End of training")

    def state_dict(self) -> dict[str, Any]:
        return {"pushed_epoch": self.pushed_epoch, "commits": list(self.commits)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pushed_epoch = state_dict.get("pushed_epoch")
        self.commits = list(state_dict.get("commits", []))
