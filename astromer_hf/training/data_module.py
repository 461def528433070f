"""``AstromerDataModule``: prepared survey splits -> batches of windows for pretraining, fine-tuning or classification."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import datasets
import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from ..configuration_astromer import AstromerConfig
from ..data.prepare import prepare_dataset
from ..data.splits import SPLIT_NAMES, few_shot_splits, load_prepared_splits
from ..lightcurves import CENTERING_MODES, WINDOW_STRATEGIES
from ..masking import validate_fraction
from ..processing_astromer import AstromerProcessor, _choice, _positive_int
from .windows import ArrowLightCurves, EpochSampler, ResumableDataLoader, WindowCollator

#: Masking fractions used when neither the data module nor the model says otherwise: the configuration defaults.
DEFAULT_MASKING = (AstromerConfig.mask_probed_fraction, AstromerConfig.mask_random_fraction,
                   AstromerConfig.mask_same_fraction)
_EVAL_STREAMS = {"validation": 10, "test": 20}


class AstromerDataModule(pl.LightningDataModule):
    """Windows of a prepared dataset (``astromer data prepare``), for every Astromer task.

    The splits are the ``train`` / ``validation`` / ``test`` Arrow files of a folder written by
    :func:`astromer_hf.data.prepare.prepare_dataset`, memory-mapped. When the folder does not exist and ``prepare``
    is given, it is prepared first (once, on rank zero).

    Training windows are drawn afresh every epoch (``train_windows="random"``: one random window per curve and
    ``repeat``, with a fresh mask), or are the fixed windows of each curve (``"tiling"`` / ``"legacy"``, as the
    original fine-tuning and classification did). Validation and test always use the fixed windows and masks that
    depend on ``seed`` only, so the same curves are scored the same way in every epoch and every run.

    Args:
        path: folder of the prepared dataset.
        prepare: how to build ``path`` when it is missing: ``{"survey": "synthetic", "config": "macho",
            "n_curves": 2000, "seed": 0}`` (``survey`` and ``config`` are the arguments of ``astromer data prepare``,
            every other key a configuration field).
        task: ``"reconstruction"`` (masked windows, for pretraining and fine-tuning) or ``"classification"`` (the
            curve's class as the label of each window; unlabelled curves are left out).
        window_size: T; None takes the model's ``config.window_size``.
        batch_size: windows per training batch (per device).
        eval_batch_size: windows per validation / test batch (default ``batch_size``).
        num_workers: data-loader worker processes.
        train_windows: ``"random"``, ``"tiling"`` or ``"legacy"`` (see above).
        eval_windows: ``"tiling"`` (every observation in one window) or ``"legacy"`` (the original's rule).
        repeat: random windows per curve and epoch (the original Astromer 1 used 5).
        replay_first_epoch: reproduce the original's cached pipeline: every epoch replays the first epoch's order,
            windows and masks (``docs/training.md``). Off by default: fresh windows and masks each epoch.
        mask_probed_fraction, mask_random_fraction, mask_same_fraction: masking fractions; None takes the model's
            (``module.model.config``), else the :class:`~astromer_hf.AstromerConfig` defaults.
        centering: ``"float64"`` or ``"legacy_float32"``.
        bands: keep only these passbands (e.g. ``["R"]`` for MACHO as in Astromer 1); None keeps every row.
        few_shot: train on a few-shot subset of the labelled curves: ``{"spc": 20, "fold": 0}`` (plus, optionally,
            ``n_test``, ``validation_fraction``, ``seed``) applies :func:`~astromer_hf.data.splits.few_shot_splits`
            to all the labelled curves of the three splits together.
        seed: seed of the windows, masks and shuffling.
    """

    def __init__(
        self,
        path: str = "data/synthetic",
        prepare: dict[str, Any] | None = None,
        task: Literal["reconstruction", "classification"] = "reconstruction",
        window_size: int | None = None,
        batch_size: int = 256,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        train_windows: Literal["random", "tiling", "legacy"] = "random",
        eval_windows: Literal["tiling", "legacy"] = "tiling",
        repeat: int = 1,
        replay_first_epoch: bool = False,
        mask_probed_fraction: float | None = None,
        mask_random_fraction: float | None = None,
        mask_same_fraction: float | None = None,
        centering: Literal["float64", "legacy_float32"] = "float64",
        bands: list[str] | None = None,
        few_shot: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        _choice(task, "task", ("reconstruction", "classification"))
        _choice(train_windows, "train_windows", WINDOW_STRATEGIES)
        _choice(eval_windows, "eval_windows", ("tiling", "legacy"))
        _choice(centering, "centering", CENTERING_MODES)
        for name, value, minimum in (("batch_size", batch_size, 1), ("repeat", repeat, 1),
                                     ("num_workers", num_workers, 0), ("seed", seed, 0)):
            _positive_int(value, name, minimum)
        for name, value in (("window_size", window_size), ("eval_batch_size", eval_batch_size)):
            if value is not None:
                _positive_int(value, name, 1)
        if prepare is not None and "survey" not in prepare:
            raise ValueError(f"prepare needs a 'survey' key (e.g. 'synthetic'), got {prepare!r}")
        if bands is not None and (isinstance(bands, str) or not bands):
            raise ValueError(f"bands must be a non-empty list of band names, got {bands!r}")
        if few_shot is not None and "spc" not in few_shot:
            raise ValueError(f"few_shot needs an 'spc' key (training curves per class), got {few_shot!r}")
        fractions = (mask_probed_fraction, mask_random_fraction, mask_same_fraction)
        names = ("mask_probed_fraction", "mask_random_fraction", "mask_same_fraction")
        for name, value in zip(names, fractions):
            if value is not None:
                validate_fraction(value, name)
        self.save_hyperparameters()
        self.splits: dict[str, ArrowLightCurves] = {}
        self.class_names: tuple[str, ...] = ()
        self.masking: tuple[float, float, float] = DEFAULT_MASKING
        self.resolved_window_size: int = window_size or AstromerConfig.window_size
        self.model_config: AstromerConfig | None = None

    # -- preparation -------------------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Prepare the dataset folder when it is missing and a ``prepare`` recipe is given (rank zero only)."""
        path = Path(self.hparams.path)
        if path.exists():
            return
        if self.hparams.prepare is None:
            raise FileNotFoundError(
                f"no prepared dataset at {path}; run `astromer data prepare SURVEY --out {path}` or give the data "
                "module a `prepare` recipe"
            )
        settings = dict(self.hparams.prepare)
        survey, config = settings.pop("survey"), settings.pop("config", None)
        prepare_dataset(survey, path, config=config, **settings)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self._resolve_model_settings()
        loaded = load_prepared_splits(self.hparams.path)
        label = loaded["train"].features.get("label")
        self.class_names = tuple(getattr(label, "names", ()) or ())
        if self.hparams.bands is not None:
            bands = set(self.hparams.bands)
            loaded = datasets.DatasetDict(
                {name: _keep(split, "band", lambda band: band in bands) for name, split in loaded.items()}
            )
        if self.hparams.task == "classification":
            loaded = self._labelled(loaded)
        if self.hparams.few_shot is not None:
            loaded = self._few_shot(loaded)
        size, seed = self.resolved_window_size, self.hparams.seed
        self.splits = {
            "train": ArrowLightCurves(loaded["train"], size, self.hparams.train_windows, self.hparams.repeat, seed),
            "validation": ArrowLightCurves(loaded["validation"], size, self.hparams.eval_windows, seed=seed),
            "test": ArrowLightCurves(loaded["test"], size, self.hparams.eval_windows, seed=seed),
        }

    def _resolve_model_settings(self) -> None:
        """Window size and masking fractions: the data module's own, else the model's, else the defaults."""
        module = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        model_config = getattr(getattr(module, "model", None), "config", None)
        self.model_config = model_config if isinstance(model_config, AstromerConfig) else None
        if self.hparams.window_size is None and model_config is not None:
            self.resolved_window_size = model_config.window_size
        model_fractions = None if model_config is None else (
            model_config.mask_probed_fraction, model_config.mask_random_fraction, model_config.mask_same_fraction)
        defaults = model_fractions if model_fractions is not None else DEFAULT_MASKING
        own = (self.hparams.mask_probed_fraction, self.hparams.mask_random_fraction, self.hparams.mask_same_fraction)
        self.masking = tuple(d if o is None else float(o) for o, d in zip(own, defaults))

    def _labelled(self, loaded: datasets.DatasetDict) -> datasets.DatasetDict:
        if not self.class_names:
            raise ValueError(f"{self.hparams.path} has no class labels; classification needs a labelled dataset")
        return datasets.DatasetDict(
            {name: _keep(split, "label", _is_labelled) for name, split in loaded.items()}
        )

    def _few_shot(self, loaded: datasets.DatasetDict) -> datasets.DatasetDict:
        settings = dict(self.hparams.few_shot)
        spc, fold = settings.pop("spc"), settings.pop("fold", 0)
        pooled = datasets.concatenate_datasets([loaded[name] for name in SPLIT_NAMES])
        pooled = _keep(pooled, "label", _is_labelled)
        return few_shot_splits(pooled, spc, fold, **settings)

    # -- loaders -----------------------------------------------------------------------------------------------

    def _collator(self, stream: int) -> WindowCollator:
        classification = self.hparams.task == "classification"
        return WindowCollator(
            self.resolved_window_size,
            centering=self.hparams.centering,
            mask=not classification,
            probed_fraction=self.masking[0],
            random_fraction=self.masking[1],
            same_fraction=self.masking[2],
            seed=self.hparams.seed,
            stream_offset=stream,
            class_labels=classification,
        )

    def _batches_done(self) -> int:
        """Training batches the trainer has consumed in the current epoch (0 outside a fit)."""
        trainer = self.trainer
        if trainer is None or getattr(trainer, "fit_loop", None) is None:
            return 0
        return trainer.fit_loop.epoch_loop.batch_progress.current.ready

    def _loader(self, split: str, *, shuffle: bool, batch_size: int, stream: int) -> DataLoader:
        if not self.splits:
            self.setup()
        dataset = self.splits[split]
        trainer = self.trainer
        sampler = EpochSampler(
            dataset,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
            shuffle=shuffle,
            seed=self.hparams.seed,
            # validation and test: the same windows and masks every epoch
            replay_first_epoch=not shuffle or self.hparams.replay_first_epoch,
        )
        workers = self.hparams.num_workers
        # Training: resumable in the middle of an epoch (Lightning saves and restores its state in checkpoints).
        loader_class, extra = (ResumableDataLoader, {"batches_done": self._batches_done}) if shuffle else (DataLoader, {})
        return loader_class(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self._collator(stream),
            num_workers=workers,
            persistent_workers=workers > 0,
            # Its own generator: the loader never draws from (and so never shifts) the global torch RNG.
            generator=torch.Generator().manual_seed(self.hparams.seed),
            **extra,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, batch_size=self.hparams.batch_size, stream=0)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> DataLoader:
        batch_size = self.hparams.eval_batch_size or self.hparams.batch_size
        return self._loader(split, shuffle=False, batch_size=batch_size, stream=_EVAL_STREAMS[split])

    # -- what the model folder needs ---------------------------------------------------------------------------

    def processor(self) -> AstromerProcessor:
        """The model's :class:`~astromer_hf.AstromerProcessor`, with this data module's window and masking settings."""
        return AstromerProcessor.from_model_config(
            self.model_config or AstromerConfig(),
            window_size=self.resolved_window_size,
            windows=self.hparams.eval_windows,
            centering=self.hparams.centering,
            mask_probed_fraction=self.masking[0],
            mask_random_fraction=self.masking[1],
            mask_same_fraction=self.masking[2],
        )


def _is_labelled(label: Any) -> bool:
    return label is not None


def _keep(split: datasets.Dataset, column: str, predicate) -> datasets.Dataset:
    """The rows of ``split`` whose ``column`` satisfies ``predicate`` (an indices mapping, no copy of the curves)."""
    return split.filter(
        lambda values: [bool(predicate(value)) for value in values], input_columns=column, batched=True, batch_size=10_000
    )
