"""Lightning modules: metrics, schedule, a real learning check, exact resume, classification, callbacks."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from transformers import AutoModelForPreTraining, AutoModelForSequenceClassification

import astromer_hf  # noqa: F401  (registers the Auto classes)
from astromer_hf.modeling_astromer import masked_r2, masked_rmse
from astromer_hf.training import (
    AstromerClassification,
    AstromerDataModule,
    AstromerFineTuning,
    AstromerPretraining,
    SavePretrainedCallback,
)
from astromer_hf.training.metrics import MaskedReconstructionMetrics

WINDOW = 48
#: A small model that still learns within a few hundred CPU steps: identity residuals, key masking, [MASK] token.
SMALL = {
    "hidden_size": 64,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "window_size": WINDOW,
    "residual_style": "identity",
    "attention_mask_style": "key",
    "use_mask_token": True,
}
TINY = {**SMALL, "hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 16}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from astromer_hf.data.prepare import prepare_dataset

    path = tmp_path_factory.mktemp("data") / "synthetic"
    prepare_dataset("synthetic", path, config="macho", n_curves=600, seed=11)
    return path


def _trainer(tmp_path, **kwargs) -> pl.Trainer:
    defaults = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    )
    return pl.Trainer(**{**defaults, **kwargs})


def test_epoch_metrics_equal_the_loss_over_one_big_batch():
    torch.manual_seed(0)
    predictions, targets = torch.randn(10, 30), torch.randn(10, 30)
    mask = torch.rand(10, 30) < 0.4
    mask[3] = False  # a window with no probed position is left out, as in the loss
    metric = MaskedReconstructionMetrics()
    for part in torch.split(torch.arange(10), 4):
        metric.update(predictions[part], targets[part], mask[part])
    values = metric.compute()
    torch.testing.assert_close(values["rmse"], masked_rmse(predictions, targets, mask), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(values["r2"], masked_r2(predictions, targets, mask), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        values["baseline_rmse"], masked_rmse(torch.zeros_like(targets), targets, mask), rtol=1e-6, atol=1e-6
    )


def test_noam_schedule_is_the_original_custom_schedule():
    module = AstromerPretraining(
        model="astromer-1", config_overrides=TINY, lr_schedule="noam", warmup_steps=40, lr=16**-0.5 * 40**-0.5
    )
    config = module.configure_optimizers()
    assert config["lr_scheduler"]["interval"] == "step"
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert optimizer.defaults["betas"] == (0.9, 0.98) and optimizer.defaults["eps"] == 1e-9
    for step in range(1, 200):
        expected = 16**-0.5 * min(step**-0.5, step * 40**-1.5)  # d_model^-0.5 min(step^-0.5, step warmup^-1.5)
        assert math.isclose(optimizer.param_groups[0]["lr"], expected, rel_tol=1e-9), step
        optimizer.step()
        scheduler.step()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="lr_schedule"):
        AstromerPretraining(config_overrides=TINY, lr_schedule="cosine")
    with pytest.raises(ValueError, match="lr must be positive"):
        AstromerPretraining(config_overrides=TINY, lr=0)
    with pytest.raises(ValueError, match="preset"):
        AstromerFineTuning(model="astromer-2")
    with pytest.raises(ValueError, match="at least 2 classes"):
        AstromerClassification(model="astromer-1", class_names=["RRab"])


def test_pretraining_learns_and_the_saved_folder_reproduces_the_validation_metric(prepared, tmp_path):
    pl.seed_everything(0)
    data = AstromerDataModule(path=str(prepared), batch_size=16, seed=0)
    module = AstromerPretraining(model="astromer-1", config_overrides=SMALL, lr=1e-3)
    saver = SavePretrainedCallback(dirpath=str(tmp_path / "pretrained"), monitor="val/rmse")
    trainer = _trainer(tmp_path, max_epochs=25, callbacks=[saver], gradient_clip_val=1.0)  # ~750 steps
    trainer.fit(module, data)

    record = json.loads((saver.best_path / "training_metrics.json").read_text())
    best, baseline = record["best_score"], record["metrics"]["val/baseline_rmse"]
    # clearly better than predicting the window mean (this run: 0.92 of it; the first epochs sit above it)
    assert best < 0.95 * baseline, (best, baseline)
    assert record["metrics"]["val/r2"] > 0.05

    reloaded = AutoModelForPreTraining.from_pretrained(saver.best_path)
    assert type(reloaded).__name__ == "AstromerForMaskedReconstruction"
    wrapped = AstromerPretraining(model=str(saver.best_path))
    fresh_data = AstromerDataModule(path=str(prepared), batch_size=64, seed=0)
    (metrics,) = _trainer(tmp_path).validate(wrapped, fresh_data, verbose=False)
    assert metrics["val/rmse"] == pytest.approx(best, rel=1e-5)


def _resumable_run(prepared, tmp_path, max_epochs: int, ckpt_path=None, max_steps: int = -1, every_n_steps=None):
    pl.seed_everything(5)
    data = AstromerDataModule(path=str(prepared), batch_size=32, seed=3)
    module = AstromerPretraining(model="astromer-1", config_overrides=TINY, lr=1e-3)
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True, every_n_train_steps=every_n_steps)
    trainer = _trainer(tmp_path, max_epochs=max_epochs, max_steps=max_steps, callbacks=[checkpoint],
                       enable_checkpointing=True)
    trainer.fit(module, data, ckpt_path=ckpt_path)
    return module, {name: float(value) for name, value in trainer.callback_metrics.items()}


def test_resuming_from_the_last_checkpoint_reproduces_an_uninterrupted_run(prepared, tmp_path):
    straight, straight_metrics = _resumable_run(prepared, tmp_path / "a", max_epochs=3)
    _resumable_run(prepared, tmp_path / "b", max_epochs=2)  # "killed" after two epochs
    resumed, resumed_metrics = _resumable_run(prepared, tmp_path / "b", max_epochs=3,
                                              ckpt_path=str(tmp_path / "b" / "ckpt" / "last.ckpt"))
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    for name in ("val/rmse", "val/r2", "train/rmse", "train/loss_epoch"):
        assert resumed_metrics[name] == straight_metrics[name], name


def test_resuming_from_the_middle_of_an_epoch_reproduces_an_uninterrupted_run(prepared, tmp_path):
    """A checkpoint written in the middle of the second epoch: the data loader's state (epoch, batches consumed)
    travels in the checkpoint, and the resumed run skips exactly those batches and redraws the same dropout."""
    straight, straight_metrics = _resumable_run(prepared, tmp_path / "a", max_epochs=3)
    data = AstromerDataModule(path=str(prepared), batch_size=32)
    data.setup()
    per_epoch = math.ceil(len(data.splits["train"]) / 32)
    stop = per_epoch + 4  # four batches into the second epoch
    _resumable_run(prepared, tmp_path / "b", max_epochs=3, max_steps=stop, every_n_steps=stop)
    checkpoint = torch.load(tmp_path / "b" / "ckpt" / "last.ckpt", weights_only=False)
    (loader_state,) = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader_state == {"epoch": 1, "batches_done": 4}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed, resumed_metrics = _resumable_run(prepared, tmp_path / "b", max_epochs=3,
                                                  ckpt_path=str(tmp_path / "b" / "ckpt" / "last.ckpt"))
    assert not [w for w in caught if "not resumable" in str(w.message)]
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    for name in ("val/rmse", "val/r2", "train/loss_epoch"):
        assert resumed_metrics[name] == straight_metrics[name], name


def test_classification_trains_the_head_on_a_frozen_encoder_and_logs_its_metrics(prepared, tmp_path):
    encoder_dir = tmp_path / "encoder"
    AstromerPretraining(model="astromer-1", config_overrides=TINY).model.save_pretrained(encoder_dir)
    pl.seed_everything(0)
    data = AstromerDataModule(path=str(prepared), task="classification", batch_size=32, train_windows="tiling")
    module = AstromerClassification(model=str(encoder_dir), lr=3e-3,
                                    config_overrides={"classifier_hidden_sizes": [32, 16], "freeze_encoder": True})
    saver = SavePretrainedCallback(dirpath=str(tmp_path / "clf"), monitor="val/f1_macro", mode="max")
    logger = CSVLogger(str(tmp_path / "logs"), name="clf")
    trainer = _trainer(tmp_path, max_epochs=4, callbacks=[saver], logger=logger)
    encoder_before = {n: p.clone() for n, p in AstromerPretraining(model=str(encoder_dir)).model.astromer.named_parameters()}
    trainer.fit(module, data)

    names = list(data.class_names)
    assert module.class_names == names
    metrics = trainer.callback_metrics
    for key in ("val/f1_macro", "val/accuracy", "train/f1_macro", *(f"val/f1/{n}" for n in names)):
        assert key in metrics, key
    logged = list(csv.DictReader((Path(logger.log_dir) / "metrics.csv").open()))
    epoch_losses = [float(row["train/loss_epoch"]) for row in logged if row.get("train/loss_epoch")]
    assert len(epoch_losses) == 4 and epoch_losses[-1] < epoch_losses[0]  # the head learns
    for name, parameter in module.model.astromer.named_parameters():
        assert torch.equal(parameter, encoder_before[name]), name  # frozen
    assert list((tmp_path / "logs" / "clf").glob("*/figures/val_confusion_matrix_step*.png"))

    loaded = AutoModelForSequenceClassification.from_pretrained(saver.best_path)
    assert loaded.config.id2label == dict(enumerate(names)) and loaded.config.freeze_encoder
    (test_metrics,) = trainer.test(module, data, verbose=False)
    assert 0.0 <= test_metrics["test/f1_macro"] <= 1.0


def test_classification_rebuilds_from_its_checkpoint(prepared, tmp_path):
    data = AstromerDataModule(path=str(prepared), task="classification", batch_size=64)
    module = AstromerClassification(model="astromer-1", config_overrides={**TINY, "classifier_hidden_sizes": [8],
                                                                            "freeze_encoder": False})
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=2, callbacks=[checkpoint], enable_checkpointing=True)
    trainer.fit(module, data)
    restored = AstromerClassification.load_from_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    assert restored.class_names == list(data.class_names)
    for name, value in module.state_dict().items():
        assert torch.equal(value, restored.state_dict()[name]), name


def test_save_pretrained_callback_keeps_only_improvements(tmp_path):
    saver = SavePretrainedCallback(dirpath=str(tmp_path), monitor="val/rmse")
    assert saver._improved(1.0)
    saver.best_score = 0.5
    assert saver._improved(0.4) and not saver._improved(0.6) and not saver._improved(float("nan"))
    assert saver.state_dict() == {"best_score": 0.5, "best_epoch": None}
    maximiser = SavePretrainedCallback(dirpath=str(tmp_path), monitor="val/f1_macro", mode="max")
    maximiser.load_state_dict({"best_score": 0.5, "best_epoch": 3})
    assert maximiser._improved(0.6) and not maximiser._improved(0.4) and maximiser.best_epoch == 3
    with pytest.raises(ValueError, match="mode"):
        SavePretrainedCallback(mode="lowest")


def test_bf16_mixed_precision_trains(prepared, tmp_path):
    """The precision GPU runs use (`--trainer.precision bf16-mixed`), here through CPU autocast."""
    pl.seed_everything(0)
    data = AstromerDataModule(path=str(prepared), batch_size=32)
    module = AstromerPretraining(model="astromer-1", config_overrides=TINY)
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=3, limit_val_batches=2, precision="bf16-mixed")
    trainer.fit(module, data)
    assert math.isfinite(float(trainer.callback_metrics["val/rmse"]))
    assert all(p.dtype == torch.float32 for p in module.parameters())  # weights stay float32


class _ModeRecorder(pl.Callback):
    """Records, at every training step, which dropout layers are active and whether two identical forward passes
    of the model differ (they do only with dropout on)."""

    def __init__(self):
        self.steps: list[dict] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        dropouts = {name: module.training for name, module in pl_module.model.named_modules()
                    if isinstance(module, torch.nn.Dropout)}
        self.steps.append(dropouts)


@pytest.mark.parametrize("task", ["fine-tuning", "classification, trainable encoder", "classification, frozen encoder"])
def test_modules_built_from_saved_weights_train_with_dropout_on(prepared, tmp_path, task):
    """`from_pretrained` returns a model in eval mode and Lightning keeps each module's mode: fine-tuning and
    classification would silently train with dropout off. A frozen encoder alone stays in eval mode."""
    encoder_dir = tmp_path / "encoder"
    AstromerPretraining(model="astromer-1", config_overrides={**TINY, "hidden_dropout_prob": 0.3}).model.save_pretrained(encoder_dir)
    if task == "fine-tuning":
        module = AstromerFineTuning(model=str(encoder_dir))
        data = AstromerDataModule(path=str(prepared), batch_size=32)
    else:
        module = AstromerClassification(model=str(encoder_dir), config_overrides={
            "classifier_hidden_sizes": [8], "freeze_encoder": "frozen" in task})
        data = AstromerDataModule(path=str(prepared), task="classification", batch_size=32)
    recorder = _ModeRecorder()
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1, callbacks=[recorder])
    trainer.fit(module, data)
    assert len(recorder.steps) == 2
    for dropouts in recorder.steps:
        assert dropouts, "the model has dropout layers"
        for name, active in dropouts.items():
            frozen_encoder_part = "frozen" in task and name.startswith("astromer.")
            assert active is not frozen_encoder_part, name


def test_checkpoints_are_replaced_atomically(tmp_path):
    """A write that fails half-way (a kill, a full disk) leaves the previous checkpoint whole and no stray file."""
    from astromer_hf.training import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    target = tmp_path / "ckpt" / "last.ckpt"
    io.save_checkpoint({"step": 1, "weights": torch.ones(3)}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"step": 2, "weights": torch.zeros(3), "bad": Unpicklable()}, target)
    assert torch.load(target, weights_only=False)["step"] == 1
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]


def test_last_checkpoint_settings_are_checked():
    from astromer_hf.training import LastCheckpoint

    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="every_n_train_steps"):
            LastCheckpoint(dirpath="ckpt", every_n_train_steps=bad)


def test_epoch_log_progress_prints_each_epoch_with_its_own_metrics(prepared, tmp_path, capsys):
    """In a log file: one line per epoch with that epoch's training and validation metrics, the windows per second
    and the time left; the training metrics of epoch k are printed on epoch k's line, not the next one."""
    from lightning.pytorch.loggers import CSVLogger

    from astromer_hf.training.progress import EpochLogProgress, fit_summary

    pl.seed_everything(0)
    data = AstromerDataModule(path=str(prepared), batch_size=32)
    module = AstromerPretraining(model="astromer-1", config_overrides=TINY)
    logger = CSVLogger(str(tmp_path / "logs"), name="run")
    saver = SavePretrainedCallback(dirpath=str(tmp_path / "pretrained"))
    trainer = _trainer(tmp_path, max_epochs=2, limit_train_batches=3, limit_val_batches=2, logger=logger,
                       callbacks=[EpochLogProgress(), saver], enable_progress_bar=True)
    trainer.fit(module, data)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split(" · ")[:2] for line in lines] == [["epoch 1/2", "step 3"], ["epoch 2/2", "step 6"]]
    logged = list(csv.DictReader((Path(logger.log_dir) / "metrics.csv").open()))
    train_rmse = [float(row["train/rmse"]) for row in logged if row.get("train/rmse")]
    for line, value in zip(lines, train_rmse):
        assert f"train RMSE {value:.4g}" in line
        assert "val RMSE" in line and "windows/s" in line
    assert "ETA" in lines[0]
    summary = fit_summary(trainer, elapsed=12.0)
    assert summary.startswith("Finished after 2 epoch(s), 6 steps in 12 s")
    assert f"best:         val/rmse {saver.best_score:.4g}" in summary and str(saver.best_path) in summary


