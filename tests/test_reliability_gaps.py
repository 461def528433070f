"""Guarantees of issue G (docs/reliability.md) that the other tests reached only in passing: ``last.ckpt`` is
rewritten at every epoch end and every N steps while the monitored metric gets *worse* (the case
``ModelCheckpoint(save_last=True)`` missed), every training recipe keeps such a ``last.ckpt``, and a damaged weights
file in the Hugging Face cache is named with how to replace it."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from astromer_hf import AstromerConfig, AstromerModel
from astromer_hf.training import LastCheckpoint
from hub_server import hub  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 4


class _Worsening(pl.LightningModule):
    """A linear model whose validation metric gets worse every epoch, so the best checkpoint stays at epoch 0."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.layer(x).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/rmse", float(self.current_epoch + 1))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(2 * STEPS_PER_EPOCH, 2)), batch_size=2)

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(2, 2)), batch_size=2)


class _LastSeen(pl.Callback):
    """Before each training step: the step counter of the run and the one ``last.ckpt`` holds (None: no file)."""

    def __init__(self, path: Path) -> None:
        self.path, self.seen = path, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        step = torch.load(self.path, weights_only=False)["global_step"] if self.path.exists() else None
        self.seen.append((trainer.global_step, step))


def test_last_checkpoint_follows_a_run_whose_metric_only_gets_worse(tmp_path):
    every = 3
    folder = tmp_path / "checkpoints"
    best = ModelCheckpoint(dirpath=str(folder), filename="best", monitor="val/rmse", mode="min")
    last = LastCheckpoint(dirpath=str(folder), every_n_train_steps=every)
    recorder = _LastSeen(folder / "last.ckpt")
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, callbacks=[best, last, recorder])
    trainer.fit(_Worsening())

    assert len(recorder.seen) == 3 * STEPS_PER_EPOCH
    for step, saved in recorder.seen:
        # the newest of: the last multiple of `every` steps, the last epoch end (nothing before the first of them)
        due = [s for s in range(1, step + 1) if s % every == 0 or s % STEPS_PER_EPOCH == 0]
        assert saved == (due[-1] if due else None), (step, saved)
    final = torch.load(folder / "last.ckpt", weights_only=False)
    assert (final["epoch"], final["global_step"]) == (2, 3 * STEPS_PER_EPOCH)
    assert torch.load(folder / "best.ckpt", weights_only=False)["global_step"] == STEPS_PER_EPOCH  # epoch 0
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]  # no last-v1, no temporary file


TRAINING_RECIPES = sorted(path for path in (ROOT / "recipes").glob("*.yaml")
                          if "trainer" in (yaml.safe_load(path.read_text()) or {}))


@pytest.mark.parametrize("path", TRAINING_RECIPES, ids=[p.stem for p in TRAINING_RECIPES])
def test_every_training_recipe_keeps_a_last_checkpoint_beside_its_best_one(path):
    callbacks = yaml.safe_load(path.read_text())["trainer"]["callbacks"]
    last = [c for c in callbacks if c["class_path"].endswith(".LastCheckpoint")]
    best = [c for c in callbacks if c["class_path"].endswith(".ModelCheckpoint")]
    assert len(last) == 1 and len(best) == 1, path.name
    assert last[0]["init_args"]["dirpath"] == best[0]["init_args"]["dirpath"]  # where --ckpt_path last looks
    assert last[0]["init_args"].get("every_n_train_steps", 0) > 0
    assert not best[0]["init_args"].get("save_last")  # one writer of last.ckpt, and not the one that waits for a gain


def test_a_damaged_copy_in_the_hub_cache_is_named_with_how_to_replace_it(hub):
    from huggingface_hub import constants, try_to_load_from_cache

    model = AstromerModel(AstromerConfig(hidden_size=16, num_attention_heads=2, intermediate_size=16))
    model.push_to_hub("tester/damaged")
    AstromerModel.from_pretrained("tester/damaged")  # downloaded into the cache, sound
    cached = Path(try_to_load_from_cache("tester/damaged", "model.safetensors"))
    blob = cached.resolve()
    blob.write_bytes(blob.read_bytes()[:1000])  # the cached copy is cut short (a full disk, a killed copy)

    with pytest.raises(OSError) as info:
        AstromerModel.from_pretrained("tester/damaged")
    message = str(info.value)
    assert str(cached) in message and "truncated or damaged" in message, message
    repo = Path(constants.HF_HUB_CACHE).resolve() / "models--tester--damaged"
    assert f"delete {repo} (or load with force_download=True)" in message

    reloaded = AstromerModel.from_pretrained("tester/damaged", force_download=True)  # the advice works
    for name, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], value), name
