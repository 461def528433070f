"""The small torch loop that trains every window classifier of the evaluation (the raw GRU, the Astromer heads).

Cross-entropy on windows labelled with their curve's class, Adam, mini-batches in a seeded random order, the
validation loss after every epoch, early stopping after ``patience`` epochs without improvement, and the best
epoch's weights restored at the end. Predictions come back per window; :func:`curve_logits` turns them into one per
curve.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import TrainingSettings

#: ``logits(rows, training) -> (len(rows), C)``: the model's window logits for the windows ``rows`` of a set.
LogitsFunction = Callable[[torch.Tensor, bool], torch.Tensor]


@dataclass
class FitHistory:
    """What a training run did: the epochs run, the best epoch (0-based), and the losses per epoch."""

    epochs: int = 0
    best_epoch: int = -1
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "train_loss": self.train_loss,
                "val_loss": self.val_loss, "seconds": round(self.seconds, 3)}


def fit_window_classifier(
    module: torch.nn.Module,
    train_logits: LogitsFunction,
    train_labels: torch.Tensor,
    val_logits: LogitsFunction,
    val_labels: torch.Tensor,
    settings: TrainingSettings,
    *,
    seed: int,
    eval_batch_size: int = 1024,
) -> FitHistory:
    """Train the trainable parameters of ``module`` (with early stopping); returns the history, ``module`` holding
    the weights of the best validation epoch. Adam at ``settings.lr``; with a ``settings.encoder_lr``
    (:class:`~astromer_hf.evaluation.config.EndToEndSettings`), the encoder's parameters (``astromer.*``) at that rate.

    ``train_logits(rows, True)`` runs the model in training mode on training windows ``rows`` (a LongTensor of
    indices); ``val_logits(rows, False)`` in eval mode on validation windows. Labels are int64 class indices on the
    device of the logits.
    """
    parameters = [p for p in module.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError(f"{type(module).__name__} has no trainable parameters")
    if len(train_labels) == 0 or len(val_labels) == 0:
        raise ValueError(f"training needs windows to train and to validate on, got {len(train_labels)} training and "
                         f"{len(val_labels)} validation windows")
    encoder_lr = getattr(settings, "encoder_lr", None)
    if encoder_lr is None:
        optimizer = torch.optim.Adam(parameters, lr=settings.lr)
    else:  # the encoder's parameters (named "astromer.*" in a classifier) at their own rate
        named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        encoder = [p for name, p in named if name.startswith("astromer.")]
        head = [p for name, p in named if not name.startswith("astromer.")]
        optimizer = torch.optim.Adam([{"params": encoder, "lr": encoder_lr}, {"params": head, "lr": settings.lr}])
    # Dropout (the encoder's and the head's) draws from torch's global generator: seeded here, inside a fork that
    # restores it afterwards, a cell's result depends on its seed alone, not on which methods ran before it.
    devices = [train_labels.device] if train_labels.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        history, best_state, best_loss, waited = FitHistory(), None, float("inf"), 0
        started = time.perf_counter()
        for epoch in range(settings.epochs):
            module.train()
            order = torch.randperm(len(train_labels), generator=generator)
            total, count = 0.0, 0
            for batch in order.split(settings.batch_size):
                rows = batch.to(train_labels.device)
                logits = train_logits(rows, True)
                loss = torch.nn.functional.cross_entropy(logits, train_labels[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, count = total + loss.item() * len(rows), count + len(rows)
            val_loss = float(torch.nn.functional.cross_entropy(
                predict_windows(module, val_logits, len(val_labels), eval_batch_size, val_labels.device), val_labels))
            history.train_loss.append(total / count)
            history.val_loss.append(val_loss)
            history.epochs = epoch + 1
            if val_loss < best_loss:
                best_loss, waited, history.best_epoch = val_loss, 0, epoch
                best_state = copy.deepcopy({k: v.detach().clone() for k, v in module.state_dict().items()})
            else:
                waited += 1
                if waited >= settings.patience:
                    break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    history.seconds = time.perf_counter() - started
    return history


@torch.no_grad()
def predict_windows(module: torch.nn.Module, logits: LogitsFunction, n_windows: int, batch_size: int,
                    device: torch.device | str) -> torch.Tensor:
    """Window logits ``(n_windows, C)`` in eval mode, in batches."""
    module.eval()
    parts = [logits(rows.to(device), False) for rows in torch.arange(n_windows).split(batch_size)]
    return torch.cat(parts).float()


def curve_logits(window_logits: np.ndarray, curve_index: np.ndarray, window_length: np.ndarray,
                 n_curves: int) -> np.ndarray:
    """One prediction per curve: the mean of its windows' logits weighted by their real observations, ``(n_curves,
    C)``. A curve without any window (every observation cleaned away) gets zeros (class 0 by argmax)."""
    weights = np.asarray(window_length, dtype=np.float64)[:, None]
    sums = np.zeros((n_curves, window_logits.shape[1]))
    np.add.at(sums, np.asarray(curve_index), np.asarray(window_logits, dtype=np.float64) * weights)
    totals = np.zeros((n_curves, 1))
    np.add.at(totals, np.asarray(curve_index), weights)
    return sums / np.maximum(totals, 1.0)


@dataclass
class Windows:
    """The fixed windows of a set of curves, as the processor cuts them (``"tiling"``: every observation in one
    window): NumPy arrays over W windows of T positions, and the curve (position in the input list) and number of
    real observations of each window."""

    magnitudes: np.ndarray
    times: np.ndarray
    attention_mask: np.ndarray
    curve: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.curve)

    def of_curves(self, curves: np.ndarray) -> np.ndarray:
        """Indices of the windows of the given curves (positions in the input list), curve by curve in the order
        given, each curve's windows in time order."""
        order = np.argsort(self.curve, kind="stable")
        starts = np.searchsorted(self.curve[order], curves, side="left")
        stops = np.searchsorted(self.curve[order], curves, side="right")
        if len(curves) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([order[a:b] for a, b in zip(starts, stops)]).astype(np.int64)

    def tensors(self, rows: np.ndarray, device: torch.device | str, trim: bool = True) -> dict[str, torch.Tensor]:
        """The model inputs of the windows ``rows`` on ``device``; with ``trim``, padded only to their longest real
        window (right for models whose attention ignores padding, ``attention_mask_style="key"``; Astromer 1's
        additive mask needs the full width)."""
        width = max(int(self.length[rows].max()) if len(rows) else 1, 1) if trim else self.magnitudes.shape[1]
        return {
            "magnitudes": torch.from_numpy(self.magnitudes[rows, :width]).to(device),
            "times": torch.from_numpy(self.times[rows, :width]).to(device),
            "attention_mask": torch.from_numpy(self.attention_mask[rows, :width]).to(device),
        }


def make_windows(curves: list[np.ndarray], processor) -> Windows:
    """The ``"tiling"`` windows of ``curves`` (a list of ``(N, 3)`` arrays) cut by an
    :class:`~astromer_hf.AstromerProcessor`; curves the processor's cleaning drops have no window."""
    batch = processor(curves, windows="tiling", return_tensors="np")
    return Windows(
        magnitudes=np.ascontiguousarray(batch["magnitudes"], dtype=np.float32),
        times=np.ascontiguousarray(batch["times"], dtype=np.float32),
        attention_mask=np.ascontiguousarray(batch["attention_mask"], dtype=np.int64),
        curve=np.asarray(batch["curve_index"], dtype=np.int64),
        length=np.asarray(batch["window_length"], dtype=np.int64),
    )
