"""Training Astromer with Lightning: thin LightningModules over the Hugging Face models, a data module over the
prepared survey datasets, callbacks, loggers and the ``lightning`` / ``astromer fit`` command line.

``AstromerPretraining`` / ``AstromerFineTuning``
    Masked reconstruction, from scratch or from pretrained weights.
``AstromerClassification``
    A classifier head on a frozen or trainable encoder.
``AstromerDataModule``
    Prepared splits -> windows, masks and labels in a vectorised collate; deterministic validation and test.
``SavePretrainedCallback``, ``PushToHubCallback``, ``ReconstructionFigureCallback``
    The best model as a ``save_pretrained`` folder with its model card, pushed to the Hub if asked; reconstruction
    and attention figures.
``LastCheckpoint``, ``AtomicCheckpointIO``
    ``last.ckpt`` at every epoch end and every N steps, written atomically, for ``--ckpt_path last``.
``AstromerWandbLogger``, ``TrackioLogger``
    Loggers that never prompt or hang.
"""

from .callbacks import PushToHubCallback, ReconstructionFigureCallback, SavePretrainedCallback
from .checkpointing import AtomicCheckpointIO, LastCheckpoint
from .classification import AstromerClassification
from .data_module import AstromerDataModule
from .loggers import AstromerWandbLogger, TrackioLogger, log_figure
from .pretraining import AstromerFineTuning, AstromerPretraining

__all__ = [
    "AstromerPretraining",
    "AstromerFineTuning",
    "AstromerClassification",
    "AstromerDataModule",
    "SavePretrainedCallback",
    "LastCheckpoint",
    "AtomicCheckpointIO",
    "PushToHubCallback",
    "ReconstructionFigureCallback",
    "AstromerWandbLogger",
    "TrackioLogger",
    "log_figure",
]
