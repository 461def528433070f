"""Every setting of ``astromer evaluate``, in one dataclass: :class:`EvaluationConfig`.

A YAML recipe (``recipes/eval_*.yaml``) maps onto it key by key, and ``--key value`` / ``--section.key value`` on the
command line override the recipe (``astromer evaluate --config recipes/eval_synthetic.yaml --spc [20,50] --folds 1
--finetune.epochs 2``). Each field is checked when the dataclass is built, with a message that names the field, the
value and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

#: The methods, in table order: key -> what the row is.
METHODS: dict[str, str] = {
    "features_rf": "classical variability features (light-curve package) + random forest",
    "raw_gru": "GRU on the windows' raw (time, magnitude), trained from scratch (spec §6.4 'raw RNN')",
    "random_linear_probe": "Astromer with random weights: frozen embeddings + standardised logistic regression",
    "linear_probe": "frozen Astromer embeddings + standardised logistic regression",
    "hybrid_rf": "stacking: random forest on the classical features + Astromer linear probe, combined by a logistic regression on their out-of-fold class probabilities",
    "skip_mlp": "frozen pretrained encoder, γ-weighted skip pooling + MLP head trained on windows",
    "finetuned_skip_mlp": "the papers' protocol: masked fine-tuning on the fold's training curves, then the frozen "
    "encoder's γ-skip + MLP head",
    "end_to_end": "encoder and γ-skip + MLP head trained together with the labels",
}
#: Methods that use an Astromer model (one row per model when several are given).
MODEL_METHODS = ("random_linear_probe", "linear_probe", "hybrid_rf", "skip_mlp", "finetuned_skip_mlp", "end_to_end")
#: Methods that classify windows (and so have a per-window score besides the per-curve one).
WINDOW_METHODS = ("raw_gru", "skip_mlp", "finetuned_skip_mlp", "end_to_end")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _positive_int(value: Any, name: str, minimum: int = 1) -> None:
    _require(isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
             f"{name} must be an integer >= {minimum}, got {value!r}")


def _positive_number(value: Any, name: str) -> None:
    _require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0,
             f"{name} must be a positive number, got {value!r}")


@dataclass
class TrainingSettings:
    """How a trained variant is trained: Adam at ``lr`` on batches of ``batch_size`` windows for at most ``epochs``
    epochs, stopped when the validation loss has not improved for ``patience`` epochs; the best epoch's weights are
    kept.

    Args:
        epochs: most epochs.
        lr: Adam learning rate.
        batch_size: windows per batch.
        patience: epochs without a better validation loss before stopping.
    """

    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 128
    patience: int = 4

    def check(self, section: str) -> None:
        _positive_int(self.epochs, f"{section}.epochs")
        _positive_number(self.lr, f"{section}.lr")
        _positive_int(self.batch_size, f"{section}.batch_size")
        _positive_int(self.patience, f"{section}.patience")


@dataclass
class HeadSettings(TrainingSettings):
    """The Astromer classifier head (``skip_mlp``, ``finetuned_skip_mlp``, ``end_to_end``): the papers' γ-weighted
    skip pooling and MLP 1024-512-256 + LayerNorm by default. With a frozen encoder an epoch costs little (the head
    trains on the encoder's cached outputs), so the head trains long, with a long patience, as the papers did
    (patience 40); few-shot training sets make only a few batches per epoch.

    Args:
        pooling: ``"skip"`` (γ-weighted mean over the input embedding and every block), ``"mean"`` or ``"max"``
            (over the last block).
        hidden_sizes: widths of the ReLU layers of the MLP.
        standardize: standardise each channel of the pooled embedding at the head's input (the classifier's
            ``classifier_standardize``: batch statistics in training, running statistics at inference), as the
            linear probe standardises its features.
        dropout: dropout on the pooled embedding at the MLP's input in training (the classifier's
            ``classifier_dropout``).
    """

    pooling: Literal["skip", "mean", "max"] = "skip"
    hidden_sizes: list[int] = field(default_factory=lambda: [1024, 512, 256])
    standardize: bool = False
    dropout: float = 0.0
    epochs: int = 300
    batch_size: int = 64
    patience: int = 30

    def check(self, section: str) -> None:
        super().check(section)
        _require(self.pooling in ("skip", "mean", "max"),
                 f"{section}.pooling must be 'skip', 'mean' or 'max', got {self.pooling!r}")
        _require(isinstance(self.hidden_sizes, list) and all(isinstance(s, int) and s >= 1 for s in self.hidden_sizes),
                 f"{section}.hidden_sizes must be a list of positive integers, got {self.hidden_sizes!r}")
        _require(isinstance(self.standardize, bool), f"{section}.standardize must be true or false, got "
                 f"{self.standardize!r}")
        _require(isinstance(self.dropout, (int, float)) and not isinstance(self.dropout, bool)
                 and 0 <= self.dropout < 1, f"{section}.dropout must be a number in [0, 1), got {self.dropout!r}")


@dataclass
class FineTuningSettings(TrainingSettings):
    """Masked fine-tuning of the encoder on the fold's training curves (``finetuned_skip_mlp``), monitored on the
    fold's validation curves (masked RMSE). The papers used lr 1e-3 (Astromer 1) or 1e-5 (Astromer 2), batch 2500,
    patience 40 (Astromer 1) or 20 (Astromer 2).
    """

    epochs: int = 5
    batch_size: int = 64
    patience: int = 2


@dataclass
class EndToEndSettings(HeadSettings):
    """``end_to_end``: the encoder trains with the head, at a lower learning rate than a head alone.

    Args:
        encoder_lr: Adam learning rate of the encoder's parameters (the head's is ``lr``); None trains both at
            ``lr``. A lower rate for the pretrained encoder than for the new head keeps fine-tuning from erasing
            what pretraining learnt (discriminative learning rates, Howard & Ruder 2018, "Universal Language Model
            Fine-tuning for Text Classification", ACL).
    """

    lr: float = 3e-4
    epochs: int = 10
    batch_size: int = 32
    patience: int = 3
    encoder_lr: float | None = None

    def check(self, section: str) -> None:
        super().check(section)
        if self.encoder_lr is not None:
            _positive_number(self.encoder_lr, f"{section}.encoder_lr")


@dataclass
class GRUSettings(TrainingSettings):
    """The raw GRU baseline (spec §6.4): per observation ``[centred magnitude, centred time, log10 of the time
    step]`` (standardised with the training windows' statistics), a GRU, then the MLP.

    Args:
        hidden_size: GRU width (the papers' 256).
        num_layers: stacked GRU layers.
        mlp_sizes: widths of the ReLU layers after the GRU's last state.
        window_size: observations per window (the model's when an Astromer model is configured).
    """

    hidden_size: int = 64
    num_layers: int = 1
    mlp_sizes: list[int] = field(default_factory=lambda: [256])
    window_size: int = 200
    epochs: int = 20
    batch_size: int = 64
    patience: int = 4

    def check(self, section: str) -> None:
        super().check(section)
        _positive_int(self.hidden_size, f"{section}.hidden_size")
        _positive_int(self.num_layers, f"{section}.num_layers")
        _positive_int(self.window_size, f"{section}.window_size", 2)
        _require(isinstance(self.mlp_sizes, list) and all(isinstance(s, int) and s >= 1 for s in self.mlp_sizes),
                 f"{section}.mlp_sizes must be a list of positive integers, got {self.mlp_sizes!r}")


@dataclass
class FeatureSettings:
    """The classical features (:mod:`astromer_hf.evaluation.features`).

    Args:
        min_period: shortest period of the Lomb-Scargle grid, in days (the grid runs from 0 to ``2 pi / min_period``
            in angular frequency).
        frequency_grid: log2 of the number of frequency steps (``2**k + 1`` frequencies: the FFT periodogram's grid).
            18 over 0.05 d resolves the periods of multi-year surveys; smaller is faster and coarser.
        periodogram_peaks: periods (and their signal-to-noise) kept from the periodogram.
        n_jobs: threads of the extraction (-1: every core).
    """

    min_period: float = 0.05
    frequency_grid: int = 18
    periodogram_peaks: int = 2
    n_jobs: int = -1

    def check(self, section: str) -> None:
        _positive_number(self.min_period, f"{section}.min_period")
        _require(isinstance(self.frequency_grid, int) and 6 <= self.frequency_grid <= 24,
                 f"{section}.frequency_grid must be an integer in [6, 24] (log2 of the grid size), "
                 f"got {self.frequency_grid!r}")
        _positive_int(self.periodogram_peaks, f"{section}.periodogram_peaks")
        _require(isinstance(self.n_jobs, int) and (self.n_jobs == -1 or self.n_jobs >= 1),
                 f"{section}.n_jobs must be -1 or a positive integer, got {self.n_jobs!r}")


@dataclass
class ForestSettings:
    """The random forest of ``features_rf`` and ``hybrid_rf`` (scikit-learn's ``RandomForestClassifier``).

    Args:
        n_estimators: trees.
        min_samples_leaf: smallest leaf.
        n_jobs: parallel jobs (-1: every core).
    """

    n_estimators: int = 300
    min_samples_leaf: int = 1
    n_jobs: int = -1

    def check(self, section: str) -> None:
        _positive_int(self.n_estimators, f"{section}.n_estimators")
        _positive_int(self.min_samples_leaf, f"{section}.min_samples_leaf")
        _require(isinstance(self.n_jobs, int) and (self.n_jobs == -1 or self.n_jobs >= 1),
                 f"{section}.n_jobs must be -1 or a positive integer, got {self.n_jobs!r}")


@dataclass
class ProbeSettings:
    """The linear probe: ``StandardScaler`` then multinomial ``LogisticRegression``.

    Args:
        C: inverse L2 regularisation strength.
        max_iter: most solver iterations.
    """

    C: float = 1.0
    max_iter: int = 2000

    def check(self, section: str) -> None:
        _positive_number(self.C, f"{section}.C")
        _positive_int(self.max_iter, f"{section}.max_iter")


@dataclass
class HybridSettings:
    """The combining regression of ``hybrid_rf``: a multinomial ``LogisticRegression`` on the two models' out-of-fold
    class probabilities, its inverse L2 regularisation strength chosen among ``Cs`` by cross-validated log loss on
    those same probabilities (scikit-learn's ``GridSearchCV``; the folds of the stacking), then refitted on all of
    them.

    Args:
        Cs: the candidate inverse regularisation strengths.
    """

    Cs: list[float] = field(default_factory=lambda: [0.001, 0.003162, 0.01, 0.03162, 0.1, 0.3162, 1.0, 3.162, 10.0,
                                                     31.62, 100.0])  # half decades

    def check(self, section: str) -> None:
        _require(isinstance(self.Cs, (list, tuple)) and len(self.Cs) > 0,
                 f"{section}.Cs must be a non-empty list of positive numbers, got {self.Cs!r}")
        for value in self.Cs:
            _positive_number(value, f"every value of {section}.Cs")


@dataclass
class EvaluationConfig:
    """The few-shot evaluation of ``astromer evaluate`` (docs/evaluation.md).

    Args:
        data: folder of a prepared survey dataset (``astromer data prepare``); its labelled curves, all splits
            pooled, are the evaluation pool.
        prepare: how to build ``data`` when it is missing, as the data module's ``prepare`` block:
            ``{survey: synthetic, config: macho, n_curves: 6400, seed: 1}``.
        bands: keep only these passbands (e.g. ``[R]`` for MACHO); None keeps every row.
        models: the Astromer models to evaluate, ``name: model`` (a ``save_pretrained`` folder, a release name such
            as ``astromer-1-macho``, or a Hub id). The name labels the rows when there are several.
        model_recipes: ``name: recipe``: a training recipe (``lightning fit --config``) that writes the folder of
            model ``name`` when it is missing, e.g. ``recipes/quickstart.yaml`` for its output folder.
        methods: the rows of the table, among :data:`METHODS`.
        spc: training curves per class (the papers' 20, 50, 100, 500).
        folds: folds (different random orders of each class).
        n_test: test curves per class (100 in the papers); the same for every SPC of a fold.
        validation_fraction: validation curves per class relative to the SPC (at least one), for early stopping.
        split_seed: seed of the few-shot orders (``few_shot_splits``'s ``seed``).
        seed: seed of every model's initialisation and training.
        output: folder of the results (written over).
        resume: keep the cells (fold, SPC, method) that ``output/scores.json`` already holds and compute only the
            others: a run stopped part-way goes on where it stopped, and a finished run gains methods, SPCs or folds
            without computing its cells again. The settings a cell's score depends on must be those of the stored run
            (the error names any that differ); ``methods``, ``spc``, ``folds``, ``output``, ``wandb``, ``device``,
            ``torch_threads``, ``embedding_batch_size``, ``map_method`` and ``model_recipes`` may change, and a model
            may be added.
        wandb: log the results to Weights & Biases: ``{project: astromer_hf, name: eval, mode: auto}`` (keywords of
            :class:`~astromer_hf.training.AstromerWandbLogger`); None logs nothing.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        torch_threads: CPU threads of torch during the run (None: torch's default). On a CPU shared with other jobs,
            1 avoids the slowdown of threads waiting for each other.
        embedding_pooling: how ``embed`` pools a curve for the probes and the map: ``"mean"``, ``"max"``, ``"gamma"``.
        embedding_batch_size: windows per forward pass when embedding.
        map_method: the 2-D map of the embeddings: ``"auto"`` (UMAP when umap-learn is installed, else t-SNE),
            ``"umap"`` or ``"tsne"``.
        features, forest, probe, hybrid, head, finetune, end_to_end, gru: settings of each method (see their
            classes).
    """

    data: str = "data/synthetic-eval"
    prepare: dict[str, Any] | None = None
    bands: list[str] | None = None
    models: dict[str, str] = field(default_factory=dict)
    model_recipes: dict[str, str] | None = field(default_factory=dict)
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    spc: list[int] = field(default_factory=lambda: [20, 50, 100, 500])
    folds: int = 3
    n_test: int = 100
    validation_fraction: float = 0.2
    split_seed: int = 0
    seed: int = 0
    output: str = "outputs/evaluation"
    resume: bool = False
    wandb: dict[str, Any] | None = None
    device: str = "auto"
    torch_threads: int | None = None
    embedding_pooling: Literal["mean", "max", "gamma"] = "mean"
    embedding_batch_size: int = 256
    map_method: Literal["auto", "umap", "tsne"] = "auto"
    features: FeatureSettings = field(default_factory=FeatureSettings)
    forest: ForestSettings = field(default_factory=ForestSettings)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    hybrid: HybridSettings = field(default_factory=HybridSettings)
    head: HeadSettings = field(default_factory=HeadSettings)
    finetune: FineTuningSettings = field(default_factory=FineTuningSettings)
    end_to_end: EndToEndSettings = field(default_factory=EndToEndSettings)
    gru: GRUSettings = field(default_factory=GRUSettings)

    def __post_init__(self) -> None:
        if self.model_recipes is None:  # `--model_recipes null`: no model is trained by the run
            self.model_recipes = {}
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting that cannot work."""
        _require(isinstance(self.data, str) and self.data.strip() != "",
                 f"data must be the folder of a prepared dataset, got {self.data!r}")
        if self.prepare is not None:
            _require(isinstance(self.prepare, dict) and "survey" in self.prepare,
                     f"prepare needs a 'survey' key (e.g. {{survey: synthetic, config: macho}}), got {self.prepare!r}")
        if self.bands is not None:
            _require(isinstance(self.bands, list) and len(self.bands) > 0
                     and all(isinstance(band, str) for band in self.bands),
                     f"bands must be a non-empty list of band names (e.g. [R]), got {self.bands!r}")
        _require(isinstance(self.methods, list) and len(self.methods) > 0, "methods is empty: name at least one of "
                 f"{list(METHODS)}")
        unknown = [name for name in self.methods if name not in METHODS]
        _require(not unknown, f"unknown method(s) {unknown}; the methods are {list(METHODS)}")
        _require(len(set(self.methods)) == len(self.methods), f"methods lists a method twice: {self.methods}")
        _require(isinstance(self.models, dict), f"models must map names to models ({{name: folder}}), got "
                 f"{self.models!r}")
        for name, model in self.models.items():
            _require(isinstance(name, str) and name.strip() != "" and isinstance(model, str) and model.strip() != "",
                     f"models must map names to model folders, release names or Hub ids, got {name!r}: {model!r}")
        needs_model = [name for name in self.methods if name in MODEL_METHODS]
        _require(not needs_model or bool(self.models),
                 f"the method(s) {needs_model} need an Astromer model: give models: {{name: folder or release}}")
        _require(isinstance(self.resume, bool), f"resume must be true or false, got {self.resume!r}")
        _require(isinstance(self.model_recipes, dict), f"model_recipes must map model names to recipes, got "
                 f"{self.model_recipes!r}")
        stray = [name for name in self.model_recipes if name not in self.models]
        _require(not stray, f"model_recipes names {stray}, which are not among models {list(self.models)}: name "
                 f"them in models, or drop the recipes (--model_recipes null) when your models are trained already")
        _require(isinstance(self.spc, list) and len(self.spc) > 0, f"spc must be a non-empty list, got {self.spc!r}")
        for value in self.spc:
            _positive_int(value, "every spc value")
        _require(len(set(self.spc)) == len(self.spc), f"spc lists a value twice: {self.spc}")
        _positive_int(self.folds, "folds")
        _positive_int(self.n_test, "n_test")
        _require(isinstance(self.validation_fraction, (int, float)) and 0 < self.validation_fraction <= 1,
                 f"validation_fraction must be in (0, 1], got {self.validation_fraction!r}")
        _positive_int(self.split_seed, "split_seed", 0)
        _positive_int(self.seed, "seed", 0)
        _require(isinstance(self.output, str) and self.output.strip() != "",
                 f"output must be a folder, got {self.output!r}")
        if self.wandb is not None:
            _require(isinstance(self.wandb, dict), f"wandb must be a mapping of logger settings ({{project: ..., "
                     f"mode: auto}}) or null, got {self.wandb!r}")
        _require(isinstance(self.device, str) and (self.device in ("auto", "cpu", "mps") or self.device.startswith(
            "cuda")), f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}")
        if self.torch_threads is not None:
            _positive_int(self.torch_threads, "torch_threads")
        _require(self.embedding_pooling in ("mean", "max", "gamma"),
                 f"embedding_pooling must be 'mean', 'max' or 'gamma', got {self.embedding_pooling!r}")
        _positive_int(self.embedding_batch_size, "embedding_batch_size")
        _require(self.map_method in ("auto", "umap", "tsne"),
                 f"map_method must be 'auto', 'umap' or 'tsne', got {self.map_method!r}")
        for section in ("features", "forest", "probe", "hybrid", "head", "finetune", "end_to_end", "gru"):
            getattr(self, section).check(section)

    def method_rows(self) -> list[tuple[str, str, str | None]]:
        """``(row label, method, model name or None)`` for every row of the table, in table order: one row per
        model for the methods that use one (``linear_probe@base`` when there are several models)."""
        rows = []
        for method in METHODS:
            if method not in self.methods:
                continue
            if method not in MODEL_METHODS:
                rows.append((method, method, None))
                continue
            for name in self.models:
                label = method if len(self.models) == 1 else f"{method}@{name}"
                rows.append((label, method, name))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_from_mapping(values: dict[str, Any]) -> EvaluationConfig:
    """An :class:`EvaluationConfig` from plain values (the nested sections as mappings), refusing unknown keys."""
    sections = {"features": FeatureSettings, "forest": ForestSettings, "probe": ProbeSettings, "hybrid": HybridSettings,
                "head": HeadSettings, "finetune": FineTuningSettings, "end_to_end": EndToEndSettings, "gru": GRUSettings}
    known = {item.name for item in fields(EvaluationConfig)}
    unknown = sorted(set(values) - known)
    _require(not unknown, f"unknown setting(s) {unknown}; the settings are {sorted(known)}")
    built = dict(values)
    for name, section in sections.items():
        value = built.get(name)
        if isinstance(value, dict):
            allowed = {item.name for item in fields(section)}
            extra = sorted(set(value) - allowed)
            _require(not extra, f"unknown setting(s) {[f'{name}.{key}' for key in extra]}; {name} takes "
                     f"{sorted(allowed)}")
            built[name] = section(**value)
    return EvaluationConfig(**built)


def spc_sorted(values: Sequence[int]) -> list[int]:
    return sorted(int(value) for value in values)


def parse_evaluation_args(argv: Sequence[str]) -> EvaluationConfig:
    """``--config FILE.yaml`` and ``--key value`` / ``--section.key value`` overrides -> :class:`EvaluationConfig`
    (``--help`` prints every setting with its default and exits)."""
    import argparse

    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(
        prog="astromer evaluate", exit_on_error=False,
        description="The papers' few-shot classification protocol on a prepared survey dataset: every method of "
        "`methods` trained on SPC curves per class for each fold, macro F1 per curve and per window, tables and "
        "figures in `output` (docs/evaluation.md). Settings come from --config FILE.yaml, then from the options "
        "after it (e.g. --spc [20,50] --folds 1 --finetune.epochs 2).",
    )
    parser.add_argument("--config", action=ActionConfigFile, help="a recipe, e.g. recipes/eval_synthetic.yaml")
    parser.add_class_arguments(EvaluationConfig, None, fail_untyped=False)
    try:
        namespace = parser.parse_args(list(argv))
    except argparse.ArgumentError as error:
        raise ValueError(_argument_error(str(error))) from None
    built = parser.instantiate(namespace)
    return EvaluationConfig(**{item.name: getattr(built, item.name) for item in fields(EvaluationConfig)})


def _argument_error(text: str) -> str:
    """jsonargparse's message, on one line and naming the setting."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    message = " ".join(lines)
    if "not accepted" in message or "does not accept" in message or "unrecognized arguments" in message:
        message += " (`astromer evaluate --help` lists every setting)"
    return message
