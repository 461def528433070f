"""``AstromerClassification``: a light-curve classifier on a (frozen or trainable) pretrained Astromer (Astromer 2, arXiv:2502.02717)."""

from __future__ import annotations

import os

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from ..modeling_astromer import AstromerForLightCurveClassification
from .figures import confusion_matrix_figure
from .loggers import log_figure
from .pretraining import STAGES, AstromerTrainingMixin, check_optimizer_settings, load_or_build

CLASSIFICATION_INPUTS = ("magnitudes", "times", "attention_mask", "labels")


class AstromerClassification(AstromerTrainingMixin, pl.LightningModule):
    """Train :class:`~astromer_hf.AstromerForLightCurveClassification` on windows labelled with their curve's class.

    Logs ``{stage}/loss`` (cross-entropy), epoch-level ``{stage}/f1_macro``, ``{stage}/accuracy``, per-class
    ``{stage}/f1/<class>``, and the confusion matrix as a figure (validation and test). As in the papers, the
    metrics are over windows. Early-stop on ``val/loss`` (the Astromer 2 protocol, patience 40).

    Args:
        model: the encoder to start from: a ``save_pretrained`` folder / hub id (a pretrained or fine-tuned
            Astromer; its reconstruction head is dropped), or a preset name for a randomly initialised baseline.
        class_names: the classes, in label order; None takes them from the data module.
        config_overrides: configuration fields of the classifier, the one place its head is described:
            ``classifier_pooling`` (``"skip"``: γ-weighted mean over the input embedding and every block, Astromer 2's
            best; ``"mean"`` or ``"max"`` over the last block), ``classifier_hidden_sizes`` (widths of the ReLU MLP,
            then LayerNorm and the output layer), ``freeze_encoder`` (keep the encoder fixed, the Astromer 2
            protocol, or train it too), and any other field (e.g. ``hidden_dropout_prob``). Fields not given keep
            the starting folder's values (for a pretraining folder: the :class:`~astromer_hf.AstromerConfig`
            defaults, skip pooling, 1024-512-256, encoder trained).
        lr, betas, eps, weight_decay, lr_schedule, warmup_steps: as in
            :class:`~astromer_hf.training.AstromerPretraining` (Astromer 1 classifiers used lr 1e-3, Astromer 2 1e-5).
    """

    def __init__(
        self,
        model: str,
        class_names: list[str] | None = None,
        config_overrides: dict[str, Any] | None = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-9,
        weight_decay: float = 0.0,
        lr_schedule: Literal["constant", "noam"] = "constant",
        warmup_steps: int = 4000,
    ) -> None:
        super().__init__()
        model = os.fspath(model)  # a pathlib.Path is a folder too; the hyperparameters keep a string
        check_optimizer_settings(lr, lr_schedule, warmup_steps)
        if class_names is not None and len(class_names) < 2:
            raise ValueError(f"classification needs at least 2 classes, got {class_names!r}")
        self.save_hyperparameters()
        self.model: AstromerForLightCurveClassification | None = None
        if class_names is not None:
            self._build(list(class_names))

    def _build(self, class_names: list[str]) -> None:
        overrides = dict(self.hparams.config_overrides or {})
        overrides.update(
            num_labels=len(class_names),
            id2label=dict(enumerate(class_names)),
            label2id={name: index for index, name in enumerate(class_names)},
        )
        self.model = load_or_build(AstromerForLightCurveClassification, self.hparams.model, overrides)
        self.hparams["class_names"] = list(class_names)  # saved in checkpoints, so they rebuild the same head
        n = len(class_names)
        self.stage_metrics = torch.nn.ModuleDict(
            {
                f"{stage}_metrics": torch.nn.ModuleDict(
                    {
                        "accuracy": MulticlassAccuracy(n, average="micro"),
                        "f1_macro": MulticlassF1Score(n, average="macro", zero_division=0),
                        "f1": MulticlassF1Score(n, average="none", zero_division=0),
                        "confusion": MulticlassConfusionMatrix(n),
                    }
                )
                for stage in STAGES
            }
        )

    def setup(self, stage: str) -> None:
        if self.model is not None:
            return
        names = getattr(getattr(self.trainer, "datamodule", None), "class_names", ())
        if not names:
            raise ValueError("class_names were not given and the data module has none; pass model.class_names")
        self._build(list(names))

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names or [])

    def forward(self, **inputs: torch.Tensor):
        return self.model(**inputs)

    def _shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        labels = batch.get("labels")
        if labels is None or labels.dim() != 1:
            raise ValueError("the batch has no class labels; classification needs AstromerDataModule(task='classification')")
        output = self.model(**{name: batch[name] for name in CLASSIFICATION_INPUTS})
        predictions = output.logits.argmax(dim=-1)
        for metric in self.stage_metrics[f"{stage}_metrics"].values():
            metric.update(predictions, labels)
        self.log(
            f"{stage}/loss",
            output.loss,
            batch_size=labels.shape[0],
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            sync_dist=stage != "train",
        )
        return output.loss

    def _log_epoch_metrics(self, stage: str) -> None:
        metrics = self.stage_metrics[f"{stage}_metrics"]
        values = {
            f"{stage}/accuracy": metrics["accuracy"].compute(),
            f"{stage}/f1_macro": metrics["f1_macro"].compute(),
        }
        for name, score in zip(self.class_names, metrics["f1"].compute()):
            values[f"{stage}/f1/{name}"] = score
        self.log_dict(values, prog_bar=False)
        confusion = metrics["confusion"].compute().cpu().numpy()
        if stage != "train" and not self.trainer.sanity_checking and self.trainer.is_global_zero:
            figure = confusion_matrix_figure(confusion, self.class_names)
            for logger in self.loggers:
                log_figure(logger, f"{stage}/confusion_matrix", figure, self.global_step, close=False)
        for metric in metrics.values():
            metric.reset()
