"""The Astromer rows of the evaluation.

* ``linear_probe``: one vector per curve from :func:`astromer_hf.embed` (pooled over all of its windows), then a
  standardised logistic regression (:func:`~astromer_hf.evaluation.baselines.linear_probe`);
* ``random_linear_probe``: the same with an encoder of the same architecture and random weights (seeded): what the
  pretraining adds;
* ``hybrid_rf``: the random forest on the classical features and the linear probe on the embeddings, stacked: a
  logistic regression on their out-of-fold class probabilities
  (:func:`~astromer_hf.evaluation.baselines.stacked_hybrid`);
* ``skip_mlp``: :class:`~astromer_hf.AstromerForLightCurveClassification` with the pretrained encoder frozen and the
  papers' head (γ-weighted skip pooling over the input embedding and every block, MLP 1024-512-256 + LayerNorm),
  trained on the windows of the training curves;
* ``finetuned_skip_mlp``: the papers' whole protocol: the encoder first fine-tuned with the masked objective on the
  fold's training curves (:class:`~astromer_hf.training.AstromerFineTuning` in a Lightning ``Trainer``, monitored on
  the fold's validation curves, best epoch kept), then frozen under the same head;
* ``end_to_end``: the same classifier with the encoder trained too, on the labels.

With a frozen encoder the head's inputs do not change during training, so the encoder runs once over the windows
(:func:`layer_summaries`: the mean of every layer over each window's real observations, and the maximum of the last
layer) and the head trains on those summaries through the model's own pooling (:meth:`pool`), exactly as if the
encoder ran at every step (a frozen encoder is in eval mode: no dropout).

Every window classifier predicts per window; the evaluation turns those into one prediction per curve by averaging
each curve's window logits weighted by their observations
(:func:`~astromer_hf.evaluation.training.curve_logits`).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping

from ..configuration_astromer import ASTROMER_PRESETS, AstromerConfig
from ..loading_bars import weight_loading_bars_hidden
from ..modeling_astromer import AstromerForLightCurveClassification, AstromerModel, AstromerModelOutput, masked_mean
from ..processing_astromer import AstromerProcessor
from ..training.data_module import AstromerDataModule
from ..training.pretraining import AstromerFineTuning, check_model_name
from ..training.windows import ArrowLightCurves
from .config import FineTuningSettings, HeadSettings, TrainingSettings
from .training import FitHistory, Windows, fit_window_classifier, make_windows, predict_windows


def resolve_device(device: str) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; anything else as given (checked to exist)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA device here; use device: auto or "
                         "cpu")
    return resolved


class AstromerUnderTest:
    """One model of the evaluation: its encoder, loaded once, and what the methods derive from it.

    Args:
        name: the row label's model name.
        source: a ``save_pretrained`` folder, a release name or a Hub id (not a preset: random weights are the
            ``random_linear_probe`` row).
        device: where it runs.
        seed: seed of the random-weights twin and of the heads.
    """

    def __init__(self, name: str, source: str, device: torch.device, seed: int = 0) -> None:
        if source in ASTROMER_PRESETS:
            raise ValueError(
                f"model {name!r} is the preset {source!r} (random weights); the evaluation compares pretrained models "
                "with their random-weights twin (the random_linear_probe row): give a save_pretrained folder, a "
                "release name or a Hub id"
            )
        check_model_name(source)
        self.name, self.source, self.device, self.seed = name, source, device, seed
        with weight_loading_bars_hidden():  # no 'Loading weights' bar (download bars stay)
            self.encoder: AstromerModel = AstromerModel.from_pretrained(source).eval()
        self.config: AstromerConfig = self.encoder.config
        self.trim = self.config.attention_mask_style == "key"

    def processor(self) -> AstromerProcessor:
        return AstromerProcessor.from_model_config(self.config, windows="tiling")

    def windows(self, curves: list[np.ndarray]) -> Windows:
        return make_windows(curves, self.processor())

    def random_encoder(self) -> AstromerModel:
        """An encoder of the same architecture with random weights (seeded)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return AstromerModel(AstromerConfig.from_dict(self.config.to_dict())).eval()

    def classifier(self, class_names: list[str], head: HeadSettings, *, freeze: bool, seed: int,
                   encoder: AstromerModel | None = None) -> AstromerForLightCurveClassification:
        """A new classifier with this model's encoder weights (or ``encoder``'s) and a seeded, new head."""
        settings = {
            **self.config.to_dict(),
            "num_labels": len(class_names),
            "id2label": dict(enumerate(class_names)),
            "label2id": {name: index for index, name in enumerate(class_names)},
            "classifier_pooling": head.pooling,
            "classifier_hidden_sizes": list(head.hidden_sizes),
            "classifier_standardize": head.standardize,
            "classifier_dropout": float(head.dropout),
            "freeze_encoder": freeze,
            "architectures": ["AstromerForLightCurveClassification"],
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AstromerForLightCurveClassification(AstromerConfig.from_dict(settings))
        model.astromer.load_state_dict((encoder or self.encoder).state_dict())
        return model.to(self.device)


def embed_curves(curves: list[np.ndarray], model: torch.nn.Module, *, pooling: str, batch_size: int,
                 device: torch.device) -> np.ndarray:
    """float32 ``(C, D)`` vectors of the curves from :func:`astromer_hf.embed` (NaN rows for dropped curves)."""
    import astromer_hf

    result = astromer_hf.embed(curves, model=model, pooling=pooling, batch_size=batch_size, device=device,
                               progress=False)
    return np.asarray(result.vectors, dtype=np.float32)


@dataclass
class LayerSummaries:
    """Per window: ``means`` float32 ``(W, L + 1, D)``, the mean over its real observations of the input embedding
    and of every block's output, and ``maxima`` ``(W, D)``, the maximum of the last block's."""

    means: torch.Tensor
    maxima: torch.Tensor


@torch.no_grad()
def layer_summaries(encoder: AstromerModel, windows: Windows, rows: np.ndarray, *, batch_size: int,
                    device: torch.device, trim: bool) -> LayerSummaries:
    """Run a (frozen) encoder once over the windows ``rows``; see :class:`LayerSummaries`."""
    encoder = encoder.to(device).eval()
    means, maxima = [], []
    lowest = torch.finfo(torch.float32).min
    for batch in np.array_split(rows, max(1, -(-len(rows) // batch_size))):
        if len(batch) == 0:
            continue
        inputs = windows.tensors(batch, device, trim=trim)
        output = encoder(**inputs, output_hidden_states=True)
        mask = inputs["attention_mask"]
        means.append(torch.stack([masked_mean(states, mask) for states in output.hidden_states], dim=1).float().cpu())
        last = output.last_hidden_state.masked_fill(~mask.bool().unsqueeze(-1), lowest)
        maxima.append(last.amax(dim=1).float().cpu())
    return LayerSummaries(torch.cat(means), torch.cat(maxima))


def head_logits(model: AstromerForLightCurveClassification, summaries: LayerSummaries) -> torch.Tensor:
    """The classifier's logits from window summaries, through the model's own pooling: each layer's window mean
    (or the last layer's maximum) is handed to :meth:`pool` as a one-observation window, whose masked mean (or
    maximum) is itself."""
    means = summaries.means
    last = summaries.maxima if model.config.classifier_pooling == "max" else means[:, -1]
    outputs = AstromerModelOutput(last_hidden_state=last[:, None, :],
                                  hidden_states=tuple(means[:, layer, None, :] for layer in range(means.shape[1])))
    pooled = model.pool(outputs, torch.ones(means.shape[0], 1, dtype=torch.long, device=means.device))
    return model.classify(pooled)


def _on(summaries: LayerSummaries, rows: torch.Tensor, device: torch.device) -> LayerSummaries:
    return LayerSummaries(summaries.means[rows.cpu()].to(device), summaries.maxima[rows.cpu()].to(device))


def train_frozen_head(model: AstromerForLightCurveClassification, train: LayerSummaries, train_labels: np.ndarray,
                      validation: LayerSummaries, val_labels: np.ndarray, settings: TrainingSettings, *, seed: int,
                      device: torch.device) -> FitHistory:
    """Train the head (γ and the MLP) of a frozen-encoder classifier on window summaries."""
    if not model.config.freeze_encoder:
        raise ValueError("train_frozen_head needs a classifier with freeze_encoder=True")
    return fit_window_classifier(
        model,
        lambda rows, training: head_logits(model, _on(train, rows, device)),
        torch.from_numpy(train_labels).to(device),
        lambda rows, training: head_logits(model, _on(validation, rows, device)),
        torch.from_numpy(val_labels).to(device),
        settings,
        seed=seed,
    )


def frozen_head_window_logits(model: AstromerForLightCurveClassification, summaries: LayerSummaries,
                              device: torch.device) -> np.ndarray:
    return predict_windows(model, lambda rows, training: head_logits(model, _on(summaries, rows, device)),
                           len(summaries.means), 4096, device).cpu().numpy()


def train_end_to_end(model: AstromerForLightCurveClassification, windows: Windows, train_rows: np.ndarray,
                     train_labels: np.ndarray, val_rows: np.ndarray, val_labels: np.ndarray,
                     settings: TrainingSettings, *, seed: int, device: torch.device, trim: bool) -> FitHistory:
    """Train encoder and head together on the windows ``train_rows`` (early-stopped on ``val_rows``)."""
    if model.config.freeze_encoder:
        raise ValueError("train_end_to_end needs a classifier with freeze_encoder=False")

    def logits_of(rows_of_set: np.ndarray):
        return lambda rows, training: model(**windows.tensors(rows_of_set[rows.cpu().numpy()], device, trim)).logits

    return fit_window_classifier(model, logits_of(train_rows), torch.from_numpy(train_labels).to(device),
                                 logits_of(val_rows), torch.from_numpy(val_labels).to(device), settings, seed=seed,
                                 eval_batch_size=settings.batch_size * 4)


def model_window_logits(model: AstromerForLightCurveClassification, windows: Windows, rows: np.ndarray, *,
                        batch_size: int, device: torch.device, trim: bool) -> np.ndarray:
    return predict_windows(model, lambda batch, training: model(**windows.tensors(rows[batch.cpu().numpy()], device,
                                                                                    trim)).logits,
                           len(rows), batch_size, device).cpu().numpy()


def masked_finetune(source: str, train_curves: Any, val_curves: Any, settings: FineTuningSettings, *, seed: int,
                    device: torch.device) -> tuple[AstromerModel, dict]:
    """Fine-tune ``source`` with the masked objective on ``train_curves`` (a ``datasets.Dataset`` in the survey
    schema: the fold's training curves, never its test curves), early-stopped on the masked RMSE of ``val_curves``;
    returns the encoder with the best epoch's weights and a summary of the run.

    It runs the package's own :class:`~astromer_hf.training.AstromerFineTuning` in a Lightning ``Trainer`` on all
    fixed windows of each curve (``train_windows="tiling"``, as the papers fine-tuned), with the model's masking."""
    pl.seed_everything(seed, workers=False, verbose=False)
    with weight_loading_bars_hidden():  # no 'Loading weights' bar (download bars stay)
        module = AstromerFineTuning(model=source, lr=settings.lr)
    data = FoldDataModule(batch_size=settings.batch_size, train_windows="tiling", seed=seed)
    data.fold_splits = {"train": train_curves, "validation": val_curves}
    best = BestWeights("val/rmse")
    accelerator, devices = ("gpu", [device.index or 0]) if device.type == "cuda" else ("cpu", 1)
    with _quiet_lightning():
        trainer = pl.Trainer(
            accelerator=accelerator, devices=devices, max_epochs=settings.epochs, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            callbacks=[EarlyStopping("val/rmse", patience=settings.patience, mode="min"), best],
        )
        trainer.fit(module, datamodule=data)
    if best.state is not None:
        module.model.load_state_dict(best.state)
    summary = {"epochs": trainer.current_epoch, "best_epoch": best.epoch, "best_val_rmse": best.value,
               "val_rmse": best.history}
    return module.model.astromer.eval(), summary


class BestWeights(pl.Callback):
    """Keeps in memory the weights of the epoch with the lowest ``monitor`` (and the values of every epoch)."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.state, self.value, self.epoch, self.history = None, float("inf"), -1, []

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        self.history.append(value)
        if value < self.value:
            self.value, self.epoch = value, trainer.current_epoch
            self.state = {k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()}


class FoldDataModule(AstromerDataModule):
    """:class:`~astromer_hf.training.AstromerDataModule` over one fold's curves only: ``fold_splits`` (set before
    fitting) holds the ``train`` and ``validation`` datasets; there is no test split and nothing is read from
    ``path``."""

    fold_splits: dict

    def prepare_data(self) -> None:
        pass

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self._resolve_model_settings()
        size, seed = self.resolved_window_size, self.hparams.seed
        self.splits = {
            "train": ArrowLightCurves(self.fold_splits["train"], size, self.hparams.train_windows, self.hparams.repeat,
                                      seed),
            "validation": ArrowLightCurves(self.fold_splits["validation"], size, self.hparams.eval_windows, seed=seed),
        }


@contextlib.contextmanager
def _quiet_lightning():
    """A fit inside the evaluation prints nothing: no device banner, no data-loader worker advice."""
    names = ["lightning", *(name for name in logging.root.manager.loggerDict if name.startswith("lightning"))]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"lightning\..*")
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
