"""The training command line: ``lightning fit --config recipe.yaml`` and ``astromer fit --config recipe.yaml``.

Lightning 2.6 installs no ``lightning`` command, and the ``lightning-sdk`` package installs one for Lightning AI's
cloud (``login``, ``studio``, ...) with no ``fit``. astromer_hf installs ``lightning`` (:func:`lightning_main`):
``fit`` / ``validate`` / ``test`` / ``predict`` run a generic :class:`~lightning.pytorch.cli.LightningCLI` in
subclass mode (any LightningModule and LightningDataModule named by ``class_path`` in the YAML); every other
subcommand goes to ``lightning-sdk``'s command when that package is installed, so with ours in ``bin/lightning``
both packages' commands work. ``astromer fit`` (:func:`astromer_cli_main`) is the same CLI under our own name, with
the Astromer classes as defaults, and ``python -m astromer_hf fit`` runs it too.

The two packages share ``bin/lightning``, and pip (23 to 26) arbitrates nothing: it overwrites the file with the
script of the package installed last, without a warning, and uninstalling either package deletes the file (pip
removes what the package's RECORD lists, whoever wrote it last). So after ``pip install lightning-sdk`` following
astromer_hf, ``lightning fit`` reaches lightning-sdk ("No such command 'fit'"), and after ``pip uninstall
lightning-sdk`` there may be no ``lightning`` at all. ``astromer fit|validate|test|predict`` and ``astromer --help``
check the file our RECORD lists and say in one line on stderr when it is missing or another package's, with the
``pip install --force-reinstall --no-deps ...`` that restores it (``astromer_hf.cli._lightning_command_note``;
docs/training.md, "The `lightning` and `astromer fit` commands").
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info
from torch.optim.lr_scheduler import ReduceLROnPlateau

from .checkpointing import AtomicCheckpointIO
from .progress import EpochLogProgress, fit_summary

TRAINER_COMMANDS = ("fit", "validate", "test", "predict")
#: The file the resolved configuration is written to. Not ``config.yaml``: W&B keeps its own file of that name in
#: a run, and a file saved over it breaks the run's configuration.
CONFIG_FILENAME = "lightning_config.yaml"
#: Lightning's ``ckpt_path="last"`` takes the newest checkpoint with this in its name.
LAST_CHECKPOINT = ModelCheckpoint.CHECKPOINT_NAME_LAST


class AstromerSaveConfigCallback(SaveConfigCallback):
    """Writes the resolved configuration to ``<log dir>/lightning_config.yaml`` and records it in the loggers' run
    configuration (W&B shows it under ``cli``)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.fast_dev_run:  # a smoke test leaves the configuration of the real run where it is
            return
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer, pl_module, stage: str) -> None:
        config = self.parser.dump(self.config, skip_none=False, format="json")
        for logger in trainer.loggers:
            logger.log_hyperparams({"cli": json.loads(config)})


class AstromerCLI(LightningCLI):
    """:class:`~lightning.pytorch.cli.LightningCLI` whose ``--lr_scheduler`` steps every optimiser step.

    The stock CLI steps a scheduler given on the command line (or in the YAML's ``lr_scheduler:``) once per epoch,
    which turns a warm-up measured in steps into one measured in epochs. Here schedulers step per optimiser step,
    except ``ReduceLROnPlateau``, which follows its ``monitor`` every epoch. Modules that configure their own
    optimiser (all the Astromer ones) are not affected.
    """

    def instantiate_trainer(self, **kwargs: Any):
        """The trainer, writing checkpoints atomically (:class:`~astromer_hf.training.AtomicCheckpointIO`) unless the
        recipe chose its own checkpoint plugin."""
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        if not sys.stdout.isatty():
            # Output going to a file (nohup, SLURM, CI): one line per epoch instead of an animated bar.
            for index, callback in enumerate(trainer.callbacks):
                if type(callback) in (TQDMProgressBar, RichProgressBar):
                    trainer.callbacks[index] = EpochLogProgress()
        return trainer

    def before_fit(self) -> None:
        """``--ckpt_path last`` with no last checkpoint yet (a run stopped before writing its first one) starts from
        the beginning, as Lightning does, but says so in one plain line instead of Lightning's warning."""
        self._fit_started = time.monotonic()
        settings = self.config_init[self.subcommand]
        if settings.get("ckpt_path") != "last":
            return
        folders = [Path(callback.dirpath) for callback in self.trainer.checkpoint_callbacks
                   if isinstance(callback, ModelCheckpoint) and callback.dirpath]
        if not folders or any(path for folder in folders for path in folder.glob(f"*{LAST_CHECKPOINT}*.ckpt")):
            return  # Lightning resolves "last" (or its default folder, known only once fitting starts)
        shown = ", ".join(sorted({str(folder) for folder in folders}))
        rank_zero_info(f"--ckpt_path last: no last checkpoint in {shown} yet (the run stopped before writing its "
                       "first one); training starts from the beginning.")
        settings["ckpt_path"] = None

    def after_fit(self) -> None:
        """End the fit with its outcome: final and best metrics, where the model, checkpoints and logs are."""
        if self.trainer.is_global_zero and not self.trainer.fast_dev_run:
            elapsed = time.monotonic() - getattr(self, "_fit_started", time.monotonic())
            print(fit_summary(self.trainer, elapsed), flush=True)

    @staticmethod
    def configure_optimizers(lightning_module: LightningModule, optimizer, lr_scheduler=None) -> Any:
        if lr_scheduler is None:
            return optimizer
        if isinstance(lr_scheduler, ReduceLROnPlateau):
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": lr_scheduler, "monitor": lr_scheduler.monitor}}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": lr_scheduler, "interval": "step"}}


