"""The training data path: counter-based draws, windows and masks per epoch, DDP sharding, labels, few-shot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astromer_hf.masking import masking_counts
from astromer_hf.training import AstromerDataModule
from astromer_hf.training.seeding import STREAM_MASK, counter_uniform, derived_seed
from astromer_hf.training.windows import ArrowLightCurves, EpochSampler, WindowCollator


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A small simulated survey, prepared once for the module."""
    from astromer_hf.data.prepare import prepare_dataset

    path = tmp_path_factory.mktemp("data") / "synthetic"
    prepare_dataset("synthetic", path, config="ogle", n_curves=240, seed=3)
    return path


def _data_module(path, **kwargs) -> AstromerDataModule:
    dm = AstromerDataModule(path=str(path), window_size=kwargs.pop("window_size", 64), **kwargs)
    dm.setup("fit")
    return dm


def _all_batches(loader) -> dict[str, torch.Tensor]:
    batches = list(loader)
    return {name: torch.cat([b[name] for b in batches]) for name in batches[0]}


def _epoch(loader, epoch: int) -> dict[str, torch.Tensor]:
    loader.sampler.set_epoch(epoch)
    return _all_batches(loader)


# -- counter-based draws --------------------------------------------------------------------------------------------


def test_counter_uniforms_depend_only_on_their_keys():
    items = np.arange(1000)
    a = counter_uniform(7, STREAM_MASK, 3, items, (2, 5))
    assert a.shape == (1000, 2, 5) and a.dtype == np.float64
    assert ((a >= 0) & (a < 1)).all()
    # the same keys in another order or batch give the same numbers
    np.testing.assert_array_equal(counter_uniform(7, STREAM_MASK, 3, items[::-1], (2, 5)), a[::-1])
    np.testing.assert_array_equal(counter_uniform(7, STREAM_MASK, np.full(10, 3), items[:10], (2, 5)), a[:10])
    # any other seed, stream or epoch changes them
    for other in (counter_uniform(8, STREAM_MASK, 3, items, (2, 5)), counter_uniform(7, STREAM_MASK + 1, 3, items, (2, 5)),
                  counter_uniform(7, STREAM_MASK, 4, items, (2, 5))):
        assert (other != a).mean() > 0.999
    # and they look uniform and independent
    flat = a.ravel()
    assert abs(flat.mean() - 0.5) < 0.01 and abs(flat.var() - 1 / 12) < 0.005
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.03
    assert np.histogram(flat, bins=10, range=(0, 1))[0].min() > 900


def test_counter_uniform_rejects_a_bad_seed_and_derived_seeds_differ():
    with pytest.raises(ValueError, match="seed"):
        counter_uniform(-1, 1, 0, np.arange(3))
    seeds = {derived_seed(0, 3, epoch, rank) for epoch in range(20) for rank in range(4)}
    assert len(seeds) == 80 and all(0 <= s < 2**63 for s in seeds)


# -- windows and masks ----------------------------------------------------------------------------------------------


def test_training_windows_are_fresh_each_epoch_and_follow_the_masking_counts(prepared):
    dm = _data_module(prepared, batch_size=32)
    loader = dm.train_dataloader()
    first, second = _epoch(loader, 0), _epoch(loader, 1)
    assert first["magnitudes"].shape == (dm.splits["train"].n_curves, 64)
    # every curve once per epoch, in a new order, with a new window and mask
    assert sorted(first["curve_index"].tolist()) == sorted(second["curve_index"].tolist())
    assert not torch.equal(first["curve_index"], second["curve_index"])
    order = torch.argsort(first["curve_index"]), torch.argsort(second["curve_index"])
    starts = first["window_start"][order[0]], second["window_start"][order[1]]
    long_curves = torch.from_numpy(dm.splits["train"].lengths)[first["curve_index"][order[0]]] > 64
    assert (starts[0] != starts[1])[long_curves].float().mean() > 0.8
    # windows lie inside their curves and are as long as possible
    lengths = torch.from_numpy(dm.splits["train"].lengths)[first["curve_index"]]
    assert (first["window_start"] >= 0).all() and (first["window_start"] + first["window_length"] <= lengths).all()
    assert torch.equal(first["window_length"], lengths.clamp(max=64))
    assert torch.equal(first["attention_mask"].sum(1), first["window_length"])
    # the exact counts of spec §2.1 in every window
    counts = masking_counts(first["window_length"], 0.5, 0.2, 0.2)
    assert torch.equal(first["probed_positions"].sum(1), counts.probed)
    assert torch.equal(first["masked_positions"].sum(1), counts.masked)
    changed = (first["magnitudes"] != first["labels"]) & (first["attention_mask"] == 1)
    assert (changed.sum(1) <= counts.random).all()
    assert not ((first["probed_positions"] == 1) & (first["attention_mask"] == 0)).any()
    # magnitudes and times are centred per window over the real observations
    real = first["attention_mask"].bool()
    means = (first["times"] * real).sum(1) / real.sum(1)
    assert means.abs().max() < 1e-2


