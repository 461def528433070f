"""The papers' few-shot protocol as one run: :func:`run_evaluation`.

1. The labelled curves of a prepared dataset (every split pooled, after the band filter: the pool the training data
   module's ``few_shot`` uses) are split by :func:`astromer_hf.data.splits.few_shot_splits` for every fold and SPC:
   per class, ``n_test`` test curves (shared by every SPC of a fold), ``spc`` training curves (nested across SPCs)
   and a validation set from the end of the class's order, disjoint from both.
2. Every method (a row of the table) is fitted on the training curves of each (fold, SPC), the trained networks
   early-stopped on the validation curves, and scored on the test curves: macro F1 per curve (one prediction per
   curve; window classifiers average their windows' logits) and, for the window classifiers, per window as the
   papers report. Nothing a method fits ever sees a test curve: the protocol checks that the three sets are disjoint
   (by row and by ``object_id``) before each fold is used.
3. The results are written as they come (``scores.json``), then as tables, figures and, when configured, a W&B run
   (:mod:`astromer_hf.evaluation.report`).

What is computed once and shared: the classical features of every curve, each model's pooled embedding of every
curve, and the frozen pretrained encoder's layer summaries of every window. None of these depends on labels, so
sharing them across folds leaks nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import METHODS, MODEL_METHODS, WINDOW_METHODS, EvaluationConfig, spc_sorted


@dataclass
class EvaluationPool:
    """The labelled curves of the evaluation: ``dataset`` (survey schema, all splits pooled, bands filtered),
    ``labels`` (int64 per row), ``class_names`` and ``object_ids``."""

    dataset: Any
    labels: np.ndarray
    class_names: list[str]
    object_ids: np.ndarray


@dataclass
class FoldSplit:
    """One (fold, SPC): the pool rows of its training, validation and test curves (each sorted)."""

    fold: int
    spc: int
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


@dataclass
class EvaluationResult:
    """What :func:`run_evaluation` returns: every cell's scores, the run's timing and the files written."""

    cells: list[dict]
    timing: dict[str, float]
    files: list[Path] = field(default_factory=list)
    table: Any = None


def ensure_dataset(config: EvaluationConfig) -> Path:
    """The dataset folder, prepared from ``config.prepare`` when missing."""
    path = Path(config.data)
    if path.exists():
        return path
    if config.prepare is None:
        raise FileNotFoundError(
            f"no prepared dataset at {path}; run `astromer data prepare SURVEY --out {path}` first, or give the "
            "evaluation a `prepare:` block (e.g. {survey: synthetic, config: macho, n_curves: 6400, seed: 1})"
        )
    from ..data.prepare import prepare_dataset

    settings = dict(config.prepare)
    survey, name = settings.pop("survey"), settings.pop("config", None)
    print(f"Preparing {survey}{f' ({name})' if name else ''} into {path} ...", flush=True)
    prepare_dataset(survey, path, config=name, **settings)
    return path


def load_pool(config: EvaluationConfig) -> EvaluationPool:
    """The labelled curves of ``config.data``, every split pooled in the order train, validation, test, rows of other
    bands than ``config.bands`` left out: the pool of ``AstromerDataModule(few_shot=...)``."""
    import datasets

    from ..data.splits import SPLIT_NAMES, load_prepared_splits

    path = ensure_dataset(config)
    loaded = load_prepared_splits(path)
    label = loaded["train"].features.get("label")
    class_names = list(getattr(label, "names", None) or [])
    if not class_names:
        raise ValueError(f"{path} has no class labels (its 'label' column is not a ClassLabel); the evaluation needs "
                         "a labelled dataset")
    pooled = datasets.concatenate_datasets([loaded[name] for name in SPLIT_NAMES])
    bands = set(config.bands) if config.bands is not None else None

    keep = [index for index, (value, band) in enumerate(zip(pooled["label"], pooled["band"]))
            if value is not None and (bands is None or band in bands)]
    pool = pooled.select(keep)  # (select: no progress bar for a step of a second)
    if len(pool) == 0:
        found = sorted(set(pooled["band"]))
        raise ValueError(f"{path} has no labelled curve" + (f" in the band(s) {sorted(bands)} (its bands: {found})"
                                                            if bands is not None else ""))
    object_ids = np.asarray(pool["object_id"], dtype=object)
    unique, counts = np.unique(object_ids, return_counts=True)
    if (counts > 1).any():
        repeated = unique[counts > 1]
        raise ValueError(
            f"{len(repeated)} object(s) of {path} have several labelled rows (e.g. {repeated[0]!r}: one per band), so "
            "one object could land in both a training and a test set; choose one band with `bands: [NAME]` (its "
            f"bands: {sorted(set(pool['band']))})"
        )
    return EvaluationPool(pool, np.asarray(pool["label"], dtype=np.int64), class_names, object_ids)


def check_class_sizes(pool: EvaluationPool, config: EvaluationConfig) -> None:
    """Refuse, naming the class, an SPC that a class has too few curves for."""
    largest = max(config.spc)
    counts = np.bincount(pool.labels, minlength=len(pool.class_names))
    needed = config.n_test + largest + max(1, round(config.validation_fraction * largest))
    short = [(name, int(count)) for name, count in zip(pool.class_names, counts) if 0 < count < needed]
    if short:
        smallest = min(count for _, count in short)
        fits = [k for k in range(1, largest + 1) if config.n_test + k + max(1, round(config.validation_fraction * k))
                <= smallest]
        raise ValueError(
            f"class {short[0][0]!r} has {short[0][1]} curves, but SPC {largest} needs n_test {config.n_test} + "
            f"{largest} training + {max(1, round(config.validation_fraction * largest))} validation = {needed} per "
            f"class (short classes: {dict(short)}); the largest SPC every class allows with n_test {config.n_test} is "
            f"{max(fits) if fits else 'none'}: lower spc or n_test, or prepare more curves"
        )
    if (counts > 0).sum() < 2:
        raise ValueError(f"the pool has labelled curves of {(counts > 0).sum()} class(es); classification needs two")


def fold_splits(pool: EvaluationPool, config: EvaluationConfig) -> dict[tuple[int, int], FoldSplit]:
    """Every (fold, SPC) split, computed by :func:`~astromer_hf.data.splits.few_shot_splits` on the pool's labels
    (what the split depends on), and checked disjoint."""
    import datasets

    from ..data.splits import few_shot_splits

    check_class_sizes(pool, config)
    proxy = datasets.Dataset.from_dict(
        {"label": pool.labels.tolist(), "row": np.arange(len(pool.labels)).tolist()},
        features=datasets.Features({"label": datasets.ClassLabel(names=pool.class_names),
                                    "row": datasets.Value("int64")}),
    )
    splits = {}
    for fold in range(config.folds):
        for spc in spc_sorted(config.spc):
            chosen = few_shot_splits(proxy, spc, fold, n_test=config.n_test,
                                     validation_fraction=config.validation_fraction, seed=config.split_seed)
            split = FoldSplit(fold, spc, *(np.sort(np.asarray(chosen[name]["row"], dtype=np.int64))
                                           for name in ("train", "validation", "test")))
            check_disjoint(split, pool)
            splits[fold, spc] = split
    return splits


def check_disjoint(split: FoldSplit, pool: EvaluationPool) -> None:
    """Raise when a test curve (by row or by ``object_id``) is among the training or validation curves."""
    for name, rows in (("training", split.train), ("validation", split.validation)):
        if np.intersect1d(rows, split.test).size or np.intersect1d(pool.object_ids[rows], pool.object_ids[split.test]
                                                                   ).size:
            raise RuntimeError(f"fold {split.fold}, SPC {split.spc}: a test curve is in the {name} set")
    if np.intersect1d(split.train, split.validation).size:
        raise RuntimeError(f"fold {split.fold}, SPC {split.spc}: a validation curve is in the training set")


def read_curves(dataset: Any) -> list[np.ndarray]:
    """The ``(N, 3)`` float64 ``[time, mag, mag_err]`` arrays of a survey-schema dataset's rows, in row order."""
    import pyarrow.compute as pc

    table = dataset.select_columns(["time", "mag", "mag_err"]).with_format("arrow")[:]
    lengths = pc.list_value_length(table.column("time")).to_numpy(zero_copy_only=False).astype(np.int64)
    columns = [pc.list_flatten(table.column(name)).to_numpy(zero_copy_only=False).astype(np.float64)
               for name in ("time", "mag", "mag_err")]
    values = np.stack(columns, axis=1)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [values[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]


def cell_seed(seed: int, fold: int, spc: int, method: str) -> int:
    """The training seed of one cell: depends on the run's seed, the fold, the SPC and the method only."""
    return int(np.random.SeedSequence([seed, fold, spc, list(METHODS).index(method)]).generate_state(1)[0] % 2**31)


def macro_f1(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, labels=list(range(n_classes)), average="macro", zero_division=0))