def test_a_model_folder_given_as_a_path_object_is_loaded(tmp_path):
    """`model=Path(...)` names a folder as a string does (the tutorials build paths with pathlib); the saved
    hyperparameters keep a plain string, so the checkpoint's YAML stays readable."""
    folder = tmp_path / "encoder"
    AstromerPretraining(model="astromer-1", config_overrides=TINY).model.save_pretrained(folder)
    for module in (AstromerPretraining(model=folder), AstromerFineTuning(model=folder)):
        assert module.hparams["model"] == str(folder)
        assert module.model.config.hidden_size == TINY["hidden_size"]
    classifier = AstromerClassification(model=folder, class_names=["a", "b"])
    assert classifier.hparams["model"] == str(folder)


def test_gradient_checkpointing_recomputes_the_blocks_and_gives_the_same_gradients():
    """A user short of memory sets gradient_checkpointing: true; the blocks then run again in the backward pass
    (that is where the memory goes), and the loss and every gradient are those of the plain step, dropout included."""
    generator = torch.Generator().manual_seed(0)
    B, T = 4, 20
    batch = {
        "magnitudes": torch.randn(B, T, 1, generator=generator),
        "times": torch.cumsum(torch.rand(B, T, 1, generator=generator) * 3, dim=1),
        "attention_mask": torch.ones(B, T, dtype=torch.long),
        "probed_positions": (torch.rand(B, T, 1, generator=generator) < 0.5).float(),
        "labels": torch.randn(B, T, 1, generator=generator),
    }
    batch["masked_positions"] = batch["probed_positions"]
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(1)
        module = AstromerPretraining(model="astromer-1", config_overrides=TINY, gradient_checkpointing=checkpointing)
        module.train()
        calls = []
        for layer in module.model.astromer.encoder.layers:  # a module inside each block (the block's own hooks
            layer.attention_norm.register_forward_hook(lambda *args: calls.append(1))  # stay outside the checkpoint)
        torch.manual_seed(2)  # the same dropout draws
        loss = module(**batch).loss
        before_backward = len(calls)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None},
                        before_backward, len(calls) - before_backward))
    (plain_loss, plain_grads, plain_calls, plain_again), (loss, grads, calls, again) = results
    layers = module.model.config.num_hidden_layers
    assert module.hparams.gradient_checkpointing and plain_calls == calls == layers
    assert plain_again == 0 and again == layers  # recomputed during the backward pass
    torch.testing.assert_close(loss, plain_loss)
    assert grads.keys() == plain_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], plain_grads[name], rtol=1e-5, atol=1e-6, msg=name)