def test_replay_first_epoch_repeats_order_windows_and_masks(prepared):
    loader = _data_module(prepared, batch_size=32, replay_first_epoch=True).train_dataloader()
    first, later = _epoch(loader, 0), _epoch(loader, 5)
    for name in first:
        assert torch.equal(first[name], later[name]), name


def test_validation_windows_and_masks_are_fixed_whatever_the_batching(prepared):
    a = _all_batches(_data_module(prepared, batch_size=7).val_dataloader())
    # Lightning calls set_epoch on evaluation samplers too: a later epoch must not change them
    b = _epoch(_data_module(prepared, batch_size=64, eval_batch_size=50, num_workers=1).val_dataloader(), 3)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # tiling: every observation of every curve once
    split = _data_module(prepared).splits["validation"]
    per_curve = torch.zeros(split.n_curves, dtype=torch.long).index_add_(0, a["curve_index"], a["window_length"])
    assert torch.equal(per_curve, torch.from_numpy(split.lengths))
    # validation and test masks come from separate streams
    test = _all_batches(_data_module(prepared, batch_size=7).test_dataloader())
    assert test["magnitudes"].shape[0] != a["magnitudes"].shape[0] or not torch.equal(test["magnitudes"], a["magnitudes"])
    # another seed, other masks
    c = _all_batches(_data_module(prepared, batch_size=7, seed=1).val_dataloader())
    assert not torch.equal(a["probed_positions"], c["probed_positions"])