class AstromerDefaultsCLI(AstromerCLI):
    """``astromer fit``: as ``lightning fit``, with Astromer pretraining on the built-in simulator as the defaults
    (``model: AstromerPretraining``, ``data: AstromerDataModule`` on 3,000 simulated MACHO-like curves prepared into
    ``data/synthetic`` on first use, W&B logging that never prompts)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults(
            {
                "model": {"class_path": "astromer_hf.training.AstromerPretraining"},
                "data": {
                    "class_path": "astromer_hf.training.AstromerDataModule",
                    "init_args": {"path": "data/synthetic", "prepare": {"survey": "synthetic", "config": "macho",
                                                                         "n_curves": 3000, "seed": 0}},
                },
                "trainer.logger": {"class_path": "astromer_hf.training.AstromerWandbLogger"},
            }
        )


def _run(cli_class: type[AstromerCLI], argv: Sequence[str], debug: bool = False, program: str = "lightning") -> int:
    """Run the CLI; an error ends with one message naming it (the traceback with ``debug``)."""
    from ..cli import report_error

    try:
        _instantiate(cli_class, argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        report_error(" ".join([program, *argv[:1]]), error)
        return 1
    return 0


class _DropLightningTips(logging.Filter):
    """Lightning's advertisement for its cloud logger, printed at every fit: nothing a user of a recipe can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def _quiet_known_noise() -> None:
    """Silence the messages of our dependencies that no user can act on (each named here, nothing else)."""
    # Lightning 2.6 with torch >= 2.10 warns at every fit that its own pytree helper uses a deprecated torch API.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    from ..loading_bars import hide_weight_loading_bars

    hide_weight_loading_bars()  # no "Loading weights" bar when a module starts from a folder (download bars stay)
    tips = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(existing, _DropLightningTips) for existing in tips.filters):
        tips.addFilter(_DropLightningTips())


def _instantiate(cli_class: type[AstromerCLI], argv: Sequence[str]) -> None:
    _quiet_known_noise()
    cli_class(
        model_class=LightningModule,
        datamodule_class=LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=AstromerSaveConfigCallback,
        save_config_kwargs={"config_filename": CONFIG_FILENAME, "overwrite": True},
        seed_everything_default=0,
        # None reads sys.argv itself (LightningCLI warns when given a copy of the command line as `args`).
        args=None if list(argv) == sys.argv[1:] else list(argv),
    )


def lightning_main(argv: Sequence[str] | None = None) -> int:
    """The ``lightning`` console script (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in TRAINER_COMMANDS or argv[0].startswith("-"):
        from ..cli import debug_requested

        from ..loading_bars import command_settings_restored

        debug = debug_requested(argv)
        with command_settings_restored():  # as they were, when called from Python
            return _run(AstromerCLI, argv, debug=debug)
    # lightning-sdk's own `lightning` entry point, read from its metadata so that a move of the function in a later
    # release is followed (2026.x: lightning_sdk.cli.entrypoint:main_cli, also installed as `lightning-sdk`).
    from importlib import metadata

    main_cli = next((entry.load() for dist in metadata.distributions(name="lightning_sdk")
                     for entry in dist.entry_points if entry.group == "console_scripts" and entry.name == "lightning"),
                    None)
    if main_cli is None:
        try:  # a lightning_sdk importable without metadata (a source checkout on PYTHONPATH)
            from lightning_sdk.cli.entrypoint import main_cli
        except ImportError:
            print(
                f"lightning: {argv[0]!r} is not a training command. This `lightning` command comes from astromer_hf "
                f"and runs {', '.join(TRAINER_COMMANDS)} (e.g. `lightning fit --config recipes/quickstart.yaml`); "
                "Lightning AI's cloud commands need `pip install lightning-sdk`.",
                file=sys.stderr,
            )
            return 2
    sys.argv = ["lightning", *argv]
    result = main_cli()
    return result if isinstance(result, int) else 0


def astromer_cli_main(argv: Sequence[str], debug: bool = False) -> int:
    """``astromer fit|validate|test|predict ...``: the Lightning CLI with the Astromer defaults."""
    return _run(AstromerDefaultsCLI, argv, debug=debug, program="astromer")