def confusion(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def resolve_models(config: EvaluationConfig) -> dict[str, str]:
    """``name: source`` with every missing model folder that has a recipe trained first (``astromer fit``)."""
    resolved = {}
    for name, source in config.models.items():
        looks_like_path = (source.startswith((".", "/", "~")) or source.count("/") >= 2
                           or (os.sep != "/" and os.sep in source))
        path = Path(source).expanduser()
        if looks_like_path and not path.exists():
            recipe = config.model_recipes.get(name)
            if recipe is None:
                raise FileNotFoundError(
                    f"model {name!r}: no model folder at {source}; train it first (e.g. `astromer fit --config "
                    f"recipes/quickstart.yaml` writes outputs/quickstart/pretrained/best), or name the recipe that "
                    f"writes it in model_recipes: {{{name}: RECIPE.yaml}}"
                )
            if not Path(recipe).is_file():
                raise FileNotFoundError(f"model_recipes.{name}: no recipe at {recipe}")
            print(f"Model {name!r}: {source} is missing; training it with `astromer fit --config {recipe}` ...",
                  flush=True)
            environment = dict(os.environ)
            if config.torch_threads is not None:  # the training process takes the run's thread count too
                environment["OMP_NUM_THREADS"] = str(config.torch_threads)
            result = subprocess.run([sys.executable, "-m", "astromer_hf", "fit", "--config", recipe], check=False,
                                    env=environment)
            if result.returncode != 0 or not path.exists():
                raise RuntimeError(f"model {name!r}: `astromer fit --config {recipe}` "
                                   f"{'failed' if result.returncode else 'did not write ' + source}")
        resolved[name] = str(path) if looks_like_path else source
    return resolved


class Evaluation:
    """One run of the protocol (see the module docstring); :meth:`run` does it all."""

    def __init__(self, config: EvaluationConfig, *, verbose: bool = True) -> None:
        self.config = config
        self.verbose = verbose
        self.output = Path(config.output)
        self.timing: dict[str, float] = {}
        self.cells: list[dict] = []
        self._features: np.ndarray | None = None
        self._models: dict[str, Any] = {}
        self._embeddings: dict[tuple[str, bool], np.ndarray] = {}
        self._windows: dict[str, Any] = {}
        self._summaries: dict[str, Any] = {}
        self._gru_windows = None

    def say(self, text: str) -> None:
        if self.verbose:
            print(text, flush=True)

    @contextlib.contextmanager
    def timed(self, key: str):
        started = time.perf_counter()
        yield
        self.timing[key] = self.timing.get(key, 0.0) + time.perf_counter() - started

    # -- setup -----------------------------------------------------------------------------------------------------

    def setup(self) -> None:
        from .astromer_methods import resolve_device

        config = self.config
        self.device = resolve_device(config.device)
        with self.timed("load_data"):
            self.pool = load_pool(config)
            self.splits = fold_splits(self.pool, config)
            self.needed = np.unique(np.concatenate([np.concatenate([s.train, s.validation, s.test])
                                                    for s in self.splits.values()]))
            self.curves = read_curves(self.pool.dataset.select(self.needed))
        self.labels = self.pool.labels[self.needed]
        self.n_classes = len(self.pool.class_names)
        uses_model = any(method in MODEL_METHODS for method in config.methods)
        with self.timed("resolve_models"):  # with the training of missing models (model_recipes)
            self.model_sources = resolve_models(config) if uses_model else {}
        for name in self.model_sources:  # a model that cannot be loaded stops the run now, not hours later
            self.model(name)
        self.say(f"Evaluation pool: {len(self.pool.labels)} labelled curves of {config.data} in {self.n_classes} "
                 f"classes; {len(self.needed)} used by SPC {spc_sorted(config.spc)} x {config.folds} fold(s), "
                 f"{config.n_test} test curves per class; device {self.device}")

    def local(self, rows: np.ndarray) -> np.ndarray:
        """Positions in :attr:`curves` of pool rows."""
        return np.searchsorted(self.needed, rows)

    # -- shared, label-free computations ----------------------------------------------------------------------------

    def features(self) -> np.ndarray:
        if self._features is None:
            from .features import compute_features

            self.say(f"Classical features of {len(self.curves)} curves (light-curve package) ...")
            with self.timed("features"):
                self._features = compute_features(self.curves, self.config.features)
        return self._features

    def model(self, name: str):
        if name not in self._models:
            from .astromer_methods import AstromerUnderTest

            with self.timed("load_models"):
                self._models[name] = AstromerUnderTest(name, self.model_sources[name], self.device, self.config.seed)
        return self._models[name]

    def embeddings(self, name: str, random: bool = False) -> np.ndarray:
        key = (name, random)
        if key not in self._embeddings:
            from .astromer_methods import embed_curves

            model = self.model(name)
            self.say(f"Embedding {len(self.curves)} curves with {'random weights of ' if random else ''}{name} ...")
            with self.timed("embeddings"):
                self._embeddings[key] = embed_curves(
                    self.curves, model.random_encoder() if random else model.encoder,
                    pooling=self.config.embedding_pooling, batch_size=self.config.embedding_batch_size,
                    device=self.device)
        return self._embeddings[key]

    def windows(self, name: str):
        if name not in self._windows:
            with self.timed("windows"):
                self._windows[name] = self.model(name).windows(self.curves)
        return self._windows[name]

    def summaries(self, name: str):
        """The frozen pretrained encoder's summaries of every window of every curve."""
        if name not in self._summaries:
            from .astromer_methods import layer_summaries

            model, windows = self.model(name), self.windows(name)
            self.say(f"Encoding the {len(windows)} windows once with the frozen encoder of {name} ...")
            with self.timed("encoder_summaries"):
                self._summaries[name] = layer_summaries(model.encoder, windows, np.arange(len(windows)),
                                                        batch_size=self.config.embedding_batch_size,
                                                        device=self.device, trim=model.trim)
        return self._summaries[name]

    def gru_windows(self):
        if self._gru_windows is None:
            from ..processing_astromer import AstromerProcessor
            from .baselines import gru_inputs
            from .training import make_windows

            with self.timed("windows"):
                windows = make_windows(self.curves, AstromerProcessor(window_size=self.config.gru.window_size,
                                                                      windows="tiling"))
                self._gru_windows = (windows, gru_inputs(windows.magnitudes, windows.times, windows.attention_mask))
        return self._gru_windows

    def shared_inputs(self, method: str, model_name: str | None) -> None:
        """Compute (once) what ``method`` reads from the shared, label-free steps."""
        if method in ("features_rf", "hybrid_rf"):
            self.features()
        if method in ("linear_probe", "hybrid_rf"):
            self.embeddings(model_name)
        if method == "random_linear_probe":
            self.embeddings(model_name, random=True)
        if method in ("finetuned_skip_mlp", "end_to_end"):
            self.windows(model_name)
        if method == "skip_mlp":
            self.summaries(model_name)
        if method == "raw_gru":
            self.gru_windows()

    # -- the cells ---------------------------------------------------------------------------------------------------

    def run_cell(self, split: FoldSplit, label: str, method: str, model_name: str | None) -> dict:
        train, validation, test = self.local(split.train), self.local(split.validation), self.local(split.test)
        seed = cell_seed(self.config.seed, split.fold, split.spc, method)
        self.shared_inputs(method, model_name)  # computed once, timed apart from the cells
        started = time.perf_counter()
        run = getattr(self, f"_{method}")
        scores, windows, info = run(train, validation, test, seed, model_name)
        seconds = time.perf_counter() - started
        truth = self.labels[test]
        predicted = scores.argmax(axis=1)
        cell = {
            "method": label, "base_method": method, "model": model_name, "fold": split.fold, "spc": split.spc,
            "f1_curve": macro_f1(truth, predicted, self.n_classes),
            "accuracy_curve": float((truth == predicted).mean()),
            "f1_window": None, "accuracy_window": None,
            "n_train": len(train), "n_validation": len(validation), "n_test": len(test), "n_test_windows": None,
            "seconds": round(seconds, 3), "confusion": confusion(truth, predicted, self.n_classes).tolist(),
            **info,
        }
        if windows is not None:
            window_logits, window_curves = windows
            window_truth = self.labels[window_curves]
            window_predicted = window_logits.argmax(axis=1)
            cell.update(f1_window=macro_f1(window_truth, window_predicted, self.n_classes),
                        accuracy_window=float((window_truth == window_predicted).mean()),
                        n_test_windows=int(len(window_curves)))
        return cell

    def _curve_scores(self, window_logits: np.ndarray, windows, rows: np.ndarray, test: np.ndarray) -> np.ndarray:
        from .training import curve_logits

        return curve_logits(window_logits, np.searchsorted(test, windows.curve[rows]), windows.length[rows], len(test))

    def _fit_predict(self, pipeline, X: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        from .baselines import class_log_probabilities

        pipeline.fit(X[train], self.labels[train])
        return class_log_probabilities(pipeline, X[test], self.n_classes)

    def _features_rf(self, train, validation, test, seed, model_name):
        from .baselines import random_forest

        return self._fit_predict(random_forest(self.config.forest, seed), self.features(), train, test), None, {}

    def _hybrid_rf(self, train, validation, test, seed, model_name):
        from .baselines import stacked_hybrid

        features = self.features()
        X = np.hstack([features, self.embeddings(model_name)])
        counts = np.bincount(self.labels[train], minlength=self.n_classes)
        hybrid = stacked_hybrid(self.config.forest, self.config.probe, features.shape[1], seed,
                                min_class_count=counts[counts > 0].min(), hybrid=self.config.hybrid)
        scores = self._fit_predict(hybrid, X, train, test)
        return scores, None, {"hybrid_C": float(hybrid.final_estimator_.best_params_["C"])}

    def _linear_probe(self, train, validation, test, seed, model_name, random: bool = False):
        from .baselines import linear_probe

        X = self.embeddings(model_name, random=random)
        return self._fit_predict(linear_probe(self.config.probe, seed), X, train, test), None, {}

    def _random_linear_probe(self, train, validation, test, seed, model_name):
        return self._linear_probe(train, validation, test, seed, model_name, random=True)

    def _window_split(self, windows, train, validation, test):
        rows = [windows.of_curves(curves) for curves in (train, validation, test)]
        return rows, [self.labels[windows.curve[r]] for r in rows]

    def _frozen_head(self, parts, windows, rows, labels, test, seed, model, encoder=None):
        """Train a frozen-encoder head on the summaries ``parts`` (training, validation, test windows)."""
        from .astromer_methods import frozen_head_window_logits, train_frozen_head

        classifier = model.classifier(self.pool.class_names, self.config.head, freeze=True, seed=seed,
                                      encoder=encoder)
        history = train_frozen_head(classifier, parts[0], labels[0], parts[1], labels[1], self.config.head,
                                    seed=seed, device=self.device)
        window_logits = frozen_head_window_logits(classifier, parts[2], self.device)
        return (self._curve_scores(window_logits, windows, rows[2], test), (window_logits, windows.curve[rows[2]]),
                {"training": history.to_dict()})

    def _skip_mlp(self, train, validation, test, seed, model_name):
        from .astromer_methods import LayerSummaries

        model, windows = self.model(model_name), self.windows(model_name)
        rows, labels = self._window_split(windows, train, validation, test)
        summaries = self.summaries(model_name)
        parts = [LayerSummaries(summaries.means[r], summaries.maxima[r]) for r in rows]
        return self._frozen_head(parts, windows, rows, labels, test, seed, model)

    def _finetuned_skip_mlp(self, train, validation, test, seed, model_name):
        from .astromer_methods import layer_summaries, masked_finetune

        model, windows = self.model(model_name), self.windows(model_name)
        dataset = self.pool.dataset
        encoder, finetuning = masked_finetune(
            model.source, dataset.select(self.needed[train]), dataset.select(self.needed[validation]),
            self.config.finetune, seed=seed, device=self.device)
        rows, labels = self._window_split(windows, train, validation, test)
        parts = [layer_summaries(encoder, windows, r, batch_size=self.config.embedding_batch_size, device=self.device,
                                 trim=model.trim) for r in rows]
        scores, window_output, info = self._frozen_head(parts, windows, rows, labels, test, seed, model,
                                                        encoder=encoder)
        return scores, window_output, {**info, "finetuning": finetuning}

    def _end_to_end(self, train, validation, test, seed, model_name):
        from .astromer_methods import model_window_logits, train_end_to_end

        model, windows = self.model(model_name), self.windows(model_name)
        rows, labels = self._window_split(windows, train, validation, test)
        settings = self.config.end_to_end
        classifier = model.classifier(self.pool.class_names, settings, freeze=False, seed=seed)
        history = train_end_to_end(classifier, windows, rows[0], labels[0], rows[1], labels[1], settings, seed=seed,
                                   device=self.device, trim=model.trim)
        window_logits = model_window_logits(classifier, windows, rows[2], batch_size=settings.batch_size * 4,
                                            device=self.device, trim=model.trim)
        return (self._curve_scores(window_logits, windows, rows[2], test), (window_logits, windows.curve[rows[2]]),
                {"training": history.to_dict()})

    def _raw_gru(self, train, validation, test, seed, model_name):
        from .baselines import gru_logits, train_raw_gru

        windows, inputs = self.gru_windows()
        rows, labels = self._window_split(windows, train, validation, test)
        window_labels = self.labels[windows.curve]
        model, history, mean, std = train_raw_gru(inputs, windows.length, window_labels, rows[0], rows[1],
                                                  self.n_classes, self.config.gru, seed=seed, device=self.device)
        window_logits = gru_logits(model, inputs, windows.length, rows[2], mean, std, self.device)
        return (self._curve_scores(window_logits, windows, rows[2], test), (window_logits, windows.curve[rows[2]]),
                {"training": history.to_dict()})

    # -- the run -----------------------------------------------------------------------------------------------------

    def run(self) -> EvaluationResult:
        from .report import embedding_map_points, write_report

        started = time.perf_counter()
        # before any work, so that a mismatch stops the run now
        stored, stored_timing = stored_run(self.config) if self.config.resume else ({}, {})
        if stored:
            self.say(f"Resuming: {len(stored)} cell(s) stored in {self.output / 'scores.json'}")
        self.setup()
        self.output.mkdir(parents=True, exist_ok=True)
        rows = self.config.method_rows()
        keys = sorted(self.splits)
        for fold, spc in keys:
            split = self.splits[fold, spc]
            for label, method, model_name in rows:
                cell = stored.get((method, model_name, fold, spc))
                kept = cell is not None
                if kept:  # the row's label gains "@model" when a second model joins the run
                    cell = {**cell, "method": label}
                else:
                    cell = self.run_cell(split, label, method, model_name)
                self.cells.append(cell)
                window = f", per window {cell['f1_window']:.3f}" if cell["f1_window"] is not None else ""
                self.say(f"[fold {fold + 1}/{self.config.folds} SPC {spc}] {label}: macro F1 per curve "
                         f"{cell['f1_curve']:.3f}{window} "
                         + ("(kept from the stored run)" if kept else f"({cell['seconds']:.1f} s)"))
                self.write_scores()
        with self.timed("embedding_map"):
            points = embedding_map_points(self)
        self.timing["total"] = time.perf_counter() - started
        for key, seconds in stored_timing.items():  # a resumed run's times include the stored run's
            self.timing[key] = self.timing.get(key, 0.0) + seconds
        self.write_scores()
        files, table = write_report(self, points)
        return EvaluationResult(self.cells, dict(self.timing), files, table)

    def protocol(self) -> dict:
        config = self.config
        counts = np.bincount(self.pool.labels, minlength=self.n_classes)
        return {
            "data": config.data, "bands": config.bands, "classes": self.pool.class_names,
            "pool_curves_per_class": dict(zip(self.pool.class_names, counts.tolist())),
            "spc": spc_sorted(config.spc), "folds": config.folds, "n_test": config.n_test,
            "validation_fraction": config.validation_fraction, "split_seed": config.split_seed, "seed": config.seed,
            "models": getattr(self, "model_sources", {}), "device": str(getattr(self, "device", "")),
            "per_curve": "mean of each curve's window logits, weighted by their observations",
            "std": "population standard deviation over folds (numpy ddof=0)",
        }

    def write_scores(self) -> Path:
        path = self.output / "scores.json"
        payload = {"protocol": self.protocol(), "config": self.config.to_dict(), "timing": self.timing,
                   "methods": {label: METHODS[method] for label, method, _ in self.config.method_rows()},
                   "window_methods": [m for m in WINDOW_METHODS if m in self.config.methods], "cells": self.cells}
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(payload, indent=1))
        temporary.replace(path)
        return path


#: Settings that may differ between a run and the stored run it resumes: they change which cells there are, where
#: the results go, or the speed, never a cell's score. (``models`` is compared model by model.)
RESUMABLE_CHANGES = ("methods", "spc", "folds", "output", "resume", "wandb", "device", "torch_threads",
                     "embedding_batch_size", "map_method", "models", "model_recipes")


def stored_run(config: EvaluationConfig) -> tuple[dict[tuple[str, str | None, int, int], dict], dict[str, float]]:
    """The cells of ``config.output/scores.json`` by ``(method, model name, fold, SPC)`` and its timing, for
    ``resume``; empty when there is no such file. Raises ``ValueError`` naming the settings that differ from the
    stored run's (its cells would not be the cells of this configuration)."""
    path = Path(config.output) / "scores.json"
    if not path.is_file():
        return {}, {}
    try:
        stored = json.loads(path.read_text())
        previous, cells = stored["config"], stored["cells"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"resume: {path} is not the scores.json of an evaluation ({error}); move it away or run "
                         "without resume") from None
    current = config.to_dict()
    differing = sorted(name for name in current if name not in RESUMABLE_CHANGES and previous.get(name) != current[name])
    changed_models = sorted(name for name, source in current["models"].items()
                            if name in previous.get("models", {}) and previous["models"][name] != source)
    differing += [f"models.{name}" for name in changed_models]
    if differing:
        raise ValueError(f"resume: the stored run in {path} was made with other {', '.join(differing)} than this "
                         "configuration, so its cells are not this run's: give another output folder, or run without "
                         "resume to start afresh")
    timing = {key: float(value) for key, value in stored.get("timing", {}).items()}
    return {(cell["base_method"], cell["model"], int(cell["fold"]), int(cell["spc"])): cell for cell in cells}, timing


def run_evaluation(config: EvaluationConfig, *, verbose: bool = True) -> EvaluationResult:
    """Run the few-shot evaluation of ``config`` and write its results into ``config.output``."""
    threads = torch.get_num_threads()
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    try:
        return Evaluation(config, verbose=verbose).run()
    finally:
        torch.set_num_threads(threads)