def test_two_ranks_see_disjoint_halves_of_the_single_process_batches(prepared):
    split = _data_module(prepared).splits["train"]
    collate = WindowCollator(64, probed_fraction=0.5, random_fraction=0.2, same_fraction=0.2, seed=0)
    single = EpochSampler(split, num_replicas=1, rank=0, seed=0)
    ranks = [EpochSampler(split, num_replicas=2, rank=r, seed=0) for r in range(2)]
    for sampler in (single, *ranks):
        sampler.set_epoch(2)
    global_items, rank_items = list(single), [list(s) for s in ranks]
    assert not set(rank_items[0]) & set(rank_items[1])
    batch = 8  # per rank; the single process uses 16
    for k in range(len(global_items) // 16):
        merged = sorted(rank_items[0][k * batch:(k + 1) * batch] + rank_items[1][k * batch:(k + 1) * batch])
        assert merged == sorted(global_items[k * 16:(k + 1) * 16])
    # and an item is collated the same way whichever process draws it
    one = collate(split.__getitems__(rank_items[1][:5]))
    together = collate(split.__getitems__(global_items))
    position = [global_items.index(item) for item in rank_items[1][:5]]
    for name in ("magnitudes", "masked_positions", "probed_positions", "window_start"):
        assert torch.equal(one[name], together[name][position]), name


def test_classification_batches_carry_the_curve_class(prepared):
    from datasets import load_from_disk

    dm = _data_module(prepared, task="classification", batch_size=16, train_windows="tiling")
    batch = _all_batches(dm.train_dataloader())
    assert "masked_positions" not in batch and batch["labels"].dtype == torch.int64
    truth = np.asarray(load_from_disk(str(prepared))["train"]["label"])
    assert torch.equal(batch["labels"], torch.from_numpy(truth[batch["curve_index"].numpy()]))
    assert dm.class_names == tuple(load_from_disk(str(prepared))["train"].features["label"].names)


def test_few_shot_subsets_and_band_filter(prepared):
    dm = _data_module(prepared, task="classification", few_shot={"spc": 2, "fold": 1, "n_test": 3})
    n_classes = len(dm.class_names)
    assert dm.splits["train"].n_curves == 2 * n_classes
    assert dm.splits["test"].n_curves == 3 * n_classes
    batch = _all_batches(dm.train_dataloader())
    assert torch.bincount(batch["labels"], minlength=n_classes).tolist() == [2] * n_classes
    assert _data_module(prepared, bands=["I"]).splits["train"].n_curves == _data_module(prepared).splits["train"].n_curves
    assert _data_module(prepared, bands=["V"]).splits["train"].n_curves == 0


def test_masking_fractions_come_from_the_model_unless_set(prepared):
    from types import SimpleNamespace

    from astromer_hf import AstromerConfig

    class Module:
        model = SimpleNamespace(config=AstromerConfig(window_size=64, mask_probed_fraction=0.3,
                                                      mask_random_fraction=0.1, mask_same_fraction=0.4))

    class Trainer:
        lightning_module = Module()

    dm = AstromerDataModule(path=str(prepared), window_size=64)
    dm.trainer = Trainer()
    dm.setup()
    assert dm.masking == (0.3, 0.1, 0.4)
    own = AstromerDataModule(path=str(prepared), window_size=64, mask_probed_fraction=0.6)
    own.trainer = Trainer()
    own.setup()
    assert own.masking == (0.6, 0.1, 0.4)
    assert own.processor().mask_probed_fraction == 0.6


def test_missing_data_and_bad_settings_are_reported(tmp_path, prepared):
    with pytest.raises(FileNotFoundError, match="astromer data prepare"):
        AstromerDataModule(path=str(tmp_path / "none")).prepare_data()
    for kwargs, match in (
        ({"task": "regression"}, "task"),
        ({"batch_size": 0}, "batch_size"),
        ({"train_windows": "sliding"}, "train_windows"),
        ({"mask_probed_fraction": 1.5}, "mask_probed_fraction"),
        ({"prepare": {"config": "macho"}}, "survey"),
        ({"few_shot": {"fold": 0}}, "spc"),
        ({"bands": "R"}, "bands"),
    ):
        with pytest.raises(ValueError, match=match):
            AstromerDataModule(path=str(prepared), **kwargs)


def test_prepares_the_dataset_on_first_use(tmp_path):
    path = tmp_path / "fresh"
    dm = AstromerDataModule(path=str(path), window_size=32,
                            prepare={"survey": "synthetic", "config": "ztf", "n_curves": 30, "seed": 1})
    dm.prepare_data()
    dm.setup()
    assert path.exists() and sum(split.n_curves for split in dm.splits.values()) == 30


def test_a_batch_reads_only_its_own_curves_from_a_split_of_many_record_batches(tmp_path):
    """Fetching a batch gathers its rows where they lie: Arrow's ``Table.take`` would first concatenate every chunk
    of the list columns (on a million-curve dataset, the whole file read and copied for every batch)."""
    import pyarrow as pa
    from datasets import load_from_disk

    from benchmarks.memory_flatness import build_dataset

    split = load_from_disk(str(build_dataset(tmp_path / "many", 3000)))["train"]
    assert split.data.table.column("time").num_chunks >= 3
    subset = split.filter(lambda n: n % 3 != 0, input_columns="n_obs")  # an indices mapping onto the table
    dataset = ArrowLightCurves(subset, 64, "random")
    picked = [len(subset) - 1, 0, len(subset) // 2, 7]
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    try:
        batch = dataset.__getitems__([(index, 0) for index in picked])
    finally:
        pa.set_memory_pool(previous)
    # the curves come back in the order asked, through the indices mapping
    for b, index in enumerate(picked):
        row = subset[index]
        values = batch.curves.values[batch.curves.offsets[b]:batch.curves.offsets[b + 1]]
        np.testing.assert_array_equal(values[:, 0], row["time"])
        np.testing.assert_array_equal(values[:, 1], np.float32(row["mag"]))
    assert batch.rows.tolist() == picked
    # and Arrow allocated a few kilobytes for them, not a copy of the split's observations
    assert pool.max_memory() < 0.02 * split.data.nbytes, (pool.max_memory(), split.data.nbytes)
    del batch
