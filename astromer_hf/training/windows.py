"""Torch datasets over prepared light-curve splits, and the vectorised collate that turns curves into windows.

A prepared split (issue B's schema: one row per curve with ``time``, ``mag``, ``mag_err`` lists) stays a
memory-mapped Arrow table. :class:`ArrowLightCurves` gathers a whole batch of rows at once, touching only those rows
of the file, and hands a ragged batch to :class:`WindowCollator`, which cuts the windows, centres them, and draws the
masks, all with array operations over the batch (no Python loop per curve or observation).

Items are ``(index, epoch)`` pairs, produced by :class:`EpochSampler`. What a window looks like depends only on
``(seed, epoch, index)`` (see :mod:`astromer_hf.training.seeding`), never on the batch or the worker that draws it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..data.mapped_files import MappedPageBudget
from ..lightcurves import CENTERING_MODES, RaggedCurves, WindowSlices, center_windows, window_slices
from ..masking import mask_windows
from .seeding import STREAM_MASK, STREAM_WINDOW_START, counter_uniform

SEQUENCE_COLUMNS = ("time", "mag", "mag_err")


@dataclass(frozen=True)
class RaggedBatch:
    """What :meth:`ArrowLightCurves.__getitems__` returns for one batch of B items.

    ``curves``: the B curves' observations (``[time, mag, err]`` rows), curve ``b`` being item ``b``'s.
    ``slices``: the B windows to cut, relative to ``curves`` (``curve_index`` is ``0..B-1``).
    ``items``, ``epochs``: int64 ``[B]``, the keys of the random draws.
    ``rows``: int64 ``[B]``, the split row of each curve.
    ``class_labels``: int64 ``[B]`` class indices (``-1`` where unlabelled).
    """

    curves: RaggedCurves
    slices: WindowSlices
    items: np.ndarray
    epochs: np.ndarray
    rows: np.ndarray
    class_labels: np.ndarray


class ArrowLightCurves(Dataset):
    """Windows of the curves of one prepared split.

    Args:
        split: a `datasets.Dataset` with the schema's ``time``, ``mag``, ``mag_err``, ``n_obs`` and ``label``.
        window_size: T.
        windows: ``"random"``: one item per curve (times ``repeat``) whose window start is drawn for each epoch;
            ``"tiling"`` / ``"legacy"``: the fixed windows of :func:`~astromer_hf.lightcurves.window_slices`, one
            item per window.
        repeat: with ``"random"``, how many windows each curve yields per epoch (the original's ``repeat``).
        seed: seed of the window starts.
    """

    def __init__(
        self, split: datasets.Dataset, window_size: int, windows: str = "random", repeat: int = 1, seed: int = 0
    ) -> None:
        missing = [name for name in (*SEQUENCE_COLUMNS, "n_obs", "label") if name not in split.column_names]
        if missing:
            raise ValueError(f"the split lacks the column(s) {missing}; expected a dataset prepared by astromer_hf")
        if repeat < 1:
            raise ValueError(f"repeat must be a positive integer, got {repeat}")
        # A `datasets` table: memory-mapped, and pickled by file path (not by content) for spawned workers.
        self.table = split.data.select([*SEQUENCE_COLUMNS, "label"])
        # Reads at random map pages of the files into this process far faster than it lets them go: bound them.
        self.page_budget = MappedPageBudget(entry["filename"] for entry in split.cache_files)
        # A filtered or selected split (bands, labelled curves, few-shot) keeps an indices mapping onto the table:
        # translate rows through it rather than copying the selected curves.
        mapping = split._indices
        self.table_rows = None if mapping is None else mapping.column(0).to_numpy().astype(np.int64)
        lengths = np.asarray(split.data.column("n_obs").to_numpy(), dtype=np.int64)
        self.lengths = lengths if self.table_rows is None else lengths[self.table_rows]
        if len(self.lengths) and self.lengths.min() < 1:
            raise ValueError("every curve needs at least one observation; prepare the data with cleaning")
        self.window_size = window_size
        self.windows = windows
        self.repeat = repeat
        self.seed = seed
        self.slices = None if windows == "random" else window_slices(self.lengths, window_size, windows)

    @property
    def n_curves(self) -> int:
        return len(self.lengths)

    def __len__(self) -> int:
        return self.n_curves * self.repeat if self.slices is None else len(self.slices.curve_index)

    def __getitem__(self, item: tuple[int, int]) -> RaggedBatch:
        return self.__getitems__([item])

    def __getitems__(self, items: Sequence[tuple[int, int]]) -> RaggedBatch:
        """Fetch the curves of a batch of ``(index, epoch)`` items in one gather (only their rows are read)."""
        keys = np.asarray(items, dtype=np.int64).reshape(-1, 2)
        index, epochs = keys[:, 0], keys[:, 1]
        if self.slices is None:
            rows = index % self.n_curves
            lengths = self.lengths[rows]
            last_start = np.maximum(lengths - self.window_size, 0)
            u = counter_uniform(self.seed, STREAM_WINDOW_START, epochs, index)
            start = np.minimum(np.floor(u * (last_start + 1)).astype(np.int64), last_start)
            length = np.minimum(lengths, self.window_size)
        else:
            rows = self.slices.curve_index[index]
            start, length = self.slices.start[index], self.slices.length[index]
        table_rows = rows if self.table_rows is None else self.table_rows[rows]
        # `fast_gather` slices each row out of its own record batch. Arrow's `Table.take` would first concatenate
        # every chunk of the list columns: a copy of the whole split, and every page of its file read, per batch.
        picked = self.table.fast_gather(table_rows)
        columns = [_flat_values(picked.column(name)) for name in SEQUENCE_COLUMNS]
        offsets = np.concatenate([[0], np.cumsum(_list_lengths(picked.column("time")))]).astype(np.int64)
        labels = pc.fill_null(picked.column("label"), -1).to_numpy(zero_copy_only=False).astype(np.int64)
        curves = RaggedCurves(np.stack(columns, axis=1), offsets)
        self.page_budget.check()
        slices = WindowSlices(np.arange(len(rows), dtype=np.int64), start, length)
        return RaggedBatch(curves, slices, index, epochs, rows.astype(np.int64), labels)


def _flat_values(column: pa.ChunkedArray) -> np.ndarray:
    """float64 values of a list column, concatenated over rows."""
    return pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _list_lengths(column: pa.ChunkedArray) -> np.ndarray:
    return pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)


class WindowCollator:
    """Turn a :class:`RaggedBatch` into model inputs: windows, centring, padding, and (optionally) masks.

    Args:
        window_size: T.
        centering: ``"float64"`` or ``"legacy_float32"``.
        mask: draw the masked-reconstruction masks (pretraining / fine-tuning).
        probed_fraction, random_fraction, same_fraction: the model's masking fractions (needed with ``mask``).
        seed: seed of the masks.
        stream_offset: separates the masks of different splits drawn with the same item numbers.
        class_labels: return the curve's class as ``labels`` (classification) instead of the true magnitudes.

    Returns (from ``__call__``) a dict of tensors over W windows of T positions: ``magnitudes``, ``times``,
    ``errors`` (float32 ``[W, T]``), ``attention_mask`` (int64 ``[W, T]``), ``curve_index`` (dataset row),
    ``window_start``, ``window_length`` (int64 ``[W]``), ``time_offset``, ``magnitude_offset`` (float64 ``[W]``);
    with ``mask``: ``masked_positions``, ``probed_positions`` (int64 ``[W, T]``) and ``labels`` (float32 ``[W, T]``,
    the true centred magnitudes); with ``class_labels``: ``labels`` (int64 ``[W]``).
    """

    def __init__(
        self,
        window_size: int,
        centering: str = "float64",
        mask: bool = True,
        probed_fraction: float | None = None,
        random_fraction: float | None = None,
        same_fraction: float | None = None,
        seed: int = 0,
        stream_offset: int = 0,
        class_labels: bool = False,
    ) -> None:
        if centering not in CENTERING_MODES:
            raise ValueError(f"centering must be one of {CENTERING_MODES}, got {centering!r}")
        if mask and class_labels:
            raise ValueError("a batch carries either masks (reconstruction) or class labels (classification)")
        if mask and None in (probed_fraction, random_fraction, same_fraction):
            raise ValueError("masking needs the model's probed, random and same fractions")
        self.window_size = window_size
        self.centering = centering
        self.mask = mask
        self.fractions = (probed_fraction, random_fraction, same_fraction)
        self.seed = seed
        self.stream_offset = stream_offset
        self.class_labels = class_labels

    def __call__(self, batch: RaggedBatch) -> dict[str, torch.Tensor]:
        centred = center_windows(batch.curves, batch.slices, self.window_size, self.centering)
        out = {
            "magnitudes": torch.from_numpy(centred.magnitudes),
            "times": torch.from_numpy(centred.times),
            "errors": torch.from_numpy(centred.errors),
            "attention_mask": torch.from_numpy(centred.attention_mask),
            "curve_index": torch.from_numpy(batch.rows),
            "window_start": torch.from_numpy(batch.slices.start),
            "window_length": torch.from_numpy(batch.slices.length),
            "time_offset": torch.from_numpy(centred.time_offset),
            "magnitude_offset": torch.from_numpy(centred.magnitude_offset),
        }
        if self.mask:
            uniforms = counter_uniform(
                self.seed, STREAM_MASK + self.stream_offset, batch.epochs, batch.items, (2, self.window_size)
            )
            masked = mask_windows(
                out["magnitudes"],
                out["attention_mask"],
                *self.fractions,
                uniforms=torch.from_numpy(uniforms).transpose(0, 1),
            )
            out.update(
                magnitudes=masked.inputs,
                masked_positions=masked.masked_positions,
                probed_positions=masked.probed_positions,
                labels=masked.labels,
            )
        if self.class_labels:
            out["labels"] = torch.from_numpy(batch.class_labels)
        return out


class EpochSampler(DistributedSampler):
    """Yields ``(index, epoch)`` items; shuffled per epoch from the seed, split across ranks like
    :class:`~torch.utils.data.DistributedSampler` (rank ``r`` takes every ``world``-th index, so the ranks' k-th
    batches together are the k-th batch of a single process with the global batch size). Without shuffling
    (evaluation) the items are not padded to equal counts per rank: each is scored exactly once.

    Being a ``DistributedSampler``, Lightning keeps it as it is under DDP and calls :meth:`set_epoch` every epoch.

    Args:
        replay_first_epoch: use the first epoch's order, windows and masks in every epoch (what the original's
            ``.cache()`` did, ``docs/training.md``) instead of fresh ones.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        replay_first_epoch: bool = False,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.replay_first_epoch = replay_first_epoch
        self._resume: tuple[int, int] | None = None

    def resume_from(self, epoch: int, items_done: int) -> None:
        """Make the next iteration over ``epoch`` skip its first ``items_done`` items (a mid-epoch resume)."""
        self._resume = (int(epoch), int(items_done))

    @property
    def data_epoch(self) -> int:
        """The epoch whose windows and masks are drawn."""
        return 0 if self.replay_first_epoch else self.epoch

    def __len__(self) -> int:
        if self.shuffle:
            return super().__len__()
        return len(range(self.rank, len(self.dataset), self.num_replicas))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if not self.shuffle:  # evaluation: every item exactly once over the ranks, no padding duplicates
            return iter([(index, self.data_epoch) for index in range(self.rank, len(self.dataset), self.num_replicas)])
        epoch = self.epoch
        self.epoch = self.data_epoch  # the parent shuffles with seed + self.epoch
        try:
            indices = list(super().__iter__())
        finally:
            self.epoch = epoch
        if self._resume is not None and self._resume[0] == self.epoch:
            indices = indices[self._resume[1]:]
        self._resume = None
        data_epoch = self.data_epoch
        return iter([(index, data_epoch) for index in indices])


class ResumableDataLoader(DataLoader):
    """A training loader that Lightning checkpoints in the middle of an epoch.

    Its state is the sampler's epoch and how many batches the training loop has consumed (``batches_done()``, read
    from the trainer's progress, so batches prefetched but not yet trained on do not count); restored, the
    :class:`EpochSampler` skips those batches, and the run continues exactly where the checkpoint was written.
    """

    def __init__(self, *args, batches_done: Callable[[], int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler):
            raise TypeError("ResumableDataLoader needs an EpochSampler")
        self.batches_done = batches_done

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches_done": int(self.batches_done())}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.sampler.resume_from(state_dict["epoch"], state_dict["batches_done"] * self.batch_size)
